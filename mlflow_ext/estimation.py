"""Performance estimation without labels: CBPE for classifiers, DLE for regressors.

Fit once on labelled reference (validation) data, store with the model version, then estimate the
metrics of an unlabelled batch::

    model = fit_cbpe(y_val, clf.predict_proba(X_val), classes=clf.classes_)
    model.save(folder)                       # JSON only, no pickle
    estimate(load(folder), clf.predict_proba(batch))   # accuracy, precision, recall, f1, roc_auc

    model = fit_dle(X_val, reg.predict(X_val), y_val)
    estimate(model, reg.predict(batch), features=batch)  # mae, rmse

Conventions (docs/estimation.md says more, including when the estimates are wrong):

- CBPE calibrates scores with isotonic regression, one-vs-rest per class (binary: the positive
  class only), then renormalizes each row to sum to 1. The model's prediction is the argmax of its
  raw scores, as scikit-learn's ``predict``. Every metric is the ratio of the expected confusion
  counts under the calibrated probabilities; realized metrics run the same code with one-hot labels
  in place of probabilities, so the two are computed the same way.
- Binary metrics are those of the positive class ``classes[1]``; multiclass ones are macro averages
  over the model's classes (NannyML's convention); roc_auc is one-vs-rest, ties count one half.
- DLE fits two small gradient-boosted trees on the features plus the prediction: one for the
  absolute error (MAE), one for the squared error (RMSE), with out-of-fold (cross-fitted)
  estimates on the reference so the reference estimate is honest.
- Bands (NannyML style): the standard deviation of each realized metric over ``n_boot`` bootstrap
  resamples of the reference, scaled by ``sqrt(n_reference / n_batch)``, times the normal quantile
  of ``confidence``. A band says where the realized metric of a batch of that size should fall if
  the estimate is right; it does not widen under shift.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import pandas as pd

from mlflow_ext.errors import ConfigError, DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CBPEModel",
    "DLEModel",
    "EstimatedMetric",
    "RealizedMetric",
    "ReliabilityBin",
    "ReliabilityCurve",
    "estimate",
    "fit_cbpe",
    "fit_dle",
    "load",
    "realized",
    "reliability_curve",
    "reliability_figure",
]

SCHEMA_VERSION = 1
_SUM_TOLERANCE = 1e-3  # float32 softmax outputs sum to 1 within ~1e-6; anything further is not proba
_MIN_ROWS_PER_FOLD = 10
_CBPE_FILE, _DLE_FILE, _DLE_TREES = "cbpe.json", "dle.json", "dle.skops"
# the only type skops does not trust by default in a fitted HistGradientBoostingRegressor
_TRUSTED = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]

Label = str | int | float | bool


@dataclass(frozen=True)
class EstimatedMetric:
    """An estimated metric of a batch with its sampling-error band; ``method`` is cbpe or dle."""

    name: str
    value: float
    band_low: float
    band_high: float
    method: str

    def excludes(self, value: float) -> bool:
        """Whether ``value`` (e.g. the reference metric) lies outside the band: a significant change."""
        return not self.band_low <= value <= self.band_high


@dataclass(frozen=True)
class RealizedMetric:
    """A metric computed from labels, the same way as its estimated counterpart."""

    name: str
    value: float


@dataclass(frozen=True)
class _Isotonic:
    """A fitted isotonic map as its thresholds; applying it is linear interpolation, clipped."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(np.interp(scores, np.asarray(self.x), np.asarray(self.y)))


