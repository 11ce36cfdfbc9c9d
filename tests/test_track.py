"""@track against real stores, sqlite and a PostgreSQL-backed server: what a decorated training
function records and registers."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlflow_ext
from mlflow_ext import _lineage, tracking
from mlflow_ext.decorators import Tracked, track
from mlflow_ext.errors import ConfigError, DataError, ProfileError, TrackingError
from tests.conftest import BACKENDS, fresh_store, team_server

pytestmark = pytest.mark.backends

FAST = ["scikit-learn"]  # explicit requirements skip MLflow's inference subprocess (seconds per model)


def customers(n: int, *, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n).round(1)
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    tenure = rng.gamma(2.0, 12.0, n).round(1)
    logit = -0.08 * (age - 40) - 0.05 * (tenure - 24) + np.where(plan == "basic", 0.8, -0.6)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    spend = 20 + 0.5 * tenure + np.where(plan == "pro", 30, 0) + rng.normal(0, 2, n)
    return pd.DataFrame({"age": age, "tenure": tenure, "plan": plan, "spend": spend, "churned": churned})


def pipeline(estimator: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    encode = ColumnTransformer([("num", StandardScaler(), ["age", "tenure"]),
                                ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])])
    return make_pipeline(encode, estimator)


def make_python_model() -> Any:
    import mlflow.pyfunc

    class TenureDoubler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
            return (model_input["tenure"] * 2.0).to_numpy()

    return TenureDoubler()


@dataclass(frozen=True)
class Trained:
    uri: str
    env: dict[str, str]
    backend: str
    classifier: Tracked[Any]
    regressor: Tracked[Any]
    tree: Tracked[Any]
    python_model: Tracked[Any]
    train: pd.DataFrame


@pytest.fixture(scope="module", params=[*BACKENDS, "basic-auth"])
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """One store with four tracked versions, trained once for the read-only tests of this module
    (on the server: a snapshot of its database that ``in_trained`` resets to)."""
    import mlflow
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression, Ridge

    folder = tmp_path_factory.mktemp("track")
    uri, env = fresh_store(request, request.param, folder)
    data, valid = customers(1500, seed=1), customers(400, seed=2)
    features = ["age", "tenure", "plan"]

    @track(model_name="churn", target="churned", validation="holdout", pip_requirements=FAST,
           tags={"team": "growth"})
    def train_churn(frame: pd.DataFrame, holdout: pd.DataFrame, C: float = 1.0, note: str = "v1") -> Any:
        return pipeline(LogisticRegression(C=C)).fit(frame[features], frame["churned"]), {"note": note}

    @track(pip_requirements=FAST)
    def spend_model(X: pd.DataFrame, y: pd.Series, X_val: pd.DataFrame, y_val: pd.Series,
                    alpha: float = 0.5) -> Any:
        return pipeline(Ridge(alpha=alpha)).fit(X, y)

    @track(model_name="churn_tree", target="churned")  # default: skops with MLflow's requirement inference
    def train_tree(frame: pd.DataFrame) -> Any:
        model = pipeline(HistGradientBoostingClassifier(max_iter=20))
        return model.fit(frame[features], frame["churned"])

    @track(model_name="doubler", task="regression", pip_requirements=["mlflow"])
    def train_doubler(frame: pd.DataFrame, valid: pd.DataFrame, y_val: pd.Series) -> Any:
        return make_python_model()

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        for name, value in env.items():
            patch.setenv(name, value)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            x, xv = data[features], valid[features]
            result = Trained(
                uri=uri, env=env, backend=request.param,
                classifier=train_churn(data, valid, C=0.5),
                regressor=spend_model(x, data["spend"], xv, valid["spend"]),
                tree=train_tree(data),
                python_model=train_doubler(x, xv, valid["tenure"] * 2.0),
                train=data,
            )
            if request.param != "sqlite":
                team_server(request, request.param).snapshot("tracked")
            yield result
        finally:
            mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
            mlflow.set_registry_uri(None)  # type: ignore[arg-type]


@pytest.fixture
def in_trained(trained: Trained, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
               ) -> Iterator[Trained]:
    """Point MLflow at the module's trained store for one test."""
    import mlflow

    if trained.backend != "sqlite":
        team_server(request, trained.backend).reset("tracked")
    for name, value in trained.env.items():
        monkeypatch.setenv(name, value)
    mlflow.set_tracking_uri(trained.uri)
    mlflow.set_registry_uri(trained.uri)
    yield trained
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def _run(run_id: str) -> Any:
    return tracking.client().get_run(run_id)


