"""The Hook protocol, the event a hook receives, and ``fire``: one attempt policy for every hook.

A hook is an action fired by an event (an alert, a retrain, a promotion). Implementing one takes a
class with two members::

    from mlflow_ext.hooks import Event, HookResult

    class Page:
        '''Page the on-call engineer.'''

        def __init__(self, *, team: str) -> None:
            self.team = team                    # keyword-only configuration, no logic here

        def validate(self) -> None:             # raise ConfigError for a bad configuration
            ...

        def fire(self, event: Event, *, timeout: float) -> HookResult:
            ...                                 # one attempt, finished within `timeout` seconds
            return HookResult(ok=True, output="paged")

and an entry point in the ``mlflow_ext.hooks`` group (``page = "pkg.mod:Page"``).

``fire`` makes one attempt and reports it; it does not retry, sleep or raise for a failure of the
action itself. Retries, exponential backoff (honouring ``retry_after``) and the per-attempt
timeout live in one place, :func:`fire` in this module, which returns a frozen
:class:`HookOutcome` and never raises for a hook's own failure. Misconfiguration is found earlier,
by ``validate()``, when a policy is loaded.

The event is a versioned JSON document (``docs/events.md``); its ``idempotency_key`` is a stable
hash of (model, champion version, cause, incident), the same for every monitor that sees the same
incident, so receivers and the claim in MLflow can deduplicate on it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

from mlflow_ext.errors import ConfigError, DataError, MlflowExtError

__all__ = [
    "OUTPUT_LIMIT",
    "SCHEMA_VERSION",
    "Event",
    "Hook",
    "HookOutcome",
    "HookResult",
    "fire",
    "idempotency_key",
]

SCHEMA_VERSION = 1
# The tail of a hook's output kept in an outcome: enough to read an error, small enough for a tag.
OUTPUT_LIMIT = 8192
# A Retry-After or backoff longer than this is cut: a monitor must not stall for hours on one hook.
MAX_DELAY = 300.0


def idempotency_key(model: str, version: str, cause: str, incident: str) -> str:
    """The stable key of one action: equal for every monitor (and restart) seeing the same incident."""
    # Never change this derivation: a monitor upgraded mid-incident would fire the action again.
    canonical = json.dumps(["mlflow-ext", model, str(version), cause, incident])
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    """What a hook receives: which model and version, why, the check run behind it, and its key.

    Build one with :meth:`Event.create`, which computes ``idempotency_key``, ``event_id`` and
    ``created_at``. The JSON form (:meth:`to_json`) is the documented schema of docs/events.md.
    """

    model: str
    version: str
    cause: str
    incident: str
    idempotency_key: str
    event_id: str
    created_at: str
    check_run_id: str | None = None
    status: str | None = None
    reasons: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def create(
        cls,
        *,
        model: str,
        version: str | int,
        cause: str,
        incident: str,
        check_run_id: str | None = None,
        status: str | None = None,
        reasons: Sequence[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> Event:
        """A new event for ``cause`` (alert, retrain, promotion, ...) on one version of a model."""
        extra = dict(extra or {})
        try:
            json.dumps(extra)
        except (TypeError, ValueError) as exc:
            raise DataError(f"The event's extra fields are not JSON: {exc}.",
                            hint="Pass only strings, numbers, booleans, lists and dicts in extra.") from exc
        return cls(
            model=model,
            version=str(version),
            cause=cause,
            incident=incident,
            idempotency_key=idempotency_key(model, str(version), cause, incident),
            event_id=uuid.uuid4().hex,
            created_at=_utc_now(),
            check_run_id=check_run_id,
            status=status,
            reasons=tuple(reasons),
            extra=extra,
        )

    def to_dict(self) -> dict[str, Any]:
        """The event as the JSON-ready dict of docs/events.md."""
        document = asdict(self)
        document["reasons"] = list(self.reasons)
        document["extra"] = dict(self.extra)
        return document

    def to_json(self, *, indent: int | None = None) -> str:
        """The event as one JSON document (keys sorted, so the bytes are stable for signing)."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Event:
        """Read an event of this or an older schema version; unknown keys are ignored."""
        if not isinstance(document, Mapping):
            raise DataError(f"An event is a JSON object, got {type(document).__name__}.")
        version = document.get("schema_version")
        if not isinstance(version, int) or version < 1:
            raise DataError(f"An event needs an integer schema_version >= 1, got {version!r}.")
        if version > SCHEMA_VERSION:
            raise DataError(
                f"The event has schema_version {version}; this mlflow-ext reads up to {SCHEMA_VERSION}.",
                hint="Upgrade mlflow-ext where the event is read.",
            )
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(document))
        if missing:
            raise DataError(f"The event lacks the field(s) {', '.join(missing)}.",
                            hint="See docs/events.md for the event schema.")
        values = {key: value for key, value in document.items() if key in names}
        values["version"] = str(values["version"])
        values["reasons"] = tuple(values.get("reasons") or ())
        values["extra"] = dict(values.get("extra") or {})
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        """Read an event from its JSON text (e.g. a command hook's stdin or MLFLOW_EXT_EVENT)."""
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise DataError(f"The event is not valid JSON: {exc}.") from exc
        return cls.from_dict(document)


