"""Serve the version that holds an alias, follow the alias as it moves, and log every request for monitoring.

``mlflow-ext serve churn`` answers MLflow's scoring protocol (``POST /invocations`` with
``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs`` JSON, or CSV; ``/ping``,
``/health``, ``/version``), so any MLflow client works unchanged. Beyond MLflow's own server:

- **Follows the alias.** A background thread reads the alias every ``poll_interval`` seconds. A new
  version is loaded and warmed on its reference sample beside the serving one, then a single
  reference is swapped (atomic in CPython): a request keeps the version it started with, so none
  fails during a switch. A version that fails to load or warm is not served; the old one keeps
  answering and the failure is set on the version (tags ``mlflow_ext.serve.last_error``,
  ``mlflow_ext.serve.last_error_time``). Every response names its version in ``X-MLflow-Ext-Version``.
- **Inference log** (``log_dir``): every request's rows, outputs, version, request id, time and
  latency are written in the background, one Parquet file per ``log_interval``, in the folder
  layout ``mlflow-ext watch`` reads (id column ``request_id``). ``POST /feedback`` takes
  ``{"request_id": ..., "label": ...}`` (or a list of them) and writes labels files with the
  version's target column. The log is bounded (``log_max_rows``); what does not fit is dropped,
  counted, exported and recorded when the server stops (a run of kind ``serve`` in
  ``mlflow-ext/<model>``).
- **Capacity.** At most ``max_in_flight`` requests are being answered at once; beyond that a request
  gets an immediate 503 with ``Retry-After`` instead of waiting in a queue that only grows. The
  sustainable rate is about ``predict_threads / (time of one predict)`` at best: for the churn
  pipeline of bench/bench_serve.py (8 ms per one-row predict) about 100 requests/s on 2 cores, the
  same as ``mlflow models serve``; past it, latency is bounded by the in-flight limit.
- **Bad input** (malformed JSON, wrong columns or types, an empty or oversized body) gets a 400 whose
  message says what is wrong; never a 500.
- ``GET /metrics``: Prometheus text (requests and errors by version, latency histogram, log queue
  depth, rows dropped, the version served).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow_ext import tracking
from mlflow_ext._inference_log import ID_COLUMN, InferenceLog, LabelRecord, RequestRecord
from mlflow_ext.errors import ConfigError, DataError, MlflowExtError, ProfileError

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["ModelServer", "ServedVersion", "serve"]

P = tracking.TAG_PREFIX
VERSION_HEADER = "X-MLflow-Ext-Version"
REQUEST_ID_HEADER = "X-Request-Id"
KIND_SERVE = "serve"
JSON = "application/json"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _BadRequest(Exception):
    """A request the server refuses (never crosses the public boundary: it becomes an HTTP response)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ServedVersion:
    """A loaded, warmed model version: what one request is answered with from start to end."""

    model: str
    version: str
    pyfunc: Any = field(repr=False)
    target: str | None
    loaded_at: float

    @property
    def input_schema(self) -> Any:
        return self.pyfunc.metadata.get_input_schema()


