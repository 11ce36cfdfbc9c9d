"""The watcher as real processes on one store (each backend): once-only files and actions across two
watchers, crashes and restarts, and a signed webhook received on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import mlflow
import pytest

from tests.backends import stop_process_group
from tests.conftest import also_behind_basic_auth
from tests.model_fixtures import ID, TARGET, make_batch, model_store, model_template  # noqa: F401

pytestmark = [pytest.mark.backends,
              pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning", "ignore::FutureWarning")]
needs_store = pytest.mark.usefixtures("model_store")

ASSETS = Path(__file__).parent / "loop_assets"
SECRET = "s3cret-for-tests"


def _hook(log: Path, *, pause: float = 0.0, timeout: float = 30.0) -> dict[str, Any]:
    argv = [sys.executable, str(ASSETS / "record_event.py"), str(log), "0", str(pause)]
    return {"name": "command", "options": {"argv": argv}, "retries": 0, "backoff": 0.1, "timeout": timeout}


def _config(tmp_path: Path, alerts: list[dict[str, Any]]) -> Path:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"model": "churn", "id_column": ID, "drift": "alert", "alerts": alerts}))
    return path


def _source(tmp_path: Path, shifts: list[float]) -> Path:
    folder = tmp_path / "incoming"
    folder.mkdir()
    for index, shift in enumerate(shifts):
        batch = make_batch(400, seed=40 + index, shift=shift, start_id=index * 1000).drop(columns=[TARGET])
        batch.to_parquet(folder / f"batch-{index:02d}.parquet")
        os.utime(folder / f"batch-{index:02d}.parquet", ns=(index * 10**9, index * 10**9))  # arrival order
    return folder


def _start(config: Path, source: Path, *, lease: float = 600.0, env: dict[str, str] | None = None,
           ) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(ASSETS / "run_watch.py"), str(config), str(source), str(lease)],
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            stop_process_group(proc)


def _finish(proc: subprocess.Popen[bytes]) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()[-3000:]
    return out.decode()


def _runs(kind: str) -> list[Any]:
    experiment = mlflow.MlflowClient().get_experiment_by_name("mlflow-ext/churn")
    if experiment is None:
        return []
    return list(mlflow.MlflowClient().search_runs([experiment.experiment_id],
                                                  filter_string=f"tags.`mlflow_ext.kind` = '{kind}'"))


def _wait_for(predicate: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _only_champion() -> None:
    mlflow.MlflowClient().delete_model_version("churn", "2")


@needs_store
@also_behind_basic_auth
def test_two_watchers_on_one_folder_process_each_file_once_and_alert_once(
        tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    _only_champion()
    source = _source(tmp_path, [0.0, 1.0, 1.0, 0.0, 1.0])
    config = _config(tmp_path, [_hook(tmp_path / "alerts.log")])
    procs.extend([_start(config, source), _start(config, source)])
    outputs = [_finish(proc) for proc in procs]

    checks = _runs("check")
    files = sorted(run.data.tags["mlflow_ext.source_file"].split(":")[0] for run in checks)
    assert files == sorted(str(p) for p in source.iterdir())  # every file exactly once
    windows = {int(r.data.tags["mlflow_ext.step"]): Path(r.data.tags["mlflow_ext.source_path"]).name
               for r in checks}
    assert [windows[w] for w in sorted(windows)] == sorted(p.name for p in source.iterdir())  # arrival order
    # windows 1-2 are one incident, window 4 (after an ok window) another: one alert each
    assert len((tmp_path / "alerts.log").read_text().splitlines()) == 2
    assert sorted(json.loads(line)["incident"] for line in (tmp_path / "alerts.log").read_text().splitlines()) == [
        "w1", "w4"]
    assert sum(o.count("batch-") for o in outputs) == 5


@needs_store
def test_a_monitor_killed_between_check_and_action_fires_it_once_after_restart(
        tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    _only_champion()
    source = _source(tmp_path, [1.0])
    config = _config(tmp_path, [_hook(tmp_path / "alerts.log")])
    first = _start(config, source, env={"MLFLOW_EXT_TEST_PAUSE_BEFORE_ACTIONS": "120"})
    procs.append(first)
    _wait_for(lambda: any("mlflow_ext.source_file" in r.data.tags for r in _runs("check")), "the check run")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert not (tmp_path / "alerts.log").exists()

    for _ in range(2):  # the restart fires what was owed; a further restart fires nothing
        procs.append(_start(config, source))
        _finish(procs[-1])
    assert len((tmp_path / "alerts.log").read_text().splitlines()) == 1
    assert len(_runs("check")) == 1
    (outcome,) = _runs("hook")
    assert outcome.data.tags["mlflow_ext.outcome"] == "ok"


@needs_store
def test_a_monitor_killed_while_its_hook_runs_is_recorded_as_unknown_and_not_fired_again(
        tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    _only_champion()
    source = _source(tmp_path, [1.0])
    log = tmp_path / "alerts.log"
    config = _config(tmp_path, [_hook(log, pause=3.0, timeout=4.0)])  # lease: 2 x 4 s
    first = _start(config, source)
    procs.append(first)
    calls = log.with_name("alerts.log.calls")
    _wait_for(calls.exists, "the hook to start")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    time.sleep(8.5)  # the claim outlives its lease

    procs.append(_start(config, source, lease=8.0))
    _finish(procs[-1])
    (outcome,) = _runs("hook")
    assert outcome.data.tags["mlflow_ext.outcome"] == "unknown"
    assert "stopped before recording it. It is not fired again" in outcome.data.tags["mlflow_ext.error"]
    assert calls.read_text().count("\n") == 1  # the hook was started once, never again


class _Receiver(BaseHTTPRequestHandler):
    """Accepts a POST only with a valid signature; answers 503 to the first valid one."""

    received: list[dict[str, Any]] = []
    rejected: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        timestamp = self.headers["X-MlflowExt-Timestamp"]
        expected = "sha256=" + hmac.new(SECRET.encode(), timestamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self.headers.get("X-MlflowExt-Signature", "")):
            self.rejected.append(self.headers.get("X-MlflowExt-Signature", ""))
            self.send_response(401)
        else:
            self.received.append(json.loads(body))
            self.send_response(503 if len(self.received) == 1 else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@needs_store
def test_a_signed_webhook_is_verified_by_a_receiver_and_retried_after_a_503(
        tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    _only_champion()
    receiver = type("Receiver", (_Receiver,), {"received": [], "rejected": []})  # this test's own record
    server = HTTPServer(("127.0.0.1", 0), receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        source = _source(tmp_path, [1.0, 1.0])
        webhook = {"name": "webhook", "retries": 2, "backoff": 0.1, "timeout": 10,
                   "options": {"url": f"http://127.0.0.1:{server.server_port}/hook", "secret_env": "HOOK_SECRET"}}
        procs.append(_start(_config(tmp_path, [webhook]), source, env={"HOOK_SECRET": SECRET}))
        _finish(procs[-1])
    finally:
        server.shutdown()
    assert receiver.rejected == []
    assert len(receiver.received) == 2  # the 503, then the retry: one event, one key
    first, second = receiver.received
    assert first["idempotency_key"] == second["idempotency_key"]
    assert (second["cause"], second["model"], second["version"], second["incident"]) == ("alert", "churn", "1", "w0")
    (outcome,) = _runs("hook")
    assert (outcome.data.tags["mlflow_ext.outcome"], outcome.data.tags["mlflow_ext.attempts"]) == ("ok", "2")


@needs_store
def test_a_hook_that_hangs_is_killed_at_its_timeout_recorded_as_failed_and_the_watch_goes_on(
        tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    _only_champion()
    source = _source(tmp_path, [1.0, 0.0])
    log = tmp_path / "alerts.log"
    config = _config(tmp_path, [_hook(log, pause=600.0, timeout=1.0)])
    procs.append(_start(config, source))
    output = _finish(procs[-1])
    assert "batch-00.parquet: ALERT" in output and "alert failed" in output
    assert "batch-01.parquet: OK" in output  # the next file, after the hung hook was given up
    (outcome,) = _runs("hook")
    assert outcome.data.tags["mlflow_ext.outcome"] == "failed"
    assert "did not finish within 1 s and was killed" in outcome.data.tags["mlflow_ext.error"]
    assert not log.exists()  # it never got to record the event
    assert len(_runs("check")) == 2
