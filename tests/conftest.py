"""Shared fixtures: a fresh tracking store per test on the backend the test asks for.

``store`` is a throw-away sqlite store (copied from one migrated template, because MLflow's
migrations take seconds). A module or test marked ``@pytest.mark.backends`` runs once per backend
instead: sqlite and a PostgreSQL-backed `mlflow server` by default, or the backends the marker names
(``"basic-auth"`` is that server behind MLflow's basic-auth app). See tests/backends.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends import Postgres, TeamServer, start_team_server

BACKENDS = ("sqlite", "postgres")
# The flows a team runs every day also run behind MLflow's basic-auth app, signed in as a regular user.
also_behind_basic_auth = pytest.mark.backends(*BACKENDS, "basic-auth")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("backends")
    if (marker is None or "store" not in metafunc.fixturenames
            or metafunc.definition.get_closest_marker("sqlite_only")):
        return
    metafunc.parametrize("store", marker.args or BACKENDS, indirect=True)


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


@pytest.fixture(scope="session")
def _postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    postgres = Postgres(tmp_path_factory.mktemp("postgres"))
    try:
        yield postgres
    finally:
        postgres.stop()


@pytest.fixture(scope="session")
def _team_servers(_postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TeamServer]]:
    """The run's PostgreSQL-backed servers, each started the first time a test asks for it."""
    servers: dict[str, TeamServer] = {}
    yield servers
    for server in servers.values():
        server.stop()


def backend_of(request: pytest.FixtureRequest) -> str:
    """The backend the requesting test runs on."""
    callspec = getattr(request.node, "callspec", None)
    return str(callspec.params.get("store", "sqlite")) if callspec else "sqlite"


def team_server(request: pytest.FixtureRequest, backend: str) -> TeamServer:
    servers: dict[str, TeamServer] = request.getfixturevalue("_team_servers")
    if backend not in servers:
        folder = request.getfixturevalue("tmp_path_factory").mktemp(f"server-{backend}")
        servers[backend] = start_team_server(backend, request.getfixturevalue("_postgres"), folder,
                                             auth=backend == "basic-auth")
    return servers[backend]


def fresh_store(request: pytest.FixtureRequest, backend: str, folder: Path) -> tuple[str, dict[str, str]]:
    """An empty tracking + registry store on ``backend`` (for sqlite, a copy of the template in
    ``folder``): its tracking URI and the environment a client needs to reach it."""
    if backend == "sqlite":
        shutil.copy(request.getfixturevalue("_store_template"), folder / "mlflow.db")
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        return uri, {"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    server = team_server(request, backend)
    server.reset("empty")
    return server.url, server.env()


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh tracking + registry store on the test's backend (sqlite unless parametrized); the
    working folder is tmp_path. Its value is the tracking URI."""
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    uri, env = fresh_store(request, getattr(request, "param", "sqlite"), tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


