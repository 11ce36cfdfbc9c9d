"""Built-in hooks: command, python, mlflow_project, webhook, log (see mlflow_ext.hooks).

Each makes one attempt per ``fire`` call and reports it as a HookResult; retries, backoff and the
timeout policy are applied around them by ``mlflow_ext.hooks.fire``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import importlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from mlflow_ext.errors import ConfigError
from mlflow_ext.hooks import OUTPUT_LIMIT, Event, HookResult

__all__ = ["DEFAULT_ENV", "CommandHook", "LogHook", "MlflowProjectHook", "PythonHook", "WebhookHook"]

# What a subprocess inherits unless the hook names its own list: enough to find programs and reach
# MLflow, nothing else (the monitor's environment may hold cloud keys and webhook secrets).
DEFAULT_ENV = (
    "PATH", "HOME", "LANG", "VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI",
    "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
)
EVENT_ENV = "MLFLOW_EXT_EVENT"
KILL_GRACE_S = 5.0  # between SIGTERM and SIGKILL of a timed-out process group

_SAMPLE_EVENT = Event.create(model="model", version="1", cause="alert", incident="incident")
_TEMPLATE_FIELDS = ("model", "version", "cause", "incident", "idempotency_key", "event_id",
                    "check_run_id", "status", "created_at")


def _template(text: str, event: Event) -> str:
    """Fill ``{model}``, ``{version}``, ... in an argument from the event (``{{`` is a brace)."""
    return text.format_map({name: "" if getattr(event, name) is None else getattr(event, name)
                            for name in _TEMPLATE_FIELDS})


def _check_templates(hook: str, option: str, values: Sequence[str]) -> None:
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ConfigError(f"{hook} hook: {option}[{index}] must be a string, got {value!r}.")
        try:
            _template(value, _SAMPLE_EVENT)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"{hook} hook: {option}[{index}] = {value!r} is not a valid template ({exc}). "
                f"Fields: {', '.join('{' + name + '}' for name in _TEMPLATE_FIELDS)}.",
                hint="Write a literal brace as {{ or }}.",
            ) from exc


def _check_env(hook: str, names: object) -> None:
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise ConfigError(f"{hook} hook: env must be a list of variable names, got {names!r}.")


def _passthrough(names: Sequence[str] | None) -> dict[str, str]:
    return {name: os.environ[name] for name in (DEFAULT_ENV if names is None else names) if name in os.environ}


def _tail(path: Path) -> str:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - OUTPUT_LIMIT))
        return handle.read().decode("utf-8", errors="replace")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """End a process and everything it started (it leads its own session): TERM, grace, KILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_GRACE_S)
    # Children may ignore TERM or outlive the leader; the group outlives it too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _run_process(argv: list[str], *, stdin: bytes, env: dict[str, str], cwd: str | None,
                 timeout: float, label: str) -> HookResult:
    """Run argv (no shell) in its own session; on timeout kill the whole group. Output: the tail."""
    with tempfile.TemporaryDirectory(prefix="mlflow-ext-hook-") as tmp:
        log = Path(tmp, "output")
        with log.open("wb") as out:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                        env=env, cwd=cwd, start_new_session=True)
            except OSError as exc:
                return HookResult(ok=False, error=f"{label} could not start: {exc.strerror or exc}.")
            try:
                proc.communicate(input=stdin, timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return HookResult(ok=False, retryable=True, output=_tail(log), exit_code=proc.returncode,
                                  error=f"{label} did not finish within {timeout:g} s and was killed.")
        output = _tail(log)
    if proc.returncode != 0:
        return HookResult(ok=False, retryable=True, output=output, exit_code=proc.returncode,
                          error=f"{label} exited with code {proc.returncode}.")
    return HookResult(ok=True, output=output, exit_code=0)


class CommandHook:
    """Run a program (argv, never a shell) with the event as JSON on stdin and in MLFLOW_EXT_EVENT.

    ``argv`` items may use event fields (``"{model}"``, ``"{version}"``). The program sees only
    the environment variables named in ``env`` (default: DEFAULT_ENV). On timeout its whole process
    group is killed. Exit code 0 is success; the outcome keeps the tail of stdout and stderr.
    """

    def __init__(self, *, argv: list[str], env: list[str] | None = None, cwd: str | None = None) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd

    def validate(self) -> None:
        if not isinstance(self.argv, list) or not self.argv:
            raise ConfigError(f"command hook: argv must be a non-empty list of strings, got {self.argv!r}.",
                              hint='Write argv = ["python", "retrain.py", "--model", "{model}"].')
        _check_templates("command", "argv", self.argv)
        _check_env("command", self.env)
        if self.cwd is not None and not Path(self.cwd).is_dir():
            raise ConfigError(f"command hook: cwd {self.cwd!r} is not a directory.")
        program = self.argv[0]
        path = _passthrough(self.env).get("PATH", os.defpath)  # what Popen will search
        if shutil.which(program, path=path) is None and not (
            os.sep in program and os.access(Path(self.cwd or ".", program), os.X_OK)
        ):
            raise ConfigError(
                f"command hook: the program {program!r} is not an executable file on the PATH the "
                "command gets.",
                hint="Give an absolute path, or keep PATH in the hook's env list.",
            )

    def fire(self, event: Event, *, timeout: float) -> HookResult:
        payload = event.to_json()
        env = {**_passthrough(self.env), EVENT_ENV: payload}
        argv = [_template(arg, event) for arg in self.argv]
        return _run_process(argv, stdin=payload.encode("utf-8"), env=env, cwd=self.cwd, timeout=timeout,
                            label=f"The command {argv[0]!r}")


def _resolve(function: str) -> Callable[[Event], Any]:
    module_name, _, attr = function.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"python hook: function {function!r} is not of the form 'package.module:function'.")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"python hook: cannot import {module_name!r} for {function!r}: {exc}.",
                          hint="Install the package or fix the module path.") from exc
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"python hook: the module {module_name!r} has no attribute {attr!r}.")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"python hook: {function!r} is a {type(target).__name__}, not a callable.")
    return target  # type: ignore[no-any-return]


