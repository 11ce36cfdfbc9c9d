"""The Spark engine vs the numpy engine on one wide Parquet dataset: wall time and peak memory.

    make bench-spark            # .venv/bin/python bench/bench_spark.py [--rows 10000000] [--columns 50]

Writes the dataset once with Spark itself (bench/.data/, gitignored; about 4 GB at the defaults),
then runs each engine in a fresh process, one after the other:

- spark: spark.read.parquet, Profile.from_frame, check(profile, frame), local[2];
- numpy: pandas.read_parquet, Profile.from_frame, check(profile, frame); then, untimed, the check
  of the same data against the Spark run's profile, whose result must equal the Spark check's
  (same profile, same data: the engines agree exactly at the default ks_points).

Memory is the peak resident set size (VmHWM, /proc/<pid>/status) of each process, per phase (the
peak is reset with /proc/<pid>/clear_refs before each): the Python driver for both engines; for
Spark also the JVM, which in local mode is the driver and the executors at once, and the
executors' Python workers (children of the JVM, sampled every 0.2 s), which count the cut points.
The Spark path never collects the data: its Python driver holds summaries and the reference
sample only, whatever --rows is.

Prints a table and writes bench/results/spark.json and spark.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
RESULTS = HERE / "results"
PHASES = ("read", "profile", "check")


def status_mb(pid: int | str, field: str) -> float:
    """A memory field of /proc/<pid>/status (VmHWM, VmRSS) in MiB; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def reset_peak(pid: int | str) -> None:
    """Lower a process's VmHWM to its current RSS (Linux; needs the right to write clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def children() -> dict[int, list[int]]:
    """Every live process's children, from /proc/<pid>/stat."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(parent, []).append(int(entry.name))
    return tree


def identity(pid: int) -> tuple[int, str] | None:
    """A process's parent and start time (fields 4 and 22 of /proc/<pid>/stat), None when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[19]


def jvm_pid() -> int | None:
    """The JVM pyspark started for this process (its child running java)."""
    for pid in children().get(os.getpid(), []):
        try:
            if b"java" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


class WorkerSampler:
    """Samples the peak RSS of the JVM's descendants (pyspark.daemon and its Python workers)."""

    def __init__(self, jvm: int) -> None:
        self.jvm = jvm
        self.peaks: dict[tuple[int, str], float] = {}  # (pid, start time): a pid may be reused
        self.commands: dict[tuple[int, str], str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            tree = children()
            ours, stack = {self.jvm}, list(tree.get(self.jvm, []))
            while stack:
                pid = stack.pop()
                stack.extend(tree.get(pid, []))
                before = identity(pid)
                try:
                    command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
                except OSError:
                    continue
                peak = status_mb(pid, "VmHWM")
                # the same process throughout, and one of ours (a pid may be reused at any time)
                if before is not None and identity(pid) == before and before[0] in ours:
                    ours.add(pid)
                    key = (pid, before[1])
                    self.peaks[key] = max(self.peaks.get(key, 0.0), peak)
                    self.commands[key] = command
            self._stop.wait(0.2)

    def summary(self) -> dict[str, Any]:
        return {"processes": len(self.peaks), "max_mb": max(self.peaks.values(), default=0.0),
                "sum_mb": sum(self.peaks.values()),
                "each": [{"pid": pid, "peak_mb": peak, "command": self.commands[(pid, started)]}
                         for (pid, started), peak in self.peaks.items()]}

    def __enter__(self) -> WorkerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def spark_session(memory: str) -> Any:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("bench_spark")
               .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "4").config("spark.driver.memory", memory).getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session


def generate(path: Path, rows: int, columns: int) -> None:
    """Normal columns with different means and scales, written by Spark in 16 files."""
    from pyspark.sql import functions as F

    spark = spark_session("2g")
    frame = spark.range(rows, numPartitions=16).select(
        *[(F.randn(seed=k) * (1 + k % 3) + k % 5).alias(f"f{k}") for k in range(columns)])
    frame.write.mode("overwrite").parquet(str(path))
    spark.stop()


class Phases:
    """Wall time and per-process peak RSS of each phase of one run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peaks: dict[str, dict[str, float]] = {}  # process -> phase -> MiB
        self.processes: dict[str, Callable[[], int | None]] = {"python_driver": os.getpid}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        for pid in self._pids().values():
            reset_peak(pid)
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start
        for process, pid in self._pids().items():
            self.peaks.setdefault(process, {})[name] = status_mb(pid, "VmHWM")

    def _pids(self) -> dict[str, int]:
        return {name: pid for name, find in self.processes.items() if (pid := find()) is not None}


def run(engine: str, path: Path, memory: str, work: Path) -> dict[str, Any]:
    """One engine in this process: the phases' times and peak memory."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    from mlflow_ext import CheckResult, Profile, check

    phases = Phases()
    record: dict[str, Any] = {"engine": engine}
    if engine == "numpy":
        import pandas as pd

        with phases.phase("read"):
            frame: Any = pd.read_parquet(path)
        with phases.phase("profile"):
            profile = Profile.from_frame(frame)
        with phases.phase("check"):
            result = check(profile, frame)
        spark_profile = work / "spark-profile"
        if spark_profile.exists():  # the cross-check: the same profile through both engines
            same = check(Profile.load(spark_profile), frame)
            spark_result = CheckResult.from_dict(json.loads((work / "spark-check.json").read_text()))
            record["same_result_as_spark"] = same == spark_result
            by_column = {r.column: r for r in spark_result.drift}
            record["max_abs_statistic_difference"] = max(
                (abs(r.statistic - by_column[r.column].statistic) for r in same.drift if r.column in by_column),
                default=0.0)
    else:
        spark = spark_session(memory)
        phases.processes["jvm"] = jvm_pid
        jvm = jvm_pid()
        assert jvm is not None, "no java child: is pyspark running in local mode?"
        with WorkerSampler(jvm) as workers:
            with phases.phase("read"):
                frame = spark.read.parquet(str(path))
            with phases.phase("profile"):
                profile = Profile.from_frame(frame)
            profile.save(work / "spark-profile")
            with phases.phase("check"):
                result = check(profile, frame)
        (work / "spark-check.json").write_text(json.dumps(result.to_dict()))
        record["spark_memory"] = memory
        record["python_workers"] = workers.summary()
    record.update(seconds=phases.seconds, peak_mb=phases.peaks, status=result.status, n_rows=profile.n_rows,
                  drifted=len(result.drifted_columns), n_tested=result.n_tested)
    return record


