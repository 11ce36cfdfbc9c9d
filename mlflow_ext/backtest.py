"""Backtest: replay a policy over an ordered history of batches and late labels, in a throw-away store.

The history is a TOML manifest::

    version = 1
    model = "churn"                   # optional: default the policy's only model
    id_column = "customer_id"         # optional: default the policy's id_column; joins labels to batches
    target = "churned"                # the label column of the training data and of the labels files
    train = "train.py:train"          # optional (--train): path/to/file.py:function or package.module:function

    [training]
    data = "train.parquet"            # what the initial model is trained on (features, target, id)

    [[steps]]
    at = 0                            # increasing integers or timestamps
    batch = "batches/week-00.parquet" # a features batch (Parquet or CSV); its name is the file stem
    [[steps]]
    at = 1
    batch = "batches/week-01.parquet"
    labels = [{ batch = "week-00", file = "labels/week-00.parquet" }]   # labels of an earlier batch

Paths are relative to the manifest. Everything is validated before anything runs: every file
exists and is tabular, ``at`` increases, labels name an earlier batch whose rows they match by
the id column, and the training function imports.

The replay is the real loop (``monitor.Loop.process``, as ``watch`` runs it) against a fresh sqlite
store in a temporary folder (``keep`` keeps it for ``mlflow ui``): the training function (decorated
with ``@mlflow_ext.track``) trains version 1 on the training data, which is promoted; then each
step's labels are processed (oldest batch first) and then its batch. Two hooks are swapped, because
a backtest must not page anyone or start real jobs: alerts are recorded instead of sent, and a
retrain calls the training function with the training data followed by the labelled rows of every
batch labelled so far (oldest batch first). The policy's promotion rules then decide the new version
on the next labelled batch, as in production. Cooldowns are wall-clock durations and the replay
takes minutes, so a cooldown longer than the replay allows one retrain.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow_ext.checks import PerformanceMetric
from mlflow_ext.errors import ConfigError, DataError
from mlflow_ext.promotion import RuleOutcome

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    import pandas as pd

    from mlflow_ext.hooks import Event
    from mlflow_ext.monitor import LoopSettings, StepRecord

__all__ = [
    "BacktestResult",
    "DecisionSummary",
    "History",
    "HistoryStep",
    "LabelsRef",
    "TimelineEntry",
    "backtest",
    "describe_decision",
    "describe_performance",
    "describe_retrain",
    "load_history",
    "load_training_function",
    "render_html",
    "write_manifest",
]

MANIFEST_VERSION = 1
_RETRAIN_FUNCTION = "mlflow_ext.backtest:_retrain_hook"
_ALERT_FUNCTION = "mlflow_ext.backtest:_alert_hook"


# -- the manifest ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelsRef:
    """Labels that arrive at a step for an earlier batch (named by its file stem)."""

    batch: str
    path: Path


@dataclass(frozen=True)
class HistoryStep:
    """One step of the history: a batch, labels of earlier batches, or both."""

    at: int | datetime | date
    name: str | None  # the batch's name (its file stem), None for a labels-only step
    batch: Path | None
    labels: tuple[LabelsRef, ...] = ()


@dataclass(frozen=True)
class History:
    """A validated history manifest: files resolved, order and references checked."""

    path: Path
    model: str | None
    id_column: str | None
    target: str
    train: str | None
    training: Path
    steps: tuple[HistoryStep, ...]
    frames: Mapping[Path, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    def frame(self, path: Path) -> pd.DataFrame:
        """A file of the manifest as read (once) during validation."""
        return self.frames[path]

    def batch_path(self, name: str) -> Path:
        return next(s.batch for s in self.steps if s.name == name and s.batch is not None)


class _Fields:
    """Reads one manifest; every error names the file and the field."""

    def __init__(self, file: str, base: Path) -> None:
        self.file = file
        self.base = base
        self.frames: dict[Path, pd.DataFrame] = {}

    def error(self, where: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"{self.file}: {where}: {message}", hint=hint)

    def keys(self, table: Any, allowed: Sequence[str], where: str) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise self.error(where, f"expected a table, got {table!r}.")
        unknown = [k for k in table if k not in allowed]
        if unknown:
            raise self.error(f"{where}.{unknown[0]}" if where else unknown[0],
                             f"unknown key. Valid keys: {', '.join(allowed)}.")
        return table

    def text(self, table: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                raise self.error(where, f"missing the key {key!r}.")
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"{where}.{key}" if where else key, f"expected a non-empty string, got {value!r}.")
        return value

    def file_field(self, value: Any, where: str) -> Path:
        from mlflow_ext._io import read_frame

        if not isinstance(value, str) or not value.strip():
            raise self.error(where, f"expected a file path, got {value!r}.")
        path = (self.base / value).resolve()
        if not path.is_file():
            raise self.error(where, f"file {value!r} not found (looked for {path}).",
                             hint="Paths in a manifest are relative to the manifest's folder.")
        if path not in self.frames:
            try:
                self.frames[path] = read_frame(path)
            except DataError as exc:
                raise self.error(where, exc.message, hint=exc.hint) from exc
        return path


def load_history(path: str | Path) -> History:
    """Read and validate a history manifest (files, order, label references); ConfigError naming the field."""
    file = str(path)
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"No history manifest at {file!r}.",
                          hint="Give the path of a history TOML file; see recipes/churn/generate.py.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the history manifest {file!r}: {exc}.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}.", hint="Fix the syntax at that line and column.") from exc
    f = _Fields(file, Path(path).resolve().parent)
    top = f.keys(document, ("version", "model", "id_column", "target", "train", "training", "steps"), "")
    if top.get("version", MANIFEST_VERSION) != MANIFEST_VERSION:
        raise f.error("version", f"this mlflow-ext reads history version {MANIFEST_VERSION}, got "
                                 f"{top['version']!r}.")
    target = f.text(top, "target", "(top level)", required=True)
    training = f.keys(top.get("training"), ("data",), "training") if "training" in top else None
    if training is None or "data" not in training:
        raise f.error("training.data", "missing: the file the initial model is trained on.",
                      hint='Add [training] with data = "train.parquet".')
    training_path = f.file_field(training["data"], "training.data")
    raw_steps = top.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise f.error("steps", "expected at least one [[steps]] table.")
    steps: list[HistoryStep] = []
    names: dict[str, int] = {}
    for index, raw in enumerate(raw_steps):
        where = f"steps[{index}]"
        table = f.keys(raw, ("at", "batch", "labels"), where)
        at = table.get("at")
        if isinstance(at, bool) or not isinstance(at, (int, datetime, date)):
            raise f.error(f"{where}.at", f"expected an integer or a timestamp, got {at!r}.")
        if steps:
            before = steps[-1].at
            if type(before) is not type(at) or not at > before:  # type: ignore[operator]
                raise f.error(f"{where}.at", f"steps must be in order: {at!r} does not come after "
                                             f"steps[{index - 1}].at = {before!r}.",
                              hint="Sort the steps by 'at' (increasing integers or timestamps).")
        batch = name = None
        if "batch" in table:
            batch = f.file_field(table["batch"], f"{where}.batch")
            name = batch.stem
            if name in names:
                raise f.error(f"{where}.batch", f"a batch named {name!r} is already in steps[{names[name]}]; "
                                                "batch names (file stems) must be unique.")
        labels_raw = table.get("labels", [])
        labels_list = [labels_raw] if isinstance(labels_raw, dict) else labels_raw
        if not isinstance(labels_list, list):
            raise f.error(f"{where}.labels", f"expected a list of {{ batch, file }} tables, got {labels_raw!r}.")
        labels = []
        for j, entry in enumerate(labels_list):
            spot = f"{where}.labels[{j}]"
            entry = f.keys(entry, ("batch", "file"), spot)
            for_batch = f.text(entry, "batch", spot, required=True)
            assert for_batch is not None
            if for_batch not in names:
                known = ", ".join(names) or "none yet"
                raise f.error(f"{spot}.batch", f"no earlier batch named {for_batch!r}; earlier batches: {known}.",
                              hint="Labels arrive after their batch: name the file stem of an earlier step's batch.")
            if "file" not in entry:
                raise f.error(spot, "missing the key 'file'.")
            labels.append(LabelsRef(batch=for_batch, path=f.file_field(entry["file"], f"{spot}.file")))
        if batch is None and not labels:
            raise f.error(where, "a step needs a batch, labels, or both.")
        if name is not None:
            names[name] = index
        steps.append(HistoryStep(at=at, name=name, batch=batch, labels=tuple(labels)))
    return History(path=Path(path).resolve(), model=f.text(top, "model", ""), id_column=f.text(top, "id_column", ""),
                   target=target or "", train=f.text(top, "train", ""), training=training_path, steps=tuple(steps),
                   frames=f.frames)


def _check_columns(history: History, id_column: str | None, file: str) -> None:
    """The id column in every batch and labels file, the target in the training data and the labels,
    and label ids that belong to their batch (and to no other)."""
    def error(where: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"{file}: {where}: {message}", hint=hint)

    if history.target not in history.frame(history.training).columns:
        raise error("training.data", f"the training data has no target column {history.target!r}; columns: "
                                     f"{', '.join(map(str, history.frame(history.training).columns[:10]))}.")
    has_labels = any(step.labels for step in history.steps)
    if id_column is None:
        if has_labels:
            raise error("id_column", "labels are joined to batches by an id column, and neither the manifest "
                                     "nor the policy names one.", hint='Add id_column = "..." to the manifest.')
        return
    owner: dict[Any, str] = {}
    for index, step in enumerate(history.steps):
        if step.batch is not None:
            frame = history.frame(step.batch)
            if id_column not in frame.columns:
                raise error(f"steps[{index}].batch", f"the batch {step.name!r} has no id column {id_column!r}.")
            for value in frame[id_column].tolist():
                if value in owner:
                    raise error(f"steps[{index}].batch", f"the id {value!r} of batch {step.name!r} is also in "
                                                         f"batch {owner[value]!r}; ids must be unique across batches.")
                owner[value] = str(step.name)
        for j, ref in enumerate(step.labels):
            frame = history.frame(ref.path)
            spot = f"steps[{index}].labels[{j}].file"
            missing = [c for c in (id_column, history.target) if c not in frame.columns]
            if missing:
                raise error(spot, f"the labels {ref.path.name!r} have no column {missing[0]!r}; they need "
                                  f"{id_column!r} (id) and {history.target!r} (target).")
            strays = [v for v in frame[id_column].tolist() if owner.get(v) != ref.batch]
            if strays:
                raise error(spot, f"{len(strays)} of {len(frame)} label id(s) are not rows of batch {ref.batch!r}, "
                                  f"e.g. {strays[0]!r}.")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise ConfigError(f"write_manifest: cannot write {value!r} ({type(value).__name__}) to TOML.")


def write_manifest(path: str | Path, *, target: str, training: str, steps: Sequence[Mapping[str, Any]],
                   model: str | None = None, id_column: str | None = None, train: str | None = None,
                   comment: str | None = None) -> Path:
    """Write a history manifest (the format ``load_history`` reads); its path."""
    lines = [f"# {line}" for line in (comment or "").splitlines()]
    lines.append(f"version = {MANIFEST_VERSION}")
    for key, value in (("model", model), ("id_column", id_column), ("target", target), ("train", train)):
        if value is not None:
            lines.append(f"{key} = {_toml(value)}")
    lines += ["", "[training]", f"data = {_toml(training)}"]
    for step in steps:
        lines += ["", "[[steps]]", *(f"{k} = {_toml(v)}" for k, v in step.items())]
    target_path = Path(path)
    target_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target_path


# -- the training function ----------------------------------------------------------------------------


def load_training_function(spec: str, *, base: str | Path = ".") -> Callable[[pd.DataFrame], Any]:
    """The function ``path/to/file.py:function`` (relative to ``base``) or ``package.module:function``."""
    module_part, _, attr = spec.rpartition(":")
    if not module_part or not attr:
        raise ConfigError(f"The training function {spec!r} is not of the form 'path/to/train.py:function' or "
                          "'package.module:function'.")
    if module_part.endswith(".py"):
        file = (Path(base) / module_part).resolve()
        if not file.is_file():
            raise ConfigError(f"The training function {spec!r}: no file {str(file)!r}.")
        name = f"_mlflow_ext_train_{hashlib.sha1(str(file).encode()).hexdigest()[:12]}"
        module = sys.modules.get(name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(name, file)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module
            try:
                loader_spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[name]
                raise ConfigError(f"The training function {spec!r}: importing {str(file)!r} failed: "
                                  f"{type(exc).__name__}: {exc}") from exc
    else:
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise ConfigError(f"The training function {spec!r}: cannot import {module_part!r}: {exc}.",
                              hint="Install the package, or give a file: path/to/train.py:function.") from exc
    function = getattr(module, attr, None)
    if not callable(function):
        raise ConfigError(f"The training function {spec!r}: the module has no function {attr!r}.")
    return function  # type: ignore[no-any-return]


# -- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionSummary:
    """A promotion decision taken during the replay, with every rule's result."""

    candidate: str
    outcome: str  # promoted | refused
    champion_before: str | None
    message: str
    rules: tuple[RuleOutcome, ...]
    run_id: str | None = None