class ModelServer:
    """The state of one ``mlflow-ext serve``: the version served, the alias follower, the log, the metrics.

    ``start()`` loads the version that holds the alias (raising when it cannot be served), ``app()``
    is the ASGI application, ``stop()`` flushes the log and records the session in MLflow.
    """

    def __init__(
        self,
        *,
        model: str,
        alias: str = tracking.DEFAULT_ALIAS,
        version: str | None = None,
        log_dir: str | Path | None = None,
        poll_interval: float = 5.0,
        log_interval: float = 10.0,
        log_max_rows: int = 100_000,
        max_body_bytes: int = 5_000_000,
        max_in_flight: int = 64,
        predict_threads: int = 2,
        warm_rows: int = 100,
    ) -> None:
        self.model = model
        self.alias = alias
        self.version = version  # a pinned version is served as is; the alias is not followed
        self.log_dir = log_dir
        self.poll_interval = poll_interval
        self.log_interval = log_interval
        self.log_max_rows = log_max_rows
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.predict_threads = predict_threads
        self.warm_rows = warm_rows

    # -- lifecycle -----------------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ConfigError for settings that cannot work."""
        for name, value in (("poll_interval", self.poll_interval), ("log_interval", self.log_interval)):
            if not value > 0:
                raise ConfigError(f"serve: {name} must be > 0 seconds, got {value}.")
        for name, number in (("log_max_rows", self.log_max_rows), ("max_body_bytes", self.max_body_bytes),
                             ("max_in_flight", self.max_in_flight), ("predict_threads", self.predict_threads),
                             ("warm_rows", self.warm_rows)):
            if number < 1:
                raise ConfigError(f"serve: {name} must be >= 1, got {number}.")

    def start(self) -> None:
        """Load and warm the version to serve, then start the alias follower and the log writer."""
        self.validate()
        self._metrics = _Metrics()
        self._in_flight = 0
        self._limiter: Any = None  # anyio.CapacityLimiter, made in the event loop on first use
        self._failed: str | None = None  # the version that last failed to load: not retried until the alias moves
        self._stop = threading.Event()
        self.current = self._load(self._target_version())
        self._metrics.serving(self.current.version)
        self.log: InferenceLog | None = None
        if self.log_dir is not None:
            self.log = InferenceLog(folder=self.log_dir, target=self.current.target or "label",
                                    interval=self.log_interval, max_rows=self.log_max_rows)
            self.log.start()
            self._metrics.watch_log(self.log)
        self._follower: threading.Thread | None = None
        if self.version is None:
            self._follower = threading.Thread(target=self._follow, name="mlflow-ext-alias-follower", daemon=True)
            self._follower.start()

    def stop(self) -> None:
        """Stop following, write everything logged, and record the session (best effort: a tracking
        failure is reported on stderr, never raised during shutdown)."""
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=self.poll_interval + 60)
        if self.log is not None:
            self.log.close()
        try:
            self._record_session()
        except MlflowExtError as exc:
            _warn(f"could not record the serving session: {exc.message}")

    # -- versions ------------------------------------------------------------------------------------

    def _target_version(self) -> ModelVersion:
        ref = tracking.VersionRef(name=self.model, alias=None if self.version else self.alias, version=self.version)
        return tracking.resolve_version(ref)

    def _load(self, version: ModelVersion) -> ServedVersion:
        """Load a version and answer its reference sample with it; DataError when either fails."""
        import mlflow.pyfunc

        name, number = str(version.name), str(version.version)
        uri = f"models:/{name}/{number}"
        try:
            reference = tracking.load_version_reference(version)
            rows = reference.profile.sample
            if rows is not None and reference.features:
                rows = rows[list(reference.features)]
            target = reference.target
        except ProfileError:  # registered outside mlflow-ext: warm on the logged input example instead
            rows, target = None, (version.tags or {}).get(f"{P}target")
        with tracking.mlflow_errors(f"load the model {uri}"):
            try:
                pyfunc = mlflow.pyfunc.load_model(uri)
            except Exception as exc:  # noqa: BLE001 - a broken artifact raises anything; MLflow's own errors pass
                raise DataError(f"Could not load {uri}: {type(exc).__name__}: {exc}") from exc
        if rows is None:
            try:
                example = pyfunc.input_example
            except Exception:  # noqa: BLE001 - an example that cannot be read is no example
                example = None
            rows = example if example is not None and len(example) else None
        if rows is not None:
            rows = rows.head(self.warm_rows)
            try:
                outputs = pyfunc.predict(rows)
            except Exception as exc:  # noqa: BLE001 - any failure on the reference rows means not servable
                raise DataError(f"Version {number} of {name!r} failed to answer its reference sample: "
                                f"{type(exc).__name__}: {_clean(str(exc))}") from exc
            if len(outputs) != len(rows):
                raise DataError(f"Version {number} of {name!r} answered {len(rows)} reference rows with "
                                f"{len(outputs)} outputs.")
        return ServedVersion(model=name, version=number, pyfunc=pyfunc, target=target, loaded_at=time.time())

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.poll()
            except MlflowExtError as exc:  # the tracking store is down: keep serving what we have
                _warn(f"could not read the alias {self.alias!r} of {self.model!r}: {exc.message}")

    def poll(self) -> str | None:
        """Switch to the version that now holds the alias, if it moved; the version switched to, or None."""
        found = self._target_version()
        number = str(found.version)
        if number in (self.current.version, self._failed):
            return None
        try:
            loaded = self._load(found)
        except MlflowExtError as exc:
            self._failed = number
            self._metrics.load_failures.inc()
            _warn(f"version {number} of {self.model!r} is not served, version {self.current.version} "
                  f"keeps answering: {exc.message}")
            now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
            # the time first: readers wait for last_error, and then find both
            tracking.set_version_tags(self.model, number, {f"{P}serve.last_error_time": now,
                                                           f"{P}serve.last_error": exc.message[:5000]})
            return None
        self._failed = None
        self.current = loaded  # the switch: in-flight requests hold their own reference
        if self.log is not None and loaded.target:
            self.log.target = loaded.target
        self._metrics.serving(number)
        self._metrics.switches.inc()
        _warn(f"now serving version {number} of {self.model!r} ({self.alias}).")
        return number

    # -- requests ------------------------------------------------------------------------------------

    def predict(self, served: ServedVersion, body: bytes, content_type: str) -> tuple[pd.DataFrame, Any, str]:
        """Parse a request body as MLflow's scoring server does and answer it: (input rows, outputs, JSON)."""
        from io import StringIO

        from mlflow.exceptions import MlflowException
        from mlflow.pyfunc import scoring_server as scoring

        mime = content_type.split(";")[0].strip().lower() or JSON
        schema = served.input_schema
        try:
            if mime == scoring.CONTENT_TYPE_JSON:
                parsed = scoring._parse_json_data(  # type: ignore[no-untyped-call]
                    body, served.pyfunc.metadata, schema)
                data, params = parsed.data, parsed.params
            elif mime == scoring.CONTENT_TYPE_CSV:
                data, params = scoring.parse_csv_input(StringIO(body.decode("utf-8")), schema=schema), None
            else:
                raise _BadRequest(f"Content type {mime!r} is not supported; send application/json or text/csv.",
                                  status=415)
        except MlflowException as exc:
            raise _BadRequest(_clean(exc.message)) from exc
        except UnicodeDecodeError as exc:
            raise _BadRequest(f"The body is not UTF-8 text: {exc}.") from exc
        rows = _as_frame(data)
        if rows is not None and len(rows) == 0:
            raise _BadRequest("The payload has no rows to predict." + _expected(schema))
        try:
            outputs = served.pyfunc.predict(data, params=params) if params else served.pyfunc.predict(data)
        except MlflowException as exc:
            raise _BadRequest(_clean(exc.message) + _expected(schema)) from exc
        except Exception as exc:  # noqa: BLE001 - as MLflow's server: the input did not suit the model
            raise _BadRequest(f"The model could not score the input: {type(exc).__name__}: {_clean(str(exc))}"
                              + _expected(schema)) from exc
        result = StringIO()
        scoring.predictions_to_json(outputs, result)  # type: ignore[no-untyped-call]
        if rows is None:
            import pandas as pd

            rows = pd.DataFrame(index=range(len(outputs)))
        return rows, outputs, result.getvalue()

    async def _invocations(self, request: Request) -> Response:
        import anyio.to_thread
        from starlette.responses import Response

        started = time.perf_counter()
        served = self.current  # this request is answered by this version, whatever happens meanwhile
        request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        headers = {VERSION_HEADER: served.version, REQUEST_ID_HEADER: request_id}
        if self._in_flight >= self.max_in_flight:
            self._metrics.count(served.version, "503")
            return _error(f"The server is at capacity ({self.max_in_flight} requests in flight); retry shortly.",
                          503, {**headers, "Retry-After": "1"})
        self._in_flight += 1
        try:
            body = await self._body(request)
            if self._limiter is None:
                # Few threads: predictions hold the GIL, and every extra runnable thread delays the
                # event loop (and so the fast 503s and /metrics) by another switch interval.
                self._limiter = anyio.CapacityLimiter(self.predict_threads)
            rows, outputs, text = await anyio.to_thread.run_sync(
                self.predict, served, body, request.headers.get("content-type", JSON), limiter=self._limiter)
        except _BadRequest as exc:
            self._metrics.count(served.version, str(exc.status))
            return _error(exc.message, exc.status, headers)
        except Exception as exc:  # noqa: BLE001 - the one place a surprise becomes a 500, counted
            self._metrics.count(served.version, "500")
            _warn(f"request {request_id} failed: {type(exc).__name__}: {exc}")
            return _error(f"Internal error: {type(exc).__name__}.", 500, headers)
        finally:
            self._in_flight -= 1
        latency = time.perf_counter() - started
        self._metrics.count(served.version, "200", latency)
        if self.log is not None:
            self.log.submit(RequestRecord(request_id=request_id, time=time.time(), latency_ms=latency * 1000,
                                          version=served.version, inputs=rows, outputs=outputs))
        return Response(text, media_type=JSON, headers=headers)

    async def _body(self, request: Request) -> bytes:
        """The request body, refused as soon as it passes the size limit (a client's claim is not trusted)."""
        limit = self.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _BadRequest(f"The body is {int(declared)} bytes; the limit is {limit} bytes. "
                              "Send fewer rows per request.")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _BadRequest(f"The body is over the limit of {limit} bytes. Send fewer rows per request.")
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body.strip():
            raise _BadRequest("The body is empty; send a JSON object with one of dataframe_split, "
                              "dataframe_records, instances or inputs.")
        return body

    async def _feedback(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        served = self.current
        try:
            if self.log is None:
                raise _BadRequest("Feedback needs the inference log: start the server with --log-dir DIR.")
            if not served.target:
                raise _BadRequest(f"Version {served.version} of {self.model!r} does not name its target column "
                                  f"(version tag {P}target), so labels cannot be written for it.")
            labels = _labels(await self._body(request))
            if not self.log.submit_labels(labels):
                return _error("The inference log is full; retry shortly.", 503, {"Retry-After": "1"})
        except _BadRequest as exc:
            return _error(exc.message, exc.status, {})
        return JSONResponse({"accepted": len(labels)})

    def app(self) -> Starlette:
        """The ASGI application (call ``start()`` first, or let the lifespan do it)."""
        from mlflow.version import VERSION
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        async def ping(request: Request) -> Response:
            return Response("\n", media_type=JSON, headers={VERSION_HEADER: self.current.version})

        async def version(request: Request) -> Response:
            return Response(VERSION, media_type=JSON)

        async def metrics(request: Request) -> Response:
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            return Response(generate_latest(self._metrics.registry), media_type=CONTENT_TYPE_LATEST)

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            await asyncio.to_thread(self.stop)

        return Starlette(routes=[
            Route("/ping", ping), Route("/health", ping), Route("/version", version),
            Route("/invocations", self._invocations, methods=["POST"]),
            Route("/feedback", self._feedback, methods=["POST"]),
            Route("/metrics", metrics),
        ], lifespan=lifespan)

    # -- recording -----------------------------------------------------------------------------------

    def _record_session(self) -> None:
        """One run of kind ``serve`` in ``mlflow-ext/<model>``: what was answered, logged and dropped."""
        totals = self._metrics.totals()
        log = self.log
        values = {**totals, "log_rows_written": log.written_rows if log else 0,
                  "log_rows_dropped": log.dropped_rows if log else 0, "log_files": log.files if log else 0,
                  "labels_written": log.written_labels if log else 0}
        tags = {f"{P}kind": KIND_SERVE, f"{P}model": self.model, f"{P}version": self.current.version,
                f"{P}alias": self.alias, f"{P}log_dir": str(Path(self.log_dir).resolve()) if self.log_dir else ""}
        dropped = values["log_rows_dropped"]
        description = (f"Served {self.model} version {self.current.version} (@{self.alias}): "
                       f"{int(values['requests'])} requests, {int(values['errors'])} errors, "
                       f"{int(dropped)} logged rows dropped.")
        tracking.log_run(tracking.monitoring_experiment(self.model), run_name=f"serve {self.model}",
                         metrics=[tracking.MetricPoint(f"{P}serve.{k}", float(v)) for k, v in values.items()],
                         tags=tags, description=description)


class _Metrics:
    """The Prometheus metrics of one server, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("mlflow_ext_serve_requests", "Requests answered, by version and HTTP status.",
                                ["version", "status"], registry=self.registry)
        self.errors = Counter("mlflow_ext_serve_errors", "Requests not answered with a prediction, by version.",
                              ["version"], registry=self.registry)
        self.latency = Histogram("mlflow_ext_serve_latency_seconds", "Latency of answered requests.", ["version"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.version = Gauge("mlflow_ext_serve_version", "1 for the version being served.", ["version"],
                             registry=self.registry)
        self.switches = Counter("mlflow_ext_serve_switches", "Switches to a new version.", registry=self.registry)
        self.load_failures = Counter("mlflow_ext_serve_load_failures", "Versions that failed to load or warm.",
                                     registry=self.registry)
        self.queue = Gauge("mlflow_ext_serve_log_queue_depth", "Requests waiting to be logged.",
                           registry=self.registry)
        self.dropped = Gauge("mlflow_ext_serve_log_dropped_rows", "Rows the full inference log could not take.",
                             registry=self.registry)
        self._served: str | None = None

    def serving(self, version: str) -> None:
        if self._served is not None:
            self.version.remove(self._served)
        self.version.labels(version).set(1)
        self._served = version

    def watch_log(self, log: InferenceLog) -> None:
        self.queue.set_function(lambda: float(log.depth))
        self.dropped.set_function(lambda: float(log.dropped_rows))

    def count(self, version: str, status: str, latency: float | None = None) -> None:
        self.requests.labels(version, status).inc()
        if latency is None:
            self.errors.labels(version).inc()
        else:
            self.latency.labels(version).observe(latency)

    def totals(self) -> dict[str, float]:
        requests = errors = 0.0
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == "mlflow_ext_serve_requests_total":
                    requests += sample.value
                elif sample.name == "mlflow_ext_serve_errors_total":
                    errors += sample.value
        return {"requests": requests, "errors": errors, "switches": self.switches._value.get(),
                "load_failures": self.load_failures._value.get()}


# -- request helpers ---------------------------------------------------------------------------------


def _error(message: str, status: int, headers: Mapping[str, str]) -> Response:
    """An error in MLflow's scoring-server shape: {"error_code": ..., "message": ...}."""
    from starlette.responses import JSONResponse

    code = {400: "BAD_REQUEST", 415: "BAD_REQUEST", 503: "TEMPORARILY_UNAVAILABLE"}.get(status, "INTERNAL_ERROR")
    return JSONResponse({"error_code": code, "message": message}, status_code=status, headers=dict(headers))


def _clean(message: str) -> str:
    """MLflow's message without the echo of the whole payload and the protocol-history paragraph."""
    if "Failed to enforce schema" in message and "Error: " in message:
        message = "The input does not match the model's signature: " + message.rsplit("Error: ", 1)[1]
    for cut in ("\nInput:", " IMPORTANT:"):
        message = message.split(cut, 1)[0]
    message = message.strip()
    return message if len(message) <= 1000 else message[:1000] + "..."


def _expected(schema: Any) -> str:
    if schema is None or not getattr(schema, "has_input_names", lambda: False)():
        return ""
    columns = ", ".join(f"{c.name} ({getattr(c.type, 'name', c.type)})" for c in schema.inputs)
    return f" Expected columns: {columns}."


def _as_frame(data: Any) -> pd.DataFrame | None:
    """The parsed input as rows for the log (``instances``/``inputs`` parse to dicts or arrays)."""
    import numpy as np
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    try:
        if isinstance(data, dict):
            return pd.DataFrame({k: np.asarray(v).tolist() if np.ndim(v) > 1 else v for k, v in data.items()})
        values = np.asarray(data)
        return pd.DataFrame(values.reshape(len(values), -1) if values.ndim else values.reshape(1, 1)).add_prefix(
            "input_")
    except (ValueError, TypeError):
        return None  # not tabular (e.g. ragged tensors): the model still answers; the log keeps no inputs


def _labels(body: bytes) -> list[LabelRecord]:
    """Parse /feedback: ``{"request_id": ..., "label": ...}`` or a list of them."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise _BadRequest(f"The feedback is not valid JSON: {exc}.") from exc
    items = document if isinstance(document, list) else [document]
    if not items:
        raise _BadRequest("The feedback list is empty.")
    labels = []
    for index, item in enumerate(items):
        where = f"item {index}" if isinstance(document, list) else "the feedback"
        if not isinstance(item, dict) or set(item) != {ID_COLUMN, "label"}:
            got = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise _BadRequest(f"{where}: expected an object with exactly 'request_id' and 'label', got {got}.")
        rid, label = item[ID_COLUMN], item["label"]
        if isinstance(rid, bool) or not isinstance(rid, (str, int)) or str(rid) == "":
            raise _BadRequest(f"{where}: request_id must be the non-empty id from the {REQUEST_ID_HEADER} "
                              f"header, got {rid!r}.")
        if isinstance(label, (dict, list)) or label is None:
            raise _BadRequest(f"{where}: label must be a number, string or boolean, got {label!r}.")
        labels.append(LabelRecord(request_id=str(rid), label=label))
    return labels


def _warn(message: str) -> None:
    print(f"mlflow-ext serve: {message}", file=sys.stderr, flush=True)


# -- the entry point -----------------------------------------------------------------------------------


def serve(model_ref: str, *, host: str = "127.0.0.1", port: int = 8080, alias: str = tracking.DEFAULT_ALIAS,
          log_dir: str | Path | None = None, poll_interval: float = 5.0, log_interval: float = 10.0,
          log_max_rows: int = 100_000, max_body_bytes: int = 5_000_000, max_in_flight: int = 64) -> None:
    """Serve ``MODEL`` (following ``alias``), ``MODEL@ALIAS`` or ``MODEL/VERSION`` (pinned) until
    SIGINT/SIGTERM; then finish the requests in flight, flush the log and record the session."""
    import uvicorn

    parsed = tracking.parse_model_ref(model_ref, default_alias=alias)
    server = ModelServer(model=parsed.name, alias=parsed.alias or alias, version=parsed.version, log_dir=log_dir,
                         poll_interval=poll_interval, log_interval=log_interval, log_max_rows=log_max_rows,
                         max_body_bytes=max_body_bytes, max_in_flight=max_in_flight)
    server.start()
    _warn(f"serving version {server.current.version} of {server.model!r} on http://{host}:{port}"
          + ("" if server.version else f" (following @{server.alias} every {poll_interval:g} s)")
          + (f", logging to {log_dir}" if log_dir else "") + ".")
    config = uvicorn.Config(server.app(), host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=30)
    uvicorn.Server(config).run()