def _versions(name: str) -> list[Any]:
    return list(tracking.client().search_model_versions(f"name = '{name}'"))


# -- what a tracked classifier records ------------------------------------------------------------


def test_classifier_returns_result_and_registered_version(in_trained: Trained) -> None:
    tracked = in_trained.classifier
    model, extra = tracked.result
    assert extra == {"note": "v1"}
    assert tracked.model is model
    assert (tracked.model_name, tracked.version, tracked.model_uri) == ("churn", "1", "models:/churn/1")
    version = tracking.resolve_version("churn/1")
    assert version.run_id == tracked.run_id
    assert version.status == "READY"


def test_classifier_run_has_params_metrics_and_tags(in_trained: Trained) -> None:
    run = _run(in_trained.classifier.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["C"] == "0.5" and params["note"] == "v1"
    assert params["model.logisticregression__C"] == "0.5"
    assert "frame" not in params  # a DataFrame is not a parameter
    metrics = run.data.metrics
    assert set(metrics) == {f"mlflow_ext.val.{m}" for m in ("accuracy", "roc_auc", "f1", "log_loss", "n_rows")}
    assert metrics["mlflow_ext.val.n_rows"] == 400
    assert 0.6 < metrics["mlflow_ext.val.accuracy"] <= 1 and 0.6 < metrics["mlflow_ext.val.roc_auc"] <= 1
    tags = run.data.tags
    assert tags["mlflow_ext.kind"] == "training"
    assert tags["mlflow_ext.model"] == "churn" and tags["mlflow_ext.version"] == "1"
    assert tags["team"] == "growth"
    assert tags["mlflow_ext.package_version"] == mlflow_ext.__version__
    assert tags["mlflow_ext.data_fingerprint"] == _lineage.data_fingerprint(in_trained.train)


def test_validation_metrics_match_scikit_learn(in_trained: Trained) -> None:
    from sklearn import metrics as skm

    valid = customers(400, seed=2)
    model = in_trained.classifier.model
    proba = model.predict_proba(valid[["age", "tenure", "plan"]])
    logged = _run(in_trained.classifier.run_id).data.metrics
    assert logged["mlflow_ext.val.roc_auc"] == pytest.approx(skm.roc_auc_score(valid["churned"], proba[:, 1]))
    assert logged["mlflow_ext.val.log_loss"] == pytest.approx(skm.log_loss(valid["churned"], proba))
    assert logged["mlflow_ext.val.accuracy"] == pytest.approx(
        skm.accuracy_score(valid["churned"], model.classes_[proba.argmax(axis=1)]))


def test_version_links_profile_and_reference_round_trips(in_trained: Trained) -> None:
    from mlflow_ext.profile import Profile

    tracked = in_trained.classifier
    tags = tracking.resolve_version("churn/1").tags
    assert tags["mlflow_ext.profile"] == f"runs:/{tracked.run_id}/mlflow_ext/profile"
    assert tags["mlflow_ext.task"] == "classification" and tags["mlflow_ext.target"] == "churned"
    assert json.loads(tags["mlflow_ext.features"]) == ["age", "tenure", "plan", "spend"]
    assert tags["mlflow_ext.data_fingerprint"].startswith("blake2b:")

    reference = tracking.load_version_reference("churn/1")
    features = in_trained.train.drop(columns="churned")
    assert reference.profile == Profile.from_frame(features)  # the summary, compared column by column
    assert reference.profile.sample is not None and len(reference.profile.sample) == 1500
    assert (reference.task, reference.target, reference.run_id) == ("classification", "churned", tracked.run_id)
    assert reference.features == ("age", "tenure", "plan", "spend")
    assert reference.validation["accuracy"] == _run(tracked.run_id).data.metrics["mlflow_ext.val.accuracy"]
    assert reference.predictions is not None
    assert list(reference.predictions.columns) == ["prediction", "proba_0", "proba_1"]
    sample_proba = tracked.model.predict_proba(reference.profile.sample)[:, 1]
    assert reference.predictions.sample is not None
    np.testing.assert_allclose(reference.predictions.sample["proba_1"], sample_proba)


def test_logged_model_has_signature_and_input_example_and_loads(in_trained: Trained) -> None:
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model("models:/churn/1")
    inputs = loaded.metadata.get_input_schema().input_names()
    assert inputs == ["age", "tenure", "plan", "spend"]
    assert loaded.metadata.get_output_schema() is not None
    example = loaded.metadata.load_input_example(mlflow.artifacts.download_artifacts("models:/churn/1"))
    assert len(example) == 5
    batch = in_trained.train.drop(columns="churned").head(20)
    np.testing.assert_array_equal(loaded.predict(batch), in_trained.classifier.model.predict(batch))


def test_regressor_with_separate_labels(in_trained: Trained) -> None:
    tracked = in_trained.regressor
    assert tracked.model_name == "spend_model" and tracked.version == "1"
    metrics = _run(tracked.run_id).data.metrics
    assert set(metrics) == {f"mlflow_ext.val.{m}" for m in ("mae", "rmse", "r2", "n_rows")}
    assert metrics["mlflow_ext.val.r2"] > 0.8
    reference = tracking.load_version_reference("spend_model/1")
    assert reference.task == "regression" and reference.target is None
    assert reference.predictions is not None and list(reference.predictions.columns) == ["prediction"]
    assert _run(tracked.run_id).data.params["alpha"] == "0.5"


def test_tree_pipeline_logs_with_skops_and_loads_natively(in_trained: Trained) -> None:
    import mlflow.sklearn

    tracked = in_trained.tree
    loaded = mlflow.sklearn.load_model(tracked.model_uri)  # skops refuses untrusted tree types otherwise
    batch = in_trained.train[["age", "tenure", "plan"]].head(50)
    np.testing.assert_array_equal(loaded.predict_proba(batch), tracked.model.predict_proba(batch))
    files = {Path(a.path).name for a in tracking.client().list_artifacts(tracked.run_id, "model")}
    assert "model.skops" in files and "requirements.txt" in files
    assert _run(tracked.run_id).data.metrics == {}  # no validation data, no validation metrics
    assert tracking.load_version_reference("churn_tree/1").validation == {}


def test_python_model_is_logged_as_pyfunc(in_trained: Trained) -> None:
    import mlflow.pyfunc

    tracked = in_trained.python_model
    loaded = mlflow.pyfunc.load_model(tracked.model_uri)
    batch = in_trained.train[["age", "tenure", "plan"]].head(10)
    np.testing.assert_allclose(np.asarray(loaded.predict(batch)), batch["tenure"] * 2.0)
    metrics = _run(tracked.run_id).data.metrics
    assert metrics["mlflow_ext.val.mae"] == pytest.approx(0.0)
    reference = tracking.load_version_reference(tracked.model_uri.removeprefix("models:/"))
    assert reference.task == "regression"


def test_keeps_the_function_signature_and_name() -> None:
    import inspect

    @track(pip_requirements=FAST)
    def fit_it(frame: pd.DataFrame, depth: int = 3) -> Any:
        """Fit it."""

    assert fit_it.__name__ == "fit_it" and fit_it.__doc__ == "Fit it."
    assert list(inspect.signature(fit_it).parameters) == ["frame", "depth"]


# -- runs, failures and rollbacks -----------------------------------------------------------------


def _small_train() -> Any:
    from sklearn.linear_model import LogisticRegression

    @track(model_name="small", target="churned", pip_requirements=FAST, sample_size=200)
    def small(frame: pd.DataFrame) -> Any:
        return LogisticRegression().fit(frame[["age", "tenure"]], frame["churned"])

    return small


def test_nests_in_an_active_run(store: str) -> None:
    import mlflow

    with mlflow.start_run(run_name="sweep") as outer:
        tracked = _small_train()(customers(300, seed=3)[["age", "tenure", "churned"]])
        assert mlflow.active_run().info.run_id == outer.info.run_id  # the outer run is active again
    run = _run(tracked.run_id)
    assert run.data.tags["mlflow.parentRunId"] == outer.info.run_id
    assert run.info.experiment_id == outer.info.experiment_id
    assert run.info.status == "FINISHED"


def test_user_exception_propagates_and_nothing_is_registered(store: str) -> None:
    import mlflow

    error = RuntimeError("out of memory in fold 3")

    @track(model_name="boom", experiment="training", pip_requirements=FAST)
    def boom(frame: pd.DataFrame) -> Any:
        raise error

    with pytest.raises(RuntimeError) as raised:
        boom(customers(50, seed=0))
    assert raised.value is error
    assert tracking.client().search_registered_models() == []
    runs = mlflow.search_runs(experiment_names=["training"], output_format="list")
    assert [r.info.status for r in runs] == ["FAILED"]


def test_unserializable_model_leaves_no_version(store: str) -> None:
    import mlflow
    from sklearn.linear_model import LogisticRegression

    @track(model_name="locked", target="churned", serialization="cloudpickle", pip_requirements=FAST,
           experiment="training")
    def locked(frame: pd.DataFrame) -> Any:
        model = LogisticRegression().fit(frame[["age"]], frame["churned"])
        model.lock_ = threading.Lock()  # cannot be pickled
        return model

    with pytest.raises(TrackingError, match="Could not log the LogisticRegression model: TypeError: .*lock"):
        locked(customers(100, seed=0)[["age", "churned"]])
    assert tracking.client().search_registered_models() == []
    runs = mlflow.search_runs(experiment_names=["training"], output_format="list")
    assert [r.info.status for r in runs] == ["FAILED"]


def test_skops_refusal_names_the_way_out(store: str) -> None:
    from sklearn.linear_model import LogisticRegression

    @track(model_name="locked", target="churned", pip_requirements=FAST)
    def locked(frame: pd.DataFrame) -> Any:
        model = LogisticRegression().fit(frame[["age"]], frame["churned"])
        model.lock_ = threading.Lock()
        return model

    with pytest.raises(TrackingError, match="Could not log the LogisticRegression model: .*skops") as raised:
        locked(customers(100, seed=0)[["age", "churned"]])
    assert "serialization='cloudpickle'" in str(raised.value)
    assert tracking.client().search_registered_models() == []


@pytest.mark.sqlite_only
def test_registration_failure_deletes_the_new_version(store: str) -> None:
    """A real failure after the version was created: sqlite refuses the run tag that names it."""
    import sqlite3

    import mlflow

    small = _small_train()
    first = small(customers(300, seed=3)[["age", "tenure", "churned"]])
    db = store.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TRIGGER refuse AFTER INSERT ON tags "
                     "WHEN NEW.key = 'mlflow_ext.version' BEGIN SELECT RAISE(ABORT, 'disk quota exceeded'); END")
    with pytest.raises(TrackingError, match="register the model as 'small'.*disk quota exceeded"):
        small(customers(300, seed=4)[["age", "tenure", "churned"]])
    assert [str(v.version) for v in _versions("small")] == [first.version]
    statuses = sorted(r.info.status for r in mlflow.search_runs(search_all_experiments=True, output_format="list"))
    assert statuses == ["FAILED", "FINISHED"]