@dataclass(frozen=True)
class TimelineEntry:
    """One processed input of the replay: what the loop saw and did."""

    step: int | str  # the manifest's `at` (timestamps as ISO text)
    kind: str  # batch | labels | train
    name: str  # the batch (for labels: the batch they label)
    version: str | None  # the champion at that time
    status: str  # ok | warn | alert | error
    reasons: tuple[str, ...] = ()
    drifted: tuple[str, ...] = ()
    performance: tuple[PerformanceMetric, ...] = ()
    incident: str | None = None
    alerts: tuple[str, ...] = ()  # the policy's alert hooks that would have fired
    retrain: str | None = None  # ok | failed | cooldown | ... (a retrain fired or held at this step)
    retrained_version: str | None = None
    retrain_error: str | None = None
    decision: DecisionSummary | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class BacktestResult:
    """The timeline of a replay and what it came to."""

    model: str
    policy: str
    history: str
    initial_version: str
    entries: tuple[TimelineEntry, ...]
    store: str | None = None  # the kept store's folder

    @property
    def incidents(self) -> tuple[str, ...]:
        """The incidents opened, in order."""
        return tuple(dict.fromkeys(e.incident for e in self.entries if e.incident))

    @property
    def retrains(self) -> tuple[str, ...]:
        """The versions registered by retrains (a failed retrain adds none)."""
        return tuple(e.retrained_version for e in self.entries if e.retrained_version)

    @property
    def retrains_fired(self) -> int:
        return sum(1 for e in self.entries if e.retrain in ("ok", "failed"))

    @property
    def alerts_fired(self) -> int:
        return sum(1 for e in self.entries if e.alerts)

    @property
    def decisions(self) -> tuple[DecisionSummary, ...]:
        """The decisions the loop took (not the initial model's promotion)."""
        return tuple(e.decision for e in self.entries if e.decision is not None and e.kind != "train")

    @property
    def promotions(self) -> tuple[str, ...]:
        """The versions promoted during the replay (not counting the initial model)."""
        return tuple(d.candidate for d in self.decisions if d.outcome == "promoted")

    @property
    def ui_command(self) -> str | None:
        """The command that browses the kept store."""
        if self.store is None:
            return None
        return f"mlflow ui --backend-store-uri sqlite:///{Path(self.store, 'mlflow.db')}"

    def summary(self) -> str:
        """One sentence: what the policy would have done."""
        statuses = [e.status for e in self.entries]
        return (f"{len(self.entries)} inputs: {statuses.count('warn')} warn, {statuses.count('alert')} alert, "
                f"{statuses.count('error')} error; {len(self.incidents)} incident(s), {self.alerts_fired} alert(s) "
                f"fired, {self.retrains_fired} retrain(s), {len(self.promotions)} promotion(s), "
                f"{sum(1 for d in self.decisions if d.outcome == 'refused')} refusal(s).")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``--json`` prints)."""
        document = asdict(self)
        document.update(incidents=list(self.incidents), retrains=list(self.retrains),
                        promotions=list(self.promotions), summary=self.summary(), ui_command=self.ui_command)
        return document


# -- the replay --------------------------------------------------------------------------------------


@dataclass
class _Session:
    """What the swapped hooks of the running replay need: the data known so far and the trainer."""

    train: Callable[[pd.DataFrame], Any]
    train_spec: str
    model: str
    history: History
    id_column: str | None
    alert_hooks: tuple[str, ...] = ()  # the policy's alert hooks (the replay records instead of firing them)
    labelled: list[tuple[int, LabelsRef]] = field(default_factory=list)  # (batch order, labels)
    retrained: dict[str, str] = field(default_factory=dict)  # incident -> version
    alerts: list[Event] = field(default_factory=list)

    def known(self) -> pd.DataFrame:
        """The training data, then the labelled rows of each batch labelled so far, oldest batch first."""
        import pandas as pd

        frames = [self.history.frame(self.history.training)]
        target = self.history.target
        for _, ref in sorted(self.labelled, key=lambda item: item[0]):
            labels = self.history.frame(ref.path)[[self.id_column, target]].dropna(subset=[target])
            batch = self.history.frame(self.history.batch_path(ref.batch))
            frames.append(batch.drop(columns=[target], errors="ignore").merge(labels, on=self.id_column))
        return pd.concat(frames, ignore_index=True)

    def run_training(self, frame: pd.DataFrame) -> str:
        """Call the training function; the version it registered."""
        tracked = self.train(frame)
        version, name = getattr(tracked, "version", None), getattr(tracked, "model_name", None)
        if version is None:
            raise ConfigError(f"The training function {self.train_spec!r} returned a {type(tracked).__name__}, not "
                              "a registered version.",
                              hint="Decorate the function that fits the model with @mlflow_ext.track(...) and "
                                   "return what it returns.")
        if name != self.model:
            raise ConfigError(f"The training function {self.train_spec!r} registered the model {name!r}; the policy "
                              f"monitors {self.model!r}.", hint="Use the same model name in @track and the policy.")
        return str(version)


_SESSION: _Session | None = None
_LOCK = threading.Lock()


def _session() -> _Session:
    if _SESSION is None:
        raise ConfigError("No backtest is running: the backtest's hooks only work inside mlflow_ext.backtest().")
    return _SESSION


def _retrain_hook(event: Event) -> str:
    """The retrain of a replay: the training function on the training data plus the labels known so far."""
    session = _session()
    version = session.run_training(session.known())
    session.retrained[event.incident] = version
    return f"registered version {version} of {session.model!r}"


def _alert_hook(event: Event) -> str:
    """The alert of a replay: recorded, never sent."""
    _session().alerts.append(event)
    return "recorded by the backtest (nothing was sent)"


@contextlib.contextmanager
def _throwaway_store(folder: Path) -> Iterator[str]:
    """Point MLflow (and hooks' subprocesses) at a sqlite store in ``folder``; restore everything after.

    The working folder is ``folder`` meanwhile, so MLflow's default artifact root (./mlruns) lands
    there too and nothing is written where the caller runs.
    """
    import mlflow
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    if mlflow.active_run() is not None:
        raise ConfigError("A backtest cannot run inside an active MLflow run (it would log into another store).",
                          hint="Call it outside 'with mlflow.start_run():'.")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    # the explicitly set URIs (None when MLflow falls back to its default), to restore them as they were
    before = (tracking_utils._tracking_uri, registry_utils._registry_uri, os.getcwd(),
              {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")})
    os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_REGISTRY_URI"] = uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    os.chdir(folder)
    try:
        yield uri
    finally:
        os.chdir(before[2])
        for key, value in before[3].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        # None is what MLflow holds when nothing was set explicitly (its stubs don't admit it)
        mlflow.set_tracking_uri(before[0])  # type: ignore[arg-type]
        mlflow.set_registry_uri(before[1])  # type: ignore[arg-type]


def _store_folder(keep: str | Path | None) -> tuple[Path, bool]:
    if keep is None:
        return Path(tempfile.mkdtemp(prefix="mlflow-ext-backtest-")), False
    folder = Path(keep).resolve()
    if (folder / "mlflow.db").exists():
        raise ConfigError(f"{str(folder)!r} already holds a tracking store (mlflow.db); a backtest starts from an "
                          "empty one.", hint="Give another folder to --keep, or delete that one.")
    folder.mkdir(parents=True, exist_ok=True)
    return folder, True


_TEMPLATE: list[Path] = []  # an empty, migrated store made by the first backtest of this process


def _fresh_store(folder: Path) -> None:
    """Put an empty store in ``folder``: a copy of this process's template when there is one, because
    MLflow's schema migrations take seconds and a fresh store needs all of them."""
    import shutil
    import sqlite3

    db = folder / "mlflow.db"
    if not _TEMPLATE:
        from mlflow.tracking import MlflowClient

        template = Path(tempfile.mkdtemp(prefix="mlflow-ext-backtest-template-")) / "mlflow.db"
        uri = f"sqlite:///{template}"
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()
        _TEMPLATE.append(template)
    shutil.copy(_TEMPLATE[0], db)
    # The Default experiment was created with the template's artifact folder: point it at this one.
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:
        connection.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
                           (str(folder / "mlruns" / "0"),))


