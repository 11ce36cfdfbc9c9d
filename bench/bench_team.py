"""Team bench: throughput of recorded checks and promotion decisions from 1, 4 and 8 concurrent clients.

Backends, one after the other in one run:

- ``postgres-w1``: a PostgreSQL-backed `mlflow server` started by tests/backends.py (PostgreSQL from
  the pgserver wheel, the server on 127.0.0.1) with MLflow's default connection pool, 1 worker;
- ``postgres-w4``: the same server with ``--workers 4`` (uvicorn, MLflow's default);
- ``postgres-w4-gunicorn`` (only when named in ``--backends``): 4 gunicorn workers
  (``MLFLOW_GUNICORN_OPTS``: the Flask app alone). uvicorn 0.54 with more than one worker leaves
  Nagle's algorithm on (Kludex/uvicorn#3149): every keep-alive request waits ~40 ms for a delayed
  ACK, which this variant does not;
- ``sqlite``: every client on one ``sqlite:///.../mlflow.db`` file, the embedded default.

For each backend and client count the clients are fresh processes (spawn start method: forked
processes would share database connections). Each imports everything, does one untimed operation and
waits at a barrier; released together, each does a fixed number of operations:

- ``check``: ``check_model("churn@champion", batch, id_column="customer_id")`` of a fresh unlabelled
  2,000-row batch, recorded (a run with metrics, check.json, report.html and plots, and the version's
  last-check tags): what ``mlflow-ext check`` does. All clients check the same model.
- ``decision``: ``promote("team-<clients>", version, reason=...)`` with no rules, recorded as a
  decision run. The clients share one model, each promoting its own two versions in turn, so they
  race on the same champion alias: a refusal by the compare-and-set is a recorded decision, not an
  error.

Throughput is the operations finished without an exception over the wall time from the release to
the last client's finish; latency is per operation. An error is any exception, counted and reported
with its text. After each run the recorded runs are counted against the operations made. CPU
seconds of the clients, the server's process tree and PostgreSQL's are measured over the timed part.
Prints a Markdown table and writes bench/results/team.{md,json}. About 7 minutes on 2 cores.

    .venv/bin/python bench/bench_team.py
    .venv/bin/python bench/bench_team.py --backends postgres-w1 postgres-w4 postgres-w4-gunicorn sqlite
    .venv/bin/python bench/bench_team.py --backends sqlite --clients 1 4 --checks 3 --decisions 5
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# server backend -> (workers, environment over the tests' settings); every one with MLflow's default pool
# (an empty POOLCLASS), not the tests' NullPool: the server a team runs
SERVERS: dict[str, tuple[int, dict[str, str]]] = {
    "postgres-w1": (1, {}),
    "postgres-w4": (4, {}),
    "postgres-w4-gunicorn": (4, {"MLFLOW_GUNICORN_OPTS": "--timeout 120"}),
}
BACKENDS = (*SERVERS, "sqlite")
DEFAULT_BACKENDS = ("postgres-w1", "postgres-w4", "sqlite")
LABELS = {"postgres-w1": "PostgreSQL server, 1 uvicorn worker",
          "postgres-w4": "PostgreSQL server, 4 uvicorn workers",
          "postgres-w4-gunicorn": "PostgreSQL server, 4 gunicorn workers", "sqlite": "sqlite file"}
OPS = ("check", "decision")
CHECK_MODEL = "churn"
BATCH_ROWS = 2000
BARRIER_TIMEOUT = 900.0  # seconds: a client that died must not hang the run
TICK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def decision_model(clients: int) -> str:
    return f"team-{clients}"


def own_versions(index: int) -> tuple[str, str]:
    """Client ``index``'s two versions of the shared decision model (version 1 is the first champion)."""
    return str(2 + 2 * index), str(3 + 2 * index)


# -- a client (its own spawned process) ---------------------------------------------------------------


def _operations(index: int, clients: int, count: int) -> dict[str, Callable[[int], str]]:
    """The two operations of client ``index``; each returns its outcome (check status, decision outcome)."""
    from mlflow_ext.model_check import check_model
    from mlflow_ext.promotion import promote
    from tests.model_fixtures import ID, TARGET, make_batch

    # the same batches on every backend; op ``count`` is the warm-up
    batches = [make_batch(BATCH_ROWS, seed=10_000 * clients + 100 * index + k, start_id=1_000_000).drop(
        columns=[TARGET]) for k in range(count + 1)]
    mine = own_versions(index)
    won: list[str] = []  # the last of our versions we moved the champion to

    def check(k: int) -> str:
        return check_model(f"{CHECK_MODEL}@champion", batches[k], id_column=ID).status

    def decide(k: int) -> str:
        # Never the version we promoted last: if the champion is one of ours, it is that one, and
        # promoting the holder is a usage error, not a decision.
        choices = [v for v in mine if v not in won[-1:]]
        decision = promote(decision_model(clients), choices[k % len(choices)], reason=f"bench client {index} op {k}")
        if decision.promoted:
            won.append(decision.candidate)
        return decision.outcome

    return {"check": check, "decision": decide}


