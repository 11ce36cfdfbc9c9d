"""Estimated performance inside the loop: @track stores an estimator, checks log est.* beside perf.*,
the report shows it, and policies raise incidents on it (and stay honest about concept drift)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlflow_ext import tracking
from mlflow_ext.checks import CheckResult
from mlflow_ext.errors import ConfigError
from mlflow_ext.estimation import CBPEModel, DLEModel

ACCURACY_POLICY = """
version = 1
[models.clf.incident]
drift = "alert"
[models.clf.incident.estimated]
metric = "accuracy"
drop = 0.02
level = "alert"
drift_if_stable = "warn"
"""


def classes_frame(n: int, *, seed: int, x0_sd: float = 1.5, x1_mean: float = 0.0, flip_above: float | None = None
                  ) -> pd.DataFrame:
    """y depends on x0 only (P(y=1) = sigmoid(3 x0)); a small x0_sd puts rows near the boundary
    (covariate shift that costs accuracy); flip_above flips labels where x0 exceeds it (concept drift)."""
    rng = np.random.default_rng(seed)
    x0, x1 = rng.normal(0, x0_sd, n), rng.normal(x1_mean, 1.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-3 * x0))).astype(int)
    if flip_above is not None:
        y = np.where(x0 > flip_above, 1 - y, y)
    return pd.DataFrame({"x0": x0, "x1": x1, "y": y})


def regression_frame(n: int, *, seed: int, x1_mean: float = 0.0) -> pd.DataFrame:
    """y = 2 x0 plus noise that grows with |x1|."""
    rng = np.random.default_rng(seed)
    x0, x1 = rng.normal(0, 1, n), rng.normal(x1_mean, 1, n)
    return pd.DataFrame({"x0": x0, "x1": x1, "y": 2 * x0 + rng.normal(0, 0.3 * (1 + np.abs(x1)), n)})


def _register(name: str, train: pd.DataFrame, valid: pd.DataFrame, estimator: Any) -> str:
    from mlflow_ext.decorators import track

    @track(model_name=name, experiment="training", target="y", validation="valid", sample_size=1000,
           pip_requirements=["scikit-learn"])
    def fit(data: pd.DataFrame, valid: pd.DataFrame) -> Any:
        return estimator.fit(data[["x0", "x1"]], data["y"])

    version = fit(train, valid).version
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)
    return version


@pytest.fixture(scope="session")
def estimation_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A store with 'clf' (logistic regression, CBPE) and 'reg' (linear regression, DLE), both champions."""
    from sklearn.linear_model import LinearRegression, LogisticRegression

    folder = tmp_path_factory.mktemp("estimation-template")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        mlflow.create_experiment("training", artifact_location=str(folder / "artifacts"))
        _register("clf", classes_frame(1500, seed=1), classes_frame(1000, seed=2), LogisticRegression())
        _register("reg", regression_frame(1000, seed=3), regression_frame(600, seed=4), LinearRegression())
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    yield folder / "mlflow.db"


@pytest.fixture
def models(store: str, estimation_template: Path, tmp_path: Path) -> str:
    shutil.copy(estimation_template, tmp_path / "mlflow.db")
    return store


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- @track ---------------------------------------------------------------------------------------


