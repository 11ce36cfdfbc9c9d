"""Load bench: `mlflow-ext serve` (inference log on) against `mlflow models serve` of the same model.

Both servers run side by side on 127.0.0.1 (one uvicorn worker each) in one run, over a throw-away
sqlite store holding two versions of a churn classifier trained under @track. An open-loop load
generator (asyncio + aiohttp, its own process) sends one-row `dataframe_split` requests:

1. capacity: 8 connections back to back for --capacity-s seconds (closed loop): requests/s;
2. steady: --rate requests/s for --steady-s seconds: p50/p99 latency, failures;
3. burst: 10 x --rate for 30 s: p50/p99, failures, 503s (mlflow-ext sheds load past
   --max-in-flight with a fast 503 + Retry-After; MLflow's server queues);
4. switch (mlflow-ext only): steady rate while the champion alias moves to version 2: failures,
   and which versions answered.

Peak RSS of each server's process tree is sampled throughout. Prints a Markdown table and writes
bench/results/serve.{md,json}. Needs the dev extra (aiohttp). About 4 minutes on 2 cores.

    .venv/bin/python bench/bench_serve.py [--rate 30] [--steady-s 20] [--max-in-flight 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from tests.backends import free_port, start_serving, stop_process_group  # noqa: E402


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants (MLflow's server runs uvicorn as a child)."""
    total, pids = 0, [pid]
    while pids:
        current = pids.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pids.extend(int(c) for c in children)
    return total / 1024


class PeakRss(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.5):
            self.peak = max(self.peak, tree_rss_mb(self.pid))


# -- the load generator (runs in its own process: `bench_serve.py --load URL MODE RATE SECONDS`) --------


async def _load(url: str, mode: str, rate: float, seconds: float, body: bytes) -> dict[str, Any]:
    import aiohttp

    records: list[tuple[float, int, str]] = []  # latency s, status (0 = failed), version header
    headers = {"Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2000), timeout=timeout) as session:

        async def one() -> None:
            started = time.perf_counter()
            try:
                async with session.post(f"{url}/invocations", data=body, headers=headers) as response:
                    await response.read()
                    records.append((time.perf_counter() - started, response.status,
                                    response.headers.get("X-MLflow-Ext-Version", "")))
            except (aiohttp.ClientError, asyncio.TimeoutError):
                records.append((time.perf_counter() - started, 0, ""))

        begin = time.perf_counter()
        if mode == "closed":
            async def worker() -> None:
                while time.perf_counter() - begin < seconds:
                    await one()
            await asyncio.gather(*(worker() for _ in range(int(rate))))
        else:  # open loop: request i leaves at begin + i / rate, whatever happened to earlier ones
            tasks, i = [], 0
            while (due := i / rate) < seconds:
                delay = begin + due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one()))
                i += 1
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begin
    return {"elapsed": elapsed, "records": records}


BODY = Path(tempfile.gettempdir()) / f"bench-serve-body-{os.getpid()}.json"


def load(url: str, mode: str, rate: float, seconds: float) -> dict[str, Any]:
    """Run the generator in a fresh process and summarise what it saw."""
    out = subprocess.run([sys.executable, __file__, "--load", url, mode, str(rate), str(seconds), str(BODY)],
                         capture_output=True, text=True, check=True)
    raw = json.loads(out.stdout)
    records = raw["records"]
    ok = sorted(r[0] for r in records if r[1] == 200)
    shed = sorted(r[0] for r in records if r[1] == 503)

    def pct(values: list[float], q: float) -> float | None:
        return round(values[min(len(values) - 1, int(q * len(values)))] * 1000, 2) if values else None

    versions: dict[str, int] = {}
    for r in records:
        if r[1] == 200:
            versions[r[2]] = versions.get(r[2], 0) + 1
    return {"mode": mode, "rate": rate, "seconds": seconds, "sent": len(records), "ok": len(ok),
            "throughput": round(len(ok) / raw["elapsed"], 1), "p50_ms": pct(ok, 0.5), "p99_ms": pct(ok, 0.99),
            "shed_503": len(shed), "p99_503_ms": pct(shed, 0.99),
            "failed": sum(1 for r in records if r[1] not in (200, 503)), "versions": versions}


