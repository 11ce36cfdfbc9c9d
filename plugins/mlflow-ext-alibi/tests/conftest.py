"""Fixtures of the plugin's tests: a throw-away MLflow store and small frames (nothing from the core's tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A sqlite tracking and registry store in tmp_path, for this process and the ones it starts."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    monkeypatch.chdir(tmp_path)  # artifacts default to ./mlruns: keep them in tmp_path too
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


def frame(n: int, *, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Two numeric columns, a categorical and a boolean one; ``shift`` moves them all."""
    rng = np.random.default_rng(seed)
    p = np.clip(np.array([0.5, 0.3, 0.2]) + [-shift / 4, 0.0, shift / 4], 0.01, 1)
    return pd.DataFrame({
        "income": rng.lognormal(10 + shift / 2, 0.5, size=n),
        "age": rng.normal(40 + shift * 10, 10, size=n),
        "plan": rng.choice(["basic", "plus", "pro"], size=n, p=p / p.sum()),
        "churned": rng.random(n) < 0.2 + shift / 10,
    })
