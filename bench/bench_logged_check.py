"""Overhead of a logged model check over the bare ``check``, for 20 and 200 columns.

For each width, a version is trained under @track in a throw-away sqlite store (a logistic
regression on the columns, with its profile and reference predictions); then, on
the same drifted batch (20% of the columns shifted by 0.5 sd), the median of ``--repeats`` runs of:

- bare: ``check(profile, batch)`` (the profile already in memory);
- unrecorded: ``check_model(..., record=False)``: resolve the version, download its profiles, load
  and score the model, prediction drift;
- logged: ``check_model(...)``: the same plus the report (plots), one run in batched writes and the
  version's last-check tags.

    .venv/bin/python bench/bench_logged_check.py [--rows 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mlflow_ext.profile import Profile

WIDTHS = (20, 200)


def frames(rows: int, width: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    names = [f"f{i:03d}" for i in range(width)]
    train = pd.DataFrame(rng.normal(0, 1, (rows, width)), columns=names)
    shift = np.where(np.arange(width) < width // 5, 0.5, 0.0)
    batch = pd.DataFrame(rng.normal(shift, 1, (rows, width)), columns=names)
    train["label"] = (train[names[:5]].sum(axis=1) + rng.normal(0, 1, rows) > 0).astype(int)
    return train, batch


def register(name: str, train: pd.DataFrame) -> Profile:
    """Train and register a version under @track; the training profile, as check() gets it."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from mlflow_ext import tracking
    from mlflow_ext.decorators import track

    @track(model_name=name, target="label", sample_size=5000, pip_requirements=["scikit-learn"])
    def fit(data: pd.DataFrame) -> Any:
        return LogisticRegression(max_iter=300).fit(data.drop(columns="label"), data["label"])

    tracked = fit(train)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", tracked.version)
    return tracking.load_version_reference(f"{name}/{tracked.version}").profile


def median_seconds(operation: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        operation()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory(prefix="bench-logged-") as tmp:
        os.chdir(tmp)
        uri = f"sqlite:///{tmp}/mlflow.db"
        os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_REGISTRY_URI"] = uri
        import mlflow

        from mlflow_ext.checks import check
        from mlflow_ext.model_check import check_model

        mlflow.set_tracking_uri(uri)
        rows = []
        for width in WIDTHS:
            name = f"bench{width}"
            train, batch = frames(args.rows, width)
            profile = register(name, train)
            check_model(name, batch, record=False)  # warm-up: imports, first model download
            bare = median_seconds(lambda: check(profile, batch), args.repeats)  # noqa: B023
            unrecorded = median_seconds(lambda: check_model(name, batch, record=False), args.repeats)  # noqa: B023
            logged = median_seconds(lambda: check_model(name, batch), args.repeats)  # noqa: B023
            run_id = str(check_model(name, batch).run_id)
            rows.append((width, bare, unrecorded, logged, len(mlflow.MlflowClient().get_run(run_id).data.metrics)))
    print(f"{args.rows} rows, median of {args.repeats}, {sys.platform}, {os.cpu_count()} cores\n")
    print("| columns | bare check s | check_model (no record) s | logged check s | logged / bare | metrics in run |")
    print("| --- | --- | --- | --- | --- | --- |")
    for width, bare, unrecorded, logged, n_metrics in rows:
        print(f"| {width} | {bare:.3f} | {unrecorded:.3f} | {logged:.3f} | {logged / bare:.1f}x | {n_metrics} |")


if __name__ == "__main__":
    main()