def _swap_hooks(settings: LoopSettings) -> LoopSettings:
    """The policy's settings with alerts recorded and the retrain calling the training function."""
    from mlflow_ext.monitor import HookSpec

    alerts = settings.alerts[:1] and (HookSpec(name="python", options={"function": _ALERT_FUNCTION},
                                               retries=0, timeout=60.0),)
    retrain = settings.retrain and HookSpec(name="python", options={"function": _RETRAIN_FUNCTION}, retries=0,
                                            timeout=settings.retrain.timeout)
    return replace(settings, alerts=alerts, retrain=retrain)


def backtest(
    policy: str | Path | Any,
    history: str | Path,
    *,
    train: str | None = None,
    model: str | None = None,
    keep: str | Path | None = None,
    on_step: Callable[[int, int, TimelineEntry], None] | None = None,
) -> BacktestResult:
    """Replay ``policy`` (a file or a loaded Policy) over the ``history`` manifest; the timeline.

    ``train`` (``path/to/train.py:function`` or ``package.module:function``) overrides the
    manifest's training function; ``model`` picks the policy's model (default: the manifest's, else
    the policy's only one); ``keep`` is a folder where the tracking store is kept (default: a
    temporary folder, deleted after). ``on_step(done, total, entry)`` is called after each input.
    Bad input (manifest, policy, training function) raises ConfigError before anything runs.
    """
    global _SESSION
    import shutil

    from mlflow_ext.monitor import LoopSettings
    from mlflow_ext.policy import load_policy

    manifest = load_history(history)
    loaded = load_policy(policy, check_environment=False) if isinstance(policy, (str, Path)) else policy
    settings = LoopSettings.from_policy(loaded, model or manifest.model)
    id_column = manifest.id_column or settings.id_column
    _check_columns(manifest, id_column, str(history))
    spec = train or manifest.train
    if spec is None:
        raise ConfigError(f"{history}: train: no training function.",
                          hint="Add train = \"train.py:train\" to the manifest or pass --train module:function.")
    function = load_training_function(spec, base=Path.cwd() if train else manifest.path.parent)
    session = _Session(train=function, train_spec=spec, model=settings.model, history=manifest, id_column=id_column,
                       alert_hooks=tuple(a.name for a in settings.alerts))
    settings = _swap_hooks(replace(settings, id_column=id_column))
    folder, kept = _store_folder(keep)
    if not _LOCK.acquire(blocking=False):
        raise ConfigError("Another backtest is running in this process.", hint="Run backtests one after another.")
    try:
        _SESSION = session
        _fresh_store(folder)
        with _throwaway_store(folder):
            entries, initial = _replay(manifest, settings, session, on_step)
    finally:
        _SESSION = None
        _LOCK.release()
        if not kept:
            shutil.rmtree(folder, ignore_errors=True)
    return BacktestResult(model=settings.model, policy=str(getattr(loaded, "path", policy)), history=str(history),
                          initial_version=initial, entries=tuple(entries), store=str(folder) if kept else None)


