"""@track: record what a training function produced in MLflow and register it as a new model version.

The decorated function keeps its signature; it is called as before, and the call returns a frozen
``Tracked`` (what the function returned, plus the model, version, run and model URI)::

    @mlflow_ext.track(model_name="churn", target="churned", validation="valid")
    def train(data: pd.DataFrame, valid: pd.DataFrame, C: float = 1.0) -> Pipeline:
        return make_pipeline(...).fit(data.drop(columns="churned"), data["churned"])

    tracked = train(frame, valid_frame)      # tracked.result is the pipeline, tracked.version "1"

The training function's contract:

- **Training data**: the argument named by ``train=``, by default the first argument whose value is a
  pandas DataFrame. When ``target=`` names one of its columns, that column is the label and the
  others are the features; otherwise every column is a feature (labels passed separately, e.g. ``y``;
  ``target=`` then only records the label's name). The frame is snapshotted before the call, so the
  function may change it.
- **Model**: the function returns a fitted scikit-learn estimator or pipeline, or an
  ``mlflow.pyfunc.PythonModel``; or a tuple, list or dict holding one (the first found, in order).
- **Validation data** (optional; without it no validation metrics are recorded): the argument named
  by ``validation=``, by default one named ``validation``, ``valid`` or ``X_val`` when given. Its
  labels are its ``target`` column, or the argument named by ``validation_labels=`` (default ``y_val``).
- **Task**: ``task=`` ("classification" | "regression"), else inferred from scikit-learn's
  ``is_classifier``; a PythonModel needs ``task=``.

What is recorded, on one run (a child run when a run is already active): the function's plain-value
arguments and the estimator's plain-value parameters (``model.<name>``) as params; the model with its
signature and input example; validation metrics ``mlflow_ext.val.<metric>``; under the artifact folder
``mlflow_ext/`` the training profile with its reference sample (``profile/``) and the model's outputs
on that sample (``predictions/``); with validation data, a performance estimator fitted on it
(``estimator/``: CBPE for a classifier with ``predict_proba``, DLE for a regressor; version tag
``mlflow_ext.estimator``, or ``mlflow_ext.estimator.missing`` saying why there is none, which never
fails training) and, for classifiers, ``plots/reliability.png``; lineage tags (git commit and dirty
flag, data fingerprint, mlflow-ext version). Only when all of it is logged is the model registered,
with the version tags that link it to its profile; if registering fails the new version is deleted
again. Exceptions from the function propagate unchanged; either way a failed call leaves its run FAILED and no version.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from mlflow_ext import _lineage, tracking
from mlflow_ext.errors import ConfigError, DataError, MlflowExtError, NotFoundError, TrackingError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion

__all__ = ["Tracked", "track"]

P = ParamSpec("P")
R = TypeVar("R")

TASKS = ("classification", "regression")
SERIALIZATIONS = ("skops", "cloudpickle")
KIND_TRAINING = "training"
MODEL_ARTIFACT = "model"
PREDICTION = "prediction"
PROBA_PREFIX = "proba_"
_VALIDATION_NAMES = ("validation", "valid", "X_val")
_INPUT_EXAMPLE_ROWS = 5
_SIGNATURE_ROWS = 500
_PLAIN = (bool, int, float, str)
T = tracking.TAG_PREFIX


@dataclass(frozen=True)
class Tracked(Generic[R]):
    """What a @track-decorated function returns: its own result and where the model was recorded."""

    result: R
    model: Any
    model_name: str
    version: str
    run_id: str
    model_uri: str  # models:/<name>/<version>


@dataclass(frozen=True)
class _Options:
    model_name: str | None
    experiment: str | None
    train: str | None
    target: str | None
    validation: str | None
    validation_labels: str | None
    task: str | None
    tags: Mapping[str, str]
    sample_size: int
    serialization: str
    pip_requirements: tuple[str, ...] | None


@overload
def track(func: Callable[P, R], /) -> Callable[P, Tracked[R]]: ...


@overload
def track(
    *,
    model_name: str | None = None,
    experiment: str | None = None,
    train: str | None = None,
    target: str | None = None,
    validation: str | None = None,
    validation_labels: str | None = None,
    task: str | None = None,
    tags: Mapping[str, str] | None = None,
    sample_size: int = 10_000,
    serialization: str = "skops",
    pip_requirements: Sequence[str] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, Tracked[R]]]: ...


def track(
    func: Callable[P, R] | None = None,
    /,
    *,
    model_name: str | None = None,
    experiment: str | None = None,
    train: str | None = None,
    target: str | None = None,
    validation: str | None = None,
    validation_labels: str | None = None,
    task: str | None = None,
    tags: Mapping[str, str] | None = None,
    sample_size: int = 10_000,
    serialization: str = "skops",
    pip_requirements: Sequence[str] | None = None,
) -> Callable[P, Tracked[R]] | Callable[[Callable[P, R]], Callable[P, Tracked[R]]]:
    """Record a training function's model, data profile and lineage in MLflow; register a new version.

    Use bare (``@track``) or with options: ``model_name`` (default: the function's name),
    ``experiment`` (default: MLflow's active experiment), ``train``, ``target``, ``validation``,
    ``validation_labels`` (argument and column names, see the module docs), ``task``, ``tags`` (extra
    run tags), ``sample_size`` (rows in the stored reference sample) and ``serialization`` ("skops",
    trusting the types of the model being logged, or "cloudpickle") and ``pip_requirements`` (the
    model's requirements; by default MLflow infers them by loading the model in a subprocess, which
    is most of @track's cost). Options are checked here, when the function is decorated, so a typo
    fails before any training.
    """
    options = _Options(
        model_name=model_name, experiment=experiment, train=train, target=target, validation=validation,
        validation_labels=validation_labels, task=task, tags=dict(tags or {}), sample_size=sample_size,
        serialization=serialization,
        pip_requirements=None if pip_requirements is None else tuple(pip_requirements),
    )

    def decorate(function: Callable[P, R]) -> Callable[P, Tracked[R]]:
        signature = _validate(options, function)

        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Tracked[R]:
            return _Call(options, function, signature.bind(*args, **kwargs)).run(args, kwargs)

        return wrapper

    return decorate if func is None else decorate(func)


def _validate(options: _Options, function: Callable[..., Any]) -> inspect.Signature:
    where = f"@track on {getattr(function, '__qualname__', function)!r}"
    if not callable(function):
        raise ConfigError(f"@track decorates a function, got {type(function).__name__}.")
    signature = inspect.signature(function)
    for option in ("train", "validation", "validation_labels"):
        name = getattr(options, option)
        if name is not None and name not in signature.parameters:
            raise ConfigError(
                f"{where}: {option}={name!r} is not an argument of the function. "
                f"Arguments: {', '.join(signature.parameters) or '(none)'}."
            )
    name = str(options.model_name or getattr(function, "__name__", ""))
    if not name.strip() or any(c in name for c in "/:@"):
        raise ConfigError(f"{where}: model_name {name!r} is not a valid registered model name.",
                          hint="Use a non-empty name without '/', ':' or '@' (they separate versions and aliases).")
    if options.task is not None and options.task not in TASKS:
        raise ConfigError(f"{where}: task={options.task!r}; expected one of {', '.join(TASKS)}.")
    if options.serialization not in SERIALIZATIONS:
        raise ConfigError(f"{where}: serialization={options.serialization!r}; expected one of "
                          f"{', '.join(SERIALIZATIONS)}.")
    if isinstance(options.sample_size, bool) or not isinstance(options.sample_size, int) or options.sample_size < 1:
        raise ConfigError(f"{where}: sample_size={options.sample_size!r}; expected a positive integer.")
    bad_tags = [k for k, v in options.tags.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad_tags:
        raise ConfigError(f"{where}: tags must map strings to strings; bad entries: {bad_tags[:5]!r}.")
    return signature


class _Call:
    """One call of a tracked function: resolve its data, run it, log everything, then register."""

    def __init__(self, options: _Options, function: Callable[..., Any], bound: inspect.BoundArguments) -> None:
        import pandas as pd

        bound.apply_defaults()
        self.options = options
        self.function = function
        self.arguments = dict(bound.arguments)
        self.model_name = options.model_name or function.__name__
        train_arg = options.train or next(
            (k for k, v in self.arguments.items() if isinstance(v, pd.DataFrame)), None
        )
        frame = self.arguments.get(train_arg) if train_arg else None
        if not isinstance(frame, pd.DataFrame):
            got = "no DataFrame argument" if train_arg is None else f"{train_arg}={type(frame).__name__}"
            raise DataError(
                f"@track on {function.__name__!r}: the training data must be a pandas DataFrame argument; got {got}.",
                hint="Pass the training frame as a DataFrame, or name its argument with @track(train=...).",
            )
        # a shallow copy is a snapshot under pandas' copy-on-write, whatever the function does to its frame
        self.train_frame = frame.copy(deep=False)
        self.train_arg = train_arg
        self.validation = self._validation_data()

    def run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Tracked[Any]:
        import mlflow

        experiment_id = (
            tracking.get_or_create_experiment(self.options.experiment) if self.options.experiment else None
        )
        nested = mlflow.active_run() is not None
        with tracking.mlflow_errors(f"start a training run for {self.model_name!r}"):
            run = mlflow.start_run(experiment_id=experiment_id, run_name=self.model_name, nested=nested)
        with run:
            result = self.function(*args, **kwargs)
            model = _find_model(result, self.function.__name__)
            version = self._record(run.info.run_id, model)
        return Tracked(result=result, model=model, model_name=self.model_name, version=str(version.version),
                       run_id=run.info.run_id, model_uri=f"models:/{self.model_name}/{version.version}")

    # -- what is recorded ---------------------------------------------------------------------

    def _record(self, run_id: str, model: Any) -> ModelVersion:
        from mlflow_ext.profile import Profile

        target = self.options.target
        features = self.train_frame.drop(columns=[target]) if target in self.train_frame.columns else self.train_frame
        if features.shape[1] == 0:
            raise DataError(f"The training frame {self.train_arg!r} has no feature columns besides {target!r}.")
        task = self._task(model)
        fingerprint = _lineage.data_fingerprint(self.train_frame)
        profile = Profile.from_frame(features, sample_size=self.options.sample_size)
        sample = profile.sample if profile.sample is not None else features.head(self.options.sample_size)
        logged = _log_model(model, features, sample, self.options)
        outputs = _outputs(logged.predict, sample)
        predictions = Profile.from_frame(outputs, sample_size=max(1, len(outputs)))
        scored = self._validation_outputs(logged.predict, features.columns)
        metrics = self._validation_metrics(scored, task, logged.predict.classes)
        run_tags = {
            f"{T}kind": KIND_TRAINING, f"{T}model": self.model_name, f"{T}task": task,
            f"{T}data_fingerprint": fingerprint, **_lineage.lineage_tags(), **self.options.tags,
        }
        _log_batch(run_id, self._params(model), metrics, run_tags)
        profile_uri = tracking.save_version_reference(run_id, profile, predictions)
        version_tags = {
            f"{T}profile": profile_uri, f"{T}task": task, f"{T}data_fingerprint": fingerprint,
            f"{T}features": json.dumps([str(c) for c in features.columns]),
            **{k: v for k, v in run_tags.items() if k in (_lineage.GIT_COMMIT_TAG, _lineage.GIT_DIRTY_TAG)},
        }
        if target is not None:
            version_tags[f"{T}target"] = target
        version_tags.update(self._estimator(run_id, scored, task, logged.predict.classes))
        return _register(logged.uri, self.model_name, run_id, version_tags)

    def _task(self, model: Any) -> str:
        if self.options.task is not None:
            return self.options.task
        if _is_python_model(model):
            raise ConfigError(
                f"@track on {self.function.__name__!r}: cannot tell whether the PythonModel is a classifier "
                "or a regressor.", hint="Pass @track(task='classification') or task='regression'.",
            )
        from sklearn.base import is_classifier

        return "classification" if is_classifier(model) else "regression"

    def _params(self, model: Any) -> dict[str, Any]:
        params = {k: v for k, v in self.arguments.items() if v is None or isinstance(v, _PLAIN)}
        get_params = getattr(model, "get_params", None)
        if callable(get_params):
            params.update({f"model.{k}": v for k, v in get_params(deep=True).items()
                           if v is None or isinstance(v, _PLAIN)})
        return params

    def _validation_outputs(self, predict: _Predict, columns: pd.Index) -> _Scored | None:
        """The validation features, labels and the model's outputs on them; None without validation data."""
        if self.validation is None:
            return None
        frame, labels = self.validation
        missing = [str(c) for c in columns if c not in frame.columns]
        if missing:
            raise DataError(f"The validation frame lacks feature column(s) of the training frame: {missing[:5]}.",
                            hint="Pass validation data with the same columns as the training data.")
        features = frame[list(columns)]
        outputs = _outputs(predict, features)
        proba_columns = [c for c in outputs.columns if c.startswith(PROBA_PREFIX)]
        proba = outputs[proba_columns].to_numpy() if proba_columns else None
        return _Scored(features, labels, outputs[PREDICTION].to_numpy(), proba)

    def _validation_metrics(self, scored: _Scored | None, task: str,
                            classes: tuple[Any, ...] | None) -> dict[str, float]:
        from mlflow_ext.performance import evaluate

        if scored is None:
            return {}
        found = evaluate(
            task, scored.labels, scored.prediction,
            proba=scored.proba if scored.proba is not None and task == "classification" else None,
            classes=classes if scored.proba is not None else None, n_boot=100,
        )
        metrics = {f"{tracking.VALIDATION_PREFIX}{m.name}": m.value for m in found}
        metrics[f"{tracking.VALIDATION_PREFIX}n_rows"] = float(len(scored.labels))
        return metrics

    def _estimator(self, run_id: str, scored: _Scored | None, task: str,
                   classes: tuple[Any, ...] | None) -> dict[str, str]:
        """Fit the performance estimator on the validation rows (CBPE for a classifier with scores,
        DLE for a regressor) and upload it: the version tag pointing at it, or one saying why there
        is none. Training never fails for want of an estimator; it is an aid to monitoring."""
        from mlflow_ext import estimation
        from mlflow_ext.report import _png

        if scored is None:
            return {tracking.NO_ESTIMATOR_TAG: "No validation data was passed to @track, so performance "
                                               "cannot be estimated without labels."}
        proba = scored.proba if task == "classification" else None
        if task == "classification" and (proba is None or classes is None):
            return {tracking.NO_ESTIMATOR_TAG: "The classifier has no predict_proba with classes_; CBPE needs "
                                               "its probabilities."}
        plots: dict[str, bytes] = {}
        method = "CBPE" if task == "classification" else "DLE"
        try:
            model: estimation.CBPEModel | estimation.DLEModel
            if proba is not None and classes is not None:
                model = estimation.fit_cbpe(scored.labels, proba, classes=classes)
                # in-sample (the calibration's own rows): shows what the estimate rests on, not its test error
                curve = estimation.reliability_curve(model, scored.labels, proba)
                plots["reliability.png"] = _png(estimation.reliability_figure(curve))
            else:
                model = estimation.fit_dle(scored.features, scored.prediction, scored.labels)
        except Exception as exc:  # noqa: BLE001 - any fitting failure leaves the version without an estimator
            message = exc.message if isinstance(exc, MlflowExtError) else f"{type(exc).__name__}: {exc}"
            return {tracking.NO_ESTIMATOR_TAG: f"The {method} estimator could not be fitted on the "
                                               f"{len(scored.labels)} validation rows: {message}"[:5000]}
        return {tracking.ESTIMATOR_TAG: tracking.save_estimator(run_id, model, plots)}

    def _validation_data(self) -> tuple[pd.DataFrame, np.ndarray] | None:
        """The validation frame and its labels, checked before the function runs."""
        import numpy as np
        import pandas as pd

        name = self.options.validation or next((n for n in _VALIDATION_NAMES if n in self.arguments), None)
        frame = self.arguments.get(name) if name else None
        if frame is None:
            return None
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"The validation data {name!r} must be a pandas DataFrame, got {type(frame).__name__}.")
        target = self.options.target
        if target is not None and target in frame.columns:
            return frame, frame[target].to_numpy()
        labels = self.arguments.get(self.options.validation_labels or "y_val")
        values = None if labels is None else np.asarray(labels).reshape(-1)
        if values is None or len(values) != len(frame):
            got = "none" if values is None else f"{len(values)} for {len(frame)} rows"
            raise DataError(
                f"The validation labels are missing or of the wrong length ({got}).",
                hint=f"Give the frame a {target or 'target'!r} column with @track(target=...), "
                     "or pass the labels in the argument named by @track(validation_labels=...).",
            )
        return frame, values


# -- the model --------------------------------------------------------------------------------------


def _is_python_model(model: Any) -> bool:
    import mlflow.pyfunc

    return isinstance(model, mlflow.pyfunc.PythonModel)


def _is_model(value: Any) -> bool:
    # duck typing as scikit-learn does: anything with fit, predict and get_params is an estimator
    return _is_python_model(value) or all(
        callable(getattr(value, method, None)) for method in ("fit", "predict", "get_params")
    )


def _find_model(result: Any, function: str) -> Any:
    if _is_model(result):
        return result
    items: Sequence[Any] = ()
    if isinstance(result, Mapping):
        items = list(result.values())
    elif isinstance(result, (tuple, list)):
        items = result
    for item in items:
        if _is_model(item):
            return item
    raise ConfigError(
        f"@track on {function!r}: the function returned {type(result).__name__}, which is not and does not "
        "hold a fitted model.",
        hint="Return the fitted scikit-learn estimator or pipeline, or an mlflow.pyfunc.PythonModel "
             "(alone, or in a tuple, list or dict).",
    )


@dataclass(frozen=True)
class _Predict:
    """The logged model's prediction function, with the class labels of a probabilistic classifier."""

    function: Callable[[pd.DataFrame], Any]
    classes: tuple[Any, ...] | None = None

    def __call__(self, frame: pd.DataFrame) -> Any:
        return self.function(frame)


@dataclass(frozen=True)
class _Scored:
    """The validation rows as the model saw them: features, labels, predictions and (classifiers) scores."""

    features: pd.DataFrame
    labels: np.ndarray
    prediction: np.ndarray
    proba: np.ndarray | None


@dataclass(frozen=True)
class _Logged:
    uri: str
    predict: _Predict


def _log_model(model: Any, features: pd.DataFrame, sample: pd.DataFrame, options: _Options) -> _Logged:
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import infer_signature

    example = features.head(_INPUT_EXAMPLE_ROWS)
    requirements = None if options.pip_requirements is None else list(options.pip_requirements)
    if _is_python_model(model):
        with _logging_errors("the PythonModel"):
            info = mlflow.pyfunc.log_model(name=MODEL_ARTIFACT, python_model=model, input_example=example,
                                           pip_requirements=requirements)
            loaded = mlflow.pyfunc.load_model(info.model_uri)
        return _Logged(info.model_uri, _Predict(loaded.predict))
    predict = _sklearn_predict(model)
    with _logging_errors(f"the {type(model).__name__} model"):
        # column types decide the schema; a few hundred rows show them (all 10k cost a second at 200 columns)
        rows = sample.head(_SIGNATURE_ROWS)
        signature = infer_signature(rows, predict.function(rows))
        extra: dict[str, Any] = {"serialization_format": "cloudpickle"}
        if options.serialization == "skops":
            extra = {"serialization_format": "skops", "skops_trusted_types": _skops_types(model)}
        info = mlflow.sklearn.log_model(model, name=MODEL_ARTIFACT, signature=signature, input_example=example,
                                        pip_requirements=requirements, **extra)
    return _Logged(info.model_uri, predict)


def _sklearn_predict(model: Any) -> _Predict:
    import numpy as np

    classes = getattr(model, "classes_", None)
    if callable(getattr(model, "predict_proba", None)) and classes is not None:
        labels = np.asarray(classes)
        return _Predict(lambda frame: _proba_frame(model.predict_proba(frame), labels), tuple(labels.tolist()))
    return _Predict(model.predict)


def _proba_frame(proba: Any, classes: np.ndarray) -> pd.DataFrame:
    """Outputs as the monitoring side scores them: the arg-max class and one probability per class."""
    import numpy as np
    import pandas as pd

    proba = np.asarray(proba, dtype=np.float64)
    frame = pd.DataFrame(proba, columns=[f"{PROBA_PREFIX}{c}" for c in classes])
    frame.insert(0, PREDICTION, classes[proba.argmax(axis=1)])
    return frame


def _outputs(predict: _Predict, frame: pd.DataFrame) -> pd.DataFrame:
    """The model's outputs on ``frame`` as a frame with ``prediction`` (and ``proba_<class>``)."""
    import numpy as np
    import pandas as pd

    try:
        raw = predict(frame)
    except Exception as exc:  # noqa: BLE001 - any model failure means the model cannot be monitored
        raise DataError(f"The trained model failed to predict on the reference rows: {type(exc).__name__}: {exc}",
                        hint="Check that the model takes the training frame's feature columns.") from exc
    if isinstance(raw, pd.DataFrame) and PREDICTION in raw.columns:
        return raw.reset_index(drop=True)
    values = np.asarray(raw.iloc[:, 0] if isinstance(raw, pd.DataFrame) else raw)
    return pd.DataFrame({PREDICTION: values.reshape(len(frame), -1)[:, 0]})


def _skops_types(model: Any) -> list[str]:
    """The types skops would refuse when loading this model: trusted, since they are the model's own."""
    import skops.io

    try:
        return list(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    except Exception as exc:  # noqa: BLE001 - skops raises many types for objects it cannot represent
        raise TrackingError(
            f"skops cannot serialize the {type(model).__name__} model: {type(exc).__name__}: {exc}",
            hint="Pass @track(serialization='cloudpickle') for models skops cannot represent.",
        ) from exc


@contextlib.contextmanager
def _logging_errors(what: str) -> Iterator[None]:
    """Errors while saving a model are mostly the model's (unserializable), not the store's: say so."""
    try:
        yield
    except MlflowExtError:
        raise
    except Exception as exc:  # noqa: BLE001 - serializers raise anything (TypeError, PicklingError...)
        message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        raise TrackingError(
            f"Could not log {what}: {message}",
            hint="Pass @track(serialization='cloudpickle') for a model skops cannot represent, and make sure "
                 f"the model can be pickled; if it can, check the tracking store at {tracking.tracking_uri()}.",
        ) from exc


# -- MLflow writes ----------------------------------------------------------------------------------


def _log_batch(run_id: str, params: Mapping[str, Any], metrics: Mapping[str, float], tags: Mapping[str, str]) -> None:
    """Params, metrics and tags of the training run in a few batched writes."""
    import time

    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    entities: list[tuple[str, list[Any]]] = [
        ("params", [Param(k, str(v)[:6000]) for k, v in params.items()]),
        ("metrics", [Metric(k, v, now, 0) for k, v in metrics.items() if math.isfinite(v)]),
        ("tags", [RunTag(k, v) for k, v in tags.items()]),
    ]
    mlflow_client = tracking.client()
    with tracking.mlflow_errors(f"log the training run {run_id}"):
        for kind, items in entities:
            for start in range(0, len(items), 100):  # MLflow's limit for params and tags per batch
                mlflow_client.log_batch(run_id, **{kind: items[start:start + 100]}, synchronous=True)


def _register(model_uri: str, name: str, run_id: str, tags: Mapping[str, str]) -> ModelVersion:
    """Register the logged model with its version tags; on any failure delete what was created."""
    import mlflow

    mlflow_client = tracking.client()
    try:
        with tracking.mlflow_errors(f"find the registered model {name!r}"):
            mlflow_client.get_registered_model(name)
        existed = True
    except NotFoundError:
        existed = False
    try:
        with tracking.mlflow_errors(f"register the model as {name!r}"):
            version = mlflow.register_model(model_uri, name, tags=dict(tags))
            if version.status != "READY":
                raise TrackingError(f"Version {version.version} of {name!r} is {version.status}, not READY: "
                                    f"{version.status_message or 'no message'}.")
            mlflow_client.set_tag(run_id, f"{T}version", str(version.version))
    except BaseException:
        _unregister(name, run_id, existed)
        raise
    return version


def _unregister(name: str, run_id: str, existed: bool) -> None:
    """Delete the versions of ``name`` made from ``run_id`` (and the model, if this call created it)."""
    mlflow_client = tracking.client()
    with contextlib.suppress(Exception):  # best effort: the original error is the one to report
        for found in mlflow_client.search_model_versions(f"run_id = '{run_id}'"):
            if found.name == name:
                mlflow_client.delete_model_version(name, found.version)
        if not existed and not mlflow_client.get_registered_model(name).latest_versions:
            mlflow_client.delete_registered_model(name)
