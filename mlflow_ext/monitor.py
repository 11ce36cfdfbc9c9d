"""The closed loop: one step checks a batch (or joins late labels), records it, decides and acts.

``Loop.process(step)`` is the one implementation of a monitoring step; ``monitor`` (one batch),
``watch`` (a folder) and the backtest all call it. All state lives in MLflow:

- **Windows.** Every batch is a check run in ``mlflow-ext/<model>`` (``model_check.check_model``)
  with its window index as ``step``; the loop adds ``mlflow_ext.source_file`` (what was processed),
  ``mlflow_ext.loop_status`` (the status after the policy's incident settings) and
  ``mlflow_ext.incident``.
- **Incidents** are derived from the champion's windows in order: one opens at the first window
  where at least N of the last M windows are ``alert`` and stays open until a window is ``ok`` or
  the champion changes. Its id is ``w<window that opened it>``.
- **Actions** (alerts, retrain) are keyed (model, champion version, cause, incident) and claimed
  once and for all in MLflow (``_claims``) before they fire; the outcome is then recorded as a run
  (``kind=hook``). A claim without an outcome older than its lease (twice the longest the hook can
  take) means the monitor died while firing: it is recorded as *unknown outcome* and **not fired
  again** -- at most once wins over at least once, even for idempotent webhooks, because a retrain
  that ran twice costs more than an alert nobody saw (which the record shows). An alert fires for
  the statuses its ``on`` lists: ``alert`` once per incident, ``warn`` and ``error`` once per window.
- **Cooldown.** No new retrain while the last one is younger than the cooldown, or has not yet
  produced a version, or that version has not been decided.
- **Closing the loop.** A version newer than the champion that is not decided yet (or holds the
  ``challenger`` alias) is evaluated with the policy's promotion rules on the next labelled batch;
  after a promotion the loop checks against the new champion (and, unless the policy keeps the
  reference, against its profile; with ``keep`` the features stay compared with the profile
  monitoring had, recorded on the promoted version as ``mlflow_ext.reference_version``).

docs/loop.md tells the whole story for users.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow_ext import _claims
from mlflow_ext.checks import PerformanceMetric
from mlflow_ext.errors import ConfigError, DataError, MlflowExtError, TrackingError
from mlflow_ext.tracking import (
    DEFAULT_ALIAS,
    TAG_PREFIX,
    client,
    log_run,
    mlflow_errors,
    monitoring_experiment,
    set_version_tags,
    to_json_bytes,
)

if TYPE_CHECKING:
    import pandas as pd

    from mlflow_ext.hooks import HookOutcome

__all__ = [
    "ActionRecord",
    "HookSpec",
    "Loop",
    "LoopSettings",
    "Step",
    "StepRecord",
    "monitor",
    "open_incident",
]

P = TAG_PREFIX
# Test-only: sleep this many seconds after the check run is recorded and before any action, so a
# test can kill the monitor exactly there.
_PAUSE_ENV = "MLFLOW_EXT_TEST_PAUSE_BEFORE_ACTIONS"
_WINDOWS_READ = 1000  # check runs read back to derive the incident (far more than any M)
ALERT_ON = ("warn", "alert", "error")  # what an alert's `on` may list
# On a version promoted by a loop whose policy keeps the reference: the version whose profile the
# loop keeps checking the features against.
REFERENCE_VERSION_TAG = f"{P}reference_version"


@dataclass(frozen=True)
class HookSpec:
    """A configured hook (registered name + options) and how to fire it."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    retries: int = 2
    backoff: float = 1.0
    timeout: float = 300.0
    # The window statuses an alert fires for: "alert" once per incident, "warn" and "error" once per
    # window (a retrain hook ignores this: it fires once per incident).
    on: tuple[str, ...] = ("alert",)

    def lease(self) -> float:
        """Twice the longest a firing can take: a claim older than this lost its monitor."""
        waits = sum(min(self.backoff * 2**i, 300.0) for i in range(self.retries))
        return 2 * (self.timeout * (self.retries + 1) + float(waits))


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs from a policy for one model (see ``LoopSettings.from_policy``)."""

    model: str
    alias: str = DEFAULT_ALIAS
    check: Mapping[str, Any] = field(default_factory=dict)  # keyword options of check_model
    id_column: str | None = None
    drift: str = "warn"  # what drift alone makes a window: warn | alert | ignore
    performance_drop: str = "alert"  # what a significantly degraded metric makes it: alert | warn
    floors: Mapping[str, float] = field(default_factory=dict)  # metric -> lowest acceptable value
    incident_n: int = 1
    incident_m: int = 1
    alerts: tuple[HookSpec, ...] = ()
    retrain: HookSpec | None = None
    cooldown: float = 0.0  # seconds
    promotion: Any = None  # what promote(policy=...) takes: a Policy, a file, rules, or None
    follow_reference: bool = True  # after a promotion, check against the new champion's profile
    estimated: Any = None  # policy.EstimatedIncident: incidents on performance estimated without labels

    def validate(self) -> None:
        """Raise ConfigError for settings that cannot work."""
        for name, value, valid in (("drift", self.drift, ("warn", "alert", "ignore")),
                                   ("performance_drop", self.performance_drop, ("alert", "warn"))):
            if value not in valid:
                raise ConfigError(f"{self.model}: {name} = {value!r}; valid: {', '.join(valid)}.")
        if not 1 <= self.incident_n <= self.incident_m:
            raise ConfigError(f"{self.model}: incident needs 1 <= n <= m, got n={self.incident_n}, "
                              f"m={self.incident_m}.")
        if self.cooldown < 0:
            raise ConfigError(f"{self.model}: cooldown must be >= 0 seconds, got {self.cooldown}.")
        for index, spec in enumerate(self.alerts):
            wrong = [status for status in spec.on if status not in ALERT_ON]
            if wrong or not spec.on:
                raise ConfigError(f"{self.model}: alerts[{index}] ({spec.name}): on = {list(spec.on)}; valid: a "
                                  f"non-empty list of {', '.join(ALERT_ON)}.")

    @classmethod
    def from_policy(cls, policy: Any, model: str | None = None) -> LoopSettings:
        """The loop settings of ``model`` (default: the policy's only model) in a loaded Policy."""
        names = list(getattr(policy, "models", {}) or {})
        if model is None:
            if len(names) != 1:
                raise ConfigError(f"The policy names {len(names)} models ({', '.join(names) or 'none'}); "
                                  "say which one to monitor.", hint="Pass --model NAME.")
            model = names[0]
        mp = policy.for_model(model)
        incident = getattr(mp, "incident", None)
        alerts = tuple(_spec(a) for a in getattr(mp, "alerts", ()) or ())
        retrain_cfg = getattr(mp, "retrain", None)
        settings = cls(
            model=model,
            alias=getattr(mp, "alias", DEFAULT_ALIAS) or DEFAULT_ALIAS,
            check=_check_options(mp.check),
            id_column=getattr(mp, "id_column", None),
            drift=getattr(incident, "drift", "warn"),
            performance_drop=getattr(incident, "performance_drop", "alert"),
            floors=dict(getattr(incident, "floors", None) or {}),
            estimated=getattr(incident, "estimated", None),
            incident_n=int(getattr(incident, "n", 1)),
            incident_m=int(getattr(incident, "m", 1)),
            alerts=alerts,
            retrain=None if retrain_cfg is None or getattr(retrain_cfg, "hook", None) is None
            else _spec(retrain_cfg),
            cooldown=float(getattr(retrain_cfg, "cooldown", 0.0) or 0.0),
            promotion=policy,
            follow_reference=getattr(mp.promotion, "reference", "follow") == "follow",
        )
        settings.validate()
        return settings


def _check_options(check: Any) -> dict[str, Any]:
    """A policy's check settings as keyword options of ``check_model``."""
    options = {name: getattr(check, name) for name in ("alpha", "correction", "drift_share", "min_drifted",
                                                       "tolerance")}
    if getattr(check, "detectors", None):
        options["detectors"] = dict(check.detectors)
    return options


def _spec(config: Any) -> HookSpec:
    return HookSpec(name=str(config.hook), options=dict(getattr(config, "options", None) or {}),
                    retries=int(getattr(config, "retries", 2)), backoff=float(getattr(config, "backoff", 1.0)),
                    timeout=float(getattr(config, "timeout", 300.0)),
                    on=tuple(getattr(config, "on", None) or ("alert",)))


# -- input and output of one step -------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One input of the loop: a batch to check or labels for earlier batches.

    ``identity`` names the input once and for all (a file: its absolute path, size and mtime); it
    is recorded with the result, so an input is processed once. ``path``, ``frame`` or ``loader``
    (called when the step is processed: a source of many steps loads one at a time) holds it.
    """

    kind: str  # "batch" | "labels"
    name: str
    identity: str
    path: Path | None = None
    frame: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    loader: Callable[[], pd.DataFrame] | None = field(default=None, compare=False, repr=False)

    def read(self) -> pd.DataFrame:
        """The step's rows; DataError when they cannot be read."""
        if self.frame is not None:
            return self.frame
        if self.loader is not None:
            return self.loader()
        if self.path is None:
            raise DataError(f"The step {self.name!r} has neither a file nor a frame.")
        from mlflow_ext._io import read_frame

        return read_frame(self.path)


@dataclass(frozen=True)
class ActionRecord:
    """What became of one keyed action in this step."""

    cause: str  # alert | retrain
    hook: str
    incident: str
    key: str
    status: str  # ok | failed | unknown | done-elsewhere | in-progress | cooldown
    attempts: int = 0
    error: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class StepRecord:
    """The result of one step, as a timeline prints it."""

    kind: str
    name: str
    model: str
    version: str | None
    status: str  # ok | warn | alert | error
    reasons: tuple[str, ...] = ()
    window: int | None = None
    drifted: tuple[str, ...] = ()
    performance: tuple[PerformanceMetric, ...] = ()
    incident: str | None = None
    actions: tuple[ActionRecord, ...] = ()
    decision: str | None = None  # "promoted v2" / "refused v2"
    decision_run_id: str | None = None
    run_id: str | None = None
    labelled_windows: tuple[int, ...] = ()

    @property
    def alerts_fired(self) -> int:
        return sum(1 for a in self.actions if a.cause == "alert" and a.status in ("ok", "failed"))

    @property
    def retrain_fired(self) -> bool:
        return any(a.cause == "retrain" and a.status in ("ok", "failed") for a in self.actions)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    def line(self) -> str:
        """One line of a timeline."""
        head = f"{self.kind:<6} {self.name}: {self.status.upper()}"
        if self.window is not None:
            head += f" (window {self.window}, v{self.version})"
        if self.labelled_windows:
            head += f" (labels for window {', '.join(map(str, self.labelled_windows))})"
        parts = [head]
        if self.drifted:
            parts.append(f"drifted {', '.join(self.drifted)}")
        for m in self.performance[:1]:
            parts.append(f"{m.name} {m.value:.3f}{' degraded' if m.degraded else ''}")
        if self.incident:
            parts.append(f"incident {self.incident}")
        parts.extend(f"{a.cause} {a.status}" for a in self.actions)
        if self.decision:
            parts.append(self.decision)
        return "; ".join(parts)


# -- incidents --------------------------------------------------------------------------------------


def open_incident(windows: Sequence[tuple[int, str]], n: int, m: int) -> int | None:
    """The window that opened the incident still open after the last of ``windows``, or None.

    ``windows`` are (window index, status) of one champion, in order. An incident opens at the
    first window where at least ``n`` of the last ``m`` windows are ``alert`` and closes at the
    next ``ok`` window; ``warn`` and ``error`` windows neither open nor close one.
    """
    opened: int | None = None
    statuses: list[str] = []
    for index, status in windows:
        statuses.append(status)
        if status == "ok":
            opened = None
        elif opened is None and statuses[-m:].count("alert") >= n:
            opened = index
    return opened


# -- the loop ---------------------------------------------------------------------------------------


def who() -> str:
    """This process, as claims name their owner."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Loop:
    """The monitoring loop of one model: ``process(step)`` checks, records, decides and acts."""

    def __init__(self, *, settings: LoopSettings, owner: str | None = None) -> None:
        self.settings = settings
        self.owner = owner
        self._kept: dict[str, Any] = {}  # kept reference profiles by version: a download per batch is slow

    # The owner is fixed on first use so every claim of one loop carries the same name.
    def _owner(self) -> str:
        if self.owner is None:
            self.owner = who()
        return self.owner

    def process(self, step: Step) -> StepRecord:
        """Run one step. Bad input is recorded (status error) and returned; TrackingError is raised
        and nothing is marked processed, so the step can be retried."""
        self.settings.validate()
        if step.kind not in ("batch", "labels"):
            raise ConfigError(f"A step is a 'batch' or 'labels', got {step.kind!r}.")
        champion = self._champion()
        try:
            frame = step.read()
            if step.kind == "batch":
                return self._batch(step, frame, champion)
            return self._labels(step, frame, champion)
        except DataError as exc:
            return self._record_error(step, champion, exc)

    def resume(self) -> StepRecord | None:
        """Fire what the current incident still owes (after a crash between check and action)."""
        champion = self._champion()
        windows = self._windows(champion)
        if not windows:
            return None
        incident = self._incident(windows)
        last = windows[-1]
        actions = self._act(champion, incident, last.run_id, last.status, last.reasons) if incident else ()
        return StepRecord(kind="resume", name="resume", model=self.settings.model, version=champion,
                          status=last.status, window=last.window, incident=incident, actions=actions)

    # -- batches ------------------------------------------------------------------------------------

    def _batch(self, step: Step, frame: pd.DataFrame, champion: str) -> StepRecord:
        from mlflow_ext.model_check import check_model

        s = self.settings
        windows = self._windows(champion)
        window = self._next_window()
        # The source tags go into the check run's own write: a run without them would look unprocessed
        # to the watcher, and the file would be checked twice.
        checked = check_model(f"{s.model}/{champion}", frame, id_column=s.id_column, step=window, record=True,
                              tags=self._source_tags(step), **self._check_options(champion))
        result = checked.result
        status, reasons = self._loop_status(result)
        assert checked.run_id is not None  # record=True always returns the run
        history = [*[(w.window, w.status) for w in windows], (window, status)]
        opened = open_incident(history, s.incident_n, s.incident_m)
        incident = None if opened is None else f"w{opened}"
        self._tag(checked.run_id, status, incident, reasons)
        self._pause()
        # Only a candidate that existed before this step's actions is decided on its labels: a retrain
        # fired now may have trained on these very rows, which are then not fresh for it.
        waiting = checked.n_labelled and self._candidate(champion) is not None
        actions = self._act(champion, incident, checked.run_id, status, reasons) if incident else ()
        actions += self._window_alerts(champion, f"w{window}", status, checked.run_id, reasons)
        decision = None
        if waiting:
            target = self._target(champion)
            decision = self._promote(champion, frame, target)
        return StepRecord(
            kind="batch", name=step.name, model=s.model, version=champion, status=status, reasons=reasons,
            window=window, drifted=result.drifted_columns, performance=result.performance, incident=incident,
            actions=actions, decision=None if decision is None else decision[0],
            decision_run_id=None if decision is None else decision[1], run_id=checked.run_id,
        )

    def _check_options(self, version: str) -> dict[str, Any]:
        options = dict(self.settings.check)
        if not self.settings.follow_reference:
            kept = self._version_tags(version).get(REFERENCE_VERSION_TAG)
            if kept and kept != version:
                options["profile"] = self._kept_profile(kept)
        return options

    def _kept_profile(self, version: str) -> Any:
        from mlflow_ext.tracking import load_version_reference

        if version not in self._kept:
            self._kept[version] = load_version_reference(f"{self.settings.model}/{version}").profile
        return self._kept[version]

    def _loop_status(self, result: Any) -> tuple[str, tuple[str, ...]]:
        """The window's status under the policy: drift maps to warn/alert/ignore, drops to alert."""
        s = self.settings
        reasons = list(result.reasons)
        if result.status == "error":
            return "error", tuple(reasons)
        degraded = [m for m in result.performance if m.degraded]
        below = [m for m in result.performance if m.name in s.floors and m.value < s.floors[m.name]]
        reasons.extend(f"Model metric {m.name!r} is {m.value:.4g}, below the policy's floor of "
                       f"{s.floors[m.name]:g}." for m in below)
        drifted = bool(result.drifted_columns) or any(r.drifted for r in result.overall)
        if below or (degraded and s.performance_drop == "alert"):
            level = "alert"
        elif degraded:
            level = "warn"
        elif drifted and s.drift != "ignore":
            level = "alert" if s.drift == "alert" and result.status == "alert" else "warn"
        elif result.status in ("warn", "alert") and not drifted:
            level = "warn"  # quality findings or prediction drift
        elif drifted:  # drift ignored by the policy
            level = "warn" if any(q.severity == "warn" for q in result.quality) else "ok"
        else:
            level = "ok"
        from mlflow_ext.policy import estimated_status

        return estimated_status(s.estimated, result, level, reasons)

    # -- labels -------------------------------------------------------------------------------------

    def _labels(self, step: Step, labels: pd.DataFrame, champion: str) -> StepRecord:
        from mlflow_ext.model_check import check_model

        s = self.settings
        id_column = s.id_column
        if id_column is None or id_column not in labels.columns:
            raise DataError(f"The labels {step.name!r} have no id column {id_column!r}; columns: "
                            f"{', '.join(map(str, labels.columns[:10]))}.",
                            hint="Labels are joined to earlier batches by the policy's id column.")
        matched = self._match(labels, id_column)
        if not matched:
            raise DataError(f"None of the {len(labels)} label id(s) in {step.name!r} (e.g. "
                            f"{', '.join(repr(v) for v in labels[id_column][:3].tolist())}) matches a row of an "
                            "earlier batch of this source.",
                            hint="Check that the labels belong to batches already processed, and the id column.")
        done: list[int] = []
        warned: list[tuple[_Window, tuple[str, ...]]] = []
        last: tuple[Any, ...] | None = None
        eval_frames = []
        for window in matched:
            rows = labels[labels[id_column].isin(window.batch[id_column])]
            checked = check_model(f"{s.model}/{window.version}", window.batch, labels=rows, id_column=id_column,
                                  step=window.window, record=False, **self._check_options(window.version))
            status, reasons = self._loop_status(checked.result)
            self._update_window(window, checked, status, reasons)
            done.append(window.window)
            if status == "warn":
                warned.append((window, reasons))
            last = (checked, status, reasons, window)
            target = self._target(window.version)
            if target is not None and window.version == champion:
                joined = window.batch.merge(rows[[id_column, target]], on=id_column, how="inner",
                                            suffixes=("_batch", ""))
                eval_frames.append(joined)
        assert last is not None
        checked, status, reasons, window = last
        windows = self._windows(champion)
        incident = self._incident(windows)
        latest = windows[-1] if windows else window
        waiting = bool(eval_frames) and self._candidate(champion) is not None  # see _batch: fresh rows only
        actions = self._act(champion, incident, latest.run_id, latest.status, latest.reasons) if incident else ()
        for warned_window, warned_reasons in warned:
            actions += self._window_alerts(warned_window.version, f"w{warned_window.window}", "warn",
                                           warned_window.run_id, warned_reasons)
        run_id = self._record_labels(step, champion, done, status)
        decision = None
        if waiting:
            import pandas as pd

            decision = self._promote(champion, pd.concat(eval_frames, ignore_index=True), self._target(champion))
        return StepRecord(
            kind="labels", name=step.name, model=s.model, version=champion, status=status, reasons=reasons,
            window=None, drifted=checked.result.drifted_columns, performance=checked.result.performance,
            incident=incident, actions=actions, decision=None if decision is None else decision[0],
            decision_run_id=None if decision is None else decision[1], run_id=run_id,
            labelled_windows=tuple(done),
        )

    def _match(self, labels: pd.DataFrame, id_column: str) -> list[_Window]:
        """The recent windows whose batch rows share ids with the labels (batch files re-read)."""
        from mlflow_ext._io import read_frame

        found = []
        wanted = set(labels[id_column].tolist())
        for window in self._windows(None)[-50:]:
            if not window.source_path or not Path(window.source_path).is_file():
                continue
            try:
                batch = read_frame(window.source_path)
            except DataError:
                continue
            if id_column in batch.columns and wanted & set(batch[id_column].tolist()):
                found.append(replace(window, batch=batch))
        return found

    def _update_window(self, window: _Window, checked: Any, status: str, reasons: tuple[str, ...]) -> None:
        """Log the labelled performance to the batch's own run at its window, and its new status."""
        from mlflow.entities import Metric, RunTag

        from mlflow_ext.model_check import metric_points

        now = int(time.time() * 1000)
        points = [p for p in metric_points(checked, now) if p.key.startswith(f"{P}perf.")]
        tags = {f"{P}loop_status": status, f"{P}status": checked.result.status, f"{P}labelled": "true",
                f"{P}reasons": json.dumps(list(reasons))[:5000]}
        with mlflow_errors(f"record the labels of window {window.window}"):
            client().log_batch(window.run_id, metrics=[Metric(p.key, p.value, now, p.step) for p in points],
                               tags=[RunTag(k, v) for k, v in tags.items()], synchronous=True)

    def _record_labels(self, step: Step, champion: str, windows: Sequence[int], status: str) -> str:
        s = self.settings
        return log_run(
            monitoring_experiment(s.model), run_name=f"labels {step.name}",
            tags={f"{P}kind": "labels", f"{P}model": s.model, f"{P}version": champion,
                  f"{P}status": status, f"{P}windows": json.dumps(list(windows)), **self._source_tags(step)},
            description=f"Labels {step.name} joined to window(s) {', '.join(map(str, windows))}.",
        )

    # -- errors ------------------------------------------------------------------------------------

    def _record_error(self, step: Step, champion: str, exc: MlflowExtError) -> StepRecord:
        """Bad input: recorded as an error run (so it is processed and reported, never retried)."""
        s = self.settings
        kind = "check" if step.kind == "batch" else "labels"
        reasons = (exc.message,) if exc.hint is None else (exc.message, exc.hint)
        window = self._next_window() if kind == "check" else None
        tags = {f"{P}kind": kind, f"{P}model": s.model, f"{P}version": champion, f"{P}status": "error",
                f"{P}loop_status": "error", f"{P}reasons": json.dumps(list(reasons))[:5000],
                **self._source_tags(step)}
        if window is not None:
            tags[f"{P}step"] = str(window)
        run_id = log_run(monitoring_experiment(s.model), run_name=f"{step.kind} {step.name} (error)", tags=tags,
                         description=f"ERROR: {exc.message}",
                         artifacts={"error.json": to_json_bytes({"step": step.name, "reasons": list(reasons)})})
        # A labels file has no window: its error run names the occasion.
        occasion = f"w{window}" if window is not None else f"run-{run_id}"
        actions = self._window_alerts(champion, occasion, "error", run_id, reasons)
        return StepRecord(kind=step.kind, name=step.name, model=s.model, version=champion, status="error",
                          reasons=reasons, window=window, run_id=run_id, actions=actions)

    # -- reading state -----------------------------------------------------------------------------

    def _champion(self) -> str:
        from mlflow_ext.tracking import resolve_version

        return str(resolve_version(f"{self.settings.model}@{self.settings.alias}").version)

    def _version_tags(self, version: str) -> dict[str, str]:
        with mlflow_errors(f"read version {version} of {self.settings.model!r}"):
            return dict(client().get_model_version(self.settings.model, version).tags or {})

    def _target(self, version: str) -> str | None:
        return self._version_tags(version).get(f"{P}target")

    def _windows(self, version: str | None) -> list[_Window]:
        """The model's check windows (of one version, or all) in window order."""
        s = self.settings
        experiment = monitoring_experiment(s.model)
        query = f"tags.`{P}kind` = 'check'"
        if version is not None:
            query += f" and tags.`{P}version` = '{version}'"
        with mlflow_errors(f"read the checks of {s.model!r}"):
            runs = client().search_runs([experiment], filter_string=query, max_results=_WINDOWS_READ,
                                        order_by=["attributes.start_time DESC"])
        windows = []
        for run in runs:
            tags = run.data.tags
            try:
                reasons = tuple(json.loads(tags.get(f"{P}reasons", "[]")))
            except ValueError:
                reasons = ()
            windows.append(_Window(
                window=int(tags.get(f"{P}step", "0")), run_id=str(run.info.run_id),
                version=tags.get(f"{P}version", ""),
                status=tags.get(f"{P}loop_status") or tags.get(f"{P}status", "error"),
                reasons=reasons, source_path=tags.get(f"{P}source_path"),
            ))
        return sorted(windows, key=lambda w: w.window)

    def _next_window(self) -> int:
        windows = self._windows(None)
        return windows[-1].window + 1 if windows else 0

    def _incident(self, windows: Sequence[_Window]) -> str | None:
        opened = open_incident([(w.window, w.status) for w in windows], self.settings.incident_n,
                               self.settings.incident_m)
        return None if opened is None else f"w{opened}"

    # -- recording ---------------------------------------------------------------------------------

    def _source_tags(self, step: Step) -> dict[str, str]:
        tags = {f"{P}source_file": step.identity[:5000]}
        if step.path is not None:
            tags[f"{P}source_path"] = str(step.path.resolve())
            tags[f"{P}source_dir"] = str(step.path.resolve().parent)
        return tags

    def _tag(self, run_id: str, status: str, incident: str | None, reasons: Sequence[str]) -> None:
        from mlflow.entities import RunTag

        tags = {f"{P}loop_status": status, f"{P}incident": incident or "",
                f"{P}reasons": json.dumps(list(reasons))[:5000]}
        with mlflow_errors(f"tag the check run {run_id}"):
            client().log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()], synchronous=True)

    @staticmethod
    def _pause() -> None:
        pause = os.environ.get(_PAUSE_ENV)
        if pause:
            time.sleep(float(pause))

    # -- actions -----------------------------------------------------------------------------------

    def _act(self, champion: str, incident: str, check_run_id: str, status: str,
             reasons: Sequence[str]) -> tuple[ActionRecord, ...]:
        s = self.settings
        records = [self._once("alert", spec, champion, incident, check_run_id, status, reasons, slot=index)
                   for index, spec in enumerate(s.alerts) if "alert" in spec.on]
        if s.retrain is not None:
            blocked = self._cooldown(incident)
            if blocked is not None:
                key = _action_key(s.model, champion, "retrain", incident)
                records.append(ActionRecord("retrain", s.retrain.name, incident, key, "cooldown", error=blocked))
            else:
                records.append(self._once("retrain", s.retrain, champion, incident, check_run_id, status, reasons))
        return tuple(records)

    def _window_alerts(self, champion: str, occasion: str, status: str, run_id: str,
                       reasons: Sequence[str]) -> tuple[ActionRecord, ...]:
        """The alerts whose ``on`` lists a warn or error status: once per window (``occasion``)."""
        if status not in ("warn", "error"):
            return ()
        return tuple(self._once("alert", spec, champion, f"{occasion}:{status}", run_id, status, reasons, slot=index)
                     for index, spec in enumerate(self.settings.alerts) if status in spec.on)

    def _once(self, cause: str, spec: HookSpec, champion: str, incident: str, check_run_id: str, status: str,
              reasons: Sequence[str], *, slot: int = 0) -> ActionRecord:
        """Claim the action's key, fire it, record the outcome; or report what became of it elsewhere."""
        from mlflow_ext import _registry
        from mlflow_ext.hooks import Event, fire

        s = self.settings
        # Several alert hooks may serve one incident: the hook's name is part of an alert's cause, and
        # its rank among the alerts of that name from the second on (two webhooks, two channels).
        twins = sum(1 for other in s.alerts[:slot] if other.name == spec.name)
        full_cause = cause if cause == "retrain" else f"{cause}:{spec.name}" + (f"#{twins + 1}" if twins else "")
        key = _action_key(s.model, champion, full_cause, incident)
        held = _claims.claim(key, owner=self._owner(), payload={"hook": spec.name, "cause": full_cause})
        if held is None:
            return self._elsewhere(cause, spec, champion, incident, key)
        event = Event.create(model=s.model, version=champion, cause=cause, incident=incident,
                             check_run_id=check_run_id, status=status, reasons=reasons,
                             extra={"hook": spec.name})
        hook = _registry.create("hook", spec.name, dict(spec.options), where=f"{s.model}: {cause} hook")
        outcome = fire(hook, event, retries=spec.retries, backoff=spec.backoff, timeout=spec.timeout)
        run_id = self._record_outcome(cause, spec, champion, incident, key, held.claimed_at, outcome, event)
        return ActionRecord(cause, spec.name, incident, key, outcome.status, outcome.attempts, outcome.error, run_id)

    def _elsewhere(self, cause: str, spec: HookSpec, champion: str, incident: str, key: str) -> ActionRecord:
        """The key was claimed before: its outcome, or 'in progress', or (lease over) 'unknown'."""
        recorded = self._outcome_run(key)
        if recorded is not None:
            return ActionRecord(cause, spec.name, incident, key, "done-elsewhere",
                                error=recorded.data.tags.get(f"{P}outcome"), run_id=recorded.info.run_id)
        held = _claims.read_claim(key)
        if held is None or held.age_seconds() < spec.lease():
            return ActionRecord(cause, spec.name, incident, key, "in-progress",
                                error=None if held is None else f"claimed by {held.owner}")
        # The claimer died between claim and outcome: record that once, never fire again.
        if _claims.claim(f"{key}:unknown", owner=self._owner()) is None:
            return ActionRecord(cause, spec.name, incident, key, "done-elsewhere", error="unknown")
        from mlflow_ext.hooks import HookOutcome

        error = (f"Outcome unknown: the monitor {held.owner} claimed this action at "
                 f"{held.claimed_at.isoformat(timespec='seconds')} and stopped before recording it. "
                 "It is not fired again (at most once).")
        outcome = HookOutcome(status="unknown", attempts=0, duration_s=0.0, event_id="",
                              idempotency_key="", error=error)
        run_id = self._record_outcome(cause, spec, champion, incident, key, held.claimed_at, outcome, None)
        return ActionRecord(cause, spec.name, incident, key, "unknown", 0, error, run_id)

    def _outcome_run(self, key: str) -> Any:
        with mlflow_errors(f"read the outcome of {key!r}"):
            runs = client().search_runs([monitoring_experiment(self.settings.model)],
                                        filter_string=f"tags.`{P}kind` = 'hook' and tags.`{P}action_key` = '{key}'",
                                        max_results=1)
        return runs[0] if runs else None

    def _record_outcome(self, cause: str, spec: HookSpec, champion: str, incident: str, key: str,
                        claimed_at: datetime, outcome: HookOutcome, event: Any) -> str:
        """The outcome as a run (kind=hook); retried, because the action already happened."""
        s = self.settings
        tags = {f"{P}kind": "hook", f"{P}model": s.model, f"{P}version": champion, f"{P}cause": cause,
                f"{P}hook": spec.name, f"{P}incident": incident, f"{P}action_key": key,
                f"{P}outcome": outcome.status, f"{P}attempts": str(outcome.attempts),
                f"{P}claimed_at_ms": str(int(claimed_at.timestamp() * 1000)), f"{P}owner": self._owner()}
        if outcome.error:
            tags[f"{P}error"] = outcome.error[:5000]
        artifacts: dict[str, bytes | str | Path] = {"outcome.json": to_json_bytes(outcome.to_dict()),
                                                    "output.txt": outcome.output}
        if event is not None:
            artifacts["event.json"] = event.to_json(indent=2)
        description = f"{cause} via {spec.name}: {outcome.status.upper()}" + (
            f" ({outcome.error})" if outcome.error else "")
        for attempt in range(4):
            try:
                return log_run(monitoring_experiment(s.model), run_name=f"{cause} {incident} {outcome.status}",
                               tags=tags, artifacts=artifacts, description=description)
            except TrackingError:
                if attempt == 3:
                    raise
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _cooldown(self, incident: str) -> str | None:
        """Why a new retrain must wait, or None."""
        s = self.settings
        with mlflow_errors(f"read the retrains of {s.model!r}"):
            runs = client().search_runs([monitoring_experiment(s.model)],
                                        filter_string=f"tags.`{P}kind` = 'hook' and tags.`{P}cause` = 'retrain'",
                                        order_by=["attributes.start_time DESC"], max_results=1)
        if not runs or runs[0].data.tags.get(f"{P}incident") == incident:
            return None  # nothing fired yet, or this incident's own (its claim decides)
        tags = runs[0].data.tags
        fired_ms = int(tags.get(f"{P}claimed_at_ms", "0"))
        age = time.time() - fired_ms / 1000
        if age < s.cooldown:
            return f"cooldown: the last retrain fired {age:.0f} s ago; the cooldown is {s.cooldown:g} s."
        if tags.get(f"{P}outcome") == "failed":
            return None
        with mlflow_errors(f"read the versions of {s.model!r}"):
            versions = client().search_model_versions(f"name = '{s.model}'")
        produced = [v for v in versions if int(v.creation_timestamp or 0) >= fired_ms]
        if not produced:
            return "cooldown: the last retrain has not produced a version yet."
        undecided = [str(v.version) for v in produced
                     if (v.tags or {}).get(f"{P}last_decision.outcome") not in ("promoted", "refused")]
        if undecided:
            return f"cooldown: version {', '.join(undecided)} from the last retrain is not decided yet."
        return None

    # -- promotion ---------------------------------------------------------------------------------

    def _candidate(self, champion: str) -> str | None:
        s = self.settings
        with mlflow_errors(f"read the versions of {s.model!r}"):
            registered = client().get_registered_model(s.model)
            versions = client().search_model_versions(f"name = '{s.model}'")
        challenger = (registered.aliases or {}).get("challenger")
        if challenger is not None and str(challenger) != champion:
            return str(challenger)
        fresh = [int(v.version) for v in versions
                 if int(v.version) > int(champion) and f"{P}profile" in (v.tags or {})
                 and (v.tags or {}).get(f"{P}last_decision.outcome") not in ("promoted", "refused")]
        return str(max(fresh)) if fresh else None

    def _promote(self, champion: str, frame: pd.DataFrame, target: str | None) -> tuple[str, str | None] | None:
        """Evaluate a waiting candidate on this labelled batch; ('promoted v3', run id) or None."""
        from mlflow_ext.promotion import promote

        candidate = self._candidate(champion)
        if candidate is None or target is None or target not in frame.columns:
            return None
        decision = promote(self.settings.model, candidate, to=self.settings.alias, policy=self.settings.promotion,
                           eval_data=frame, labels=target,
                           reason=f"monitoring: fresh labelled batch against champion v{champion}")
        if decision.outcome == "promoted" and not self.settings.follow_reference:
            # Written after the alias moved: a crash in between leaves the new champion checked
            # against its own profile (what "follow" does), never against nothing.
            kept = self._version_tags(champion).get(REFERENCE_VERSION_TAG) or champion
            set_version_tags(self.settings.model, candidate, {REFERENCE_VERSION_TAG: kept})
        return f"{decision.outcome} v{candidate}", decision.run_id