# -- the bench ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=30.0, help="steady requests/s (the burst is 10x)")
    parser.add_argument("--steady-s", type=float, default=20.0)
    parser.add_argument("--burst-s", type=float, default=30.0)
    parser.add_argument("--capacity-s", type=float, default=10.0)
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    import mlflow

    from tests.model_fixtures import FEATURES, make_batch, register_version

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    uri = f"sqlite:///{work / 'mlflow.db'}"
    # MLflow starts `uvicorn` by name: the venv must be on PATH
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri,
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    os.environ.update({"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri})
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.create_experiment("training", artifact_location=str(work / "artifacts"))
    train, valid = make_batch(3000, seed=1), make_batch(1000, seed=2, start_id=10_000)
    register_version("churn", train, valid)
    register_version("churn", train.iloc[:2000], valid, alias=None)
    row = make_batch(1, seed=5)[FEATURES]
    body = json.dumps({"dataframe_split": json.loads(row.to_json(orient="split", index=False))})
    BODY.write_text(body)

    ours_url, theirs_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    ours = start_serving([str(BIN / "mlflow-ext"), "serve", "churn", "--port", ours_url.rsplit(":", 1)[1],
                          "--log-dir", str(work / "inference"), "--poll-interval", "1",
                          "--max-in-flight", str(args.max_in_flight)],
                         env=env, url=ours_url, log=work / "ours.log", path="/ping", timeout=180)
    results: dict[str, dict[str, Any]] = {}
    theirs = None
    try:
        theirs = start_serving(
            [str(BIN / "mlflow"), "models", "serve", "-m", "models:/churn/1", "--env-manager", "local",
             "--host", "127.0.0.1", "--port", theirs_url.rsplit(":", 1)[1], "--workers", "1"],
            env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, url=theirs_url, log=work / "theirs.log",
            path="/ping", timeout=180)
        for name, url, proc in (("mlflow-ext serve", ours_url, ours), ("mlflow models serve", theirs_url, theirs)):
            peak = PeakRss(proc.pid)
            peak.start()
            load(url, "closed", 4, 3)  # warm-up, not reported
            phases = {"capacity": load(url, "closed", 8, args.capacity_s),
                      "steady": load(url, "open", args.rate, args.steady_s),
                      "burst": load(url, "open", 10 * args.rate, args.burst_s)}
            if proc is ours:
                timer = threading.Timer(args.steady_s / 3, lambda: mlflow.MlflowClient().set_registered_model_alias(
                    "churn", "champion", "2"))
                timer.start()
                phases["switch"] = load(url, "open", args.rate, args.steady_s)
                timer.join()
            peak.done.set()
            peak.join()
            results[name] = {"phases": phases, "peak_rss_mb": round(peak.peak, 1)}
    finally:
        stop_process_group(ours)
        if theirs is not None:
            stop_process_group(theirs)
    import pandas as pd

    logged = sum(len(pd.read_parquet(p)) for p in (work / "inference").glob("batch-*.parquet"))
    report = render(results, args, logged)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve.md").write_text(report)
    (args.out / "serve.json").write_text(json.dumps({
        "results": results, "logged_rows": logged, "machine": {
            "python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()},
        "settings": vars(args) | {"out": str(args.out)}}, indent=2))


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace, logged: int) -> str:
    lines = [f"Steady {args.rate:g} req/s for {args.steady_s:g} s, burst {10 * args.rate:g} req/s for "
             f"{args.burst_s:g} s; one-row dataframe_split requests; {os.cpu_count()} CPUs shared with the "
             "load generator.", "",
             "| server | phase | sent | ok | req/s | p50 ms | p99 ms | 503 (p99 ms) | failed | versions |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, result in results.items():
        for phase, r in result["phases"].items():
            shed = f"{r['shed_503']} ({r['p99_503_ms']})" if r["shed_503"] else "0"
            versions = ", ".join(f"v{k}: {v}" for k, v in sorted(r["versions"].items()) if k) or "-"
            lines.append(f"| {name} | {phase} | {r['sent']} | {r['ok']} | {r['throughput']} | {r['p50_ms']} | "
                         f"{r['p99_ms']} | {shed} | {r['failed']} | {versions} |")
    lines.append("")
    ours, theirs = results["mlflow-ext serve"], results["mlflow models serve"]
    for phase in ("capacity", "steady", "burst"):
        a, b = ours["phases"][phase], theirs["phases"][phase]
        ratio_t = a["throughput"] / b["throughput"] if b["throughput"] else float("nan")
        ratio_p = (a["p99_ms"] or 0) / b["p99_ms"] if b["p99_ms"] else float("nan")
        lines.append(f"- {phase}: throughput ratio (mlflow-ext / mlflow) {ratio_t:.2f}, p99 ratio {ratio_p:.2f}")
    lines.append(f"- peak RSS: mlflow-ext {ours['peak_rss_mb']} MB, mlflow {theirs['peak_rss_mb']} MB; "
                 f"rows in the inference log: {logged}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--load":
        _, _, target, mode_, rate_, seconds_, body_path = sys.argv
        body_ = Path(body_path).read_bytes()
        print(json.dumps(asyncio.run(_load(target, mode_, float(rate_), float(seconds_), body_))))
    else:
        main()