@pytest.mark.sqlite_only
def test_registration_failure_removes_a_model_it_created(store: str) -> None:
    import sqlite3

    db = store.removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TRIGGER refuse AFTER INSERT ON model_version_tags "
                     "BEGIN SELECT RAISE(ABORT, 'disk quota exceeded'); END")
    with pytest.raises(TrackingError, match="Could not register the model as 'small': Model Version creation error"):
        _small_train()(customers(300, seed=3)[["age", "tenure", "churned"]])
    assert tracking.client().search_registered_models() == []


# -- mistakes are reported before or instead of a half-recorded model -----------------------------


def test_bad_options_fail_at_decoration() -> None:
    def fit(frame: pd.DataFrame) -> None: ...

    with pytest.raises(ConfigError, match=r"validation='valid' is not an argument of the function. Arguments: frame"):
        track(validation="valid")(fit)
    with pytest.raises(ConfigError, match="task='ranking'; expected one of classification, regression"):
        track(task="ranking")(fit)
    with pytest.raises(ConfigError, match="model_name 'churn/v2' is not a valid registered model name"):
        track(model_name="churn/v2")(fit)
    with pytest.raises(ConfigError, match="serialization='pickle'; expected one of skops, cloudpickle"):
        track(serialization="pickle")(fit)


