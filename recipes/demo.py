"""`make demo`: the churn recipe end to end, in a sqlite store in ./demo-output (the embedded default).

1. Generates the seeded churn stream (a covariate shift from batch 3 on, labels one step late).
2. Trains version 1 with @track and promotes it, then streams every batch and label file through
   the monitoring loop (the backtest engine, keeping its store in demo-output/): checks, a drift
   warning, the alert when the labels confirm the drop, one retrain, the promotion of version 2.
3. Trains a deliberately stale candidate and shows the policy's rules refusing it.
4. Serves the champion (`mlflow-ext serve churn` on a free port of 127.0.0.1, logging its traffic to
   demo-output/inference), sends it rows of the last batch and then their true labels on /feedback,
   stops it (SIGTERM flushes the log) and runs the monitoring loop once over the served traffic
   (recipes/churn/serve-policy.toml): a check window against the champion and its accuracy.
5. Prints the `mlflow ui` command and where to click.

Every run starts clean: a previous demo's store in demo-output/ is removed first (it says so).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow_ext.promotion import Decision

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "churn"
OUT = Path("demo-output").resolve()
SERVED_ROWS = 300  # rows of the last batch sent to the served champion, in three requests
START_TIMEOUT = 120  # seconds for `mlflow-ext serve` to load the champion and answer /health
REQUEST_TIMEOUT = 60
STOP_TIMEOUT = 60


def _load(path: Path, name: str) -> object:
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mlflow_ext.backtest import TimelineEntry, backtest, load_history, render_html
    from mlflow_ext.cli.backtest import render_timeline

    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)
    started = time.monotonic()
    if (OUT / "mlflow.db").exists():
        console.print(f"A previous demo left its store in {OUT}: [bold]starting clean[/] (removed it).")
        shutil.rmtree(OUT)
    else:
        console.print(f"[bold]Starting clean[/] in {OUT}.")
    OUT.mkdir(parents=True, exist_ok=True)

    generate = _load(RECIPE / "generate.py", "churn_generate")
    manifest = generate.generate(OUT / "data")  # type: ignore[attr-defined]
    history = load_history(manifest)
    console.print(f"Generated the churn stream: {len(history.steps)} steps of batches and late labels "
                  f"({manifest.relative_to(OUT.parent)}).\n")

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("training and promoting version 1", total=None)

        def advance(done: int, total: int, entry: TimelineEntry) -> None:
            progress.update(task, completed=done, total=total, description=f"{entry.kind} {entry.name}")
            if entry.kind != "train":
                progress.console.print(f"  step {entry.step}: {entry.kind:<6} {entry.name}: {entry.status.upper()}"
                                       + (f"  -> retrained v{entry.retrained_version}" if entry.retrained_version
                                          else "")
                                       + (f"  -> {entry.decision.outcome} v{entry.decision.candidate}"
                                          if entry.decision else ""), markup=False)
            else:
                progress.console.print(f"Trained version {entry.version} with @track and promoted it to champion.",
                                       markup=False)

        result = backtest(RECIPE / "policy.toml", manifest, keep=OUT, on_step=advance)
    console.print()
    render_timeline(result, console)
    (OUT / "backtest.html").write_text(render_html(result), encoding="utf-8")

    console.print("\n[bold]A refused promotion[/]: a candidate trained on stale, pre-shift rows only.")
    refused = _refuse_stale(history)
    console.print(f"  Decision on v{refused.candidate}: {refused.outcome.upper()}: {refused.message}", markup=False)
    for rule in refused.rules:
        console.print(f"    {'pass' if rule.passed else 'FAIL'} {rule.rule}: {rule.message}", markup=False)

    console.print("\n[bold]The champion, served[/]: `mlflow-ext serve churn`, its traffic monitored.")
    _serve_and_watch(console, history, generate.FEATURES, generate.ID, generate.TARGET)  # type: ignore[attr-defined]

    db = OUT / "mlflow.db"
    console.print(f"\nDone in {time.monotonic() - started:.0f} s. Everything is in {OUT}:")
    console.print(f"""
  Browse it:   {ROOT / '.venv/bin/mlflow'} ui --backend-store-uri sqlite:///{db}
               then open http://127.0.0.1:5000
  - Experiments > [bold]mlflow-ext/churn[/]: the monitoring runs, one per batch ("check churn/1 #3"), one
    per labels file, the alert and retrain hook runs, and the decision runs
    (decision-champion-v2-promoted, decision-champion-v3-refused).
  - Open the check run of batch-03 ("check churn/1 #3") > Artifacts > [bold]report.html[/]: the drift report.
  - Open a decision run > Overview > Description: every rule with its observed value and bound.
  - Models > [bold]churn[/]: aliases champion -> v2, previous-champion -> v1.
  - In mlflow-ext/churn, the run [bold]"serve churn"[/]: the serving session (metrics: requests, errors, rows
    logged, labels written), then the served-traffic runs: [bold]"check churn/2 #7"[/] (the logged requests
    checked against the champion) and "labels labels-<time>....parquet" (the /feedback labels: accuracy),
    both tagged with the source folder {OUT / 'inference'}.
  - The alias history:  MLFLOW_TRACKING_URI=sqlite:///{db} {ROOT / '.venv/bin/mlflow-ext'} history churn
  - The backtest report with its timeline plot: {OUT / 'backtest.html'}
