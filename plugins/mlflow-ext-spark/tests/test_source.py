"""SparkSource: the watch loop fed from a Parquet dataset, one window per value of a column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow_ext.errors import ConfigError
from mlflow_ext.monitor import LoopSettings
from mlflow_ext.watch import watch

from mlflow_ext_spark import SparkSource


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A throw-away sqlite store in tmp_path, which is also the working folder (artifacts land there)."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def _data(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(shift, 1, n), rng.normal(0, 1, n)
    return pd.DataFrame({"x1": x1, "x2": x2, "y": (x1 + x2 + rng.normal(0, 0.1, n) > 0).astype(int)})


def _register(tmp_path: Path) -> None:
    """Version 1 of 'scores', trained under @track (which stores its profile), as champion."""
    import mlflow
    from mlflow_ext.decorators import track
    from sklearn.linear_model import LogisticRegression

    mlflow.create_experiment("training", artifact_location=str(tmp_path / "artifacts"))

    @track(model_name="scores", experiment="training", target="y", validation="valid", sample_size=500,
           pip_requirements=["scikit-learn"])
    def train(data: pd.DataFrame, valid: pd.DataFrame) -> Any:
        return LogisticRegression().fit(data[["x1", "x2"]], data["y"])

    tracked = train(_data(1000, 1), _data(300, 2))
    mlflow.MlflowClient().set_registered_model_alias("scores", "champion", tracked.version)


def test_watch_processes_each_window_of_a_parquet_source_once_in_order(
        spark: Any, store: str, tmp_path: Path) -> None:
    _register(tmp_path)
    days = [_data(400, 10).assign(day=2), _data(400, 11, shift=1.5).assign(day=3), _data(400, 12).assign(day=1)]
    path = tmp_path / "scores.parquet"
    pd.concat(days, ignore_index=True).to_parquet(path)
    source = SparkSource(path=str(path), batch_column="day", spark=spark)
    settings = LoopSettings(model="scores")

    first = watch(settings, source, until_idle=True, interval=0.05)
    assert [r.name for r in first.processed] == ["day=1", "day=2", "day=3"]
    assert [r.window for r in first.processed] == [0, 1, 2]
    assert first.processed[0].status == "ok", first.processed[0].reasons
    assert "x1" in first.processed[2].drifted
    assert first.failures == ()
    again = watch(settings, source, until_idle=True, interval=0.05)
    assert again.processed == ()  # every window is recorded as done


def test_a_source_without_its_batch_column_or_location_is_refused(spark: Any, tmp_path: Path) -> None:
    path = tmp_path / "b.parquet"
    _data(10, 0).to_parquet(path)
    with pytest.raises(ConfigError, match=r"has no column 'day'\. Columns: x1, x2, y\."):
        SparkSource(path=str(path), batch_column="day", spark=spark).steps()
    with pytest.raises(ConfigError, match="give exactly one of table and path"):
        SparkSource(batch_column="day", spark=spark).steps()
