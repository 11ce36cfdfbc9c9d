"""The closed loop end to end: a drifting, degrading stream through the real `mlflow-ext watch`
process, with a real retraining program (@track) fired by the `command` hook.

Run with `pytest -s tests/test_loop_e2e.py` to see the stream's timeline.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests.backends import VENV_BIN, stop_process_group
from tests.model_fixtures import ID, TARGET, make_batch, model_store, model_template  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")

ASSETS = Path(__file__).parent / "loop_assets"


def new_concept(batch: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Churn that now also depends on the region (west and east customers churn far more): the
    champion never saw that, a model retrained on the new labels learns it."""
    rng = np.random.default_rng(seed)
    logit = (-0.08 * (batch["age"] - 40) - 0.06 * (batch["tenure"] - 24)
             + np.where(batch["plan"] == "basic", 0.8, -0.6) + np.where(batch["region"].isin(["west", "east"]), 3.0, 0))
    return batch.assign(**{TARGET: (rng.random(len(batch)) < 1 / (1 + np.exp(-logit))).astype(int)})


def stream() -> list[tuple[str, pd.DataFrame]]:
    """One clean batch, then drifted batches under the new concept, each followed by its labels."""
    clean = make_batch(400, seed=30, start_id=0)
    drifted = [new_concept(make_batch(400, seed=30 + i, shift=1.0, start_id=1000 * i), seed=i) for i in (1, 2, 3)]
    files = [("b0.parquet", clean.drop(columns=[TARGET]))]
    for i, batch in enumerate(drifted, start=1):
        files.append((f"b{i}.parquet", batch.drop(columns=[TARGET])))
        if i < 3:
            files.append((f"labels-{i}.parquet", batch[[ID, TARGET]]))
    return files


POLICY = """
version = 1
[models.churn]
id_column = "{id}"
[models.churn.incident]
drift = "warn"
performance_drop = "alert"
[[models.churn.alerts]]
hook = "command"
argv = {alert_argv}
retries = 0
timeout = "60s"
[models.churn.retrain]
hook = "command"
argv = {retrain_argv}
retries = 0
timeout = "300s"
cooldown = "1h"
[[models.churn.promotion.rules]]
rule = "beats_champion"
metric = "accuracy"
min_delta = 0.02
"""


class Watcher:
    """A `mlflow-ext watch` process; its stdout and stderr lines arrive on queues."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.errors: list[str] = []
        self.timeline: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: queue.Queue[str]) -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))

    def _next(self, lines: queue.Queue[str], what: str, timeout: float) -> str:
        try:
            return lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise AssertionError(f"no {what} in {timeout} s; stderr so far: {self.errors}") from None

    def line_for(self, kind: str, name: str, timeout: float = 240) -> str:
        """The timeline line of one processed file (reason lines, indented, are skipped)."""
        while not (line := self._next(self.out, f"line for {name}", timeout)).startswith(f"{kind:<6} {name}: "):
            pass
        self.timeline.append(line)
        return line

    def error(self, timeout: float = 120) -> str:
        """The next error the watcher reports on stderr."""
        while not (line := self._next(self.err, "error", timeout)).startswith("Error: "):
            pass
        self.errors.append(line)
        return line

    def stop(self) -> str:
        """SIGTERM (a clean stop after the current file); the rest of stderr."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stop_process_group(self.proc)  # type: ignore[arg-type]
        for reader in self.readers:
            reader.join(timeout=30)
        rest = []
        while not self.err.empty():
            rest.append(self.err.get())
        return "\n".join(rest)


@pytest.fixture
def watcher(model_store: str, tmp_path: Path) -> Iterator[Watcher]:  # noqa: F811
    client = mlflow.MlflowClient()
    client.delete_model_version("churn", "2")  # only the champion: the retrain makes the next version
    train, valid = make_batch(3000, seed=1), make_batch(1000, seed=2, start_id=10_000)  # v1's own data
    train.to_parquet(tmp_path / "train.parquet")
    valid.to_parquet(tmp_path / "valid.parquet")
    source = tmp_path / "incoming"
    source.mkdir()
    python = sys.executable
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.format(
        id=ID, alert_argv=json.dumps([python, str(ASSETS / "record_event.py"), str(tmp_path / "alerts.log"), "0"]),
        retrain_argv=json.dumps([python, str(ASSETS / "retrain.py"), str(tmp_path / "train.parquet"),
                                 str(tmp_path / "valid.parquet"), str(source)])))
    running = Watcher([str(VENV_BIN / "mlflow-ext"), "watch", "--policy", str(policy), "--source", str(source),
                       "--interval", "0.2"], tmp_path)
    yield running
    running.stop()


def _runs(kind: str) -> list[Any]:
    experiment = mlflow.MlflowClient().get_experiment_by_name("mlflow-ext/churn")
    assert experiment is not None
    return list(mlflow.MlflowClient().search_runs([experiment.experiment_id],
                                                  filter_string=f"tags.`mlflow_ext.kind` = '{kind}'",
                                                  order_by=["attributes.start_time ASC"]))