def client(index: int, clients: int, uri: str, work: str, counts: dict[str, int], barrier: Any,
           results: Any) -> None:
    """Warm up, wait for the release, do the operations, report; once per operation kind."""
    os.environ.update({"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXT_USER": f"client-{index}"})
    if uri.startswith("sqlite:"):
        os.environ["MLFLOW_REGISTRY_URI"] = uri
    os.chdir(work)  # the sqlite store's default artifact root (./mlruns) is relative
    operations = _operations(index, clients, max(counts.values()))
    for op in OPS:
        run = operations[op]
        report: dict[str, Any] = {"client": index, "op": op, "latencies": [], "outcomes": Counter(), "errors": [],
                                  "warm_up": None}
        try:
            report["warm_up"] = run(counts[op])
        except Exception as exc:  # noqa: BLE001 - reported, and the client still takes part
            report["warm_up"] = f"error: {type(exc).__name__}: {exc}"
        barrier.wait(BARRIER_TIMEOUT)
        report["start"], cpu = time.monotonic(), time.process_time()
        for k in range(counts[op]):
            began = time.perf_counter()
            try:
                report["outcomes"][run(k)] += 1
                report["latencies"].append(time.perf_counter() - began)
            except Exception as exc:  # noqa: BLE001 - every exception is an error, with its text
                report["errors"].append(f"{type(exc).__name__}: {exc}")
        report["end"], report["cpu_s"] = time.monotonic(), time.process_time() - cpu
        report["outcomes"] = dict(report["outcomes"])
        results.put(report)
        barrier.wait(BARRIER_TIMEOUT)  # nobody warms up the next operation while others are timed


# -- CPU of the server and the database --------------------------------------------------------------


def tree_cpu_s(pid: int | None) -> float:
    """CPU seconds of a process and its live descendants, plus the exited children they reaped."""
    total, pids = 0, [pid] if pid else []
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
        pids.extend(int(c) for c in children)
    return total / TICK


@dataclass
class Backend:
    """Where the clients go: the tracking URI, and the processes whose CPU counts as server / database."""

    name: str
    uri: str
    work: Path
    server_pid: int | None = None
    database_pid: int | None = None
    stop: Callable[[], None] = field(default=lambda: None)


# -- one run: a backend, a client count, both operations -------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def count_runs(model: str, kind: str) -> int:
    """Runs of ``kind`` (check, decision) recorded in ``mlflow-ext/<model>``."""
    from mlflow_ext.tracking import MONITORING_EXPERIMENT, TAG_PREFIX, client

    found = client().get_experiment_by_name(MONITORING_EXPERIMENT.format(model=model))
    if found is None:
        return 0
    runs, token = 0, None
    while True:
        page = client().search_runs([found.experiment_id], filter_string=f"tags.`{TAG_PREFIX}kind` = '{kind}'",
                                    max_results=1000, page_token=token)
        runs += len(page)
        token = page.token
        if not token:
            return runs


def prepare_decisions(clients: int) -> None:
    """The shared model of the decision race: versions 1 (the first champion) to 1 + 2 x clients, all of
    the churn model's first version (promote reads a version's record, not its artifacts)."""
    import mlflow

    from mlflow_ext.promotion import promote

    client = mlflow.MlflowClient()
    source = client.get_model_version(CHECK_MODEL, "1")
    name = decision_model(clients)
    client.create_registered_model(name)
    for _ in range(1 + 2 * clients):
        client.create_model_version(name, f"models:/{CHECK_MODEL}/1", run_id=source.run_id,
                                    model_id=source.model_id, await_creation_for=0)
    promote(name, "1", reason="bench: the first champion")