""", markup=True, highlight=False)
    return 0


def _refuse_stale(history: object) -> Decision:
    """Register a candidate fit on the oldest rows and let the policy decide it on the last labelled batch."""
    import mlflow

    from mlflow_ext.backtest import History
    from mlflow_ext.policy import load_policy
    from mlflow_ext.promotion import promote

    assert isinstance(history, History)
    uri = f"sqlite:///{OUT / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_REGISTRY_URI"] = uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    os.chdir(OUT)  # MLflow's default artifact folder (./mlruns) is the store's
    train = _load(RECIPE / "train.py", "churn_train")
    tracked = train.train_stale(history.frame(history.training))  # type: ignore[attr-defined]
    last = next(s for s in reversed(history.steps) if s.labels).labels[-1]
    fresh = history.frame(history.batch_path(last.batch)).merge(history.frame(last.path), on="customer_id")
    policy = load_policy(RECIPE / "policy.toml", check_environment=False)
    return promote("churn", tracked.version, policy=policy, eval_data=fresh, labels="churned",
                   reason="demo: a candidate trained on pre-shift rows only")


def _serve_and_watch(console: Any, history: Any, features: list[str], id_column: str, target: str) -> None:
    """Serve the champion, score the last batch over HTTP, send its labels, then watch the inference log."""
    from mlflow_ext.monitor import LoopSettings
    from mlflow_ext.policy import load_policy
    from mlflow_ext.watch import watch

    last = next(s for s in reversed(history.steps) if s.labels).labels[-1]
    rows = history.frame(history.batch_path(last.batch)).head(SERVED_ROWS)
    truth = history.frame(last.path).set_index(id_column)[target]
    inference = OUT / "inference"
    answers, feedback = [], []
    with _server(inference) as url:
        for start in range(0, len(rows), SERVED_ROWS // 3):
            chunk = rows.iloc[start:start + SERVED_ROWS // 3]
            body = {"dataframe_split": chunk[features].to_dict(orient="split", index=False)}
            headers, answer = _post(f"{url}/invocations", body)
            rid = headers["X-Request-Id"]
            answers.append((chunk, headers["X-MLflow-Ext-Version"], answer["predictions"]))
            # the log keys each row of a multi-row request as <request id>:<row>
            feedback += [{"request_id": f"{rid}:{i}", "label": int(truth[cid])}
                         for i, cid in enumerate(chunk[id_column])]
        chunk, version, predictions = answers[0]
        console.print(f"  Sent {len(rows)} rows of {last.batch} in {len(answers)} requests to {url}/invocations; "
                      "for example:", markup=False)
        for (_, row), predicted in list(zip(chunk.iterrows(), predictions, strict=True))[:3]:
            console.print(f"    customer {row[id_column]} ({row['monthly_charges']:.2f} a month, {row['contract']}): "
                          f"churn = {predicted}  [X-MLflow-Ext-Version: {version}]", markup=False)
        _, accepted = _post(f"{url}/feedback", feedback)
        console.print(f"  Sent the true labels to /feedback: {accepted['accepted']} accepted. "
                      "Stopping the server (SIGTERM flushes its log).", markup=False)
    files = sorted(p.name for p in inference.iterdir())
    console.print(f"  The inference log: {', '.join(files)}", markup=False)

    console.print(f"  The monitoring loop over {inference} (recipes/churn/serve-policy.toml, once):", markup=False)
    settings = LoopSettings.from_policy(load_policy(RECIPE / "serve-policy.toml", check_environment=False))
    summary = watch(settings, inference, interval=0.5, retries=1, until_idle=True,
                    on_step=lambda record: console.print(f"    {record.line()}", markup=False),
                    on_error=lambda message: console.print(f"    error: {message}", markup=False))
    if summary.failures or not any(r.kind == "labels" for r in summary.processed):
        raise SystemExit(f"demo: the served traffic was not monitored: {list(summary.failures)}")


@contextlib.contextmanager
def _server(log_dir: Path) -> Iterator[str]:
    """`mlflow-ext serve churn` in its own process group on a free port; its URL once /health answers.
    Stopped with SIGTERM on the way out (it flushes the log and records its session), killed if it hangs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"sqlite:///{OUT / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    command = [str(Path(sys.executable).parent / "mlflow-ext"), "serve", "churn", "--port", str(port),
               "--log-dir", str(log_dir), "--log-interval", "1", "--poll-interval", "1"]
    log = OUT / "serve.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(command, env=env, cwd=OUT, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, url, log)
        yield url
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=STOP_TIMEOUT)
    except BaseException:
        print(f"demo: the server's output ({log}):\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
        raise
    finally:
        if proc.poll() is None:  # an error on the way, or it did not stop in time
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT)


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: mlflow-ext serve exited with {proc.returncode}.")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"demo: mlflow-ext serve did not answer {url}/health in {START_TIMEOUT} s.")


def _post(url: str, body: object) -> tuple[Any, Any]:
    """POST JSON; the response's headers and JSON body (an HTTP error stops the demo, saying why)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
            return response.headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"demo: {url} answered {exc.code}: {exc.read().decode(errors='replace')}") from exc


if __name__ == "__main__":
    sys.exit(main())