@dataclass(frozen=True)
class CBPEModel:
    """A classifier's score calibration plus what its bands need; fitted by ``fit_cbpe``."""

    classes: tuple[Label, ...]
    calibrators: tuple[_Isotonic, ...]  # binary: the positive class only; multiclass: one per class
    n_reference: int
    reference: tuple[RealizedMetric, ...]  # realized on the reference rows
    reference_estimate: tuple[EstimatedMetric, ...]  # estimated on the same rows (in-sample calibration)
    sampling_sd: dict[str, float] = field(repr=False)  # per-row sd: bootstrap sd * sqrt(n_reference)

    def save(self, directory: str | Path) -> Path:
        """Write the model as one JSON file in ``directory``; returns the file."""
        document = {
            "schema_version": SCHEMA_VERSION, "kind": "cbpe", "classes": list(self.classes),
            "calibrators": [{"x": list(c.x), "y": list(c.y)} for c in self.calibrators],
            "n_reference": self.n_reference, "sampling_sd": self.sampling_sd,
            "reference": {m.name: m.value for m in self.reference},
            "reference_estimate": [_metric_json(m) for m in self.reference_estimate],
        }
        return _write_json(Path(directory) / _CBPE_FILE, document)

    @classmethod
    def load(cls, directory: str | Path) -> CBPEModel:
        """Read a model written by ``save``; a corrupt or future file is a ``DataError``."""
        path = Path(directory) / _CBPE_FILE
        doc = _read_json(path, "cbpe")
        try:
            return cls(
                classes=tuple(doc["classes"]),
                calibrators=tuple(_Isotonic(tuple(map(float, c["x"])), tuple(map(float, c["y"])))
                                  for c in doc["calibrators"]),
                n_reference=int(doc["n_reference"]),
                reference=tuple(RealizedMetric(k, float(v)) for k, v in doc["reference"].items()),
                reference_estimate=tuple(EstimatedMetric(**m) for m in doc["reference_estimate"]),
                sampling_sd={k: float(v) for k, v in doc["sampling_sd"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{path}: not a CBPE model file ({type(exc).__name__}: {exc}).",
                            hint="Save it again with CBPEModel.save.") from exc


@dataclass(frozen=True, eq=False)
class DLEModel:
    """A regressor's error models (absolute and squared error) plus what its bands need; see ``fit_dle``."""

    features: tuple[str, ...]
    abs_error: Any  # HistGradientBoostingRegressor of |y - prediction|
    squared_error: Any  # HistGradientBoostingRegressor of (y - prediction)**2
    n_reference: int
    reference: tuple[RealizedMetric, ...]
    reference_estimate: tuple[EstimatedMetric, ...]  # out-of-fold (cross-fitted) on the reference
    sampling_sd: dict[str, float] = field(repr=False)

    def save(self, directory: str | Path) -> Path:
        """Write ``dle.json`` and ``dle.skops`` (trees, no pickle) into ``directory``; returns the JSON file."""
        import skops.io

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        skops.io.dump({"mae": self.abs_error, "rmse": self.squared_error}, folder / _DLE_TREES)
        document = {
            "schema_version": SCHEMA_VERSION, "kind": "dle", "features": list(self.features),
            "n_reference": self.n_reference, "sampling_sd": self.sampling_sd,
            "reference": {m.name: m.value for m in self.reference},
            "reference_estimate": [_metric_json(m) for m in self.reference_estimate],
        }
        return _write_json(folder / _DLE_FILE, document)

    @classmethod
    def load(cls, directory: str | Path) -> DLEModel:
        """Read a model written by ``save``; refuses a trees file holding any type not on the allow-list."""
        import skops.io

        folder = Path(directory)
        doc = _read_json(folder / _DLE_FILE, "dle")
        trees = folder / _DLE_TREES
        try:
            untrusted = sorted(set(skops.io.get_untrusted_types(file=trees)) - set(_TRUSTED))
            if untrusted:
                raise DataError(f"{trees}: holds types outside the allow-list: {', '.join(untrusted)}.",
                                hint="Only load DLE models written by DLEModel.save.")
            models = skops.io.load(trees, trusted=_TRUSTED)
            return cls(
                features=tuple(doc["features"]), abs_error=models["mae"], squared_error=models["rmse"],
                n_reference=int(doc["n_reference"]),
                reference=tuple(RealizedMetric(k, float(v)) for k, v in doc["reference"].items()),
                reference_estimate=tuple(EstimatedMetric(**m) for m in doc["reference_estimate"]),
                sampling_sd={k: float(v) for k, v in doc["sampling_sd"].items()},
            )
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - skops raises many kinds on a bad file; all mean "unusable"
            raise DataError(f"{folder}: not a DLE model ({type(exc).__name__}: {exc}).",
                            hint="Save it again with DLEModel.save.") from exc


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability curve: rows whose confidence is in [low, high)."""

    low: float
    high: float
    count: int
    mean_confidence: float
    accuracy: float


@dataclass(frozen=True)
class ReliabilityCurve:
    """Confidence (top-class probability) against accuracy, before and after calibration."""

    raw: tuple[ReliabilityBin, ...]
    calibrated: tuple[ReliabilityBin, ...]
    ece_raw: float  # expected calibration error: count-weighted mean |accuracy - confidence|
    ece_calibrated: float


def load(directory: str | Path) -> CBPEModel | DLEModel:
    """Read whichever estimator ``directory`` holds (written by ``CBPEModel.save`` or ``DLEModel.save``)."""
    folder = Path(directory)
    if (folder / _CBPE_FILE).is_file():
        return CBPEModel.load(folder)
    if (folder / _DLE_FILE).is_file():
        return DLEModel.load(folder)
    raise DataError(f"{folder}: holds neither {_CBPE_FILE} nor {_DLE_FILE}.",
                    hint="Pass the folder a CBPEModel or DLEModel was saved to.")


# -- CBPE -----------------------------------------------------------------------------------------


def fit_cbpe(y_true: Sequence[Any] | np.ndarray, scores: np.ndarray, *, classes: Sequence[Any] | np.ndarray,
             n_boot: int = 200, seed: int = 0) -> CBPEModel:
    """Calibrate a classifier's scores on labelled validation data, for CBPE.

    ``scores`` is ``predict_proba`` output (rows x classes, columns in the order of ``classes``,
    e.g. ``model.classes_``). Every class must occur in ``y_true``.
    """
    from sklearn.isotonic import IsotonicRegression

    labels = _classes(classes)
    proba = _scores(scores, len(labels))
    truth = _label_index(y_true, labels, len(proba))
    missing = [labels[k] for k in range(len(labels)) if not (truth == k).any()]
    if missing:
        raise DataError(f"Validation labels lack class(es) {missing} of the model's classes {list(labels)}; "
                        "CBPE cannot calibrate a class it never sees.",
                        hint="Calibrate on a labelled validation set that holds every class.")
    _check_boot(n_boot)
    onehot = np.eye(len(labels))[truth]
    calibrators = []
    for k in _positive_columns(len(labels)):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(proba[:, k], onehot[:, k])
        calibrators.append(_Isotonic(tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_))))
    sd = _bootstrap_sd(lambda idx: _class_metrics(onehot[idx], proba[idx]), len(proba), n_boot, seed)
    model = CBPEModel(labels, tuple(calibrators), len(proba), _realized(_class_metrics(onehot, proba)), (), sd)
    return replace(model, reference_estimate=estimate(model, proba))


def _positive_columns(k: int) -> list[int]:
    """The classes metrics are computed for: binary, the positive class; otherwise every class (macro)."""
    return [1] if k == 2 else list(range(k))


def _calibrate(model: CBPEModel, proba: np.ndarray) -> np.ndarray:
    if len(model.classes) == 2:
        positive = model.calibrators[0](proba[:, 1])
        return np.column_stack([1 - positive, positive])
    calibrated = np.column_stack([c(proba[:, k]) for k, c in enumerate(model.calibrators)])
    total = calibrated.sum(axis=1, keepdims=True)
    # a row every calibrator maps to 0 has no calibrated information left: keep its raw scores
    return np.where(total > 0, calibrated / np.where(total > 0, total, 1.0), proba)


def _class_metrics(expected: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Classification metrics from P(y = class) per row (calibrated probabilities, or one-hot labels)."""
    n, k = proba.shape
    pred = proba.argmax(axis=1)
    metrics = {"accuracy": float(expected[np.arange(n), pred].mean())}
    scores: dict[str, list[float]] = {"precision": [], "recall": [], "f1": [], "roc_auc": []}
    for c in _positive_columns(k):
        p, predicted = expected[:, c], pred == c
        tp, fp, fn = p[predicted].sum(), (1 - p[predicted]).sum(), p[~predicted].sum()
        scores["precision"].append(_ratio(tp, tp + fp))
        scores["recall"].append(_ratio(tp, tp + fn))
        scores["f1"].append(_ratio(2 * tp, 2 * tp + fp + fn))
        scores["roc_auc"].append(_auc(proba[:, c], p))
    metrics.update({name: float(np.mean(values)) for name, values in scores.items()})
    return metrics


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Expected ROC AUC when row i is positive with probability ``positive[i]`` (ties count one half).

    With 0/1 weights it is the ordinary (Mann-Whitney) AUC; with probabilities it is the ratio of the
    expected concordant pair count to the expected pair count, pairs of a row with itself left out.
    NaN when there is no positive or no negative mass.
    """
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    pos = positive[order]
    g_pos, g_neg = np.add.reduceat(pos, starts), np.add.reduceat(1 - pos, starts)
    below = np.cumsum(g_neg) - g_neg
    self_pairs = float((pos * (1 - pos)).sum())
    num = float((g_pos * (below + 0.5 * g_neg)).sum()) - 0.5 * self_pairs
    den = float(g_pos.sum() * g_neg.sum()) - self_pairs
    return num / den if den > 1e-12 else math.nan


# -- DLE ------------------------------------------------------------------------------------------


def fit_dle(features: pd.DataFrame, predictions: Sequence[float] | np.ndarray, y_true: Sequence[float] | np.ndarray,
            *, folds: int = 5, seed: int = 0, n_boot: int = 200) -> DLEModel:
    """Fit error models of a regressor on held-out labelled reference data, for DLE.

    ``features`` are the model's numeric input columns (NaN allowed), ``predictions`` its outputs on
    them. The error models are cross-fitted: the reference estimate stored with the model comes from
    ``folds`` models each fitted without the rows it estimates; the stored trees use all rows.
    """
    from sklearn.model_selection import KFold

    if not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds: expected an integer of at least 2, got {folds!r}.")
    _check_boot(n_boot)
    X = _design(features, predictions, None)
    truth = _numbers(y_true, "y_true", len(X))
    error = truth - X[:, -1]
    if len(X) < _MIN_ROWS_PER_FOLD * folds:
        raise DataError(f"DLE needs at least {_MIN_ROWS_PER_FOLD * folds} reference rows for {folds} folds, "
                        f"got {len(X)}.", hint="Pass more held-out labelled rows, or fewer folds.")
    targets = {"mae": np.abs(error), "rmse": error * error}
    out_of_fold = {name: np.empty(len(X)) for name in targets}
    with _one_thread():
        for train, test in KFold(folds, shuffle=True, random_state=seed).split(X):
            for name, target in targets.items():
                out_of_fold[name][test] = _error_model(seed).fit(X[train], target[train]).predict(X[test])
        abs_error, squared_error = (_error_model(seed).fit(X, targets[name]) for name in ("mae", "rmse"))
    sd = _bootstrap_sd(lambda idx: _regression_metrics(error[idx]), len(X), n_boot, seed)
    return DLEModel(
        features=tuple(features.columns), abs_error=abs_error, squared_error=squared_error, n_reference=len(X),
        reference=_realized(_regression_metrics(error)),
        reference_estimate=_regression_estimates(out_of_fold["mae"], out_of_fold["rmse"], sd, None, 0.95),
        sampling_sd=sd,
    )


def _one_thread() -> Any:
    from threadpoolctl import threadpool_limits

    # the trees' OpenMP threads spin-wait: on a busy 2-core host two threads run ~30x slower than one
    return threadpool_limits(1)


def _error_model(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor

    # small and without early stopping: deterministic for a seed, and a few hundred rows do not overfit it
    return HistGradientBoostingRegressor(max_iter=100, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=20,
                                         early_stopping=False, random_state=seed)


def _regression_metrics(error: np.ndarray) -> dict[str, float]:
    return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error * error).mean()))}


def _regression_estimates(abs_error: np.ndarray, squared_error: np.ndarray, sd: dict[str, float],
                          reference: tuple[EstimatedMetric, ...] | None,
                          confidence: float) -> tuple[EstimatedMetric, ...]:
    # trees fitted to non-negative targets can still extrapolate a hair below zero
    values = {"mae": float(np.clip(abs_error, 0, None).mean()),
              "rmse": float(np.sqrt(np.clip(squared_error, 0, None).mean()))}
    if reference is not None:
        # errors grow in scale where the batch is noisier; their spread grows with them (constant
        # coefficient of variation), so the per-row sd follows the estimate relative to the reference's
        sd = {**sd, **{m.name: sd[m.name] * values[m.name] / m.value
                       for m in reference if m.value > 0 and m.name in sd}}
    return _banded(values, sd, len(abs_error), confidence, "dle", upper=math.inf)


# -- estimate and realized ------------------------------------------------------------------------


@overload
def estimate(model: CBPEModel, outputs: np.ndarray, *, confidence: float = ...) -> tuple[EstimatedMetric, ...]: ...
@overload
def estimate(model: DLEModel, outputs: Sequence[float] | np.ndarray, *, features: pd.DataFrame,
             confidence: float = ...) -> tuple[EstimatedMetric, ...]: ...
def estimate(model: CBPEModel | DLEModel, outputs: Any, *, features: pd.DataFrame | None = None,
             confidence: float = 0.95) -> tuple[EstimatedMetric, ...]:
    """Estimated metrics of an unlabelled batch, each with its band.

    ``outputs`` is the model's ``predict_proba`` (CBPE) or ``predict`` (DLE, with its ``features``).
    """
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence: expected a number in (0, 1), got {confidence!r}.")
    if isinstance(model, CBPEModel):
        proba = _scores(outputs, len(model.classes))
        values = _class_metrics(_calibrate(model, proba), proba)
        return _banded(values, model.sampling_sd, len(proba), confidence, "cbpe", upper=1.0)
    if features is None:
        raise ConfigError("features: DLE estimates need the batch's features beside its predictions.",
                          hint="Call estimate(model, predictions, features=batch).")
    X = _design(features, outputs, model.features)
    with _one_thread():
        abs_error, squared_error = model.abs_error.predict(X), model.squared_error.predict(X)
    return _regression_estimates(abs_error, squared_error, model.sampling_sd, model.reference_estimate, confidence)


def realized(model: CBPEModel | DLEModel, y_true: Sequence[Any] | np.ndarray,
             outputs: Any) -> tuple[RealizedMetric, ...]:
    """The metrics ``estimate`` estimates, computed from labels the same way (same averaging).

    Metrics undefined on the batch (roc_auc when the labels hold one class) are left out.
    """
    if isinstance(model, CBPEModel):
        proba = _scores(outputs, len(model.classes))
        truth = _label_index(y_true, model.classes, len(proba))
        return _realized(_class_metrics(np.eye(len(model.classes))[truth], proba))
    pred = _numbers(outputs, "predictions", None)
    return _realized(_regression_metrics(_numbers(y_true, "y_true", len(pred)) - pred))


def _realized(values: dict[str, float]) -> tuple[RealizedMetric, ...]:
    return tuple(RealizedMetric(name, value) for name, value in values.items() if math.isfinite(value))


def _banded(values: dict[str, float], sd: dict[str, float], n: int, confidence: float, method: str,
            upper: float) -> tuple[EstimatedMetric, ...]:
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    out = []
    for name, value in values.items():
        if not math.isfinite(value):
            continue
        half = z * sd.get(name, math.nan) / math.sqrt(n)
        low, high = (max(0.0, value - half), min(upper, value + half)) if math.isfinite(half) else (0.0, upper)
        out.append(EstimatedMetric(name, value, low, high, method))
    return tuple(out)


def _bootstrap_sd(metrics: Callable[[np.ndarray], dict[str, float]], n: int, n_boot: int,
                  seed: int) -> dict[str, float]:
    """Per-row sampling sd of each metric: bootstrap sd over resamples of the reference times sqrt(n)."""
    rng = np.random.default_rng(seed)
    draws = [metrics(rng.integers(0, n, n)) for _ in range(n_boot)]
    sd = {}
    for name in draws[0]:
        values = np.array([d[name] for d in draws])
        values = values[np.isfinite(values)]
        if len(values) > 1:
            sd[name] = float(values.std(ddof=1) * math.sqrt(n))
    return sd


# -- reliability ----------------------------------------------------------------------------------


def reliability_curve(model: CBPEModel, y_true: Sequence[Any] | np.ndarray, scores: np.ndarray, *,
                      bins: int = 10) -> ReliabilityCurve:
    """How well confidence matches accuracy on labelled rows, raw and calibrated, in equal-width bins.

    Pass rows the calibrator was not fitted on (a test split) to see its out-of-sample quality;
    on its own fitting rows isotonic calibration looks better than it is.
    """
    if not isinstance(bins, int) or bins < 2:
        raise ConfigError(f"bins: expected an integer of at least 2, got {bins!r}.")
    proba = _scores(scores, len(model.classes))
    truth = _label_index(y_true, model.classes, len(proba))
    pred = proba.argmax(axis=1)
    correct = (truth == pred).astype(np.float64)
    rows = np.arange(len(proba))
    raw, raw_ece = _bins(proba[rows, pred], correct, bins)
    calibrated, cal_ece = _bins(_calibrate(model, proba)[rows, pred], correct, bins)
    return ReliabilityCurve(raw, calibrated, raw_ece, cal_ece)


def _bins(confidence: np.ndarray, correct: np.ndarray, bins: int) -> tuple[tuple[ReliabilityBin, ...], float]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    out, gap = [], 0.0
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        if count:
            mean_conf, acc = float(confidence[inside].mean()), float(correct[inside].mean())
            out.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), count, mean_conf, acc))
            gap += count * abs(acc - mean_conf)
    return tuple(out), gap / len(confidence)


def reliability_figure(curve: ReliabilityCurve) -> Figure:
    """A reliability diagram of ``curve`` (Agg canvas, no pyplot state) to log as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.5, 4.0), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="perfect")
    for bins, label in ((curve.raw, f"raw (ECE {curve.ece_raw:.3f})"),
                        (curve.calibrated, f"calibrated (ECE {curve.ece_calibrated:.3f})")):
        ax.plot([b.mean_confidence for b in bins], [b.accuracy for b in bins], marker="o", label=label)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top-class probability)", ylabel="accuracy",
           title="Reliability")
    ax.legend(loc="upper left", fontsize="small")
    return figure


