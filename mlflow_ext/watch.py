"""The folder watcher: every batch or labels file that arrives is processed once, in arrival order.

A file's identity is its absolute path, size and mtime (ns). Before processing, a watcher claims
``file:<identity>#<attempt>`` in MLflow (``_claims``); the file counts as processed once a run
carrying ``mlflow_ext.source_file = <identity>`` is recorded (its check run, labels run or error
run). So two watchers on one folder never process a file twice, and a restarted watcher skips
what is done.

Arrival order is (mtime, name). A watcher never skips past a file another live watcher holds: it
waits for it, so windows stay in order. A claim is given up (the next attempt may be claimed) when
its holder recorded a release (the tracking store failed), when it is our own from an earlier
pass, or when it is older than the lease without a result (its watcher died).

A tracking store that fails is retried (``retries``, exponential ``backoff``) on top of MLflow's own
HTTP retries (docs/loop.md says how the two combine); then the pass is reported and the file stays
pending for the next pass.

Write files under a temporary name (a leading dot or a ``.tmp`` suffix) and rename them into the
folder when complete: names like that are ignored.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol, TypeVar

from mlflow_ext import _claims
from mlflow_ext.errors import ConfigError, TrackingError
from mlflow_ext.monitor import Loop, LoopSettings, Step, StepRecord
from mlflow_ext.tracking import TAG_PREFIX, client, mlflow_errors, monitoring_experiment

__all__ = ["FolderSource", "Source", "WatchSummary", "recorded_sources", "watch"]

P = TAG_PREFIX
SUFFIXES = (".parquet", ".pq", ".csv")
T = TypeVar("T")


@dataclass(frozen=True)
class WatchSummary:
    """What a watch run did before it stopped."""

    processed: tuple[StepRecord, ...]
    failures: tuple[str, ...]  # tracking errors met (the files stay unprocessed and are retried)
    stopped_by: str  # "signal" | "idle" | "stop"


class Source(Protocol):
    """Where a watcher finds its steps: a folder (FolderSource) or a plugin's source (a Spark table)."""

    def steps(self) -> list[Step]:
        """Every step, in the order they must be processed."""
        ...

    def processed(self, model: str) -> set[str]:
        """Identities of this source's steps that have a recorded result for ``model``."""
        ...


class FolderSource:
    """The batch and labels files of a folder, oldest first, with their identities."""

    def __init__(self, *, folder: str | Path, labels_pattern: str = "labels*") -> None:
        self.folder = folder
        self.labels_pattern = labels_pattern

    def steps(self) -> list[Step]:
        """Every readable-looking file, in arrival order (mtime, then name)."""
        root = Path(self.folder).resolve()
        if not root.is_dir():
            raise ConfigError(f"The source {str(root)!r} is not a folder.", hint="Pass --source DIR.")
        found = []
        for path in root.iterdir():
            name = path.name
            if name.startswith(".") or name.endswith(".tmp") or not path.is_file():
                continue
            if path.suffix.lower() not in SUFFIXES:
                continue
            stat = path.stat()
            kind = "labels" if fnmatch.fnmatch(name, self.labels_pattern) else "batch"
            found.append((stat.st_mtime_ns, name, Step(kind=kind, name=name, path=path,
                                                       identity=f"{path}:{stat.st_size}:{stat.st_mtime_ns}")))
        return [step for _, _, step in sorted(found, key=lambda item: (item[0], item[1]))]

    def processed(self, model: str) -> set[str]:
        """Identities of this folder's files that have a recorded result."""
        root = str(Path(self.folder).resolve())
        return recorded_sources(model, f"tags.`{P}source_dir` = '{root}'", root)


def recorded_sources(model: str, filter_string: str, where: str) -> set[str]:
    """The ``source_file`` identities of the model's recorded runs that match ``filter_string``:
    what a source (a folder, a Spark table) has already had processed."""
    done: set[str] = set()
    token = None
    with mlflow_errors(f"read what was processed from {where}"):
        while True:
            page = client().search_runs([monitoring_experiment(model)], filter_string=filter_string,
                                        max_results=1000, page_token=token)
            done.update(run.data.tags.get(f"{P}source_file", "") for run in page)
            token = page.token
            if not token:
                return done


