"""`make demo`: the churn recipe end to end, in a sqlite store in ./demo-output (the embedded default).

1. Generates the seeded churn stream (a covariate shift from batch 3 on, labels one step late).
2. Trains version 1 with @track and promotes it, then streams every batch and label file through
   the monitoring loop (the backtest engine, keeping its store in demo-output/): checks, a drift
   warning, the alert when the labels confirm the drop, one retrain, the promotion of version 2.
3. Trains a deliberately stale candidate and shows the policy's rules refusing it.
4. Prints the `mlflow ui` command and where to click.

Every run starts clean: a previous demo's store in demo-output/ is removed first (it says so).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "churn"
OUT = Path("demo-output").resolve()


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
  - The alias history:  MLFLOW_TRACKING_URI=sqlite:///{db} {ROOT / '.venv/bin/mlflow-ext'} history churn
  - The backtest report with its timeline plot: {OUT / 'backtest.html'}
""", markup=True, highlight=False)
    return 0


def _refuse_stale(history: object) -> object:
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


if __name__ == "__main__":
    sys.exit(main())
