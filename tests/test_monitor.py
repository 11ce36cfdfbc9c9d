"""The loop in one process on each backend: incidents, at-most-once actions, retries,
cooldown, bad input and following a promoted champion."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from mlflow_ext.errors import ConfigError
from mlflow_ext.monitor import HookSpec, Loop, LoopSettings, Step, monitor, open_incident
from tests.model_fixtures import ID, TARGET, make_batch, model_store, model_template  # noqa: F401

pytestmark = [pytest.mark.backends,
              pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")]
needs_store = pytest.mark.usefixtures("model_store")

ASSETS = Path(__file__).parent / "loop_assets"


def _record_hook(log: Path, *, fail_first: int = 0, retries: int = 0) -> HookSpec:
    """A command hook that appends the event to ``log`` (failing its first ``fail_first`` calls)."""
    argv = [sys.executable, str(ASSETS / "record_event.py"), str(log), str(fail_first)]
    return HookSpec(name="command", options={"argv": argv}, retries=retries, backoff=0.05, timeout=30)


def _settings(tmp_path: Path, **changes: object) -> LoopSettings:
    base = dict(model="churn", id_column=ID, drift="warn", alerts=(_record_hook(tmp_path / "alerts.log"),),
                retrain=_record_hook(tmp_path / "retrains.log"), check={"n_boot": 200})
    return LoopSettings(**{**base, **changes})  # type: ignore[arg-type]


def _write(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    return path


def _drop_challenger() -> None:
    """Leave only the champion: no version waits for a promotion decision."""
    mlflow.MlflowClient().delete_model_version("churn", "2")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize(("statuses", "n", "m", "expected"), [
    (["ok", "alert"], 1, 1, 1),
    (["alert", "warn", "alert"], 2, 3, 2),
    (["alert", "ok", "alert"], 2, 3, 2),  # the ok window closed nothing yet; 2 of the last 3 open one
    (["alert", "alert", "ok", "warn"], 1, 2, None),  # closed by the ok window, nothing reopens it
    (["alert", "alert", "warn", "error"], 2, 2, 1),  # warn and error neither open nor close
    (["alert", "alert", "ok"], 1, 1, None),
    (["warn", "warn"], 1, 1, None),
])
def test_an_incident_opens_at_n_of_m_alert_windows_and_closes_at_an_ok_window(
        statuses: list[str], n: int, m: int, expected: int | None) -> None:
    assert open_incident(list(enumerate(statuses)), n, m) == expected


def test_invalid_incident_settings_are_refused_with_the_valid_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"incident needs 1 <= n <= m, got n=3, m=2"):
        _settings(tmp_path, incident_n=3, incident_m=2).validate()
    with pytest.raises(ConfigError, match=r"drift = 'loud'; valid: warn, alert, ignore"):
        _settings(tmp_path, drift="loud").validate()


@needs_store
def test_drift_warns_then_late_labels_confirm_the_drop_and_fire_each_action_once(
        tmp_path: Path) -> None:
    _drop_challenger()
    loop = Loop(settings=_settings(tmp_path))
    src = tmp_path / "in"
    clean = _write(src, "b0.parquet", make_batch(600, seed=20, start_id=0).drop(columns=[TARGET]))
    drifted_batch = make_batch(600, seed=21, shift=1.0, flip=0.45, start_id=1000)
    drifted = _write(src, "b1.parquet", drifted_batch.drop(columns=[TARGET]))
    labels = _write(src, "labels1.csv", drifted_batch[[ID, TARGET]])

    first = loop.process(Step(kind="batch", name="b0", identity="b0", path=clean))
    second = loop.process(Step(kind="batch", name="b1", identity="b1", path=drifted))
    assert (first.status, second.status) == ("ok", "warn")
    assert "age" in second.drifted and second.incident is None and second.actions == ()

    confirmed = loop.process(Step(kind="labels", name="labels1", identity="l1", path=labels))
    assert confirmed.status == "alert" and confirmed.labelled_windows == (1,)
    assert confirmed.incident == "w1"
    assert [(a.cause, a.status) for a in confirmed.actions] == [("alert", "ok"), ("retrain", "ok")]
    assert any(m.name == "accuracy" and m.degraded for m in confirmed.performance)
    run = mlflow.MlflowClient().get_run(second.run_id)
    assert run.data.tags["mlflow_ext.loop_status"] == "alert"
    assert run.data.metrics["mlflow_ext.perf.accuracy"] < 0.65

    # The incident stays open while windows are not ok: the same actions are not fired again.
    again = loop.process(Step(kind="batch", name="b2", identity="b2",
                              path=_write(src, "b2.parquet", make_batch(600, seed=22, shift=1.0, start_id=2000)
                                          .drop(columns=[TARGET]))))
    assert again.incident == "w1"
    assert {a.status for a in again.actions} == {"done-elsewhere"}
    assert len(_lines(tmp_path / "alerts.log")) == 1
    assert len(_lines(tmp_path / "retrains.log")) == 1


@needs_store
def test_a_hook_that_fails_twice_then_succeeds_is_retried_and_recorded_once(tmp_path: Path) -> None:
    _drop_challenger()
    flaky = _record_hook(tmp_path / "alerts.log", fail_first=2, retries=2)
    loop = Loop(settings=_settings(tmp_path, alerts=(flaky,), retrain=None))
    batch = make_batch(600, seed=23, flip=0.5, start_id=0)
    record = loop.process(Step(kind="batch", name="b", identity="b", frame=batch))

    assert record.status == "alert"
    (action,) = record.actions
    assert (action.status, action.attempts) == ("ok", 3)
    assert len(_lines(tmp_path / "alerts.log")) == 1
    assert (tmp_path / "alerts.log.calls").read_text().count("\n") == 3
    outcome = mlflow.MlflowClient().get_run(action.run_id).data.tags
    assert (outcome["mlflow_ext.kind"], outcome["mlflow_ext.outcome"], outcome["mlflow_ext.attempts"]) == (
        "hook", "ok", "3")


@needs_store
def test_a_hook_that_keeps_failing_is_recorded_as_failed_with_its_error(tmp_path: Path) -> None:
    _drop_challenger()
    broken = _record_hook(tmp_path / "alerts.log", fail_first=99, retries=1)
    loop = Loop(settings=_settings(tmp_path, alerts=(broken,), retrain=None))
    record = loop.process(Step(kind="batch", name="b", identity="b", frame=make_batch(600, seed=24, flip=0.5)))
    (action,) = record.actions
    assert (action.status, action.attempts) == ("failed", 2)
    assert action.error is not None and "exited with code 3" in action.error
    tags = mlflow.MlflowClient().get_run(action.run_id).data.tags
    assert tags["mlflow_ext.outcome"] == "failed" and "exited with code 3" in tags["mlflow_ext.error"]


@needs_store
def test_a_second_retrain_waits_for_the_first_to_produce_a_decided_version(tmp_path: Path) -> None:
    _drop_challenger()
    loop = Loop(settings=_settings(tmp_path, alerts=(), cooldown=0))
    bad = make_batch(600, seed=25, flip=0.5)
    good = make_batch(600, seed=26)
    first = loop.process(Step(kind="batch", name="a", identity="a", frame=bad))
    loop.process(Step(kind="batch", name="ok", identity="ok", frame=good))  # closes the incident
    second = loop.process(Step(kind="batch", name="b", identity="b", frame=bad))

    assert [a.status for a in first.actions] == ["ok"]
    assert first.incident == "w0" and second.incident == "w2"
    (blocked,) = second.actions
    assert blocked.status == "cooldown"
    assert blocked.error == "cooldown: the last retrain has not produced a version yet."
    assert len(_lines(tmp_path / "retrains.log")) == 1


@needs_store
def test_bad_input_is_recorded_as_an_error_and_nothing_is_fired(tmp_path: Path) -> None:
    _drop_challenger()
    loop = Loop(settings=_settings(tmp_path))
    src = tmp_path / "in"
    broken_schema = _write(src, "broken.csv", pd.DataFrame({ID: [1, 2], "colour": ["red", "blue"]}))
    unreadable = src / "garbage.parquet"
    unreadable.write_bytes(b"not parquet at all")
    stray = _write(src, "labels-stray.csv", pd.DataFrame({ID: [999_999], TARGET: [1]}))

    schema = loop.process(Step(kind="batch", name="broken.csv", identity="s", path=broken_schema))
    garbage = loop.process(Step(kind="batch", name="garbage.parquet", identity="g", path=unreadable))
    labels = loop.process(Step(kind="labels", name="labels-stray.csv", identity="l", path=stray))

    assert schema.status == "error" and "no column in common" in schema.reasons[0]
    assert garbage.status == "error" and "Cannot read" in garbage.reasons[0]
    assert labels.status == "error" and "matches a row of an earlier batch" in labels.reasons[0]
    for record in (schema, garbage, labels):
        assert record.actions == ()
        tags = mlflow.MlflowClient().get_run(record.run_id).data.tags
        assert tags["mlflow_ext.status"] == "error"
    assert not (tmp_path / "alerts.log").exists()


@needs_store
def test_a_waiting_candidate_is_decided_on_fresh_labels_and_monitoring_follows_it(
        tmp_path: Path) -> None:
    loop = Loop(settings=_settings(tmp_path, alerts=(), retrain=None))
    src = tmp_path / "in"
    batch = make_batch(600, seed=27, start_id=0)
    _write(src, "b0.parquet", batch.drop(columns=[TARGET]))
    loop.process(Step(kind="batch", name="b0", identity="b0", path=src / "b0.parquet"))
    labelled = loop.process(Step(kind="labels", name="labels0", identity="l0",
                                 path=_write(src, "labels0.csv", batch[[ID, TARGET]])))

    assert labelled.decision == "promoted v2"
    decision = mlflow.MlflowClient().get_run(labelled.decision_run_id).data.tags
    assert (decision["mlflow_ext.kind"], decision["mlflow_ext.candidate"]) == ("decision", "2")
    after = loop.process(Step(kind="batch", name="b1", identity="b1", frame=make_batch(600, seed=28)))
    assert after.version == "2"


@needs_store
def test_monitor_processes_a_batch_then_its_labels(tmp_path: Path) -> None:
    _drop_challenger()
    batch = make_batch(600, seed=29, flip=0.5, start_id=0)
    data = _write(tmp_path, "batch.parquet", batch.drop(columns=[TARGET]))
    labels = _write(tmp_path, "labels.csv", batch[[ID, TARGET]])
    first, second = monitor(None, data, labels=labels, settings=_settings(tmp_path))
    assert (first.kind, first.status, second.kind, second.status) == ("batch", "ok", "labels", "alert")
    assert [a.cause for a in second.actions] == ["alert", "retrain"]


@needs_store
def test_the_monitor_command_reads_a_policy_file_and_exits_3_on_an_alert(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlflow_ext.cli import app

    _drop_challenger()
    policy = tmp_path / "policy.toml"
    policy.write_text('version = 1\n[models.churn]\nid_column = "customer_id"\n'
                      '[models.churn.incident]\ndrift = "alert"\n'
                      '[[models.churn.alerts]]\nhook = "log"\n')
    data = _write(tmp_path, "batch.parquet", make_batch(500, seed=30, shift=1.0).drop(columns=[TARGET]))
    result = CliRunner().invoke(app, ["monitor", "--policy", str(policy), "--data", str(data), "--json"])
    assert result.exit_code == 3, result.output
    (record,) = json.loads(result.stdout)
    assert (record["status"], record["incident"]) == ("alert", "w0")
    assert [(a["cause"], a["hook"], a["status"]) for a in record["actions"]] == [("alert", "log", "ok")]


@needs_store
def test_alerts_fire_for_the_statuses_they_list_once_per_window_or_incident(tmp_path: Path) -> None:
    _drop_challenger()
    on_warn = replace(_record_hook(tmp_path / "warn.log"), on=("warn", "error"))
    on_alert = _record_hook(tmp_path / "alert.log")  # the default: once per incident
    second = _record_hook(tmp_path / "alert2.log")  # a second channel with the same hook
    loop = Loop(settings=_settings(tmp_path, alerts=(on_warn, on_alert, second), retrain=None))
    src = tmp_path / "in"
    drifted_batch = make_batch(600, seed=31, shift=1.0, flip=0.45, start_id=0)
    drifted = _write(src, "b0.parquet", drifted_batch.drop(columns=[TARGET]))

    warned = loop.process(Step(kind="batch", name="b0", identity="b0", path=drifted))
    assert warned.status == "warn"
    assert [(a.incident, a.status) for a in warned.actions] == [("w0:warn", "ok")]
    broken = loop.process(Step(kind="batch", name="broken", identity="x",
                               frame=pd.DataFrame({ID: [1], "colour": ["red"]})))
    assert [(a.incident, a.status) for a in broken.actions] == [("w1:error", "ok")]
    confirmed = loop.process(Step(kind="labels", name="labels0", identity="l0",
                                  path=_write(src, "labels0.csv", drifted_batch[[ID, TARGET]])))
    assert confirmed.incident == "w0"
    assert [(a.incident, a.status) for a in confirmed.actions] == [("w0", "ok"), ("w0", "ok")]

    assert [json.loads(line)["status"] for line in _lines(tmp_path / "warn.log")] == ["warn", "error"]
    assert len(_lines(tmp_path / "alert.log")) == len(_lines(tmp_path / "alert2.log")) == 1


def test_an_alert_on_an_unknown_status_is_refused(tmp_path: Path) -> None:
    spec = replace(_record_hook(tmp_path / "a.log"), on=("page",))
    with pytest.raises(ConfigError, match=r"alerts\[0\] \(command\): on = \['page'\]; valid: a non-empty list of "
                                          r"warn, alert, error"):
        _settings(tmp_path, alerts=(spec,)).validate()


@needs_store
def test_a_policy_that_keeps_the_reference_checks_the_new_champion_against_the_old_profile(
        tmp_path: Path) -> None:
    from mlflow_ext.model_check import check_model
    from tests.model_fixtures import register_version

    _drop_challenger()
    shifted = make_batch(1500, seed=32, shift=1.0)
    candidate = register_version("churn", shifted, make_batch(500, seed=33, shift=1.0), alias=None)
    loop = Loop(settings=_settings(tmp_path, alerts=(), retrain=None, follow_reference=False))
    src = tmp_path / "in"
    batch = make_batch(600, seed=34, start_id=0)
    loop.process(Step(kind="batch", name="b0", identity="b0", path=_write(src, "b0.parquet",
                                                                        batch.drop(columns=[TARGET]))))
    labelled = loop.process(Step(kind="labels", name="labels0", identity="l0",
                                 path=_write(src, "labels0.csv", batch[[ID, TARGET]])))
    assert labelled.decision == f"promoted v{candidate}"
    tags = mlflow.MlflowClient().get_model_version("churn", candidate).tags
    assert tags["mlflow_ext.reference_version"] == "1"

    clean = make_batch(600, seed=35, start_id=5000).drop(columns=[TARGET])
    after = loop.process(Step(kind="batch", name="b1", identity="b1", frame=clean))
    assert after.version == candidate
    assert after.drifted == ()  # against v1's profile, which the clean batch matches
    # against the new champion's own (shifted) profile, as "follow" would check it, it drifts
    assert check_model(f"churn/{candidate}", clean, record=False).result.drifted_columns