# -- input checks ---------------------------------------------------------------------------------


def _check_boot(n_boot: int) -> None:
    if not isinstance(n_boot, int) or n_boot < 20:
        raise ConfigError(f"n_boot: expected an integer of at least 20 resamples, got {n_boot!r}.")


def _classes(classes: Sequence[Any] | np.ndarray) -> tuple[Label, ...]:
    labels = tuple(c.item() if isinstance(c, np.generic) else c for c in classes)
    bad = [c for c in labels if not isinstance(c, (str, int, float, bool))]
    if bad:
        raise DataError(f"classes must be strings or numbers (they are saved as JSON), got {bad[:3]}.")
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise DataError(f"classes must be two or more distinct labels, got {list(labels)}.",
                        hint="Pass the model's classes_, in the order of its predict_proba columns.")
    return labels


def _scores(scores: Any, k: int) -> np.ndarray:
    try:
        proba = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"Scores must be numbers (predict_proba output): {exc}.") from exc
    if proba.ndim != 2 or proba.shape[1] != k or len(proba) == 0:
        raise DataError(f"Scores must be predict_proba output with one column per class ({k}), "
                        f"got shape {proba.shape}.")
    bad = ~np.isfinite(proba).all(axis=1)
    if bad.any():
        raise DataError(f"Scores hold NaN or infinite values in {int(bad.sum())} row(s), "
                        f"first row {int(bad.argmax())}.",
                        hint="Drop or fix those rows before estimating.")
    if (proba < -_SUM_TOLERANCE).any() or (proba > 1 + _SUM_TOLERANCE).any():
        raise DataError(f"Scores must be probabilities in [0, 1], got values in "
                        f"[{proba.min():.4g}, {proba.max():.4g}].",
                        hint="Pass predict_proba output, not decision_function margins.")
    sums = proba.sum(axis=1)
    off = np.abs(sums - 1) > _SUM_TOLERANCE
    if off.any():
        first = int(off.argmax())
        raise DataError(f"Score rows must sum to 1, but {int(off.sum())} row(s) do not (row {first} sums to "
                        f"{sums[first]:.6g}).", hint="Pass predict_proba output with every class column.")
    return proba


