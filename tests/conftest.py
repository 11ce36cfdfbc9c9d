"""Shared fixtures: a throw-away sqlite tracking store per test (copied from one migrated
template, because MLflow's migrations take seconds) and one lean `mlflow server` per test run."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def _store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("store-template")
    db = folder / "mlflow.db"
    # The Default experiment's artifact folder is fixed when the store is created, relative to the
    # working folder: create it inside the template folder, never in the repository.
    here = os.getcwd()
    os.chdir(folder)
    try:
        MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}").search_experiments()
    finally:
        os.chdir(here)
    return db


@pytest.fixture
def store(_store_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh sqlite tracking + registry store in tmp_path; the working folder is tmp_path."""
    import mlflow

    db = tmp_path / "mlflow.db"
    shutil.copy(_store_template, db)
    uri = f"sqlite:///{db}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mlflow_server(backend_uri: str, artifacts: Path, *, extra_args: tuple[str, ...] = (),
                        env: dict[str, str] | None = None, port: int | None = None,
                        ) -> tuple[subprocess.Popen[bytes], str]:
    """Start a lean `mlflow server` on 127.0.0.1 (on ``port``, default a free one) in its own process
    group; wait until healthy."""
    port = port or free_port()
    server_env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    server_env.pop("MLFLOW_TRACKING_URI", None)
    log = open(artifacts.parent / f"mlflow-server-{port}.log", "wb")  # noqa: SIM115 - lives with the server
    proc = subprocess.Popen(
        [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", backend_uri,
         "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", *extra_args],
        env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    stop_process_group(proc)
    raise RuntimeError(f"mlflow server did not become healthy in 120 s; see {log.name}")


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=20)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One lean `mlflow server` (sqlite backend) for the whole run; tests use unique names."""
    folder = tmp_path_factory.mktemp("server")
    proc, url = start_mlflow_server(f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts")
    try:
        yield url
    finally:
        stop_process_group(proc)


@pytest.fixture
def server_store(mlflow_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point MLflow at the shared server for one test."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_registry_uri(mlflow_server)
    yield mlflow_server
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
