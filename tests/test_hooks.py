"""Hooks: the event schema, the retry policy of `fire`, and the command, python, mlflow_project
and log built-ins, each against real parts (subprocesses, an MLflow store, a logger)."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from mlflow_ext import _registry
from mlflow_ext.errors import ConfigError, DataError
from mlflow_ext.hooks import OUTPUT_LIMIT, SCHEMA_VERSION, Event, Hook, HookResult, fire, idempotency_key
from tests.backends import VENV_BIN

DOCS = Path(__file__).resolve().parents[1] / "docs" / "events.md"
PY = sys.executable


def make_event(**changes: object) -> Event:
    values: dict[str, object] = dict(model="churn", version=4, cause="alert", incident="2026-05-01",
                                     check_run_id="abc123", status="alert", reasons=["tenure drifted."],
                                     extra={"drift_share": 0.4})
    values.update(changes)
    return Event.create(**values)  # type: ignore[arg-type]


def hook(name: str, **options: object) -> Hook:
    created: Hook = _registry.create("hook", name, options)
    created.validate()
    return created


def script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return [PY, str(path)]


# --- the event ---------------------------------------------------------------------------------


def test_event_round_trips_through_json_and_keeps_its_key() -> None:
    event = make_event()
    again = Event.from_json(event.to_json())
    assert again == event
    assert again.reasons == ("tenure drifted.",) and again.extra == {"drift_share": 0.4}
    assert json.loads(event.to_json())["schema_version"] == SCHEMA_VERSION


def test_idempotency_key_is_the_same_for_the_same_incident_and_only_then() -> None:
    first, second = make_event(), make_event(reasons=["other words"], check_run_id="zzz")
    assert first.event_id != second.event_id
    assert first.idempotency_key == second.idempotency_key == idempotency_key("churn", "4", "alert", "2026-05-01")
    others = {make_event(incident="2026-05-02").idempotency_key, make_event(version=5).idempotency_key,
              make_event(cause="retrain").idempotency_key, make_event(model="fraud").idempotency_key}
    assert first.idempotency_key not in others and len(others) == 4


def test_event_from_a_future_schema_is_refused_with_upgrade_advice() -> None:
    document = make_event().to_dict() | {"schema_version": SCHEMA_VERSION + 1, "new_field": 1}
    with pytest.raises(DataError, match=r"schema_version 2; this mlflow-ext reads up to 1") as info:
        Event.from_dict(document)
    assert "Upgrade mlflow-ext" in str(info.value)


def test_event_reader_names_missing_fields_and_ignores_unknown_ones() -> None:
    document = make_event().to_dict()
    assert Event.from_dict(document | {"added_later": True}) == Event.from_dict(document)
    del document["model"], document["incident"]
    with pytest.raises(DataError, match=r"lacks the field\(s\) incident, model"):
        Event.from_dict(document)
    with pytest.raises(DataError, match="not valid JSON"):
        Event.from_json("{nope")


def test_event_extra_must_be_json() -> None:
    with pytest.raises(DataError, match="extra fields are not JSON"):
        make_event(extra={"when": object()})


def test_documented_example_and_fields_match_the_code() -> None:
    text = DOCS.read_text(encoding="utf-8")
    example = json.loads(re.findall(r"```json\n(.*?)```", text, re.S)[0])
    event = Event.from_dict(example)
    assert event.idempotency_key == idempotency_key(event.model, event.version, event.cause, event.incident)
    documented = set(re.findall(r"^\| `(\w+)` \| (?:integer|string|array|object)", text, re.M))
    assert documented == set(event.to_dict()) == set(example)
    schema = json.loads(re.findall(r"```json\n(.*?)```", text, re.S)[1])
    assert set(schema["properties"]) == documented


# --- fire: the retry policy --------------------------------------------------------------------


class Flaky:
    """A hook that fails `failures` times, then succeeds; counts its attempts."""

    def __init__(self, *, failures: int, retryable: bool = True) -> None:
        self.failures = failures
        self.retryable = retryable
        self.calls = 0

    def validate(self) -> None:
        pass

    def fire(self, event: Event, *, timeout: float) -> HookResult:
        self.calls += 1
        if self.calls <= self.failures:
            return HookResult(ok=False, retryable=self.retryable, error=f"attempt {self.calls} failed.")
        return HookResult(ok=True, output="done")


def test_fire_retries_retryable_failures_and_reports_attempts() -> None:
    outcome = fire(Flaky(failures=2), make_event(), retries=2, backoff=0.01)
    assert outcome.ok and outcome.attempts == 3 and outcome.output == "done" and outcome.error is None
    failed = fire(Flaky(failures=5), make_event(), retries=2, backoff=0.01)
    assert not failed.ok and failed.status == "failed" and failed.attempts == 3
    assert failed.error == "attempt 3 failed. (after 3 attempts)"


def test_fire_does_not_retry_a_final_failure() -> None:
    flaky = Flaky(failures=1, retryable=False)
    outcome = fire(flaky, make_event(), retries=5, backoff=0.01)
    assert (outcome.status, outcome.attempts, flaky.calls) == ("failed", 1, 1)


def test_fire_records_a_hook_that_raises_instead_of_crashing() -> None:
    class Broken:
        def validate(self) -> None:
            pass

        def fire(self, event: Event, *, timeout: float) -> HookResult:
            raise ZeroDivisionError("oops")

    outcome = fire(Broken(), make_event(), retries=1, backoff=0)
    assert outcome.status == "failed" and outcome.attempts == 2
    assert outcome.error is not None and re.match(r"Broken raised ZeroDivisionError: oops", outcome.error)
    assert json.loads(json.dumps(outcome.to_dict()))["idempotency_key"] == make_event().idempotency_key


def test_fire_refuses_a_nonsense_policy() -> None:
    with pytest.raises(ConfigError, match="retries and backoff must be >= 0 and timeout > 0"):
        fire(Flaky(failures=0), make_event(), retries=-1)


def test_every_builtin_hook_loads_and_satisfies_the_protocol() -> None:
    assert _registry.available("hook") == ["command", "log", "mlflow_project", "python", "webhook"]
    samples: dict[str, dict[str, Any]] = {"command": {"argv": ["true"]}, "log": {}, "mlflow_project": {"uri": "."},
                                          "python": {"function": "json:dumps"}, "webhook": {"url": "http://127.0.0.1:9"}}
    for name, options in samples.items():
        assert isinstance(_registry.create("hook", name, options), Hook)


# --- command -----------------------------------------------------------------------------------


def test_command_gets_the_event_on_stdin_and_in_env_but_no_other_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUD_SECRET", "s3cr3t-value")
    argv = script(tmp_path, "receive.py", """
        import json, os, sys
        out = sys.argv[1]
        json.dump({"stdin": sys.stdin.read(), "env": dict(os.environ), "args": sys.argv[2:]}, open(out, "w"))
        print("received", sys.argv[2])
    """)
    event = make_event()
    outcome = fire(hook("command", argv=[*argv, str(tmp_path / "got.json"), "{model}/{version}"]), event, timeout=60)
    assert outcome.ok and outcome.exit_code == 0 and outcome.output.strip() == "received churn/4"
    got = json.loads((tmp_path / "got.json").read_text())
    assert Event.from_json(got["stdin"]) == event
    assert Event.from_json(got["env"]["MLFLOW_EXT_EVENT"]) == event
    assert got["args"] == ["churn/4"]
    assert "CLOUD_SECRET" not in got["env"] and got["env"]["PATH"] == os.environ["PATH"]


def test_command_env_allow_list_replaces_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_CHANNEL", "#ml")
    argv = script(tmp_path, "env.py", "import os; print(sorted(k for k in os.environ if k != 'LC_CTYPE'))")
    outcome = fire(hook("command", argv=argv, env=["TEAM_CHANNEL"]), make_event(), timeout=60)
    assert outcome.output.strip() == "['MLFLOW_EXT_EVENT', 'TEAM_CHANNEL']"


def test_command_failing_twice_then_succeeding_takes_three_attempts(tmp_path: Path) -> None:
    argv = script(tmp_path, "flaky.py", """
        import sys
        from pathlib import Path
        state = Path(sys.argv[1])
        n = int(state.read_text()) + 1 if state.exists() else 1
        state.write_text(str(n))
        print(f"attempt {n}", file=sys.stderr)
        sys.exit(0 if n >= 3 else 7)
    """)
    state = tmp_path / "count"
    outcome = fire(hook("command", argv=[*argv, str(state)]), make_event(), retries=3, backoff=0.01, timeout=60)
    assert outcome.ok and outcome.attempts == 3 and outcome.exit_code == 0 and "attempt 3" in outcome.output
    state.unlink()
    failed = fire(hook("command", argv=[*argv, str(state)]), make_event(), retries=1, backoff=0.01, timeout=60)
    assert not failed.ok and failed.attempts == 2 and failed.exit_code == 7
    assert failed.error is not None and re.search(r"exited with code 7\. \(after 2 attempts\)", failed.error)
    assert "attempt 2" in failed.output


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended


def test_hanging_command_is_killed_with_its_children_at_the_timeout(tmp_path: Path) -> None:
    argv = script(tmp_path, "hang.py", """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open(sys.argv[1], "w").write(f"{child.pid}")
        print("started", flush=True)
        time.sleep(600)
    """)
    pids = tmp_path / "pids"
    outcome = fire(hook("command", argv=[*argv, str(pids)]), make_event(), timeout=2)
    assert outcome.status == "failed" and outcome.attempts == 1
    assert outcome.error is not None and "did not finish within 2 s and was killed" in outcome.error
    assert "started" in outcome.output
    grandchild = int(pids.read_text())
    # Orphans are reaped by init, which may take a moment; the bound keeps a failure from hanging.
    for _ in range(200):
        if not _alive(grandchild):
            break
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_command_output_keeps_only_the_tail(tmp_path: Path) -> None:
    argv = script(tmp_path, "chatty.py", "for i in range(20000): print(f'line {i}')")
    outcome = fire(hook("command", argv=argv), make_event(), timeout=60)
    assert len(outcome.output) <= OUTPUT_LIMIT + 1 and outcome.output.rstrip().endswith("line 19999")
    assert "line 0\n" not in outcome.output


@pytest.mark.parametrize(("options", "message"), [
    ({"argv": []}, "argv must be a non-empty list of strings"),
    ({"argv": ["no-such-program-xyz"]}, "the program 'no-such-program-xyz' is not an executable file"),
    ({"argv": ["true", "{modle}"]}, r"argv\[1\] = '\{modle\}' is not a valid template .*\{model\}"),
    ({"argv": ["true"], "cwd": "/no/such/dir"}, "cwd '/no/such/dir' is not a directory"),
])
def test_command_misconfiguration_is_found_by_validate(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        hook("command", **options)


def test_command_program_is_looked_up_on_the_path_the_command_gets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "team-retrain"
    program.write_text("#!/bin/sh\necho retraining\n")
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert fire(hook("command", argv=["team-retrain"]), make_event()).output == "retraining\n"
    with pytest.raises(ConfigError, match="'team-retrain' is not an executable file on the PATH the command gets"):
        hook("command", argv=["team-retrain"], env=["HOME"])


# --- python ------------------------------------------------------------------------------------


@pytest.fixture
def hook_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "team_hooks.py").write_text(textwrap.dedent("""
        import time
        from pathlib import Path
        from mlflow_ext.hooks import HookResult

        seen = []

        def record(event):
            seen.append(event)
            return f"recorded {event.model}"

        def refuse(event):
            raise RuntimeError(f"cannot retrain {event.model}")

        def report(event):
            return HookResult(ok=False, error="queue full", retryable=False)

        def slow(event):
            time.sleep(30)

        not_callable = 3
    """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_python_hook_calls_the_function_with_the_event(hook_module: Path) -> None:
    import team_hooks

    event = make_event()
    outcome = fire(hook("python", function="team_hooks:record"), event)
    assert outcome.ok and outcome.output == "recorded churn" and team_hooks.seen == [event]


def test_python_hook_failures_are_outcomes(hook_module: Path) -> None:
    raised = fire(hook("python", function="team_hooks:refuse"), make_event(), retries=1, backoff=0)
    assert raised.attempts == 2 and raised.error == (
        "team_hooks:refuse raised RuntimeError: cannot retrain churn (after 2 attempts)")
    reported = fire(hook("python", function="team_hooks:report"), make_event(), retries=3, backoff=0)
    assert (reported.status, reported.attempts, reported.error) == ("failed", 1, "queue full")
    slow = fire(hook("python", function="team_hooks:slow"), make_event(), retries=2, timeout=0.2)
    assert slow.attempts == 1 and slow.error is not None and "did not return within 0.2 s" in slow.error


@pytest.mark.parametrize(("function", "message"), [
    ("team_hooks", r"'team_hooks' is not of the form 'package.module:function'"),
    ("no_such_module_xyz:run", r"cannot import 'no_such_module_xyz'"),
    ("team_hooks:missing", r"module 'team_hooks' has no attribute 'missing'"),
    ("team_hooks:not_callable", r"'team_hooks:not_callable' is a int, not a callable"),
])
def test_python_hook_target_is_checked_by_validate(hook_module: Path, function: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        hook("python", function=function)


# --- mlflow_project ----------------------------------------------------------------------------


def test_mlflow_project_runs_with_parameters_from_the_event(
        store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    project = tmp_path / "retrain"
    project.mkdir()
    (project / "MLproject").write_text(textwrap.dedent("""
        name: retrain
        entry_points:
          main:
            parameters:
              model: string
              version: string
            command: "python train.py {model} {version}"
    """), encoding="utf-8")
    (project / "train.py").write_text(textwrap.dedent("""
        import os, sys, mlflow
        with mlflow.start_run():
            mlflow.log_metric("retrained_from", float(sys.argv[2]))
            mlflow.set_tag("event_cause", __import__("json").loads(os.environ["MLFLOW_EXT_EVENT"])["cause"])
    """), encoding="utf-8")
    # `python` in the MLproject command must be the one that has mlflow: an activated venv.
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    event = make_event(cause="retrain")
    project_hook = hook("mlflow_project", uri=str(project), parameters={"model": "{model}", "version": "{version}"})
    outcome = fire(project_hook, event, timeout=300)
    assert outcome.ok, outcome.error
    run = MlflowClient().get_run(str(outcome.run_id))
    assert run.info.status == "FINISHED"
    assert run.data.params == {"model": "churn", "version": "4"}
    assert run.data.metrics["retrained_from"] == 4.0
    assert run.data.tags["event_cause"] == "retrain"
    assert run.data.tags["mlflow_ext.idempotency_key"] == event.idempotency_key
    assert run.data.tags["mlflow_ext.kind"] == "hook"
    experiment = MlflowClient().get_experiment(run.info.experiment_id)
    assert experiment.name == "mlflow-ext/churn"


def test_mlflow_project_failure_and_timeout_end_the_run(store: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    (tmp_path / "MLproject").write_text(textwrap.dedent("""
        name: broken
        entry_points:
          main:
            command: "exit 3"
          hang:
            command: "sleep 600"
    """), encoding="utf-8")
    failed = fire(hook("mlflow_project", uri=str(tmp_path)), make_event(), timeout=300)
    assert failed.status == "failed" and failed.exit_code not in (0, None)
    assert failed.error is not None and "exited with code" in failed.error
    assert MlflowClient().get_run(str(failed.run_id)).info.status == "FAILED"
    hung = fire(hook("mlflow_project", uri=str(tmp_path), entry_point="hang"), make_event(), timeout=2)
    assert hung.error is not None and "did not finish within 2 s and was killed" in hung.error
    assert MlflowClient().get_run(str(hung.run_id)).info.status == "KILLED"


def test_mlflow_project_needs_an_mlproject_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is not a folder with an MLproject file"):
        hook("mlflow_project", uri=str(tmp_path))
    (tmp_path / "MLproject").write_text("name: x\n")
    with pytest.raises(ConfigError, match=r"env_manager 'docker' is not one of local, virtualenv, uv, conda"):
        hook("mlflow_project", uri=str(tmp_path), env_manager="docker")


# --- log ---------------------------------------------------------------------------------------


def test_log_hook_writes_the_event_as_one_json_line(caplog: pytest.LogCaptureFixture) -> None:
    event = make_event()
    with caplog.at_level(logging.WARNING, logger="team.alerts"):
        outcome = fire(hook("log", level="warning", logger="team.alerts"), event)
    assert outcome.ok
    [record] = [r for r in caplog.records if r.name == "team.alerts"]
    assert record.levelno == logging.WARNING and "\n" not in record.getMessage()
    assert Event.from_json(record.getMessage()) == event
    with pytest.raises(ConfigError, match="level 'LOUD' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        hook("log", level="LOUD")