def run_clients(backend: Backend, clients: int, counts: dict[str, int]) -> list[dict[str, Any]]:
    """Start the clients, release them together per operation; one row per operation."""
    prepare_decisions(clients)
    before = {"check": count_runs(CHECK_MODEL, "check"), "decision": count_runs(decision_model(clients), "decision")}
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(clients + 1), context.Queue()
    processes = [context.Process(target=client, args=(i, clients, backend.uri, str(backend.work), counts, barrier,
                                                      results), daemon=True) for i in range(clients)]
    for process in processes:
        process.start()
    rows = []
    try:
        for op in OPS:
            row: dict[str, Any] = {"backend": backend.name, "clients": clients, "op": op, "failure": None}
            reports: list[dict[str, Any]] = []
            released = time.monotonic()
            try:
                barrier.wait(BARRIER_TIMEOUT)
                released = time.monotonic()
                cpu = {"server": tree_cpu_s(backend.server_pid), "database": tree_cpu_s(backend.database_pid)}
                while len(reports) < clients:
                    reports.append(results.get(timeout=BARRIER_TIMEOUT))
                row["cpu_s"] = {"clients": sum(r["cpu_s"] for r in reports),
                                **{k: tree_cpu_s(pid) - cpu[k] for k, pid in
                                   (("server", backend.server_pid), ("database", backend.database_pid))}}
                barrier.wait(BARRIER_TIMEOUT)
            except (threading.BrokenBarrierError, queue.Empty):
                codes = {i: p.exitcode for i, p in enumerate(processes) if p.exitcode is not None}
                row["failure"] = f"clients did not finish: exit codes {codes}, {len(reports)} of {clients} reported"
                rows.append(summarise(row, reports, released))
                break
            rows.append(summarise(row, reports, min(released, *(r["start"] for r in reports))))
        made = {r["op"]: sum(sum(x["outcomes"].values()) for x in r["reports"]) + sum(
            1 for x in r["reports"] if not str(x["warm_up"]).startswith("error")) for r in rows}
        for row in rows:
            model = CHECK_MODEL if row["op"] == "check" else decision_model(clients)
            row["recorded"] = {"runs": count_runs(model, row["op"]) - before[row["op"]], "expected": made[row["op"]]}
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()
    return rows


def summarise(row: dict[str, Any], reports: list[dict[str, Any]], released: float) -> dict[str, Any]:
    latencies = [s for r in reports for s in r["latencies"]]
    errors = [e for r in reports for e in r["errors"]]
    wall = max((r["end"] for r in reports), default=released) - released
    outcomes: Counter[str] = Counter()
    for r in reports:
        outcomes.update(r["outcomes"])
    return {**row, "ops": len(latencies) + len(errors), "ok": len(latencies), "errors": len(errors),
            "error_texts": dict(Counter(errors)), "wall_s": wall,
            "ops_per_s": len(latencies) / wall if wall > 0 else None,
            "median_ms": 1000 * statistics.median(latencies) if latencies else None,
            "p95_ms": 1000 * p if (p := percentile(latencies, 0.95)) is not None else None,
            "outcomes": dict(outcomes),
            "reports": [{**r, "latencies": [round(s * 1000, 1) for s in r["latencies"]]} for r in reports]}


# -- backends -------------------------------------------------------------------------------------------


def use(uri: str, *, registry: bool) -> None:
    """Point this process's MLflow at ``uri`` (the registry too, for a store without a server)."""
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = uri
    if registry:
        os.environ["MLFLOW_REGISTRY_URI"] = uri
    else:
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)


def register_champion(artifacts: str | None) -> None:
    """The churn classifier the checks run against, trained under @track, its version 1 the champion."""
    import mlflow

    from tests.model_fixtures import make_batch, register_version

    mlflow.create_experiment("training", artifact_location=artifacts)
    register_version(CHECK_MODEL, make_batch(3000, seed=1), make_batch(1000, seed=2, start_id=10_000))