def _replay(manifest: History, settings: LoopSettings, session: _Session,
            on_step: Callable[[int, int, TimelineEntry], None] | None) -> tuple[list[TimelineEntry], str]:
    from mlflow_ext.monitor import Loop, Step
    from mlflow_ext.promotion import promote

    total = 1 + sum(len(s.labels) + (s.batch is not None) for s in manifest.steps)
    initial = session.run_training(manifest.frame(manifest.training))
    decision = promote(settings.model, initial, to=settings.alias, policy=settings.promotion,
                       reason="backtest: the initial model, trained on the history's training data")
    if not decision.promoted:
        raise DataError(f"The initial model (version {initial}) was refused by the policy's rules: {decision.message}",
                        hint="A backtest starts from a promoted champion: relax the rules or fix the training data.")
    first = manifest.steps[0].at
    entries = [TimelineEntry(step=_at(first), kind="train", name=manifest.training.stem, version=initial,
                             status="ok", reasons=(decision.message,), decision=_summary(decision.run_id))]
    if on_step is not None:
        on_step(1, total, entries[0])
    loop = Loop(settings=settings)
    order = {s.name: i for i, s in enumerate(manifest.steps) if s.name}
    for step in manifest.steps:
        inputs: list[tuple[Step, str]] = []
        for ref in step.labels:
            inputs.append((Step(kind="labels", name=ref.path.name, identity=f"backtest:{ref.path}", path=ref.path),
                           ref.batch))
        if step.batch is not None and step.name is not None:
            inputs.append((Step(kind="batch", name=step.name, identity=f"backtest:{step.batch}", path=step.batch),
                           step.name))
        for loop_step, name in inputs:
            if loop_step.kind == "labels":
                ref = next(r for r in step.labels if r.path == loop_step.path)
                session.labelled.append((order[ref.batch], ref))
            entries.append(_entry(step.at, name, loop.process(loop_step), session))
            if on_step is not None:
                on_step(len(entries), total, entries[-1])
    return entries, initial


