"""The Rule protocol: one promotion gate, and the context every rule of one promotion shares.

Implementing a rule takes a class with one method::

    from mlflow_ext.rules import RuleContext, RuleResult

    class MinRows:
        '''Refuse candidates evaluated on too few rows.'''

        name = "min_rows"

        def __init__(self, *, rows: int = 1000) -> None:
            self.rows = rows                       # keyword-only configuration, no logic here

        def validate(self) -> None:               # optional: raise ConfigError for a bad configuration
            ...

        def evaluate(self, context: RuleContext) -> RuleResult:
            n = len(context.labels())
            return RuleResult(rule=self.name, passed=n >= self.rows, observed=float(n),
                              bound=float(self.rows), message=f"{n} evaluation rows (needs {self.rows}).")

and an entry point in the ``mlflow_ext.rules`` group (``min_rows = "pkg.mod:MinRows"``).

Options are checked against their annotations when a policy is loaded (``_registry.create``),
and ``validate()``, when present, is called then too: a policy fails before anything is evaluated.
A rule that cannot judge (no evaluation data, say) returns a refusal that says why rather than
raising; it raises only when something is broken (a model that cannot load or predict).

The :class:`RuleContext` loads each model version once and predicts the evaluation data once per
version, so every rule of a promotion scores the same predictions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, runtime_checkable

import numpy as np

from mlflow_ext._stats import METRICS, Outputs, metric_value
from mlflow_ext.errors import ConfigError, DataError, MlflowExtError, NotFoundError, TrackingError
from mlflow_ext.tracking import TAG_PREFIX, client, mlflow_errors

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models import ModelSignature
    from mlflow.pyfunc import PyFuncModel

__all__ = ["Rule", "RuleContext", "RuleResult", "predict"]

T = TypeVar("T")


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict: passed or not, what was observed against which bound, and a sentence."""

    rule: str
    passed: bool
    observed: float | str | None
    bound: float | str | None
    message: str


