"""Registered model versions for the monitoring tests, trained under @track.

The versions are built once per session in a template store; ``model_store`` gives each test a
fresh copy of it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

FEATURES = ["age", "income", "tenure", "region", "plan"]
TARGET = "churned"
ID = "customer_id"
REGIONS = ["north", "south", "east", "west"]


def make_batch(n: int, *, seed: int, shift: float = 0.0, flip: float = 0.0, start_id: int = 0) -> pd.DataFrame:
    """Customers with a churn label; ``shift`` moves age and income and the region mix, ``flip``
    flips that share of the labels (the relation between features and label changes)."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40 + 12 * shift, 10, n).round(1)
    income = np.exp(rng.normal(10.5 + 0.6 * shift, 0.4, n)).round(2)
    tenure = rng.gamma(2.0, 12.0, n).round(1)
    mix = np.array([0.4, 0.3, 0.2, 0.1]) if shift == 0 else np.array([0.1, 0.2, 0.3, 0.4])
    region = rng.choice(REGIONS, n, p=mix)
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    logit = -0.08 * (age - 40) - 0.06 * (tenure - 24) + np.where(plan == "basic", 0.8, -0.6)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    flipped = rng.random(n) < flip
    churned = np.where(flipped, 1 - churned, churned)
    return pd.DataFrame({ID: np.arange(start_id, start_id + n), "age": age, "income": income, "tenure": tenure,
                         "region": region, "plan": plan, TARGET: churned})


def _pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    encode = ColumnTransformer([("num", StandardScaler(), ["age", "income", "tenure"]),
                                ("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "plan"])])
    return make_pipeline(encode, LogisticRegression(max_iter=500))


def register_version(name: str, train: pd.DataFrame, valid: pd.DataFrame, *, alias: str | None = "champion") -> str:
    """Train a churn classifier under @track (which registers it with its profile); its version."""
    import mlflow

    from mlflow_ext.decorators import track

    @track(model_name=name, experiment="training", target=TARGET, validation="valid", sample_size=2000,
           pip_requirements=["scikit-learn"])
    def train_churn(data: pd.DataFrame, valid: pd.DataFrame) -> Any:
        return _pipeline().fit(data[FEATURES], data[TARGET])

    # the id is not a feature, so it is not part of what the model is trained and profiled on
    tracked = train_churn(train.drop(columns=[ID]), valid.drop(columns=[ID]))
    if alias:
        mlflow.MlflowClient().set_registered_model_alias(name, alias, tracked.version)
    return tracked.version


def register_models(artifacts: str | None) -> None:
    """Into the current tracking URI: 'churn' (v1 champion, v2 challenger) and 'legacy' (a version
    registered outside mlflow-ext: no profile, no tags; its source is never loaded)."""
    import mlflow

    mlflow.create_experiment("training", artifact_location=artifacts)
    train, valid = make_batch(3000, seed=1), make_batch(1000, seed=2, start_id=10_000)
    register_version("churn", train, valid)
    register_version("churn", train.iloc[:2000], valid, alias="challenger")
    client = mlflow.MlflowClient()
    client.create_registered_model("legacy")
    with mlflow.start_run(run_name="legacy") as run:
        pass
    client.create_model_version("legacy", source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)


@pytest.fixture(scope="session")
def model_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A sqlite store holding the models of :func:`register_models`."""
    import mlflow

    folder = tmp_path_factory.mktemp("model-template")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    try:
        with pytest.MonkeyPatch.context() as patch:  # built on first use, maybe inside a test's store
            patch.setenv("MLFLOW_TRACKING_URI", uri)
            patch.setenv("MLFLOW_REGISTRY_URI", uri)
            mlflow.set_tracking_uri(uri)
            mlflow.set_registry_uri(uri)
            register_models(str(folder / "artifacts"))
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
    yield folder / "mlflow.db"


@pytest.fixture
def model_store(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's store holding the models of :func:`register_models` (a fresh copy of a template)."""
    from tests.conftest import backend_of, team_server

    backend = backend_of(request)
    if backend == "sqlite":
        shutil.copy(request.getfixturevalue("model_template"), tmp_path / "mlflow.db")
    else:
        team_server(request, backend).reset_or_build("models", lambda: register_models(None))
    return store