def _at(value: int | datetime | date) -> int | str:
    return value if isinstance(value, int) else value.isoformat()


def _entry(at: int | datetime | date, name: str, record: StepRecord, session: _Session) -> TimelineEntry:
    alert_fired = any(a.cause == "alert" and a.status in ("ok", "failed") for a in record.actions)
    retrain = next((a for a in record.actions if a.cause == "retrain"), None)
    retrained = None
    if retrain is not None and retrain.status in ("ok", "failed"):
        retrained = session.retrained.get(retrain.incident)
    policy_alerts = session.alert_hooks if alert_fired else ()
    return TimelineEntry(
        step=_at(at), kind=record.kind, name=name, version=record.version, status=record.status,
        reasons=record.reasons, drifted=record.drifted, performance=record.performance, incident=record.incident,
        alerts=policy_alerts, retrain=None if retrain is None else retrain.status, retrained_version=retrained,
        retrain_error=None if retrain is None else retrain.error,
        decision=_summary(record.decision_run_id) if record.decision_run_id else None, run_id=record.run_id,
    )


def _summary(run_id: str | None) -> DecisionSummary | None:
    """The recorded decision of a run (its decision.json)."""
    if run_id is None:
        return None
    import mlflow.artifacts

    from mlflow_ext.tracking import mlflow_errors

    with mlflow_errors(f"read the decision run {run_id}"):
        document = mlflow.artifacts.load_dict(f"runs:/{run_id}/decision.json")
    rules = tuple(RuleOutcome(**{k: r.get(k) for k in ("rule", "passed", "observed", "bound", "message")})
                  for r in document.get("rules", ()))
    return DecisionSummary(candidate=str(document["candidate"]), outcome=str(document["outcome"]),
                           champion_before=document.get("champion_before"), message=str(document.get("message", "")),
                           rules=rules, run_id=run_id)


