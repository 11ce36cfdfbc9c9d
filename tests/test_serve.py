"""`mlflow-ext serve` as a real process on 127.0.0.1 against a sqlite store: MLflow's scoring protocol,
alias following under load, the inference log feeding `watch`, feedback labels, bad input, metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from tests.backends import VENV_BIN, free_port, stop_process_group
from tests.model_fixtures import FEATURES, ID, TARGET, make_batch, model_store, model_template  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")
needs_store = pytest.mark.usefixtures("model_store")  # churn v1 champion, v2 challenger


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _start(uri: str, folder: Path, *args: str) -> Server:
    """`mlflow-ext serve churn ...` in its own process group, once it answers /ping."""
    port = free_port()
    log = folder / f"serve-{port}.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
    with open(log, "wb") as sink:
        proc = subprocess.Popen([str(VENV_BIN / "mlflow-ext"), "serve", "churn", "--port", str(port), *args],
                                env=env, cwd=folder, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow-ext serve exited with {proc.returncode}:\n{server.output()}")
        try:
            with urllib.request.urlopen(f"{server.url}/ping", timeout=2):
                return server
        except OSError:
            time.sleep(0.3)
    stop_process_group(proc)
    raise RuntimeError(f"mlflow-ext serve did not answer in 120 s:\n{server.output()}")


def _stop(server: Server) -> None:
    """SIGTERM, as a supervisor stops it: the server flushes its log and records the session."""
    os.killpg(server.proc.pid, signal.SIGTERM)
    try:
        # uvicorn re-raises the signal after its graceful shutdown, so the exit says SIGTERM
        assert server.proc.wait(timeout=60) in (0, -signal.SIGTERM), server.output()
    finally:
        stop_process_group(server.proc)


def _post(url: str, body: bytes | str | dict[str, Any] | list[Any], *, content_type: str = "application/json",
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    data = data.encode() if isinstance(data, str) else data
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def _get(url: str) -> tuple[int, dict[str, str], str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, dict(response.headers), response.read().decode()


def _split(frame: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}


def _metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    values = {}
    for family in text_string_to_metric_families(_get(f"{url}/metrics")[2]):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _pyfunc(version: str) -> Any:
    return mlflow.pyfunc.load_model(f"models:/churn/{version}")


@pytest.fixture(scope="module")
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server on a copy of the model store (churn v1 champion), never promoted: for the tests that
    only read. A small body limit so the oversized-body test stays small."""
    folder = tmp_path_factory.mktemp("serve-shared")
    shutil.copy(request.getfixturevalue("model_template"), folder / "mlflow.db")
    server = _start(f"sqlite:///{folder / 'mlflow.db'}", folder, "--max-body-bytes", "50000")
    yield server
    stop_process_group(server.proc)


ROWS = make_batch(40, seed=7).drop(columns=[ID, TARGET])


# -- the scoring protocol -------------------------------------------------------------------------


@needs_store
def test_every_mlflow_payload_format_gets_the_versions_own_pyfunc_output(shared: Server) -> None:
    expected = _pyfunc("1").predict(ROWS).tolist()
    records = json.loads(ROWS.to_json(orient="records"))
    payloads: dict[str, Any] = {
        "dataframe_split": _split(ROWS),
        "dataframe_records": {"dataframe_records": records},
        "instances": {"instances": records},
        "inputs": {"inputs": {c: ROWS[c].tolist() for c in ROWS.columns}},
    }
    for name, payload in payloads.items():
        status, headers, body = _post(f"{shared.url}/invocations", payload)
        assert status == 200, (name, body)
        assert body == {"predictions": expected}, name
        assert headers["x-mlflow-ext-version"] == "1"
        assert headers["x-request-id"]
    status, _, body = _post(f"{shared.url}/invocations", ROWS.to_csv(index=False), content_type="text/csv")
    assert (status, body) == (200, {"predictions": expected})


@needs_store
def test_mlflows_own_scoring_client_works_unchanged(shared: Server) -> None:
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    client = ScoringServerClient("127.0.0.1", int(shared.url.rsplit(":", 1)[1]))
    client.wait_server_ready(timeout=10)
    answer = client.invoke(ROWS.head(3))
    assert answer.get_predictions().iloc[:, 0].tolist() == _pyfunc("1").predict(ROWS.head(3)).tolist()