def _claim_file(step: Step, owner: str, lease: float) -> str | None:
    """The claim key this watcher now holds for the file, or None while another live watcher has it."""
    attempt = 1
    while True:
        key = f"file:{step.identity}#{attempt}"
        if _claims.claim(key, owner=owner) is not None:
            return key
        held = _claims.read_claim(key)
        released = _claims.read_claim(f"{key}:released") is not None
        if held is not None and not released and held.owner != owner and held.age_seconds() < lease:
            return None
        attempt += 1


def _release(key: str, owner: str) -> None:
    """Say the attempt failed so any watcher may take the next one now (best effort: the lease
    frees it anyway)."""
    try:
        _claims.claim(f"{key}:released", owner=owner)
    except TrackingError:
        pass


def _retrying(call: Callable[[], T], retries: int, backoff: float) -> T:
    """``call()``, retried with exponential backoff (``backoff``, 2x, 4x... seconds) while the
    tracking store fails; the last TrackingError says how many attempts were made."""
    for attempt in range(retries + 1):
        try:
            return call()
        except TrackingError as exc:
            if attempt == retries:
                raise TrackingError(f"{exc.message} (gave up after {retries + 1} attempt(s), "
                                    f"{backoff * (2**retries - 1):g} s of backoff).", hint=exc.hint) from exc
            time.sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class _Stop:
    event: threading.Event
    reason: str = "stop"


@contextlib.contextmanager
def _signals(stop: _Stop) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into a clean stop after the current file (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.reason = "signal"
        stop.event.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def watch(
    settings: LoopSettings,
    source: str | Path | Source,
    *,
    interval: float = 5.0,
    labels_pattern: str = "labels*",
    lease: float = 600.0,
    retries: int = 3,
    backoff: float = 1.0,
    until_idle: bool = False,
    stop: threading.Event | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> WatchSummary:
    """Process the files arriving in ``source`` until SIGINT/SIGTERM (or ``stop`` is set; or, with
    ``until_idle``, until a pass finds nothing left to do). Bad files are recorded as errors and
    the watch goes on; a failing tracking store is retried with backoff, then reported, and the
    file is left for the next pass. ``source`` is a folder or a Source object (SparkSource...)."""
    if interval <= 0 or lease <= 0:
        raise ConfigError(f"watch: interval and lease must be > 0 seconds, got {interval} and {lease}.")
    if retries < 0 or backoff < 0:
        raise ConfigError(f"watch: retries and backoff must be >= 0, got {retries} and {backoff}.")
    folder = FolderSource(folder=source, labels_pattern=labels_pattern) if isinstance(source, (str, Path)) else source
    folder.steps()  # a missing folder is a usage error before anything starts
    loop = Loop(settings=settings)
    owner = loop._owner()
    state = _Stop(event=stop or threading.Event())
    processed: list[StepRecord] = []
    failures: list[str] = []

    def report(message: str) -> None:
        failures.append(message)
        if on_error is not None:
            on_error(message)

    with _signals(state):
        try:
            loop.resume()  # what a crashed monitor owed: claims make this safe to repeat
        except TrackingError as exc:
            report(f"Could not resume: {exc.message}")
        while not state.event.is_set():
            idle = True
            try:
                done = _retrying(lambda: folder.processed(settings.model), retries, backoff)
                for step in folder.steps():
                    if state.event.is_set():
                        break
                    if step.identity in done:
                        continue
                    idle = False
                    key = _claim_file(step, owner, lease)
                    if key is None:
                        break  # another watcher holds the oldest file: wait, keep the order
                    if step.identity in folder.processed(settings.model):
                        continue
                    try:
                        record = _retrying(functools.partial(loop.process, step), retries, backoff)
                    except TrackingError:
                        _release(key, owner)
                        raise
                    processed.append(record)
                    if on_step is not None:
                        on_step(record)
            except TrackingError as exc:
                report(f"{exc.message} The file stays unprocessed and is retried in {interval:g} s.")
                idle = False
            if until_idle and idle:
                state.reason = "idle"
                break
            state.event.wait(interval)
    return WatchSummary(processed=tuple(processed), failures=tuple(failures), stopped_by=state.reason)