# -- the HTML report ---------------------------------------------------------------------------------


def render_html(result: BacktestResult) -> str:
    """A self-contained HTML report: summary, timeline plot (embedded PNG), timeline and decisions."""
    import base64

    from mlflow_ext.report import _COLORS, _CSS, _e, _png, _table

    plot = base64.b64encode(_png(_timeline_plot(result))).decode("ascii")
    rows, classes = [], []
    for e in result.entries:
        rows.append([_e(e.step), _e(e.kind), _e(e.name), _e(e.version or ""),
                     f'<b style="color:{_COLORS.get(e.status, _COLORS["unknown"])}">{_e(e.status.upper())}</b>',
                     _e(", ".join(e.drifted)), _e(describe_performance(e.performance)), _e(", ".join(e.alerts)),
                     _e(describe_retrain(e)), _e(describe_decision(e.decision))])
        classes.append("drifted" if e.status == "alert" else "")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Backtest: {_e(result.model)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Backtest of {_e(result.model)}</h1>",
        f'<div class="muted">policy {_e(result.policy)} · history {_e(result.history)}</div>',
        f'<div class="verdict" style="--c:{_COLORS["alert" if result.incidents else "ok"]}">'
        f'<div id="summary">{_e(result.summary())}</div></div>',
        "<h2>Timeline</h2>", f'<figure><img alt="timeline" src="data:image/png;base64,{plot}"></figure>',
        _table(("step", "input", "batch", "champion", "status", "drifted", "performance", "alerts", "retrain",
                "decision"), rows, classes),
    ]
    for d in result.decisions:
        parts.append(f"<h2>Decision: version {_e(d.candidate)} {_e(d.outcome)}</h2><p>{_e(d.message)}</p>")
        parts.append(_table(("rule", "passed", "observed", "bound", "message"),
                            [[_e(r.rule), "yes" if r.passed else "no", _e(r.observed), _e(r.bound), _e(r.message)]
                             for r in d.rules]))
    parts.append("</body></html>")
    return "\n".join(parts)