def test_track_stores_a_cbpe_estimator_with_its_reliability_plot(models: str, tmp_path: Path) -> None:
    reference = tracking.load_version_reference("clf@champion")
    version = tracking.resolve_version("clf@champion")
    assert version.tags[tracking.ESTIMATOR_TAG] == f"runs:/{reference.run_id}/mlflow_ext/estimator"
    assert isinstance(reference.estimator, CBPEModel)
    # the estimator's reference is the validation run's own accuracy, computed on the same rows
    ref = {m.name: m.value for m in reference.estimator.reference}
    assert ref["accuracy"] == pytest.approx(reference.validation["accuracy"])
    assert reference.estimator.n_reference == 1000
    plot = mlflow.artifacts.download_artifacts(f"runs:/{reference.run_id}/mlflow_ext/plots/reliability.png",
                                               dst_path=str(tmp_path))
    assert Path(plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_track_stores_a_dle_estimator_for_a_regressor(models: str) -> None:
    reference = tracking.load_version_reference("reg@champion")
    assert isinstance(reference.estimator, DLEModel)
    assert reference.estimator.features == ("x0", "x1")
    assert {m.name for m in reference.estimator.reference} == {"mae", "rmse"}


def test_a_validation_set_with_one_class_still_trains_and_tags_why_there_is_no_estimator(models: str) -> None:
    from sklearn.linear_model import LogisticRegression

    valid = classes_frame(300, seed=5)
    version = _register("one_class", classes_frame(500, seed=6), valid[valid["y"] == 1], LogisticRegression())
    tags = tracking.resolve_version(f"one_class/{version}").tags
    assert tracking.ESTIMATOR_TAG not in tags
    assert "CBPE estimator could not be fitted" in tags[tracking.NO_ESTIMATOR_TAG]
    assert "lack class(es) [0]" in tags[tracking.NO_ESTIMATOR_TAG]
    assert tracking.load_version_reference(f"one_class/{version}").estimator is None


# -- checks ---------------------------------------------------------------------------------------


def test_check_logs_estimates_with_bands_beside_realized_metrics(models: str) -> None:
    from mlflow_ext.model_check import check_model

    checked = check_model("clf", classes_frame(800, seed=10))  # labels in the batch's target column
    estimated = {e.name: e for e in checked.result.estimated}
    assert set(estimated) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    accuracy = estimated["accuracy"]
    assert accuracy.method == "cbpe" and accuracy.band_low < accuracy.value < accuracy.band_high
    realized = {m.name: m.value for m in checked.result.performance}
    assert accuracy.band_low <= realized["accuracy"] <= accuracy.band_high  # no shift: the estimate is right
    assert checked.run_id is not None
    metrics = mlflow.MlflowClient().get_run(checked.run_id).data.metrics
    for key in ("est.accuracy", "est.accuracy.band_low", "est.accuracy.band_high", "perf.accuracy"):
        assert f"mlflow_ext.{key}" in metrics
    assert metrics["mlflow_ext.est.accuracy"] == pytest.approx(accuracy.value)
    # check.json (what --json prints) carries the estimates and reads back
    document = json.loads(json.dumps(checked.to_dict()))
    assert CheckResult.from_dict(document["result"]) == checked.result


def test_cli_json_output_includes_the_estimates(models: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlflow_ext.cli import app

    batch = tmp_path / "batch.csv"
    classes_frame(300, seed=11).drop(columns="y").to_csv(batch, index=False)
    outcome = CliRunner().invoke(app, ["check", str(batch), "--model", "clf", "--json"])
    assert outcome.exit_code == 0, outcome.output
    document = json.loads(outcome.stdout)
    assert {e["name"] for e in document["result"]["estimated"]} >= {"accuracy", "roc_auc"}


def test_regressor_checks_estimate_mae_and_rmse_without_labels(models: str) -> None:
    from mlflow_ext.model_check import check_model

    batch = regression_frame(500, seed=12, x1_mean=2.5).drop(columns="y")  # into the noisy region
    checked = check_model("reg", batch, record=False)
    estimated = {e.name: e for e in checked.result.estimated}
    assert set(estimated) == {"mae", "rmse"} and estimated["mae"].method == "dle"
    assert estimated["mae"].reference is not None
    assert estimated["mae"].band_low > estimated["mae"].reference  # the noise grew with x1: so did the estimate


def test_the_report_shows_estimated_performance_and_its_trend(models: str, tmp_path: Path) -> None:
    from mlflow_ext.model_check import check_model

    check_model("clf", classes_frame(400, seed=13).drop(columns="y"))
    checked = check_model("clf", classes_frame(400, seed=14))
    assert checked.run_id is not None
    folder = Path(mlflow.artifacts.download_artifacts(run_id=checked.run_id, dst_path=str(tmp_path)))
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "<h2>Estimated performance</h2>" in page
    section = page.split("<h2>Estimated performance</h2>")[1].split("<h2>")[0]
    realized = next(m.value for m in checked.result.performance if m.name == "accuracy")
    assert f"<td>accuracy</td><td>{next(e.value for e in checked.result.estimated if e.name == 'accuracy'):.4g}" \
        in section
    assert f"<td>{realized:.4g}</td><td>CBPE</td>" in section  # realized sits next to the estimate
    assert (folder / "plots" / "estimated.png").read_bytes()[:4] == b"\x89PNG"
    assert "Estimated accuracy with its band" in page


# -- policy ---------------------------------------------------------------------------------------


def test_policy_reads_the_estimated_incident(tmp_path: Path) -> None:
    from mlflow_ext.policy import EstimatedIncident, load_policy

    policy = load_policy(_policy(tmp_path, ACCURACY_POLICY + '[models.reg.incident.estimated]\n'
                                                            'metric = "mae"\nceiling = 1\n'))
    assert policy.for_model("clf").incident.estimated == EstimatedIncident(
        metric="accuracy", drop=0.02, level="alert", drift_if_stable="warn")
    assert policy.for_model("reg").incident.estimated == EstimatedIncident(metric="mae", ceiling=1.0)
    assert policy.for_model("clf").to_dict()["incident"]["estimated"]["drop"] == 0.02


@pytest.mark.parametrize(("table", "message"), [
    ('metric = "log_loss"\nfloor = 1', r"incident\.estimated\.metric: 'log_loss' is not estimated\. "
                                       r"Estimated metrics: accuracy, precision"),
    ('metric = "mae"\nfloor = 1', r"incident\.estimated\.floor: mae is lower-is-better, so it takes a ceiling"),
    ('metric = "accuracy"\nceiling = 0.9',
     r"incident\.estimated\.ceiling: accuracy is higher-is-better, so it takes a floor"),
    ('metric = "accuracy"\ndrop = 1.5', r"incident\.estimated\.drop: expected a relative loss in \[0, 1\), got 1\.5"),
    ('metric = "accuracy"\nfloor = "high"', r"incident\.estimated\.floor: expected a number, got 'high'"),
    ('metric = "accuracy"\nfloor = 0.8\nlevel = "page"', r"incident\.estimated\.level: expected one of"),
    ('metric = "accuracy"', r"incident\.estimated: says nothing to do: set floor, drop or "
                            r"drift_if_stable"),
    ('floor = 0.8', r"incident\.estimated: missing the key 'metric'"),
    ('metric = "accuracy"\nfloors = 0.8', r"incident\.estimated\.floors: unknown key"),
])
def test_policy_errors_name_the_file_and_field(tmp_path: Path, table: str, message: str) -> None:
    from mlflow_ext.policy import load_policy

    path = _policy(tmp_path, f"version = 1\n[models.m.incident.estimated]\n{table}\n")
    with pytest.raises(ConfigError, match=rf"policy\.toml: models\.m\.{message}"):
        load_policy(path)


# -- the loop -------------------------------------------------------------------------------------


def test_an_estimated_accuracy_drop_alerts_on_a_shifted_batch_without_labels(models: str, tmp_path: Path) -> None:
    from mlflow_ext.monitor import monitor

    policy = _policy(tmp_path, ACCURACY_POLICY.replace('drift = "alert"', 'drift = "ignore"'))
    calm, = monitor(policy, classes_frame(500, seed=20).drop(columns="y"))
    assert calm.status == "ok", calm.reasons
    shifted, = monitor(policy, classes_frame(500, seed=21, x0_sd=0.25).drop(columns="y"))
    assert shifted.status == "alert"
    assert shifted.incident == f"w{shifted.window}"
    assert any(r.startswith("The estimated accuracy is") and "significant drop" in r for r in shifted.reasons)
    tags = mlflow.MlflowClient().get_run(shifted.run_id).data.tags  # type: ignore[arg-type]
    assert tags["mlflow_ext.loop_status"] == "alert"


def test_drift_that_leaves_the_estimate_stable_only_warns(models: str, tmp_path: Path) -> None:
    from mlflow_ext.monitor import monitor

    # x1 moves far (the model ignores it): drift, but the estimated accuracy holds
    record, = monitor(_policy(tmp_path, ACCURACY_POLICY), classes_frame(500, seed=22, x1_mean=3.0).drop(columns="y"))
    assert "x1" in record.drifted
    assert record.status == "warn"
    assert any("leaves the performance estimate stable" in r for r in record.reasons)
    # without the rule the same drift alerts
    plain = ACCURACY_POLICY.replace('drift_if_stable = "warn"\n', "")
    record, = monitor(_policy(tmp_path, plain), classes_frame(500, seed=22, x1_mean=3.0).drop(columns="y"))
    assert record.status == "alert"


def test_concept_drift_leaves_the_estimate_flat_while_realized_accuracy_falls(models: str) -> None:
    """The honest limit: labels flipped where x0 > 0.5 (P(y|x) changed, P(x) did not)."""
    from mlflow_ext.model_check import check_model
    from mlflow_ext.policy import EstimatedIncident, estimated_status

    checked = check_model("clf", classes_frame(800, seed=23, flip_above=0.5), record=False)
    estimate = next(e for e in checked.result.estimated if e.name == "accuracy")
    realized = next(m for m in checked.result.performance if m.name == "accuracy")
    assert estimate.reference is not None
    assert estimate.band_low <= estimate.reference <= estimate.band_high  # estimated: nothing happened
    assert realized.degraded and realized.value < estimate.band_low - 0.1  # realized: it did
    rule = EstimatedIncident(metric="accuracy", drop=0.02)
    without_labels = CheckResult.from_dict({**checked.result.to_dict(), "performance": []})
    assert estimated_status(rule, without_labels, "ok", ()) == ("ok", ())
    # with labels the realized metric decides and the estimate steps aside
    assert estimated_status(rule, checked.result, "alert", ("r",)) == ("alert", ("r",))