def test_a_drifting_degrading_stream_warns_alerts_retrains_once_promotes_and_follows_the_new_champion(
        watcher: Watcher, tmp_path: Path) -> None:
    source = tmp_path / "incoming"
    for name, frame in stream():
        # written under a temporary name and renamed, as a producer should: the watcher ignores .tmp
        frame.to_parquet(source / f"{name}.tmp")
        os.replace(source / f"{name}.tmp", source / name)
        watcher.line_for("labels" if name.startswith("labels") else "batch", name)
    stderr = watcher.stop()
    assert watcher.proc.returncode == 0, stderr[-3000:]
    assert "Stopped (signal) after 6 file(s)." in stderr

    timeline = "\n".join(watcher.timeline)
    (tmp_path / "timeline.txt").write_text(timeline + "\n")
    print("\n" + timeline)
    statuses = [line.split(": ")[1].split(" ")[0].rstrip(";") for line in watcher.timeline]
    assert statuses == ["OK", "WARN", "ALERT", "WARN", "ALERT", "WARN"]
    b0, b1, labels1, b2, labels2, b3 = watcher.timeline[:6]
    assert "window 0, v1" in b0 and "drifted" not in b0
    assert "window 1, v1" in b1 and "drifted age" in b1 and "incident" not in b1  # drift alone only warns
    assert "labels for window 1" in labels1 and "accuracy" in labels1 and "degraded" in labels1
    assert "incident w1; alert ok; retrain ok" in labels1
    assert "alert done-elsewhere; retrain done-elsewhere" in b2  # the open incident owes nothing more
    assert labels2.endswith("promoted v3")
    assert "window 3, v3" in b3 and "incident" not in b3  # the new champion starts with a clean slate

    # one alert, one retrain, each recorded once; the retrain saw only the labels known then
    alerts = (tmp_path / "alerts.log").read_text().splitlines()
    assert [json.loads(a)["incident"] for a in alerts] == ["w1"]
    (retrain,) = [run for run in _runs("hook") if run.data.tags["mlflow_ext.cause"] == "retrain"]
    assert retrain.data.tags["mlflow_ext.outcome"] == "ok"
    output = Path(mlflow.artifacts.download_artifacts(run_id=retrain.info.run_id, artifact_path="output.txt"))
    assert "trained version 3 on 3000 training rows + 400 labelled rows from 1 labels file(s)" in output.read_text()

    # one decision: v3 beat the champion on the fresh labels of b2, which it was not trained on
    (decision,) = _runs("decision")
    assert (decision.data.tags["mlflow_ext.outcome"], decision.data.tags["mlflow_ext.candidate"]) == ("promoted", "3")
    assert str(mlflow.MlflowClient().get_model_version_by_alias("churn", "champion").version) == "3"

    checks = {Path(r.data.tags["mlflow_ext.source_path"]).name: r.data.tags["mlflow_ext.version"]
              for r in _runs("check")}
    assert checks == {"b0.parquet": "1", "b1.parquet": "1", "b2.parquet": "1", "b3.parquet": "3"}


SIMPLE_POLICY = """
version = 1
[models.churn]
id_column = "{id}"
[models.churn.incident]
drift = "alert"
"""

# MLflow's own HTTP retries, cut down: the watcher's retries are the ones under test.
LEAN_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
             "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


@pytest.fixture
def server(model_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:  # noqa: F811
    """A `mlflow server` on a fixed port over a copy of the model store, that a test may stop and restart."""
    from tests.backends import free_port, start_mlflow_server

    db = tmp_path / "server.db"
    shutil.copy(model_template, db)
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        proc, url = start_mlflow_server(f"sqlite:///{db}", tmp_path / "artifacts", port=port)
        procs.append(proc)
        return url

    def stop() -> None:
        stop_process_group(procs[-1])

    url = start()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    for key, value in LEAN_HTTP.items():
        monkeypatch.setenv(key, value)
    mlflow.set_tracking_uri(url)
    mlflow.set_registry_uri(url)
    yield start, stop
    for proc in procs:
        if proc.poll() is None:
            stop_process_group(proc)
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def test_a_tracking_store_that_is_down_fails_the_pass_after_retries_and_the_file_is_processed_once_it_is_back(
        server: Any, tmp_path: Path) -> None:
    start, stop = server
    mlflow.MlflowClient().delete_model_version("churn", "2")
    source = tmp_path / "incoming"
    source.mkdir()
    policy = tmp_path / "policy.toml"
    policy.write_text(SIMPLE_POLICY.format(id=ID))
    watcher = Watcher([str(VENV_BIN / "mlflow-ext"), "watch", "--policy", str(policy), "--source", str(source),
                       "--interval", "0.5", "--retries", "2", "--backoff", "0.2"], tmp_path)
    try:
        make_batch(300, seed=50).drop(columns=[TARGET]).to_parquet(source / "b0.parquet")
        assert "OK (window 0, v1)" in watcher.line_for("batch", "b0.parquet")

        stop()
        make_batch(300, seed=51, start_id=1000).drop(columns=[TARGET]).to_parquet(source / "b1.parquet")
        error = watcher.error()
        print(f"\n{error}")
        assert error.startswith("Error: Could not ") and "Connection refused" in error  # what failed, and why
        assert error.endswith("(gave up after 3 attempt(s), 0.6 s of backoff). "
                              "The file stays unprocessed and is retried in 0.5 s.")
        watcher.error()  # it keeps trying, pass after pass, and keeps saying so

        start()  # the same port: the watcher's URI works again
        assert "(window 1, v1)" in watcher.line_for("batch", "b1.parquet")
    finally:
        stderr = watcher.stop()
    assert watcher.proc.returncode == 0, stderr[-3000:]
    assert "Stopped (signal) after 2 file(s)." in stderr
    sources = sorted(Path(run.data.tags["mlflow_ext.source_path"]).name for run in _runs("check"))
    assert sources == ["b0.parquet", "b1.parquet"]  # each once: the failed passes marked nothing