def test_health_and_version_endpoints_answer_as_mlflows_server(shared: Server) -> None:
    for path in ("/ping", "/health"):
        status, headers, _ = _get(shared.url + path)
        assert status == 200 and headers["x-mlflow-ext-version"] == "1"
    assert _get(f"{shared.url}/version")[2] == mlflow.__version__


def test_a_client_request_id_is_kept(shared: Server) -> None:
    _, headers, _ = _post(f"{shared.url}/invocations", _split(ROWS.head(1)), headers={"X-Request-Id": "order-17"})
    assert headers["x-request-id"] == "order-17"


@pytest.mark.parametrize(("body", "content_type", "message"), [
    ("{not json", "application/json", "valid JSON"),
    ("", "application/json", "body is empty"),
    ({"dataframe_split": {"columns": FEATURES, "data": []}}, "application/json", "no rows to predict"),
    ({"dataframe_split": {"columns": FEATURES[:-1], "data": [[40, 30000, 12, "north"]]}}, "application/json",
     r"missing inputs \['plan'\].*Expected columns: age \(double\)"),
    ({"dataframe_records": [{"age": "old", "income": 1.0, "tenure": 1.0, "region": "north", "plan": "basic"}]},
     "application/json", "Failed to convert column age"),
    ({"rows": [[1, 2]]}, "application/json", "exactly one of the input fields"),
    ([1, 2], "application/json", "Received a list"),
    ("a,b\n1,2\n", "text/csv", "missing inputs"),
    (b"\xff\xfe", "application/json", "valid JSON"),
])
def test_bad_payloads_get_a_400_that_says_what_is_wrong(shared: Server, body: Any, content_type: str,
                                                        message: str) -> None:
    status, headers, answer = _post(f"{shared.url}/invocations", body, content_type=content_type)
    assert status == 400
    assert answer["error_code"] == "BAD_REQUEST"
    assert re.search(message, answer["message"]), answer["message"]
    assert headers["x-mlflow-ext-version"] == "1"


def test_an_oversized_body_is_refused_with_the_limit(shared: Server) -> None:
    big = make_batch(2000, seed=3).drop(columns=[ID, TARGET])
    status, _, answer = _post(f"{shared.url}/invocations", _split(big))
    assert status == 400
    assert "limit of 50000 bytes" in answer["message"] or "the limit is 50000 bytes" in answer["message"]
    # the server is unharmed
    assert _post(f"{shared.url}/invocations", _split(ROWS.head(2)))[0] == 200


def test_an_unsupported_content_type_is_refused(shared: Server) -> None:
    status, _, answer = _post(f"{shared.url}/invocations", "x", content_type="application/xml")
    assert status == 415 and "application/json or text/csv" in answer["message"]


def test_metrics_parse_and_count_requests_and_errors_by_version(shared: Server) -> None:
    ok = ("mlflow_ext_serve_requests_total", (("status", "200"), ("version", "1")))
    bad = ("mlflow_ext_serve_errors_total", (("version", "1"),))
    before = _metrics(shared.url)
    for _ in range(3):
        _post(f"{shared.url}/invocations", _split(ROWS.head(1)))
    _post(f"{shared.url}/invocations", "{")
    after = _metrics(shared.url)
    assert after[ok] - before.get(ok, 0) == 3
    assert after[bad] - before.get(bad, 0) == 1
    assert after[("mlflow_ext_serve_version", (("version", "1"),))] == 1
    assert after[("mlflow_ext_serve_latency_seconds_count", (("version", "1"),))] >= 3
    assert after[("mlflow_ext_serve_log_dropped_rows", ())] == 0


def test_feedback_without_a_log_is_refused(shared: Server) -> None:
    status, _, answer = _post(f"{shared.url}/feedback", {"request_id": "a", "label": 1})
    assert status == 400 and "--log-dir" in answer["message"]


# -- following the alias --------------------------------------------------------------------------