def open_backend(name: str, work: Path, postgres: Any) -> Backend:
    if name == "sqlite":
        folder = work / "sqlite"
        folder.mkdir()
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        use(uri, registry=True)
        os.chdir(folder)
        register_champion(str(folder / "artifacts"))
        return Backend(name, uri, folder)
    from tests.backends import start_team_server

    workers, env = SERVERS[name]
    server = start_team_server(name, postgres, work / name, env={"MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "", **env},
                               workers=workers)
    pid_file = work / "postgres" / "postmaster.pid"
    use(server.url, registry=False)
    os.chdir(work / name)
    register_champion(None)
    return Backend(name, server.url, work / name, server_pid=server.process.pid,
                   database_pid=int(pid_file.read_text().split()[0]), stop=server.stop)


# -- the report -----------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def render(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    peers = {(r["clients"], r["op"]): r["ops_per_s"] for r in rows if r["backend"] == "sqlite"}
    lines = [f"{args.checks} checks (unlabelled {BATCH_ROWS:,}-row batch, recorded) and {args.decisions} decisions "
             f"(promote, no rules, recorded) per client; {os.cpu_count()} CPUs shared by clients, server and "
             "database.", "",
             "| backend | clients | op | ops | ops/s | x sqlite | median ms | p95 ms | errors | outcomes | "
             "runs recorded | CPU s clients / server / db |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
    for r in rows:
        rate = r["ops_per_s"]
        peer = peers.get((r["clients"], r["op"]))
        ratio = f"{rate / peer:.2f}" if rate and peer else "—"
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items())) or "—"
        recorded = r.get("recorded", {})
        cpu = r.get("cpu_s", {})
        cpu_text = " / ".join("—" if k != "clients" and r["backend"] == "sqlite" else f"{cpu[k]:.0f}"
                              for k in ("clients", "server", "database")) if cpu else "—"
        lines.append(f"| {LABELS[r['backend']]} | {r['clients']} | {r['op']} | {r['ops']} | "
                     f"{'—' if rate is None else f'{rate:.2f}'} | {ratio} | {_ms(r['median_ms'])} | "
                     f"{_ms(r['p95_ms'])} | {r['errors']} | {outcomes} | "
                     f"{recorded.get('runs', '—')} / {recorded.get('expected', '—')} | {cpu_text} |")
    lines += ["", "ops/s: operations finished without an exception per second, from the release to the last "
              "client's finish. x sqlite: over the sqlite file's ops/s with as many clients. runs recorded: check "
              "or decision runs found afterwards / operations (warm-ups included) that returned. CPU s: over the "
              "timed part, the client processes / the server's process tree / PostgreSQL (sqlite runs inside the "
              "clients)."]
    problems = [r for r in rows if r["errors"] or r["failure"] or any(
        str(x["warm_up"]).startswith("error") for x in r["reports"])]
    lines.append("")
    if not problems:
        lines.append(f"Errors: none in {sum(r['ops'] for r in rows)} timed operations (and every warm-up passed).")
    for r in problems:
        head = f"- {LABELS[r['backend']]}, {r['clients']} clients, {r['op']}:"
        if r["failure"]:
            lines.append(f"{head} {r['failure']}")
        for text, n in r["error_texts"].items():
            lines.append(f"{head} {n} x `{' '.join(text.split())[:600]}`")
        for x in r["reports"]:
            if str(x["warm_up"]).startswith("error"):
                lines.append(f"{head} warm-up of client {x['client']}: `{' '.join(str(x['warm_up']).split())[:600]}`")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(DEFAULT_BACKENDS))
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--checks", type=int, default=10, help="checks per client (default 10)")
    parser.add_argument("--decisions", type=int, default=10, help="decisions per client (default 10)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    args.out = args.out.resolve()
    counts = {"check": args.checks, "decision": args.decisions}
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # the clients inherit it

    work = Path(tempfile.mkdtemp(prefix="bench-team-"))
    load_at_start, started = os.getloadavg(), time.monotonic()
    postgres = None
    rows: list[dict[str, Any]] = []
    try:
        if any(b.startswith("postgres") for b in args.backends):
            from tests.backends import Postgres

            postgres = Postgres(work / "postgres")
        for name in args.backends:
            log(f"{name}: starting")
            backend = open_backend(name, work, postgres)
            try:
                for clients in args.clients:
                    began = time.monotonic()
                    found = run_clients(backend, clients, counts)
                    rows.extend(found)
                    log(f"{name}, {clients} clients: " + "; ".join(
                        f"{r['op']} {r['ops_per_s'] or 0:.2f}/s, {r['errors']} errors" for r in found)
                        + f" ({time.monotonic() - began:.0f} s)")
            finally:
                backend.stop()
    finally:
        os.chdir(ROOT)
        if postgres is not None:
            postgres.stop()
    import mlflow

    report = render(rows, args)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "team.md").write_text(report)
    (args.out / "team.json").write_text(json.dumps({
        "rows": rows, "settings": vars(args) | {"out": str(args.out), "batch_rows": BATCH_ROWS},
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
                    "mlflow": mlflow.__version__, "load_average_at_start": load_at_start,
                    "load_average_at_end": os.getloadavg(), "seconds": time.monotonic() - started},
        "work": str(work)}, indent=2))


if __name__ == "__main__":
    main()