@dataclass(frozen=True)
class _Window:
    window: int
    run_id: str
    version: str
    status: str
    reasons: tuple[str, ...] = ()
    source_path: str | None = None
    batch: Any = field(default=None, compare=False, repr=False)


def _action_key(model: str, version: str, cause: str, incident: str) -> str:
    return f"action:{model}:{version}:{cause}:{incident}"


def monitor(
    policy: Any,
    data: str | Path | pd.DataFrame,
    *,
    labels: str | Path | pd.DataFrame | None = None,
    model: str | None = None,
    settings: LoopSettings | None = None,
) -> tuple[StepRecord, ...]:
    """Process one batch (and then its labels): check, record, decide, act. Returns the step records.

    ``policy`` is a policy file or a loaded Policy (ignored when ``settings`` are given).
    """

    if settings is None:
        from mlflow_ext.policy import load_policy

        loaded = load_policy(policy) if isinstance(policy, (str, Path)) else policy
        settings = LoopSettings.from_policy(loaded, model)
    loop = Loop(settings=settings)
    steps = [_as_step("batch", data)]
    if labels is not None:
        steps.append(_as_step("labels", labels))
    return tuple(loop.process(step) for step in steps)


def _as_step(kind: str, data: str | Path | pd.DataFrame) -> Step:
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return Step(kind=kind, name=f"{kind} frame", identity=f"frame:{uuid.uuid4().hex}", frame=data)
    path = Path(data).resolve()
    stat = path.stat() if path.exists() else None
    identity = f"{path}:{stat.st_size}:{stat.st_mtime_ns}" if stat else str(path)
    return Step(kind=kind, name=path.name, identity=identity, path=path)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


Callback = Callable[[StepRecord], None]