def test_training_data_must_be_a_frame(store: str) -> None:
    calls = []

    @track
    def fit(rows: list[float]) -> None:
        calls.append(rows)

    with pytest.raises(DataError, match="must be a pandas DataFrame argument; got no DataFrame argument"):
        fit([1.0, 2.0])
    assert calls == []  # refused before any training


def test_function_must_return_a_model(store: str) -> None:
    @track(pip_requirements=FAST)
    def fit(frame: pd.DataFrame) -> dict[str, float]:
        return {"accuracy": 0.9}

    with pytest.raises(ConfigError, match="returned dict, which is not and does not hold a fitted model"):
        fit(customers(20, seed=0))
    assert tracking.client().search_registered_models() == []


def test_python_model_needs_a_task(store: str) -> None:
    @track(pip_requirements=FAST)
    def fit(frame: pd.DataFrame) -> Any:
        return make_python_model()

    with pytest.raises(ConfigError, match="cannot tell whether the PythonModel is a classifier or a regressor"):
        fit(customers(20, seed=0))


def test_validation_without_labels_is_refused_before_training(store: str) -> None:
    calls = []

    @track(pip_requirements=FAST)
    def fit(X: pd.DataFrame, y: pd.Series, validation: pd.DataFrame, y_val: Any = None) -> None:
        calls.append(X)

    data = customers(50, seed=0)[["age", "tenure"]]
    with pytest.raises(DataError, match=r"validation labels are missing or of the wrong length \(none\)"):
        fit(data, data["age"], data)
    with pytest.raises(DataError, match=r"wrong length \(10 for 50 rows\)"):
        fit(data, data["age"], data, y_val=data["age"].head(10))
    assert calls == []


