"""tracking.py against real stores (sqlite, a PostgreSQL-backed server, the same behind basic-auth):
references, experiments, runs, error wrapping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlflow_ext import tracking
from mlflow_ext.errors import NotFoundError, TrackingError
from tests.backends import ADMIN, USER

pytestmark = pytest.mark.backends


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


def test_a_tag_write_that_collides_is_written_again_and_a_client_error_is_not_retried(store: str) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    MlflowClient().create_registered_model("tagged")
    calls: list[str] = []

    def collide_once() -> None:  # what a store raises when two writers insert the same tag at once
        calls.append("write")
        if len(calls) == 1:
            raise MlflowException("(sqlite3.IntegrityError) UNIQUE constraint failed: registered_model_tags.key")
        MlflowClient().set_registered_model_tag("tagged", "mlflow_ext.k", "v")

    tracking.upsert("tag 'tagged'", collide_once)
    assert calls == ["write", "write"]
    assert MlflowClient().get_registered_model("tagged").tags["mlflow_ext.k"] == "v"

    calls.clear()

    def missing() -> None:
        calls.append("write")
        MlflowClient().set_registered_model_tag("nope", "mlflow_ext.k", "v")

    with pytest.raises(NotFoundError, match="Could not tag 'nope'"):
        tracking.upsert("tag 'nope'", missing)
    assert calls == ["write"]  # a missing model stays missing: no retries


def test_missing_alias_is_not_found_with_a_hint(store: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().create_registered_model("bare")
    with pytest.raises(NotFoundError, match="'bare' has no version with the alias 'champion'") as info:
        tracking.resolve_version("bare")
    assert info.value.hint is not None and "mlflow-ext promote bare" in info.value.hint


@pytest.mark.backends("basic-auth")
def test_a_wrong_password_is_a_clear_error_and_writes_nothing(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    tracking.monitoring_experiment("churn")  # the right password works
    before = [e.name for e in MlflowClient().search_experiments()]
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password-4711")
    with pytest.raises(TrackingError, match="the tracking server refused the credentials") as refused:
        tracking.monitoring_experiment("other")
    assert refused.value.hint is not None and "MLFLOW_TRACKING_PASSWORD" in refused.value.hint
    assert "not-the-password-4711" not in str(refused.value)

    # the same through the CLI, in a fresh process: exit 1 and one readable error, without waiting
    # out retries (the timeout only guards the test against a hang)
    cli = Path(sys.executable).parent / "mlflow-ext"
    done = subprocess.run([str(cli), "history", "churn"], env=dict(os.environ), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("Error: Could not ") and "refused the credentials" in done.stderr
    assert "Check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in done.stderr
    assert "Traceback" not in done.stderr and "not-the-password-4711" not in done.stderr

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USER[1])
    assert [e.name for e in MlflowClient().search_experiments()] == before  # nothing was written


@pytest.mark.backends("basic-auth")
def test_a_user_without_permission_is_told_what_to_ask_for_and_nothing_is_written(
        store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN[1])
    experiment = MlflowClient().create_experiment("admins-only")  # others may read it (the default)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", USER[1])
    with pytest.raises(TrackingError, match=f"the tracking server denied '{USER[0]}' permission") as denied:
        tracking.log_run(experiment, run_name="check", params={"a": 1})
    assert denied.value.hint is not None and "EDIT on the experiment" in denied.value.hint
    assert MlflowClient().search_runs([experiment]) == []
