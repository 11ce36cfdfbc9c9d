"""What alibi-detect's detectors cost against the core's native ones, on the same data, through `check`.

Run it in the plugin's environment (it has the core too):

    make test-alibi            # builds .venvs/alibi once
    .venvs/alibi/bin/python bench/bench_alibi.py [--rows 5000] [--repeat 3]

Every contender checks the same batch against the same profile (10,000-row reference sample,
8 numeric, 2 categorical and 1 boolean column, 2 numeric columns shifted) with `check`, so the
quality checks are in every figure; the median of ``--repeat`` runs after one warm-up is printed,
with its ratio to the core's default (ks + chi2) and the columns flagged. The core's detectors are
also timed in the core's own environment (.venv, numpy 2) when it exists, since the plugin's
environment runs numpy 1.x. The online detectors' first batch includes calibrating their
thresholds; the figure shown is a later batch, with the calibration reported beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CORE = {
    "core ks + chi2 (default)": {},
    "core psi": {"numeric": "psi", "categorical": "psi", "boolean": "psi"},
    "core wasserstein": {"numeric": "wasserstein"},
}
ALIBI = {
    "alibi_ks + alibi_chi2": {"numeric": "alibi_ks", "categorical": "alibi_chi2", "boolean": "alibi_chi2"},
    "alibi_cvm": {"numeric": "alibi_cvm"},
    "alibi_tabular (per column)": {"numeric": "alibi_tabular", "categorical": "alibi_tabular",
                                   "boolean": "alibi_tabular"},
    "ks + alibi_mmd overall": {"overall": "alibi_mmd"},
    "ks + alibi_lsdd overall": {"overall": "alibi_lsdd"},
    "ks + alibi_classifier overall": {"overall": "alibi_classifier"},
    "alibi_cvm_online (later batch)": {"numeric": "alibi_cvm_online"},
    "alibi_fet_online (later batch)": {"boolean": "alibi_fet_online"},
}


def frames(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def make(n: int, shift: float) -> pd.DataFrame:
        data: dict[str, Any] = {f"x{i}": rng.normal(size=n) for i in range(8)}
        data["x0"] = data["x0"] + shift
        data["x1"] = data["x1"] * (1 + shift)
        data["plan"] = rng.choice(["a", "b", "c", "d"], size=n, p=[0.4, 0.3, 0.2, 0.1])
        data["region"] = rng.choice([f"r{i}" for i in range(12)], size=n)
        data["flag"] = rng.random(n) < 0.2
        return pd.DataFrame(data)

    return make(20_000, 0.0), make(rows, 0.3)


def timed(run: Callable[[], Any], repeat: int) -> tuple[Any, float, float]:
    """(last result, first-run seconds, median seconds of the repeats after it)."""
    start = time.perf_counter()
    result = run()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return result, first, statistics.median(times)


def measure(specs: dict[str, dict[str, str]], rows: int, repeat: int) -> list[dict[str, Any]]:
    from mlflow_ext import _registry
    from mlflow_ext.checks import check
    from mlflow_ext.profile import Profile

    reference, batch = frames(rows)
    profile = Profile.from_frame(reference, sample_size=10_000)
    out = []
    for label, spec in specs.items():
        # created once, as a monitor would: the online detectors keep their calibration
        detectors = {k: _registry.create("detector", v) for k, v in spec.items()}
        result, first, median = timed(lambda d=detectors: check(profile, batch, detectors=d), repeat)
        out.append({"label": label, "seconds": median, "first": first, "drifted": list(result.drifted_columns),
                    "overall": [o.drifted for o in result.overall]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000, help="rows in the checked batch")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs after the warm-up")
    parser.add_argument("--core-only", action="store_true", help="time the core's detectors only, print JSON")
    args = parser.parse_args()
    if args.core_only:
        print(json.dumps(measure(CORE, args.rows, args.repeat)))
        return
    rows = measure(CORE, args.rows, args.repeat)
    baseline = rows[0]["seconds"]
    rows += measure(ALIBI, args.rows, args.repeat)
    core_env = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "python"
    native: dict[str, float] = {}
    if core_env.exists():
        done = subprocess.run([str(core_env), __file__, "--core-only", "--rows", str(args.rows),
                               "--repeat", str(args.repeat)], capture_output=True, text=True, check=True)
        native = {r["label"]: r["seconds"] for r in json.loads(done.stdout)}
    print(f"check of a {args.rows}-row batch, 11 columns, 10,000-row reference sample; "
          f"numpy {np.__version__} (core env: numpy 2 column)")
    print(f"{'contender':34} {'seconds':>8} {'x core':>7} {'numpy 2':>8} {'first run':>9}  flagged")
    for r in rows:
        flagged = ",".join(r["drifted"]) + (f" overall={r['overall'][0]}" if r["overall"] else "")
        core2 = f"{native[r['label']]:.3f}" if r["label"] in native else ""
        print(f"{r['label']:34} {r['seconds']:8.3f} {r['seconds'] / baseline:7.1f} {core2:>8} "
              f"{r['first']:9.2f}  {flagged}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