def test_version_without_profile_is_reported(store: str) -> None:
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LinearRegression

    with mlflow.start_run():
        mlflow.sklearn.log_model(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), name="model",
                                 registered_model_name="legacy", serialization_format="cloudpickle",
                                 pip_requirements=FAST)
    with pytest.raises(ProfileError, match="version 1 of 'legacy' has no mlflow-ext reference profile"):
        tracking.load_version_reference("legacy/1")


# -- lineage --------------------------------------------------------------------------------------


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True).stdout.strip()


def test_git_commit_and_dirty_flag_in_a_real_repo(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print('train')\n")
    _git(repo, "add", "train.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "first")
    head = _git(repo, "rev-parse", "HEAD")
    monkeypatch.chdir(repo)
    small = _small_train()
    data = customers(200, seed=5)[["age", "tenure", "churned"]]

    clean = tracking.resolve_version(f"small/{small(data).version}").tags
    assert (clean["mlflow_ext.git.commit"], clean["mlflow_ext.git.dirty"]) == (head, "false")
    (repo / "train.py").write_text("print('changed')\n")
    dirty = tracking.resolve_version(f"small/{small(data).version}").tags
    assert (dirty["mlflow_ext.git.commit"], dirty["mlflow_ext.git.dirty"]) == (head, "true")


def test_no_git_tags_outside_a_repo(tmp_path: Path) -> None:
    tags = _lineage.lineage_tags(tmp_path)
    assert tags == {"mlflow_ext.package_version": mlflow_ext.__version__}


def test_fingerprint_follows_content_not_index() -> None:
    frame = customers(100, seed=0)
    same = frame.set_axis(range(500, 600)).copy()
    assert _lineage.data_fingerprint(frame) == _lineage.data_fingerprint(same)
    changed = frame.copy()
    changed.loc[7, "age"] += 0.1
    assert _lineage.data_fingerprint(changed) != _lineage.data_fingerprint(frame)
    renamed = frame.rename(columns={"age": "years"})
    assert _lineage.data_fingerprint(renamed) != _lineage.data_fingerprint(frame)