class PythonHook:
    """Call ``package.module:function`` with the Event.

    The function succeeds by returning (a returned HookResult is used as is, anything else is kept
    as the output) and fails by raising. It runs in a thread: on timeout the attempt is reported as
    failed and not retried, because the thread cannot be stopped and would run twice.
    """

    def __init__(self, *, function: str) -> None:
        self.function = function

    def validate(self) -> None:
        _resolve(self.function)

    def fire(self, event: Event, *, timeout: float) -> HookResult:
        target = _resolve(self.function)
        box: dict[str, Any] = {}

        def call() -> None:
            try:
                box["value"] = target(event)
            except BaseException as exc:  # noqa: BLE001 - reported as the attempt's failure
                box["error"] = exc

        worker = threading.Thread(target=call, name=f"mlflow-ext-hook {self.function}", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            return HookResult(ok=False, error=f"{self.function} did not return within {timeout:g} s; "
                                              "it was left running and is not retried.")
        if "error" in box:
            exc = box["error"]
            return HookResult(ok=False, retryable=True, error=f"{self.function} raised {type(exc).__name__}: {exc}")
        value = box.get("value")
        if isinstance(value, HookResult):
            return value
        return HookResult(ok=True, output="" if value is None else str(value))


ENV_MANAGERS = ("local", "virtualenv", "uv", "conda")


class MlflowProjectHook:
    """Run an MLflow Project (``mlflow run``) with parameters filled from the event.

    ``parameters`` values may use event fields (``{"model": "{model}"}``). The project's run is
    created first, in ``experiment_name`` (default: the model's monitoring experiment), tagged
    with the event's model, version, cause and idempotency key, and its id is in the outcome.
    ``mlflow run`` runs in its own process group (killed on timeout) with the ``env`` allow-list.
    """

    def __init__(self, *, uri: str, entry_point: str = "main", parameters: dict[str, str] | None = None,
                 experiment_name: str | None = None, env_manager: str = "local",
                 env: list[str] | None = None) -> None:
        self.uri = uri
        self.entry_point = entry_point
        self.parameters = parameters
        self.experiment_name = experiment_name
        self.env_manager = env_manager
        self.env = env

    def validate(self) -> None:
        if self.env_manager not in ENV_MANAGERS:
            raise ConfigError(f"mlflow_project hook: env_manager {self.env_manager!r} is not one of "
                              f"{', '.join(ENV_MANAGERS)}.")
        _check_env("mlflow_project", self.env)
        parameters = self.parameters or {}
        if not isinstance(parameters, dict):
            raise ConfigError(f"mlflow_project hook: parameters must be a table of strings, got {parameters!r}.")
        _check_templates("mlflow_project", "parameters", list(parameters.values()))
        if "://" not in self.uri and not self.uri.startswith("git@"):
            if not Path(self.uri, "MLproject").is_file():
                raise ConfigError(f"mlflow_project hook: {self.uri!r} is not a folder with an MLproject file.",
                                  hint="Give the project's folder or a Git URI.")

    def fire(self, event: Event, *, timeout: float) -> HookResult:
        import mlflow

        from mlflow_ext import tracking

        experiment_id = (tracking.get_or_create_experiment(self.experiment_name) if self.experiment_name
                         else tracking.monitoring_experiment(event.model))
        mlflow_client = tracking.client()
        prefix = tracking.TAG_PREFIX
        with tracking.mlflow_errors(f"create the run of the project {self.uri!r}"):
            run_id = str(mlflow_client.create_run(
                experiment_id, run_name=f"{event.cause}-{event.model}-v{event.version}",
                tags={f"{prefix}kind": "hook", f"{prefix}hook": "mlflow_project", f"{prefix}model": event.model,
                      f"{prefix}version": event.version, f"{prefix}cause": event.cause,
                      f"{prefix}idempotency_key": event.idempotency_key, f"{prefix}event_id": event.event_id},
            ).info.run_id)
        parameters = {key: _template(value, event) for key, value in (self.parameters or {}).items()}
        if parameters:
            from mlflow.entities import Param

            # `mlflow run --run-id` logs parameters only on runs it creates itself.
            try:
                with tracking.mlflow_errors(f"log the parameters of the run {run_id}"):
                    mlflow_client.log_batch(run_id, params=[Param(k, v) for k, v in parameters.items()])
            except BaseException:
                with contextlib.suppress(Exception):  # leave no half-made run behind
                    mlflow_client.delete_run(run_id)
                raise
        argv = [sys.executable, "-m", "mlflow", "run", self.uri, "--entry-point", self.entry_point,
                "--env-manager", self.env_manager, "--run-id", run_id]
        for key, value in parameters.items():
            argv += ["-P", f"{key}={value}"]
        payload = event.to_json()
        env = {**_passthrough(self.env), EVENT_ENV: payload,
               # the store in force here, which may have been set in code rather than in the environment
               "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(), "MLFLOW_REGISTRY_URI": mlflow.get_registry_uri()}
        result = _run_process(argv, stdin=payload.encode("utf-8"), env=env, cwd=None, timeout=timeout,
                              label=f"The MLflow project {self.uri!r}")
        if not result.ok:
            # `mlflow run` marks the run itself unless it was killed or failed before starting it.
            with tracking.mlflow_errors(f"mark the run {run_id} as ended"):
                if mlflow_client.get_run(run_id).info.status == "RUNNING":
                    mlflow_client.set_terminated(run_id, status="KILLED" if result.exit_code is None
                                                 or result.exit_code < 0 else "FAILED")
        return HookResult(ok=result.ok, retryable=result.retryable, error=result.error, output=result.output,
                          exit_code=result.exit_code, run_id=run_id)


FORMATS = ("json", "slack")
SIGNATURE_HEADER = "X-MlflowExt-Signature"
TIMESTAMP_HEADER = "X-MlflowExt-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of ``f"{timestamp}.{body}"``."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def slack_payload(event: Event) -> dict[str, Any]:
    """A Slack incoming-webhook message (text plus Block Kit blocks) describing the event."""
    title = f"mlflow-ext {event.cause}: {event.model} version {event.version}"
    if event.status:
        title += f" ({event.status})"
    reasons = "\n".join(f"• {reason}" for reason in event.reasons) or "No reasons were given."
    context = f"incident `{event.incident}` · key `{event.idempotency_key}`"
    if event.check_run_id:
        context = f"check run `{event.check_run_id}` · {context}"
    return {
        "text": f"{title}: {'; '.join(event.reasons)}" if event.reasons else title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},  # Slack's limits
            {"type": "section", "text": {"type": "mrkdwn", "text": reasons[:3000]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    }


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class WebhookHook:
    """POST the event as JSON, signed with HMAC-SHA256 over timestamp and body.

    The secret is read at fire time from the environment variable named by ``secret_env`` and
    never stored, logged or reported. 429, 5xx, timeouts and connection errors are retryable
    (honouring Retry-After); other 4xx are final. ``format = "slack"`` posts a Slack message.
    Errors name only the scheme and host of ``url`` (Slack webhook URLs carry a token in the path).
    """

    def __init__(self, *, url: str, secret_env: str | None = None, format: str = "json") -> None:
        self.url = url
        self.secret_env = secret_env
        self.format = format

    def _where(self) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    def validate(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"webhook hook: url must be an http:// or https:// URL, got {self._where()!r}.")
        if self.format not in FORMATS:
            raise ConfigError(f"webhook hook: format {self.format!r} is not one of {', '.join(FORMATS)}.")
        if self.secret_env is not None and not os.environ.get(self.secret_env):
            raise ConfigError(f"webhook hook: the environment variable {self.secret_env!r} (secret_env) is not set.",
                              hint=f"Export {self.secret_env} with the secret the receiver shares.")

    def fire(self, event: Event, *, timeout: float) -> HookResult:
        document = slack_payload(event) if self.format == "slack" else event.to_dict()
        body = json.dumps(document, sort_keys=True).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": "mlflow-ext",
                   TIMESTAMP_HEADER: timestamp, "X-MlflowExt-Event-Id": event.event_id,
                   "X-MlflowExt-Idempotency-Key": event.idempotency_key}
        if self.secret_env is not None:
            secret = os.environ.get(self.secret_env)
            if not secret:
                return HookResult(ok=False, error=f"The environment variable {self.secret_env!r} that holds the "
                                                  "webhook secret is not set.")
            headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        where = self._where()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                text = response.read(OUTPUT_LIMIT).decode("utf-8", errors="replace")
                return HookResult(ok=True, http_status=response.status, output=text)
        except urllib.error.HTTPError as exc:
            text = exc.read(OUTPUT_LIMIT).decode("utf-8", errors="replace")
            retryable = exc.code == 429 or exc.code >= 500
            return HookResult(ok=False, retryable=retryable, http_status=exc.code, output=text,
                              retry_after=_retry_after(exc.headers.get("Retry-After")) if retryable else None,
                              error=f"POST to {where} answered HTTP {exc.code} {exc.reason}.")
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            return HookResult(ok=False, retryable=True,
                              error=f"POST to {where} failed: {type(reason).__name__}: {reason}.")


LOG_LEVELS: Mapping[str, int] = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
                                 "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL}


class LogHook:
    """Write the event as one JSON line to a Python logger at ``level``."""

    def __init__(self, *, level: str = "INFO", logger: str = "mlflow_ext.hooks") -> None:
        self.level = level
        self.logger = logger

    def _levelno(self) -> int:
        if self.level.upper() not in LOG_LEVELS:
            raise ConfigError(f"log hook: level {self.level!r} is not one of {', '.join(LOG_LEVELS)}.")
        return LOG_LEVELS[self.level.upper()]

    def validate(self) -> None:
        self._levelno()

    def fire(self, event: Event, *, timeout: float) -> HookResult:
        logging.getLogger(self.logger).log(self._levelno(), "%s", event.to_json())
        return HookResult(ok=True, output=f"logged at {self.level.upper()} to {self.logger}")