def describe_performance(metrics: Sequence[PerformanceMetric]) -> str:
    """Metrics as text: value, 95% interval, and whether it degraded."""
    parts = []
    for m in metrics[:2]:
        interval = "" if m.ci_low is None or m.ci_high is None else f" [{m.ci_low:.3f}, {m.ci_high:.3f}]"
        parts.append(f"{m.name} {m.value:.3f}{interval}{' degraded' if m.degraded else ''}")
    return "; ".join(parts)


def describe_retrain(e: TimelineEntry) -> str:
    """A retrain fired (or held) at this entry, as text; empty when none."""
    if e.retrain is None or e.retrain == "done-elsewhere":
        return ""
    if e.retrained_version:
        return f"v{e.retrained_version} registered"
    return f"{e.retrain}: {e.retrain_error}" if e.retrain_error else e.retrain


def describe_decision(d: DecisionSummary | None) -> str:
    """A decision as text: outcome, candidate, the rules that failed."""
    if d is None:
        return ""
    failed = [r.rule for r in d.rules if not r.passed]
    return f"{d.outcome} v{d.candidate}" + (f" ({', '.join(failed)} failed)" if failed else "")


def _timeline_plot(result: BacktestResult) -> Any:
    from mlflow_ext.report import _COLORS, _figure

    entries = result.entries
    figure = _figure(9.0, 4.6)
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.2, top=0.9, hspace=0.35)
    top, bottom = figure.add_subplot(2, 1, 1), figure.add_subplot(2, 1, 2)
    x = list(range(len(entries)))
    heights = [len(e.drifted) for e in entries]
    # a stub for inputs with no drifted column, so every status shows its colour
    top.bar(x, [max(h, 0.12) for h in heights], color=[_COLORS.get(e.status, _COLORS["unknown"]) for e in entries])
    marks = max(heights, default=0) + 0.6
    top.set_ylim(0, marks + 0.5)
    top.set_ylabel("drifted columns", fontsize=8)
    top.set_title("status per input (bar colour) · ▲ alert · dashed: retrain · ★ promotion", fontsize=9, loc="left")
    metric = next((m.name for e in entries for m in e.performance), None)
    if metric is not None:
        points = [(i, m) for i, e in enumerate(entries) for m in e.performance if m.name == metric]
        for i, m in points:
            low = m.ci_low if m.ci_low is not None else m.value
            high = m.ci_high if m.ci_high is not None else m.value
            color = _COLORS["alert"] if m.degraded else _COLORS["ok"]
            bottom.errorbar([i], [m.value], yerr=[[m.value - low], [high - m.value]], fmt="o", color=color, capsize=3)
        reference = next((m.reference for _, m in points if m.reference is not None), None)
        if reference is not None:
            bottom.axhline(reference, color="black", linewidth=1, linestyle=":", label="validation")
            bottom.legend(fontsize=7, loc="lower left")
        bottom.set_ylabel(metric, fontsize=8)
    for i, e in enumerate(entries):
        if e.alerts:
            top.scatter([i], [marks], marker="^", s=70, color=_COLORS["alert"], edgecolors="black", zorder=3)
        if e.retrained_version:
            for ax in (top, bottom):
                ax.axvline(i, color="#0969da", linestyle="--", linewidth=1)
            bottom.annotate(f"retrain v{e.retrained_version}", (i, 0.02), xycoords=("data", "axes fraction"),
                            fontsize=7, color="#0969da")
        if e.decision is not None and e.decision.outcome == "promoted" and e.kind != "train":
            for ax in (top, bottom):
                ax.axvline(i, color=_COLORS["ok"], linewidth=1.5)
            top.scatter([i], [marks], marker="*", s=140, color=_COLORS["ok"], edgecolors="black", zorder=3)
    labels = [f"{e.step}:{'L' if e.kind == 'labels' else 'B' if e.kind == 'batch' else 'T'}" for e in entries]
    for ax in (top, bottom):
        ax.set_xticks(x, labels if ax is bottom else [], fontsize=7, rotation=60)
        ax.set_xlim(-0.6, len(entries) - 0.4)
        ax.tick_params(labelsize=7)
    bottom.set_xlabel("step:input (T train, B batch, L labels)", fontsize=8)
    return figure
