"""Drift benchmark: mlflow-ext's ``check`` against the sort floor, alibi-detect and Evidently.

For each size (N rows x F float columns, plus 3 categoricals; 0.2 sd mean shift in 20% of the
float columns) every contender runs in a fresh process, one at a time, on the same Parquet files:
mlflow-ext in this venv (with the floor measured in the same process), each peer in its own venv
under bench/.venvs/ (made by bench/peers.sh). Prints a Markdown table and writes
bench/results/drift.json and drift.md. See bench/README.md for what each number means.

    .venv/bin/python bench/bench_drift.py                       # the full run
    .venv/bin/python bench/bench_drift.py --sizes 100kx20 --repeats 1 --peers alibi-ks
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import data

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
CORE = "mlflow-ext"
FLOOR = "floor (sort)"
DEFAULT_SIZES = ("100kx20", "100kx100", "1mx20", "1mx100")


@dataclass(frozen=True)
class Contender:
    """How to run one contender: its interpreter and runner script with arguments."""

    name: str
    python: Path
    argv: tuple[str, ...]
    target_speedup: float | None = None  # how many times slower than check the issue expects it


CONTENDERS = {
    CORE: Contender("mlflow-ext check", Path(sys.executable), ("run_core.py",)),
    "alibi-ks": Contender("alibi-detect KSDrift", VENVS / "alibi/bin/python", ("run_alibi.py", "ks"), 10.0),
    "alibi-tabular": Contender("alibi-detect TabularDrift", VENVS / "alibi/bin/python", ("run_alibi.py", "tabular")),
    "evidently": Contender("Evidently DataDriftPreset", VENVS / "evidently/bin/python", ("run_evidently.py",),
                           100.0),
}
PEERS = tuple(name for name in CONTENDERS if name != CORE)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_once(contender: Contender, folder: Path, timeout: float) -> dict[str, Any]:
    """One run in a fresh process: the runner's JSON record, or a record saying how it failed."""
    argv = [str(contender.python), str(HERE / contender.argv[0]), str(folder), *contender.argv[1:]]
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=HERE, check=False)
    except subprocess.TimeoutExpired:
        return {"outcome": "timeout", "note": f"killed after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        return {"outcome": "error", "note": f"exit {done.returncode}: {tail}"}
    record: dict[str, Any] = json.loads(lines[-1])
    record["outcome"] = "ok"
    record["process_seconds"] = time.perf_counter() - start
    return record


def run_contender(key: str, folder: Path, repeats: int, timeout: float, slow: float) -> list[dict[str, Any]]:
    """Up to ``repeats`` runs; stops after a failure or after a run slower than ``slow`` seconds."""
    contender = CONTENDERS[key]
    if not contender.python.exists():
        return [{"outcome": "skipped", "note": f"no venv at {contender.python.parent.parent}: run bench/peers.sh"}]
    runs: list[dict[str, Any]] = []
    for i in range(repeats):
        record = run_once(contender, folder, timeout)
        runs.append(record)
        shown = f"{record['seconds']:.2f} s" if record["outcome"] == "ok" else f"{record['outcome']}: {record['note']}"
        log(f"  {contender.name} run {i + 1}/{repeats}: {shown}")
        if record["outcome"] != "ok" or record["seconds"] > slow:
            break
    return runs


def summarize(name: str, runs: list[dict[str, Any]], truth: data.Truth) -> dict[str, Any]:
    """Median seconds, worst peak memory and the verdict of the ok runs of one contender."""
    ok = [r for r in runs if r["outcome"] == "ok"]
    row: dict[str, Any] = {"contender": name, "runs": len(ok), "outcome": runs[-1]["outcome"],
                           "note": runs[-1].get("note", "")}
    if not ok:
        return row
    flagged = ok[0]["flagged"]
    verdict = data.score(flagged, truth)
    if any(r["flagged"] != flagged for r in ok[1:]):
        row["note"] = "flagged columns differ between runs; scored the first"
    row.update(
        version=ok[0]["version"],
        median_s=statistics.median(r["seconds"] for r in ok),
        seconds=[r["seconds"] for r in ok],
        baseline_mb=max(r["baseline_mb"] for r in ok),
        peak_mb=max(r["peak_mb"] for r in ok),
        extra_mb=max(r["extra_mb"] for r in ok),
        batch_mb=ok[0]["batch_mb"],
        true_positives=verdict.true_positives,
        false_positives=verdict.false_positives,
        missed=list(verdict.missed),
        wrongly_flagged=list(verdict.wrongly_flagged),
    )
    if "status" in ok[0]:
        row["status"] = ok[0]["status"]
    return row


def floor_row(core_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The floor, from the core's runs: per run the faster of its before/after measurements."""
    ok = [r for r in core_runs if r["outcome"] == "ok"]
    if not ok:
        return {"contender": FLOOR, "runs": 0, "outcome": "error", "note": "mlflow-ext runs failed"}
    per_run = [min(r["floor_seconds"]) for r in ok]
    return {"contender": FLOOR, "runs": len(ok), "outcome": "ok", "note": "same process as check",
            "median_s": statistics.median(per_run), "seconds": per_run}


def targets(rows: dict[str, dict[str, Any]], truth: data.Truth) -> list[dict[str, Any]]:
    """The issue's targets, each with the observed value and whether it is met."""
    core, floor = rows.get(CORE, {}), rows.get(FLOOR, {})
    if "median_s" not in core or "median_s" not in floor:
        return []
    out = [
        {"target": "check within 2x of the floor", "observed": f"{core['median_s'] / floor['median_s']:.2f}x",
         "met": core["median_s"] <= 2 * floor["median_s"]},
        {"target": "peak memory at most one extra copy of the current batch",
         "observed": f"{core['extra_mb']:.0f} MB extra, batch {core['batch_mb']:.0f} MB",
         "met": core["extra_mb"] <= core["batch_mb"]},
        {"target": "every drifted column found, zero false positives",
         "observed": f"TP {core['true_positives']}/{len(truth.drifted)}, FP {core['false_positives']}",
         "met": core["true_positives"] == len(truth.drifted) and core["false_positives"] == 0},
    ]
    for key in PEERS:
        expected, peer = CONTENDERS[key].target_speedup, rows.get(key, {})
        if expected is None or not peer or peer.get("outcome") == "skipped":
            continue  # not run this time (--peers)
        if "median_s" in peer:
            ratio = peer["median_s"] / core["median_s"]
            observed, met = f"{ratio:.0f}x", ratio >= expected
        else:  # a peer that timed out took longer than the timeout, which bounds its ratio from below
            observed, met = f"{peer['outcome']} ({peer['note']})", peer["outcome"] == "timeout"
        out.append({"target": f"at least {expected:.0f}x faster than {CONTENDERS[key].name}",
                    "observed": observed, "met": met})
    return out


def _cell(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def markdown(results: list[dict[str, Any]]) -> str:
    """The results as Markdown: one table per size, then its targets."""
    parts = []
    for block in results:
        n, f = block["n"], block["f"]
        rows = {r["contender"]: r for r in block["rows"]}
        floor_s = rows.get(FLOOR, {}).get("median_s")
        core_s = rows.get(CONTENDERS[CORE].name, {}).get("median_s")
        parts.append(f"### N = {n:,} rows, F = {f} float columns + 3 categoricals "
                     f"({block['drifted']} drifted)\n")
        parts.append("| contender | runs | median s | x floor | x mlflow-ext | peak MB (extra) | TP / FP | note |")
        parts.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in block["rows"]:
            median = r.get("median_s")
            memory = f"{r['peak_mb']:.0f} ({r['extra_mb']:+.0f})" if "peak_mb" in r else "—"
            verdict = f"{r['true_positives']} / {r['false_positives']}" if "true_positives" in r else "—"
            note = r["note"] if r["outcome"] in ("ok", "skipped") else f"{r['outcome']}: {r['note']}"
            parts.append(
                f"| {r['contender']} {r.get('version', '')} | {r['runs']} | {_cell(median, '.3f')} "
                f"| {_cell(median / floor_s if median and floor_s else None, '.1f')} "
                f"| {_cell(median / core_s if median and core_s else None, '.1f')} "
                f"| {memory} | {verdict} | {note} |"
            )
        if block["targets"]:
            parts.append("\nTargets: " + "; ".join(
                f"{t['target']}: {t['observed']} **{'met' if t['met'] else 'NOT met'}**" for t in block["targets"]))
        parts.append("")
    return "\n".join(parts)


def machine(load_at_start: tuple[float, float, float]) -> dict[str, Any]:
    """What the figures were measured on (other work on the machine shows in the load averages)."""
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=data.parse_size, default=[data.parse_size(s) for s in DEFAULT_SIZES],
                        help="ROWSxFLOATS, e.g. 100kx20 1mx100 (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender, median reported (default 3)")
    parser.add_argument("--peers", nargs="*", choices=PEERS, default=list(PEERS),
                        help="peers to run beside mlflow-ext (default: all; none: only mlflow-ext and the floor)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run before it is killed")
    parser.add_argument("--slow", type=float, default=120.0,
                        help="a run slower than this is not repeated (reported with its run count)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")

    load_at_start = os.getloadavg()
    results = []
    for n, f in args.sizes:
        log(f"N={n:,} F={f}: data")
        folder = data.ensure(n, f, args.seed)
        truth = data.load_truth(folder)
        rows: dict[str, dict[str, Any]] = {}
        raw: dict[str, list[dict[str, Any]]] = {}
        for key in (CORE, *args.peers):
            raw[key] = run_contender(key, folder, args.repeats, args.timeout, args.slow)
            rows[key] = summarize(CONTENDERS[key].name, raw[key], truth)
        rows[FLOOR] = floor_row(raw[CORE])
        order = [FLOOR, CORE, *args.peers]
        results.append({"n": n, "f": f, "drifted": len(truth.drifted), "rows": [rows[k] for k in order],
                        "targets": targets(rows, truth)})
    document = {"machine": machine(load_at_start), "settings": {k: str(v) if isinstance(v, Path) else v
                                                    for k, v in vars(args).items()},
                "results": results}
    table = markdown(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "drift.json").write_text(json.dumps(document, indent=1) + "\n")
    (args.out / "drift.md").write_text(table + "\n")
    print(table)
    log(f"wrote {args.out / 'drift.json'} and {args.out / 'drift.md'}")


if __name__ == "__main__":
    main()