@needs_store
def test_a_promotion_during_a_request_stream_switches_versions_without_a_failed_request(
        tmp_path: Path) -> None:
    import mlflow_ext

    payload = _split(ROWS)
    expected = {v: {"predictions": _pyfunc(v).predict(ROWS).tolist()} for v in ("1", "2")}
    server = _start(os.environ["MLFLOW_TRACKING_URI"], tmp_path, "--poll-interval", "0.2")
    answers: list[tuple[int, str, Any]] = []
    stop = threading.Event()

    def stream() -> None:
        while not stop.is_set():
            status, headers, body = _post(f"{server.url}/invocations", payload)
            answers.append((status, headers.get("x-mlflow-ext-version", ""), body))

    def wait_for(version: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(a[1] == version for a in answers[-5:]):
            time.sleep(0.1)

    streams = [threading.Thread(target=stream) for _ in range(3)]
    try:
        for thread in streams:
            thread.start()
        time.sleep(1.0)
        mlflow_ext.promote("churn", "2", force=True, reason="test: switch under load")
        wait_for("2")
        # a version that cannot be loaded: v2 keeps answering and the failure is on v3
        client = mlflow.MlflowClient()
        broken = client.create_model_version("churn", source=str(tmp_path / "no-model-here"))
        client.set_registered_model_alias("churn", "champion", broken.version)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "mlflow_ext.serve.last_error" not in client.get_model_version(
                "churn", broken.version).tags:
            time.sleep(0.2)
        tags = client.get_model_version("churn", broken.version).tags
        during_failure = len(answers)
        time.sleep(0.5)
        client.set_registered_model_alias("churn", "champion", "1")  # roll back by hand
        wait_for("1")
    finally:
        stop.set()
        for thread in streams:
            thread.join(60)
        _stop(server)
    assert answers and all(status == 200 for status, _, _ in answers), {a[0] for a in answers}
    versions = [v for _, v, _ in answers]
    assert {"1", "2"} <= set(versions)
    assert versions[-1] == "1"
    assert "3" not in versions
    assert all(v == "2" for v in versions[during_failure - 3:during_failure])
    for _, version, body in answers:
        assert body == expected[version]  # each answer is its own version's output
    assert "Could not load models:/churn/3" in tags["mlflow_ext.serve.last_error"]
    assert tags["mlflow_ext.serve.last_error_time"].endswith("Z")
    assert "keeps answering" in server.output()


# -- the inference log --------------------------------------------------------------------------------


@needs_store
def test_the_log_feeds_watch_and_feedback_labels_reach_the_performance_check(tmp_path: Path) -> None:
    from mlflow_ext.monitor import LoopSettings
    from mlflow_ext.watch import watch

    log_dir = tmp_path / "inference"
    batch = make_batch(300, seed=11)
    server = _start(os.environ["MLFLOW_TRACKING_URI"], tmp_path, "--log-dir", str(log_dir), "--log-interval", "30")
    ids = []
    try:
        for start in range(0, 300, 3):  # three rows per request: ids <request>:<row>
            status, headers, _ = _post(f"{server.url}/invocations", _split(batch.iloc[start:start + 3][FEATURES]))
            assert status == 200
            ids.extend(f"{headers['x-request-id']}:{i}" for i in range(3))
        feedback = [{"request_id": rid, "label": int(label)} for rid, label in zip(ids, batch[TARGET], strict=True)]
        status, _, answer = _post(f"{server.url}/feedback", feedback)
        assert (status, answer) == (200, {"accepted": 300})
    finally:
        _stop(server)
    files = sorted(p.name for p in log_dir.iterdir())
    assert files and all(not name.startswith(".") for name in files)  # no temporary file left behind
    logged = pd.concat([pd.read_parquet(log_dir / f) for f in files if f.startswith("batch-")])
    assert sorted(logged["request_id"]) == sorted(ids)
    assert set(logged["version"]) == {"1"}
    assert {"time", "latency_ms", "prediction", *FEATURES} <= set(logged.columns)

    records = watch(LoopSettings(model="churn", id_column="request_id"), log_dir, interval=0.1,
                    until_idle=True).processed
    assert [r.kind for r in records].count("labels") == 1
    assert all(r.status != "error" for r in records), [r.reasons for r in records]
    labelled = next(r for r in records if r.kind == "labels")
    accuracy = next(m for m in labelled.performance if m.name == "accuracy")
    assert 0.5 < accuracy.value <= 1.0
    assert sum(r.window is not None for r in records) == len([f for f in files if f.startswith("batch-")])

    session = mlflow.search_runs(experiment_names=["mlflow-ext/churn"],
                                 filter_string="tags.`mlflow_ext.kind` = 'serve'", output_format="list")
    assert len(session) == 1
    assert session[0].data.metrics["mlflow_ext.serve.log_rows_written"] == 300
    assert session[0].data.metrics["mlflow_ext.serve.labels_written"] == 300


@pytest.mark.parametrize(("item", "message"), [
    ({"request_id": "a"}, "exactly 'request_id' and 'label'"),
    ({"request_id": "a", "label": None}, "label must be a number"),
    ([{"request_id": "", "label": 1}], "item 0: request_id must be the non-empty id"),
    ([], "feedback list is empty"),
])
def test_bad_feedback_gets_a_400(logging_server: Server, item: Any, message: str) -> None:
    status, _, answer = _post(f"{logging_server.url}/feedback", item)
    assert status == 400 and message in answer["message"]


@pytest.fixture(scope="module")
def logging_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose log holds at most 5 rows and that answers one request at a time."""
    folder = tmp_path_factory.mktemp("serve-small")
    shutil.copy(request.getfixturevalue("model_template"), folder / "mlflow.db")
    server = _start(f"sqlite:///{folder / 'mlflow.db'}", folder, "--log-dir", str(folder / "log"),
                    "--log-interval", "600", "--log-max-rows", "5", "--max-in-flight", "1")
    yield server
    stop_process_group(server.proc)


def test_beyond_capacity_a_request_gets_a_fast_503_with_retry_after(logging_server: Server) -> None:
    body = json.dumps(_split(ROWS.head(1))).encode()
    host, port = "127.0.0.1", int(logging_server.url.rsplit(":", 1)[1])
    # a request whose body is still arriving holds the only slot
    with socket.create_connection((host, port), timeout=30) as slow:
        slow.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        time.sleep(0.5)
        status, headers, answer = _post(f"{logging_server.url}/invocations", _split(ROWS.head(1)))
        assert status == 503 and headers["retry-after"] == "1"
        assert "at capacity (1 requests in flight)" in answer["message"]
        slow.sendall(body[10:])
        assert slow.recv(4096).startswith(b"HTTP/1.1 200")
    assert _post(f"{logging_server.url}/invocations", _split(ROWS.head(1)))[0] == 200


def test_a_full_log_drops_and_counts_while_the_server_keeps_answering(logging_server: Server) -> None:
    dropped = ("mlflow_ext_serve_log_dropped_rows", ())
    before = _metrics(logging_server.url).get(dropped, 0)
    statuses = [_post(f"{logging_server.url}/invocations", _split(ROWS.head(2)))[0] for _ in range(4)]
    assert statuses == [200] * 4
    after = _metrics(logging_server.url)
    # 5 rows fit in all (the capacity test above may have logged 1); 8 were sent here
    assert after[dropped] - before >= 8 - 5
    assert after[("mlflow_ext_serve_log_queue_depth", ())] >= 0


@needs_store
def test_the_shutdown_flushes_the_log_and_records_what_was_dropped(tmp_path: Path) -> None:
    log_dir = tmp_path / "log"
    server = _start(os.environ["MLFLOW_TRACKING_URI"], tmp_path, "--log-dir", str(log_dir), "--log-interval", "600",
                    "--log-max-rows", "4")
    try:
        for _ in range(3):
            assert _post(f"{server.url}/invocations", _split(ROWS.head(2)))[0] == 200
    finally:
        _stop(server)
    files = list(log_dir.glob("batch-*.parquet"))
    assert len(files) == 1 and len(pd.read_parquet(files[0])) == 4  # written at shutdown, not at 600 s
    run = mlflow.search_runs(experiment_names=["mlflow-ext/churn"],
                             filter_string="tags.`mlflow_ext.kind` = 'serve'", output_format="list")[0]
    assert run.data.metrics["mlflow_ext.serve.log_rows_dropped"] == 2
    assert run.data.metrics["mlflow_ext.serve.requests"] == 3
    assert run.data.tags["mlflow_ext.version"] == "1"


# -- the command line ---------------------------------------------------------------------------------


@needs_store
def test_serving_a_model_without_the_alias_is_an_error_that_says_what_to_do() -> None:
    from mlflow_ext.cli import app

    result = CliRunner().invoke(app, ["serve", "churn", "--alias", "gold", "--port", str(free_port())])
    assert result.exit_code == 1
    assert "no version with the alias 'gold'" in result.output


@needs_store
def test_bad_settings_are_refused_before_anything_loads() -> None:
    from mlflow_ext.cli import app

    result = CliRunner().invoke(app, ["serve", "churn", "--max-in-flight", "0"])
    assert result.exit_code == 1 and "max_in_flight must be >= 1, got 0" in result.output
