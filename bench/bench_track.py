"""Overhead of @track over the bare training function, for 20 and 200 feature columns.

Run: .venv/bin/python bench/bench_track.py [--rows 5000] [--repeats 3]

For each width it times (median of ``repeats``, after one warm-up call) in a throw-away sqlite store:
- bare: the undecorated training function (a scikit-learn pipeline fit);
- log_model: the same fit plus MLflow's own ``mlflow.sklearn.log_model`` in a run (the floor any
  tracking pays, including MLflow's pip-requirements inference subprocess);
- @track: the decorated function with validation data (default options);
- @track, pip given: the same with ``pip_requirements=[...]``, which skips MLflow's inference.
The overhead columns subtract the bare time; "ours" is @track minus log_model: what mlflow-ext adds
(profile, reference predictions, validation metrics, batched writes, registration).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


def frame(rows: int, columns: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(rng.normal(size=(rows, columns)), columns=[f"x{i}" for i in range(columns)])
    data["segment"] = rng.choice(["a", "b", "c", "d"], rows)  # one categorical, as real data has
    data["label"] = (data["x0"] + 0.5 * data["x1"] + rng.normal(size=rows) > 0).astype(int)
    return data


def fit(data: pd.DataFrame) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in data.columns if c.startswith("x")]
    encode = ColumnTransformer([("num", StandardScaler(), numeric), ("cat", OneHotEncoder(), ["segment"])])
    return make_pipeline(encode, LogisticRegression(max_iter=300)).fit(data.drop(columns="label"), data["label"])


def median_time(call: Callable[[], Any], repeats: int) -> float:
    call()  # warm-up: imports and first-use caches are not what a training loop pays
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(rows: int, columns: int, repeats: int) -> dict[str, float]:
    import mlflow
    import mlflow.sklearn

    import mlflow_ext

    data, valid = frame(rows, columns, 0), frame(max(rows // 4, 100), columns, 1)

    def bare(data: pd.DataFrame, valid: pd.DataFrame) -> Any:
        return fit(data)

    def log_model_only() -> None:
        with mlflow.start_run():
            mlflow.sklearn.log_model(fit(data), name="model")

    tracked = mlflow_ext.track(model_name=f"bench{columns}", target="label", validation="valid")(bare)
    fast = mlflow_ext.track(model_name=f"bench{columns}fast", target="label", validation="valid",
                            pip_requirements=["scikit-learn"])(bare)
    return {
        "bare": median_time(lambda: bare(data, valid), repeats),
        "log_model": median_time(log_model_only, repeats),
        "track": median_time(lambda: tracked(data, valid), repeats),
        "track_fast": median_time(lambda: fast(data, valid), repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import logging
    import warnings

    import mlflow

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bench-track-") as folder:
        os.chdir(folder)
        uri = f"sqlite:///{folder}/mlflow.db"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        results = {columns: measure(args.rows, columns, args.repeats) for columns in (20, 200)}

    print(f"\n@track overhead, {args.rows} training rows, median of {args.repeats} (seconds)\n")
    header = ("columns", "bare", "log_model", "@track", "@track pip", "overhead", "overhead pip",
              "log_model over bare", "ours (@track - log_model)")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for columns, r in results.items():
        print(" | ".join([
            str(columns), f"{r['bare']:.2f}", f"{r['log_model']:.2f}", f"{r['track']:.2f}", f"{r['track_fast']:.2f}",
            f"{r['track'] - r['bare']:.2f}", f"{r['track_fast'] - r['bare']:.2f}",
            f"{r['log_model'] - r['bare']:.2f}", f"{r['track'] - r['log_model']:.2f}",
        ]))


if __name__ == "__main__":
    main()
