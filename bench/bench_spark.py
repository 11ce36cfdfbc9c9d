"""The Spark engine vs the numpy engine on one wide Parquet dataset: time and driver peak memory.

    .venv/bin/python bench/bench_spark.py [--rows 10000000] [--columns 50]

Writes the dataset once with Spark itself (bench/.data/, gitignored; about 4 GB at the defaults),
then runs each engine in a fresh process:

- numpy: pandas.read_parquet, Profile.from_frame, check(profile, frame);
- spark: spark.read.parquet, Profile.from_frame, check(profile, frame), local[2].

and prints the wall time of each phase, the driver Python process's peak RSS (VmHWM) and, for
Spark, the JVM's peak RSS separately. The Spark path must not collect the data: its driver peak
should stay near the size of an idle interpreter plus the reference sample, whatever --rows is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"


def status_mb(pid: int | str, field: str) -> float:
    """A memory field of /proc/<pid>/status (VmHWM, VmRSS) in MiB; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def jvm_pids() -> list[int]:
    """The java processes started by this driver (pyspark launches the JVM as our child)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == me and b"java" in cmd:
            found.append(int(entry.name))
    return found


def spark_session(memory: str) -> Any:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("bench_spark")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
               .config("spark.driver.memory", memory).getOrCreate())
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


def run(engine: str, path: Path) -> dict[str, Any]:
    """One engine in this process: the phases' times and peak memory."""
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    from mlflow_ext import Profile, check

    timings: dict[str, float] = {}
    start = time.perf_counter()
    if engine == "numpy":
        import pandas as pd

        frame: Any = pd.read_parquet(path)
    else:
        spark = spark_session("4g")
        frame = spark.read.parquet(str(path))
    timings["read"] = time.perf_counter() - start
    start = time.perf_counter()
    profile = Profile.from_frame(frame)
    timings["profile"] = time.perf_counter() - start
    start = time.perf_counter()
    result = check(profile, frame)
    timings["check"] = time.perf_counter() - start
    jvm = max((status_mb(pid, "VmHWM") for pid in jvm_pids()), default=0.0)
    return {"engine": engine, "seconds": timings, "driver_peak_mb": status_mb("self", "VmHWM"),
            "jvm_peak_mb": jvm, "status": result.status, "n_rows": profile.n_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--columns", type=int, default=50)
    parser.add_argument("--engine", choices=("numpy", "spark"), help=argparse.SUPPRESS)  # a child's run
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        print(json.dumps(run(args.engine, args.path)))
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
    results = []
    for engine in ("spark", "numpy"):
        done = subprocess.run([sys.executable, __file__, "--engine", engine, "--path", str(path)],
                              capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{engine} failed:\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{args.rows:,} rows x {args.columns} float columns from Parquet, local[2]")
    print(f"{'engine':<7}{'read s':>9}{'profile s':>11}{'check s':>9}{'driver peak MiB':>17}{'JVM peak MiB':>14}")
    for r in results:
        s = r["seconds"]
        print(f"{r['engine']:<7}{s['read']:>9.1f}{s['profile']:>11.1f}{s['check']:>9.1f}"
              f"{r['driver_peak_mb']:>17.0f}{r['jvm_peak_mb']:>14.0f}")
    spark, numpy = results
    total = {r["engine"]: sum(r["seconds"].values()) for r in results}
    print(f"spark / numpy: time {total['spark'] / total['numpy']:.2f}x, "
          f"driver peak {spark['driver_peak_mb'] / numpy['driver_peak_mb']:.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