@dataclass(frozen=True)
class HookResult:
    """What one attempt of a hook returns; ``retryable`` says whether another attempt may help."""

    ok: bool
    retryable: bool = False
    error: str | None = None
    output: str = ""
    exit_code: int | None = None
    http_status: int | None = None
    run_id: str | None = None
    retry_after: float | None = None


@runtime_checkable
class Hook(Protocol):
    """An action fired by an event; configuration in keyword-only ``__init__`` parameters."""

    def validate(self) -> None:
        """Raise ConfigError if the configuration cannot work; cheap, and changes nothing."""
        ...

    def fire(self, event: Event, *, timeout: float) -> HookResult:
        """Make one attempt within ``timeout`` seconds; report failure in the result, don't raise."""
        ...


@dataclass(frozen=True)
class HookOutcome:
    """What firing a hook came to after its retries: recorded as is by whoever fired it."""

    status: str  # "ok" | "failed"
    attempts: int
    duration_s: float
    event_id: str
    idempotency_key: str
    error: str | None = None
    output: str = ""
    exit_code: int | None = None
    http_status: int | None = None
    run_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """The outcome as a JSON-ready dict."""
        return asdict(self)


def _excerpt(text: str) -> str:
    return text if len(text) <= OUTPUT_LIMIT else "…" + text[-OUTPUT_LIMIT:]


def _attempt(hook: Hook, event: Event, timeout: float) -> HookResult:
    """One attempt; a hook that raises instead of reporting becomes a failed result."""
    try:
        result = hook.fire(event, timeout=timeout)
    except MlflowExtError as exc:
        # A configuration or environment problem (a missing secret, say): retrying won't fix it.
        return HookResult(ok=False, error=exc.message)
    except Exception as exc:  # noqa: BLE001 - a broken hook must be recorded as failed, not crash the monitor
        return HookResult(ok=False, retryable=True,
                          error=f"{type(hook).__name__} raised {type(exc).__name__}: {exc}")
    if not isinstance(result, HookResult):
        return HookResult(ok=False, error=f"{type(hook).__name__}.fire returned a {type(result).__name__}, "
                                          "not a HookResult.")
    return result


def fire(hook: Hook, event: Event, *, retries: int = 0, backoff: float = 1.0,
         timeout: float = 300.0) -> HookOutcome:
    """Fire ``hook`` for ``event``: up to ``1 + retries`` attempts, each within ``timeout`` seconds.

    After a retryable failure it waits ``backoff * 2**(n-1)`` seconds (or the receiver's
    ``Retry-After``), at most 300 s. It never raises for the hook's own failure: the outcome says
    ``failed`` with the error of the last attempt.
    """
    if retries < 0 or backoff < 0 or timeout <= 0:
        raise ConfigError(
            f"fire: retries={retries}, backoff={backoff}, timeout={timeout}; "
            "retries and backoff must be >= 0 and timeout > 0."
        )
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        result = _attempt(hook, event, timeout)
        if result.ok or not result.retryable or attempts > retries:
            break
        delay = result.retry_after if result.retry_after is not None else backoff * 2 ** (attempts - 1)
        time.sleep(min(max(delay, 0.0), MAX_DELAY))
    error = result.error
    if not result.ok and error is None:
        error = f"{type(hook).__name__} reported a failure without a reason."
    if not result.ok and attempts > 1:
        error = f"{error} (after {attempts} attempts)"
    return HookOutcome(
        status="ok" if result.ok else "failed",
        attempts=attempts,
        duration_s=round(time.monotonic() - started, 3),
        event_id=event.event_id,
        idempotency_key=event.idempotency_key,
        error=None if result.ok else error,
        output=_excerpt(result.output),
        exit_code=result.exit_code,
        http_status=result.http_status,
        run_id=result.run_id,
    )
