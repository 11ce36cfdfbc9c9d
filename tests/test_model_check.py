"""check_model against registered versions on each backend: what is recorded, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from mlflow_ext import check_model
from mlflow_ext.errors import ConfigError, DataError, NotFoundError, ProfileError
from mlflow_ext.model_check import metric_key, recent_checks
from tests.conftest import also_behind_basic_auth
from tests.model_fixtures import ID, TARGET, make_batch

pytestmark = pytest.mark.backends

pytest_plugins = ["tests.model_fixtures"]


def _labels(batch: pd.DataFrame) -> pd.DataFrame:
    return batch[[ID, TARGET]]


@also_behind_basic_auth
def test_clean_batch_is_ok_and_recorded_as_a_run_with_tags_metrics_and_artifacts(model_store: str) -> None:
    batch = make_batch(800, seed=11)
    outcome = check_model("churn", batch.drop(columns=[TARGET]), labels=_labels(batch), id_column=ID)

    assert outcome.status == "ok", outcome.result.reasons
    assert (outcome.model, outcome.version, outcome.alias, outcome.step) == ("churn", "1", "champion", 0)
    run = mlflow.MlflowClient().get_run(outcome.run_id)
    assert mlflow.MlflowClient().get_experiment(run.info.experiment_id).name == "mlflow-ext/churn"
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["mlflow_ext.kind"] == "check" and tags["mlflow_ext.status"] == "ok"
    assert (tags["mlflow_ext.model"], tags["mlflow_ext.version"]) == ("churn", "1")
    assert tags["mlflow_ext.batch_fingerprint"] == outcome.batch_fingerprint
    assert tags["mlflow.note.content"].startswith("OK: 0 of 5 columns drifted; accuracy ")
    assert tags["mlflow.note.content"].count("\n") == 1
    assert {"mlflow_ext.drift.age.statistic", "mlflow_ext.drift.age.p_value", "mlflow_ext.drift.region.effect_size",
            "mlflow_ext.drift_share", "mlflow_ext.n_drifted", "mlflow_ext.perf.accuracy",
            "mlflow_ext.perf.accuracy.ci_low", "mlflow_ext.perf.roc_auc.ci_high",
            "mlflow_ext.prediction_drift.statistic"} <= set(metrics)
    assert "mlflow_ext.drift.customer_id.statistic" not in metrics  # the id is not a feature
    low, value, high = (metrics[f"mlflow_ext.perf.accuracy{s}"] for s in (".ci_low", "", ".ci_high"))
    assert low < value < high
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(outcome.run_id)}
    assert {"check.json", "report.html", "plots"} <= artifacts
    document = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=outcome.run_id, artifact_path="check.json")).read_text())
    assert document["result"]["status"] == "ok" and document["n_labelled"] == 800
    version = mlflow.MlflowClient().get_model_version("churn", "1")
    assert version.tags["mlflow_ext.last_check.status"] == "ok"
    assert version.tags["mlflow_ext.last_check.run_id"] == outcome.run_id
    assert version.tags["mlflow_ext.last_check.time"].endswith("Z")


def test_drifted_batch_with_flipped_labels_alerts_names_columns_and_degraded_accuracy(model_store: str) -> None:
    batch = make_batch(1500, seed=12, shift=1.0, flip=0.35)
    outcome = check_model("churn@champion", batch, id_column=ID)  # labels inside the batch

    result = outcome.result
    assert result.status == "alert"
    assert {"age", "income", "region"} <= set(result.drifted_columns)
    accuracy = next(m for m in result.performance if m.name == "accuracy")
    assert accuracy.degraded and accuracy.reference is not None and accuracy.value < accuracy.reference
    assert accuracy.p_value is not None and accuracy.p_value < 0.05
    assert any("'accuracy' degraded" in reason for reason in result.reasons)
    note = mlflow.MlflowClient().get_run(outcome.run_id).data.tags["mlflow.note.content"]
    assert note.startswith("ALERT: ") and "age" in note and "vs 0." in note and "at validation" in note


def test_steps_count_up_per_model_and_metrics_are_charted_at_the_step_and_batch_time(model_store: str) -> None:
    first = check_model("churn", make_batch(300, seed=13).drop(columns=[TARGET]), id_column=ID,
                        timestamp="2026-01-05T10:00:00Z")
    second = check_model("churn/2", make_batch(300, seed=14, shift=1.0).drop(columns=[TARGET]), id_column=ID)
    explicit = check_model("churn", make_batch(300, seed=15).drop(columns=[TARGET]), id_column=ID, step=7)
    assert (first.step, second.step, explicit.step) == (0, 1, 7)
    history = mlflow.MlflowClient().get_metric_history(first.run_id, "mlflow_ext.drift_share")
    assert [(p.step, p.timestamp) for p in history] == [(0, 1767607200000)]
    assert [c.step for c in recent_checks("churn")] == [7, 1, 0]
    assert [c.status for c in recent_checks("churn")][1] in {"warn", "alert"}
    assert second.alias is None and second.version == "2"


def test_record_false_writes_nothing(model_store: str) -> None:
    outcome = check_model("churn", make_batch(200, seed=16), id_column=ID, record=False)
    assert outcome.run_id is None and outcome.report_uri is None
    assert mlflow.MlflowClient().get_experiment_by_name("mlflow-ext/churn") is None
    assert "mlflow_ext.last_check.status" not in mlflow.MlflowClient().get_model_version("churn", "1").tags


def test_column_names_that_mlflow_rejects_are_sanitized_deterministically() -> None:
    assert metric_key("age") == "age"
    odd = metric_key("price (€)/unit")
    assert odd == metric_key("price (€)/unit") and odd.startswith("price __")
    assert metric_key("a/b") != metric_key("a:b")
    assert "/" not in metric_key("../x") and metric_key("../x") != metric_key("__/x")


def test_labels_that_match_no_row_are_a_data_error_and_nothing_is_recorded(model_store: str) -> None:
    batch = make_batch(100, seed=17)
    labels = _labels(make_batch(5, seed=18, start_id=5000))
    with pytest.raises(DataError, match=r"5 of 5 label id\(s\) match no row of the batch, e.g. 5000, 5001"):
        check_model("churn", batch.drop(columns=[TARGET]), labels=labels, id_column=ID)
    with pytest.raises(ConfigError, match="labels need an id column"):
        check_model("churn", batch.drop(columns=[TARGET]), labels=_labels(batch))
    with pytest.raises(DataError, match="The batch has no id column 'order_id'"):
        check_model("churn", batch, id_column="order_id")
    with pytest.raises(DataError, match=r"The labels have no column 'churned'"):
        check_model("churn", batch.drop(columns=[TARGET]), labels=batch[[ID, "age"]], id_column=ID)
    assert mlflow.MlflowClient().get_experiment_by_name("mlflow-ext/churn") is None


def test_labels_without_the_features_the_model_needs_are_a_data_error(model_store: str) -> None:
    batch = make_batch(100, seed=19)
    with pytest.raises(DataError, match=r"The model needs feature column\(s\) the batch lacks: income"):
        check_model("churn", batch.drop(columns=["income"]), id_column=ID)


def test_unknown_models_and_versions_without_a_profile_say_what_to_do(model_store: str) -> None:
    with pytest.raises(NotFoundError, match="registered model 'nope'"):
        check_model("nope", make_batch(10, seed=1))
    # the sqlite store reports a missing alias as an invalid parameter, not as not-found
    with pytest.raises(NotFoundError, match="'churn' has no version with the alias 'staging'"):
        check_model("churn@staging", make_batch(10, seed=1))
    with pytest.raises(ProfileError, match="version 1 of 'legacy' has no mlflow-ext reference profile"):
        check_model("legacy/1", make_batch(10, seed=1))


def test_performance_matches_sklearn_and_flags_only_significant_loss_beyond_tolerance() -> None:
    import numpy as np
    from sklearn import metrics

    from mlflow_ext.performance import evaluate

    rng = np.random.default_rng(5)
    truth = rng.integers(0, 2, 2000)
    score = np.clip(truth * 0.3 + rng.random(2000) * 0.7, 0, 1)
    pred, proba = (score > 0.5).astype(int), np.c_[1 - score, score]
    got = {m.name: m for m in evaluate("classification", truth, pred, proba=proba, classes=[0, 1],
                                       reference={"accuracy": 0.99, "roc_auc": metrics.roc_auc_score(truth, score)})}
    assert got["accuracy"].value == pytest.approx(metrics.accuracy_score(truth, pred))
    assert got["f1"].value == pytest.approx(metrics.f1_score(truth, pred))
    assert got["log_loss"].value == pytest.approx(metrics.log_loss(truth, proba))
    assert got["accuracy"].degraded and not got["roc_auc"].degraded  # same as its reference: no loss
    assert got["roc_auc"].ci_low < got["roc_auc"].value < got["roc_auc"].ci_high
    y = rng.normal(size=500)
    y_hat = y + rng.normal(scale=0.3, size=500)
    again = [evaluate("regression", y, y_hat, reference={"mae": 0.18}) for _ in range(2)]
    assert again[0] == again[1]  # seeded bootstrap
    got = {m.name: m for m in again[0]}
    assert got["rmse"].value == pytest.approx(metrics.root_mean_squared_error(y, y_hat))
    assert got["r2"].value == pytest.approx(metrics.r2_score(y, y_hat))
    assert got["mae"].degraded and got["mae"].p_value is not None and got["mae"].p_value < 0.05
    with pytest.raises(DataError, match=r"Labels 2 are not among the model's classes"):
        evaluate("classification", np.array(["0", "2"]), np.array(["0", "1"]), proba=np.full((2, 2), 0.5),
                 classes=["0", "1"])