def table(results: list[dict[str, Any]], rows: int, columns: int, machine: dict[str, Any]) -> str:
    """The Markdown report of one run."""
    spark, numpy = results
    load = " -> ".join(f"{machine[k][0]:.1f}" for k in ("load_average_at_start", "load_average_at_end"))
    lines = [
        f"{rows:,} rows x {columns} float64 columns from Parquet, local[2] (spark.driver.memory "
        f"{spark['spark_memory']}), each engine in a fresh process; Python {machine['python']}, "
        f"{machine['cpus']} CPUs, 1-minute load average {load}.",
        "",
        "| engine | read s | profile s | check s | Python driver peak MiB | JVM peak MiB (driver + executors) "
        "| executors' Python workers peak MiB (pyspark.daemon and workers) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        s, peaks = r["seconds"], r["peak_mb"]
        jvm = max(peaks["jvm"].values()) if "jvm" in peaks else None
        workers = r.get("python_workers")
        jvm_text = "-" if jvm is None else f"{jvm:,.0f}"
        workers_text = "-" if not workers else f"{workers['max_mb']:,.0f} (largest of {workers['processes']} processes)"
        lines.append(
            f"| {r['engine']} | {s['read']:.1f} | {s['profile']:.1f} | {s['check']:.1f} "
            f"| {max(peaks['python_driver'].values()):,.0f} | {jvm_text} | {workers_text} |")
    lines.append("")
    lines.append("Peak RSS per phase, MiB (read / profile / check):")
    lines.append("")
    for r in results:
        for process, by_phase in r["peak_mb"].items():
            lines.append(f"- {r['engine']} {process}: " + " / ".join(f"{by_phase[p]:,.0f}" for p in PHASES))
    sp, np_ = spark["peak_mb"], numpy["peak_mb"]
    spark_driver = max(sp["python_driver"].values()) + max(sp["jvm"].values())
    numpy_driver = max(np_["python_driver"].values())
    lines += [
        "",
        f"- check time spark / numpy: {spark['seconds']['check'] / numpy['seconds']['check']:.2f}x; "
        f"profile: {spark['seconds']['profile'] / numpy['seconds']['profile']:.2f}x; "
        f"read + profile + check: {sum(spark['seconds'].values()) / sum(numpy['seconds'].values()):.2f}x",
        f"- driver peak spark (Python + JVM) / numpy: {spark_driver:,.0f} / {numpy_driver:,.0f} MiB = "
        f"{spark_driver / numpy_driver:.2f}x; Python driver alone: "
        f"{max(sp['python_driver'].values()) / numpy_driver:.3f}x",
        f"- status: spark {spark['status']} ({spark['drifted']}/{spark['n_tested']} drifted), "
        f"numpy {numpy['status']} ({numpy['drifted']}/{numpy['n_tested']} drifted)",
        f"- the numpy engine's check against the Spark run's profile equals the Spark check: "
        f"{numpy.get('same_result_as_spark')} (largest difference of a statistic: "
        f"{numpy.get('max_abs_statistic_difference')})",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--spark-memory", default="2g", help="spark.driver.memory (local mode: the JVM heap)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--engine", choices=("numpy", "spark"), help=argparse.SUPPRESS)  # a child's run
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run(args.engine, args.path, args.spark_memory, args.work)))
        return
    path = DATA / f"spark_{args.rows}x{args.columns}.parquet"
    if args.generate:
        generate(path, args.rows, args.columns)
        return
    if not (path / "_SUCCESS").exists():
        print(f"writing {path} ...", file=sys.stderr)
        # in a child: the JVM of a stopped session lives as long as the Python process that started it
        subprocess.run([sys.executable, __file__, "--generate", "--rows", str(args.rows),
                        "--columns", str(args.columns)], check=True)
    load_at_start = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_spark") as work:
        for engine in ("spark", "numpy"):
            print(f"running {engine} ...", file=sys.stderr)
            done = subprocess.run([sys.executable, __file__, "--engine", engine, "--path", str(path),
                                   "--spark-memory", args.spark_memory, "--work", work],
                                  capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{engine} failed:\n{done.stderr[-3000:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(),
               "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()}
    report = table(results, args.rows, args.columns, machine)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "spark" if (args.rows, args.columns) == (10_000_000, 50) else f"spark_{args.rows}x{args.columns}"
    (args.out / f"{stem}.md").write_text(report)
    (args.out / f"{stem}.json").write_text(json.dumps(
        {"rows": args.rows, "columns": args.columns, "results": results, "machine": machine}, indent=1) + "\n")


if __name__ == "__main__":
    main()