@dataclass(frozen=True)
class RuleContext:
    """What a rule judges: the candidate and champion versions of ``model`` and the evaluation data.

    Versions are version strings; methods taking a ``version`` also accept ``"candidate"`` and
    ``"champion"``. ``eval_data`` is fresh labelled data given at promotion time, its label column
    ``target``; rows without a label are left out. ``policy`` is the ModelPolicy the rules came
    from, when they came from a policy file.
    """

    model: str
    candidate: str
    champion: str | None
    eval_data: pd.DataFrame | None = None
    target: str | None = None
    policy: Any = None
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False, compare=False)

    def _cached(self, kind: str, key: str, make: Callable[[], T]) -> T:
        if (kind, key) not in self._cache:
            self._cache[(kind, key)] = make()
        return cast(T, self._cache[(kind, key)])

    def resolve(self, version: str) -> str:
        """The version string behind ``version`` (which may be ``candidate`` or ``champion``)."""
        if version == "candidate":
            return self.candidate
        if version == "champion":
            if self.champion is None:
                raise NotFoundError(f"{self.model!r} has no champion to compare with.")
            return self.champion
        return str(version)

    def model_version(self, version: str) -> ModelVersion:
        """The registered model version (its tags, run id, source)."""
        v = self.resolve(version)

        def fetch() -> ModelVersion:
            with mlflow_errors(f"read version {v} of {self.model!r}"):
                return client().get_model_version(self.model, v)

        return self._cached("version", v, fetch)

    def run_metrics(self, version: str) -> dict[str, float]:
        """The metrics logged on the run that produced the version (its training run)."""
        mv = self.model_version(version)

        def fetch() -> dict[str, float]:
            if not mv.run_id:
                return {}
            with mlflow_errors(f"read the run {mv.run_id} of version {mv.version} of {self.model!r}"):
                return dict(client().get_run(mv.run_id).data.metrics)

        return self._cached("run_metrics", str(mv.version), fetch)

    def signature(self, version: str) -> ModelSignature | None:
        """The version's MLflow model signature, or None when it was logged without one."""
        v = self.resolve(version)

        def fetch() -> ModelSignature | None:
            from mlflow.models import get_model_info

            with mlflow_errors(f"read the model of version {v} of {self.model!r}"):
                signature: ModelSignature | None = get_model_info(f"models:/{self.model}/{v}").signature
                return signature

        return self._cached("signature", v, fetch)

    def load_model(self, version: str) -> PyFuncModel:
        """The version loaded with mlflow.pyfunc (once per version)."""
        v = self.resolve(version)

        def load() -> PyFuncModel:
            import mlflow.pyfunc

            uri = f"models:/{self.model}/{v}"
            try:
                with mlflow_errors(f"load the model {uri}"):
                    loaded: PyFuncModel = mlflow.pyfunc.load_model(uri)
                    return loaded
            except MlflowExtError:
                raise
            except Exception as exc:  # noqa: BLE001 - a missing flavor package, a corrupt pickle, ...
                raise TrackingError(
                    f"Could not load version {v} of {self.model!r} ({uri}): {type(exc).__name__}: {exc}",
                    hint="Load it in the environment it was trained in, or fix its dependencies.",
                ) from exc

        return self._cached("model", v, load)

    def inputs(self, version: str) -> list[str]:
        """The input columns of the version: its recorded features, else its signature, else all but the label."""
        mv = self.model_version(version)
        recorded = mv.tags.get(f"{TAG_PREFIX}features")
        if recorded:
            try:
                return [str(name) for name in json.loads(recorded)]
            except (ValueError, TypeError):
                pass  # a hand-edited tag: fall back to the signature
        signature = self.signature(version)
        if signature is not None and signature.inputs is not None and signature.inputs.has_input_names():
            return [str(name) for name in signature.inputs.input_names()]
        frame = self.labelled()
        return [str(c) for c in frame.columns if c != self.target]

    def labelled(self) -> pd.DataFrame:
        """The evaluation rows that have a label; DataError when there is no evaluation data."""

        def make() -> pd.DataFrame:
            if self.eval_data is None or self.target is None:
                raise DataError("This rule needs fresh labelled evaluation data, and none was given.",
                                hint="Pass --eval-data FILE (and --labels COLUMN).")
            if self.target not in self.eval_data.columns:
                raise DataError(f"The evaluation data has no label column {self.target!r}.")
            frame = self.eval_data[self.eval_data[self.target].notna()]
            if frame.empty:
                raise DataError(f"No evaluation row has a label in {self.target!r}.",
                                hint="Give evaluation data with labels.")
            return frame.reset_index(drop=True)

        return self._cached("frame", "", make)

    def labels(self) -> np.ndarray:
        """The labels of the evaluation rows."""
        return np.asarray(self.labelled()[self.target].to_numpy())

    def features(self, version: str) -> pd.DataFrame:
        """The evaluation rows as the version's inputs; DataError naming the columns it lacks."""
        wanted = self.inputs(version)
        frame = self.labelled()
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise DataError(f"The evaluation data lacks the input(s) {', '.join(map(repr, missing[:10]))} of "
                            f"version {self.resolve(version)} of {self.model!r}.",
                            hint="Evaluate on data with every column both models take.")
        return frame[wanted]

    def outputs(self, version: str) -> Outputs:
        """The version's predictions on the evaluation rows, with class probabilities when it has them."""
        v = self.resolve(version)
        return self._cached("outputs", v, lambda: predict(self.load_model(v), self.features(v),
                                                          f"version {v} of {self.model!r}"))

    def predictions(self, version: str) -> np.ndarray:
        """The version's predictions on the evaluation rows (one model load and one predict per version)."""
        return self.outputs(version).prediction

    def metric(self, version: str, name: str) -> float:
        """A metric (see mlflow_ext._stats.METRICS) of the version on the evaluation labels."""
        v = self.resolve(version)
        metrics: dict[str, float] = self._cached("metrics", v, dict)
        if name not in metrics:
            task = self.model_version(v).tags.get(f"{TAG_PREFIX}task")
            if name in METRICS and task in ("classification", "regression") and METRICS[name].task != task:
                raise ConfigError(
                    f"The metric {name} is for {METRICS[name].task}, but version {v} of {self.model!r} is a "
                    f"{task} model (tag {TAG_PREFIX}task).",
                    hint="Use " + ", ".join(n for n, s in METRICS.items() if s.task == task) + ".")
            metrics[name] = metric_value(name, self.labels(), self.outputs(v))
        return metrics[name]

    def metrics(self, version: str) -> dict[str, float]:
        """The evaluation metrics computed so far for the version (what a Decision records)."""
        if version == "champion" and self.champion is None:
            return {}
        return dict(self._cache.get(("metrics", self.resolve(version)), {}))


def predict(model: PyFuncModel, features: pd.DataFrame, what: str) -> Outputs:
    """Predict with a loaded model: labels (pyfunc predict) and, for classifiers, probabilities."""
    try:
        raw = model.get_raw_model()  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - flavors without a raw model: predictions only
        raw = None
    try:
        predicted: Any = model.predict(features)
        if hasattr(predicted, "iloc") and predicted.ndim == 2:  # a DataFrame: the first column
            predicted = predicted.iloc[:, 0]
        prediction = np.asarray(predicted).reshape(len(features), -1)[:, 0]
        if raw is not None and hasattr(raw, "predict_proba") and hasattr(raw, "classes_"):
            proba = np.asarray(raw.predict_proba(features), dtype=np.float64)
            return Outputs(prediction, proba, tuple(np.asarray(raw.classes_).tolist()))
    except Exception as exc:  # noqa: BLE001 - any model failure is reported with the version
        raise DataError(f"{what} failed to predict the evaluation data: {type(exc).__name__}: {exc}",
                        hint="Check the evaluation data's columns and types against the model's signature.") from exc
    return Outputs(prediction)


@runtime_checkable
class Rule(Protocol):
    """A promotion gate; configuration in keyword-only ``__init__`` parameters (see the module docstring)."""

    def evaluate(self, context: RuleContext) -> RuleResult:
        """Judge the candidate; refuse with a sentence when it cannot judge, raise only when broken."""
        ...
