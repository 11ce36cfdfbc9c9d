"""tracking.py against a real sqlite store: references, experiments, runs, error wrapping."""

from __future__ import annotations

import pytest

from mlflow_ext import tracking
from mlflow_ext.errors import NotFoundError, TrackingError


def test_parse_model_ref_forms() -> None:
    assert tracking.parse_model_ref("churn") == tracking.VersionRef("churn", alias="champion")
    assert tracking.parse_model_ref("churn@challenger") == tracking.VersionRef("churn", alias="challenger")
    assert tracking.parse_model_ref("churn/3") == tracking.VersionRef("churn", version="3")
    with pytest.raises(TrackingError, match="empty"):
        tracking.parse_model_ref("  ")


def test_unknown_model_is_not_found(store: str) -> None:
    with pytest.raises(NotFoundError, match="'nope'"):
        tracking.resolve_version("nope/1")


def test_log_run_records_everything_in_batches(store: str) -> None:
    from mlflow.tracking import MlflowClient

    exp = tracking.monitoring_experiment("churn")
    points = [tracking.MetricPoint(f"mlflow_ext.col{i}.stat", i / 10, step=2) for i in range(1500)]
    run_id = tracking.log_run(
        exp, run_name="check", metrics=points, params={"a": 1}, tags={"mlflow_ext.kind": "check"},
        description="two lines", artifacts={"result.json": b"{}", "report/index.html": "<html/>"},
    )
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert len(run.data.metrics) == 1500
    assert run.data.tags["mlflow.note.content"] == "two lines"
    assert {a.path for a in MlflowClient().list_artifacts(run_id)} == {"result.json", "report"}
    assert MlflowClient().get_experiment(exp).name == "mlflow-ext/churn"
    assert tracking.monitoring_experiment("churn") == exp


def test_log_run_leaves_no_half_run_on_failure(store: str) -> None:
    from mlflow.tracking import MlflowClient

    exp = tracking.monitoring_experiment("m")
    with pytest.raises(TrackingError, match="record the run"):
        tracking.log_run(exp, run_name="bad", params={"x" * 300: 1})  # MLflow refuses the key
    assert MlflowClient().search_runs([exp]) == []


def test_missing_alias_is_not_found_with_a_hint(store: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().create_registered_model("bare")
    with pytest.raises(NotFoundError, match="'bare' has no version with the alias 'champion'") as info:
        tracking.resolve_version("bare")
    assert info.value.hint is not None and "mlflow-ext promote bare" in info.value.hint