def _label_index(y_true: Sequence[Any] | np.ndarray, classes: tuple[Label, ...], n: int) -> np.ndarray:
    array = np.asarray(y_true)
    if array.ndim != 1:
        raise DataError(f"Labels must be a 1-d array, one label per row, got shape {array.shape}.")
    if len(array) != n:
        raise DataError(f"Labels and scores differ in length: {len(array)} labels, {n} score rows.")
    values = array.tolist()
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({v for v in values if v not in index}, key=repr)
    if unknown:
        raise DataError(f"Labels {unknown[:5]} are not among the model's classes {list(classes)}.",
                        hint="Check that the labels are the model's target column, of the same type as classes_.")
    return np.array([index[v] for v in values], dtype=np.intp)


def _numbers(values: Any, what: str, n: int | None) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} must be numbers: {exc}.") from exc
    if array.ndim != 1 or (n is not None and len(array) != n):
        raise DataError(f"{what} must be a 1-d array of {n if n is not None else 'one value per row'} values, "
                        f"got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise DataError(f"{what} holds {int((~np.isfinite(array)).sum())} NaN or infinite value(s).",
                        hint="Drop those rows first.")
    return array


def _design(features: pd.DataFrame, predictions: Any, columns: tuple[str, ...] | None) -> np.ndarray:
    """Feature matrix for the error models: the model's features, then its prediction."""
    if not isinstance(features, pd.DataFrame) or features.empty:
        raise DataError("features must be a non-empty pandas DataFrame of the model's inputs.")
    if columns is not None:
        missing = [c for c in columns if c not in features.columns]
        if missing:
            raise DataError(f"Batch lacks feature column(s) {missing} the DLE model was fitted on.",
                            hint="Pass the same columns the model predicts from.")
        features = features[list(columns)]
    wrong = [str(c) for c in features.columns
             if not (pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c]))]
    if wrong:
        raise DataError(f"DLE needs numeric feature columns; not numeric: {wrong[:8]}.",
                        hint="Encode categorical columns as numbers first, as the model does.")
    pred = _numbers(predictions, "predictions", len(features))
    return np.column_stack([features.to_numpy(dtype=np.float64, na_value=np.nan), pred])


def _metric_json(metric: EstimatedMetric) -> dict[str, Any]:
    return {"name": metric.name, "value": metric.value, "band_low": metric.band_low,
            "band_high": metric.band_high, "method": metric.method}


def _write_json(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, allow_nan=False), encoding="utf-8")
    return path


def _read_json(path: Path, kind: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the {kind.upper()} model ({exc}).",
                        hint="Pass the folder the model was saved to.") from exc
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise DataError(f"{path}: not a {kind.upper()} model file.")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise DataError(f"{path}: schema_version {doc.get('schema_version')!r}; this mlflow-ext reads "
                        f"{SCHEMA_VERSION}.", hint="Upgrade mlflow-ext, or refit the estimator.")
    return doc
