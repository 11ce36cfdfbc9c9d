"""The tracking backends the integration suite runs on, started for real by the tests themselves.

- ``sqlite``: the embedded default, a throw-away ``mlflow.db`` per test (see conftest's ``store``).
- ``postgres``: a team's server: PostgreSQL (the ``pgserver`` wheel ships the server binaries, so
  nothing is installed system-wide and nothing is assumed to be running) behind one lean
  ``mlflow server`` on 127.0.0.1.
- ``basic-auth``: the same, started with MLflow's basic-auth app; the tests sign in as a regular
  (non-admin) user through ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``.

A server is shared by every test of a run (starting one costs seconds); each test still starts from
a known state: the server's database is dropped and re-created from a snapshot (a PostgreSQL template
database) before the test. The server opens a connection per request (``NullPool``), so a reset never
races with a pooled connection. Bench scripts import this module too.
"""

from __future__ import annotations

import configparser
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
DATABASE = "mlflow"
AUTH_DATABASE = "mlflow_auth"
ADMIN = ("admin", "admin-password-for-tests")
USER = ("team-member", "team-member-password")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mlflow_server(backend_uri: str, artifacts: Path, *, extra_args: tuple[str, ...] = (),
                        env: dict[str, str] | None = None, port: int | None = None, workers: int = 1,
                        ) -> tuple[subprocess.Popen[bytes], str]:
    """Start a lean `mlflow server` on 127.0.0.1 (on ``port``, default a free one) in its own process
    group; wait until healthy."""
    port = port or free_port()
    server_env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_USERNAME",
                 "MLFLOW_TRACKING_PASSWORD"):
        server_env.pop(name, None)
    url = f"http://127.0.0.1:{port}"
    proc = start_serving(
        [str(VENV_BIN / "mlflow"), "server", "--backend-store-uri", backend_uri,
         "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), *extra_args],
        env=server_env, url=url, log=artifacts.parent / f"mlflow-server-{port}.log",
    )
    return proc, url


def start_serving(argv: list[str], *, env: dict[str, str], url: str, log: Path, path: str = "/health",
                  timeout: float = 120) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, output to ``log``; return once ``url + path`` answers
    200 (stop it and raise when it exits or does not answer within ``timeout`` seconds)."""
    with open(log, "wb") as sink:
        proc = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as response:
                if response.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    stop_process_group(proc)
    raise RuntimeError(f"{argv[0]} did not answer {url}{path} in {timeout:.0f} s: {log.read_text()[-2000:]}")


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


class Postgres:
    """A PostgreSQL server in ``folder`` (unix socket only), started from the pgserver wheel."""

    def __init__(self, folder: Path) -> None:
        import pgserver

        self._server = pgserver.get_server(folder, cleanup_mode="stop")

    def uri(self, database: str) -> str:
        # `postgresql://` loads psycopg 3 under SQLAlchemy 2.1: the driver is part of what is proven
        return str(self._server.get_uri(database))

    def execute(self, *statements: str) -> None:
        """Run statements on the maintenance database, each in its own transaction (autocommit)."""
        import psycopg

        with psycopg.connect(self.uri("postgres"), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]

    def copy_database(self, source: str, target: str) -> None:
        """Make ``target`` a fresh copy of ``source`` (dropping what ``target`` held)."""
        self.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)',
                     f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{source}'",
                     f'CREATE DATABASE "{target}" TEMPLATE "{source}"')

    def stop(self) -> None:
        self._server.cleanup()


@dataclass
class TeamServer:
    """One `mlflow server` on a PostgreSQL database, with named snapshots of that database."""

    name: str
    postgres: Postgres
    url: str
    process: subprocess.Popen[bytes]
    credentials: tuple[str, str] | None = None
    databases: tuple[str, ...] = (DATABASE,)
    snapshots: set[str] = field(default_factory=set)

    def env(self) -> dict[str, str]:
        """What a client needs to reach this server: its URI and, with auth, a user's credentials."""
        env = {"MLFLOW_TRACKING_URI": self.url}
        if self.credentials:
            env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = self.credentials
        return env

    def snapshot(self, snapshot: str) -> None:
        for database in self.databases:
            self.postgres.copy_database(database, f"{database}__{snapshot}")
        self.snapshots.add(snapshot)

    def reset(self, snapshot: str = "empty") -> None:
        """Put the server's databases back to ``snapshot`` (taken with :meth:`snapshot`)."""
        if snapshot not in self.snapshots:
            raise KeyError(f"no snapshot {snapshot!r} of {self.name}; taken: {sorted(self.snapshots)}")
        for database in self.databases:
            self.postgres.copy_database(f"{database}__{snapshot}", database)

    def reset_or_build(self, snapshot: str, build: Callable[[], Any]) -> None:
        """Reset to ``snapshot``; the first time, build it from the empty state with ``build()``."""
        if snapshot not in self.snapshots:
            self.reset("empty")
            build()
            self.snapshot(snapshot)
        self.reset(snapshot)

    def stop(self) -> None:
        stop_process_group(self.process)


def start_team_server(name: str, postgres: Postgres, folder: Path, *, auth: bool = False,
                      env: dict[str, str] | None = None, workers: int = 1) -> TeamServer:
    """A PostgreSQL-backed `mlflow server` (with MLflow's basic-auth app when ``auth``), its empty
    state snapshotted; with ``auth``, a regular user :data:`USER` exists beside the admin.

    ``env`` is merged over the server's settings (``{"MLFLOW_SQLALCHEMYSTORE_POOLCLASS": ""}``: MLflow's
    default connection pool, as a team runs it; bench/bench_team.py) and ``workers`` is its number of
    worker processes."""
    folder.mkdir(parents=True, exist_ok=True)
    database = f"{DATABASE}_{name}".replace("-", "_")
    databases = [database]
    settings = {"MLFLOW_SQLALCHEMYSTORE_POOLCLASS": "NullPool"}
    extra: tuple[str, ...] = ()
    postgres.execute(f'CREATE DATABASE "{database}"')
    if auth:
        auth_database = f"{AUTH_DATABASE}_{name}".replace("-", "_")
        postgres.execute(f'CREATE DATABASE "{auth_database}"')
        databases.append(auth_database)
        config = configparser.ConfigParser()
        config["mlflow"] = {
            "default_permission": "READ", "database_uri": postgres.uri(auth_database),
            "admin_username": ADMIN[0], "admin_password": ADMIN[1],
            "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
            "auth_cache_ttl_seconds": "60",  # the password hash is checked once a minute, not per request
        }
        with open(folder / "basic_auth.ini", "w") as file:
            config.write(file)
        settings["MLFLOW_AUTH_CONFIG_PATH"] = str(folder / "basic_auth.ini")
        settings["MLFLOW_FLASK_SERVER_SECRET_KEY"] = os.urandom(16).hex()  # the auth app's CSRF key
        extra = ("--app-name", "basic-auth")
    process, url = start_mlflow_server(postgres.uri(database), folder / "artifacts", extra_args=extra,
                                       env={**settings, **(env or {})}, workers=workers)
    server = TeamServer(name, postgres, url, process, credentials=USER if auth else None,
                        databases=tuple(databases))
    try:
        if auth:  # a regular user, who may write to the Default experiment as a team's users would
            request_json(url, "api/2.0/mlflow/users/create", {"username": USER[0], "password": USER[1]},
                         credentials=ADMIN)
            request_json(url, "api/3.0/mlflow/users/permissions/grant",
                         {"username": USER[0], "resource_type": "experiment", "resource_id": "0",
                          "permission": "EDIT"}, credentials=ADMIN)
        server.snapshot("empty")
    except BaseException:
        server.stop()
        raise
    return server


def request_json(url: str, path: str, body: dict[str, Any], *, credentials: tuple[str, str] | None = None,
                 ) -> dict[str, Any]:
    """POST ``body`` to the server as JSON, signed in with ``credentials``; the decoded answer."""
    request = urllib.request.Request(f"{url}/{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    if credentials:
        token = b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read() or b"{}"))
