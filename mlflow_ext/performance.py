"""Performance: a model's metrics on a labelled batch, with intervals, against its validation metrics.

``evaluate(task, y_true, y_pred, proba=..., reference={"accuracy": 0.86, ...})`` returns one frozen
``PerformanceMetric`` per metric it can compute. Conventions (also in docs/statistics.md):

- Metrics: classification accuracy, f1 (binary: F1 of the positive class, the last of the sorted
  labels, as scikit-learn's ``pos_label=1`` for 0/1 labels; more classes: macro average over the
  labels seen in truth or predictions), roc_auc (binary, or macro one-vs-rest) and log_loss (both
  need probabilities); regression mae, rmse, r2. Point values match scikit-learn.
- Accuracy: Wilson score interval; the test is the exact one-sided binomial test of
  ``H0: accuracy >= bound`` (``scipy.stats.binomtest``), treating the validation accuracy as known.
- Every other metric: percentile bootstrap interval from ``n_boot`` seeded resamples of the rows,
  computed as weighted sums over a resample-count matrix (vectorized, in chunks of bounded size);
  the one-sided p-value inverts the bootstrap distribution: the share of resamples that are not
  worse than the bound, ``(1 + count) / (1 + n_boot)``.
- ``bound`` = the reference value moved by ``tolerance`` (relative) in the worse direction, so a
  metric is ``degraded`` only when it is significantly worse than the reference by more than the
  tolerance: ``bound = ref - tolerance * |ref|`` (higher is better) or ``ref + tolerance * |ref|``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mlflow_ext.checks import PerformanceMetric
from mlflow_ext.errors import ConfigError, DataError

__all__ = ["HIGHER_IS_BETTER", "TASKS", "evaluate", "wilson_interval"]

TASKS = ("classification", "regression")
HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "roc_auc": True, "log_loss": False,
                    "mae": False, "rmse": False, "r2": True}
_CHUNK_CELLS = 2_000_000  # bootstrap weights held at once (16 MB of float64)

Weighted = Callable[[np.ndarray], np.ndarray]  # (b, n) resample counts -> (b,) metric values


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    from scipy.stats import norm

    if n == 0:
        return (0.0, 1.0)
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def evaluate(
    task: str,
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    *,
    proba: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
    reference: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    tolerance: float = 0.02,
    confidence: float = 0.95,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[PerformanceMetric, ...]:
    """The model's metrics on labelled rows, each with an interval and, given a reference, a test.

    ``proba`` (rows x classes, columns in the order of ``classes``) enables roc_auc and log_loss.
    """
    if task not in TASKS:
        raise ConfigError(f"task: expected one of {', '.join(TASKS)}, got {task!r}.")
    for name, value in (("alpha", alpha), ("confidence", confidence)):
        if not 0 < value < 1:
            raise ConfigError(f"{name}: expected a number in (0, 1), got {value!r}.")
    if not 0 <= tolerance < 1:
        raise ConfigError(f"tolerance: expected a relative tolerance in [0, 1), got {tolerance!r}.")
    if n_boot < 100:
        raise ConfigError(f"n_boot: expected at least 100 resamples, got {n_boot!r}.")
    truth, pred = np.asarray(y_true), np.asarray(y_pred)
    if truth.ndim != 1 or truth.shape != pred.shape:
        raise DataError(f"Labels and predictions must be two 1-d arrays of one length, got shapes "
                        f"{truth.shape} and {pred.shape}.")
    if len(truth) == 0:
        raise DataError("No labelled rows to evaluate the model on.",
                        hint="Pass labels whose ids match rows of the batch.")
    refs = dict(reference or {})
    metrics: list[PerformanceMetric] = []
    if task == "classification":
        metrics.append(_accuracy(truth, pred, refs.get("accuracy"), alpha, tolerance, confidence))
        weighted: dict[str, Weighted] = {"f1": _f1(truth, pred)}
        if proba is not None and classes is not None:
            weighted.update(_probabilistic(truth, np.asarray(proba, dtype=np.float64), list(classes)))
    else:
        try:
            weighted = _regression(truth.astype(np.float64), pred.astype(np.float64))
        except (TypeError, ValueError) as exc:
            raise DataError(f"Regression labels and predictions must be numbers: {exc}.") from exc
    rng = np.random.default_rng(seed)
    weights = list(_resample_chunks(len(truth), n_boot, rng))
    for name, metric in weighted.items():
        metrics.append(_bootstrapped(name, metric, weights, refs.get(name), alpha, tolerance, confidence))
    return tuple(m for m in metrics if math.isfinite(m.value))


def _bound(name: str, reference: float, tolerance: float) -> float:
    shift = tolerance * abs(reference)
    return reference - shift if HIGHER_IS_BETTER[name] else reference + shift


def _accuracy(truth: np.ndarray, pred: np.ndarray, reference: float | None, alpha: float, tolerance: float,
              confidence: float) -> PerformanceMetric:
    from scipy.stats import binomtest

    n, hits = len(truth), int((truth == pred).sum())
    low, high = wilson_interval(hits, n, confidence)
    p_value = None
    if reference is not None:
        bound = _bound("accuracy", reference, tolerance)
        p_value = 1.0 if bound <= 0 else float(binomtest(hits, n, min(bound, 1.0), alternative="less").pvalue)
    return PerformanceMetric("accuracy", hits / n, reference, low, high, p_value,
                             degraded=p_value is not None and p_value <= alpha)


def _resample_chunks(n: int, n_boot: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Bootstrap resample counts (how often each row is drawn), ``n_boot`` rows in bounded chunks."""
    per_chunk = max(1, _CHUNK_CELLS // n)
    chunks = []
    for start in range(0, n_boot, per_chunk):
        b = min(per_chunk, n_boot - start)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        chunks.append(np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(np.float64))
    return chunks


def _bootstrapped(name: str, metric: Weighted, weights: list[np.ndarray], reference: float | None, alpha: float,
                  tolerance: float, confidence: float) -> PerformanceMetric:
    n = weights[0].shape[1]
    value = float(metric(np.ones((1, n)))[0])
    replicates = np.concatenate([metric(w) for w in weights])
    replicates = replicates[np.isfinite(replicates)]
    if not len(replicates):
        return PerformanceMetric(name, value, reference)
    tail = (1 - confidence) / 2
    low, high = (float(q) for q in np.quantile(replicates, [tail, 1 - tail]))
    p_value = None
    if reference is not None:
        bound = _bound(name, reference, tolerance)
        not_worse = replicates >= bound if HIGHER_IS_BETTER[name] else replicates <= bound
        p_value = float((1 + not_worse.sum()) / (1 + len(replicates)))
    return PerformanceMetric(name, value, reference, low, high, p_value,
                             degraded=p_value is not None and p_value <= alpha)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _f1(truth: np.ndarray, pred: np.ndarray) -> Weighted:
    labels = np.unique(np.concatenate([truth, pred]))
    if len(labels) <= 2:
        positive = labels[-1]
        t, p = truth == positive, pred == positive
        cells = np.stack([t & p, ~t & p, t & ~p], axis=1).astype(np.float64)  # tp, fp, fn

        def binary(w: np.ndarray) -> np.ndarray:
            tp, fp, fn = (w @ cells).T
            return _ratio(2 * tp, 2 * tp + fp + fn)

        return binary
    t_hot = (truth[:, None] == labels[None, :]).astype(np.float64)
    p_hot = (pred[:, None] == labels[None, :]).astype(np.float64)
    tp_cells, fp_cells, fn_cells = t_hot * p_hot, (1 - t_hot) * p_hot, t_hot * (1 - p_hot)

    def macro(w: np.ndarray) -> np.ndarray:
        tp, fp, fn = w @ tp_cells, w @ fp_cells, w @ fn_cells
        return np.asarray(_ratio(2 * tp, 2 * tp + fp + fn).mean(axis=1))

    return macro


def _auc(scores: np.ndarray, positive: np.ndarray) -> Weighted:
    """Weighted ROC AUC (ties count one half), sorting the scores once for every resample."""
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    pos = positive[order].astype(np.float64)

    def auc(w: np.ndarray) -> np.ndarray:
        sorted_w = w[:, order]
        g_pos = np.add.reduceat(sorted_w * pos, starts, axis=1)
        g_neg = np.add.reduceat(sorted_w * (1 - pos), starts, axis=1)
        below = np.cumsum(g_neg, axis=1) - g_neg
        num = (g_pos * (below + 0.5 * g_neg)).sum(axis=1)
        den = g_pos.sum(axis=1) * g_neg.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan))

    return auc


def _probabilistic(truth: np.ndarray, proba: np.ndarray, classes: list[Any]) -> dict[str, Weighted]:
    if proba.ndim != 2 or proba.shape != (len(truth), len(classes)):
        raise DataError(f"Probabilities must have one row per label and one column per class "
                        f"({len(truth)} x {len(classes)}), got shape {proba.shape}.")
    index = {c: i for i, c in enumerate(classes)}
    known = np.array([t in index for t in truth.tolist()])
    if not known.all():
        unknown = sorted({str(t) for t in truth[~known].tolist()})
        raise DataError(f"Labels {unknown[:5]} are not among the model's classes {[str(c) for c in classes]}.",
                        hint="Check that the labels file holds the model's target column.")
    true_index = np.array([index[t] for t in truth.tolist()])
    per_row = -np.log(np.clip(proba[np.arange(len(truth)), true_index], np.finfo(np.float64).eps, 1.0))

    def log_loss(w: np.ndarray) -> np.ndarray:
        return np.asarray((w @ per_row) / w.sum(axis=1))

    metrics: dict[str, Weighted] = {"log_loss": log_loss}
    present = np.unique(true_index)
    if len(present) < 2:
        return metrics  # ROC AUC is undefined with a single class in the labels
    if len(classes) == 2:
        metrics["roc_auc"] = _auc(proba[:, 1], true_index == 1)
    else:
        per_class = [_auc(proba[:, k], true_index == k) for k in present]

        def macro_auc(w: np.ndarray) -> np.ndarray:
            return np.asarray(np.mean([auc(w) for auc in per_class], axis=0))

        metrics["roc_auc"] = macro_auc
    return metrics


def _regression(truth: np.ndarray, pred: np.ndarray) -> dict[str, Weighted]:
    error = pred - truth
    cells = np.stack([np.abs(error), error * error, truth, truth * truth], axis=1)

    def sums(w: np.ndarray) -> tuple[np.ndarray, ...]:
        return (w.sum(axis=1), *(w @ cells).T)

    def mae(w: np.ndarray) -> np.ndarray:
        n, abs_sum, *_ = sums(w)
        return np.asarray(abs_sum / n)

    def rmse(w: np.ndarray) -> np.ndarray:
        n, _, sq_sum, *_ = sums(w)
        return np.asarray(np.sqrt(sq_sum / n))

    def r2(w: np.ndarray) -> np.ndarray:
        n, _, sq_sum, y_sum, y2_sum = sums(w)
        total = y2_sum - y_sum * y_sum / n
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(np.where(total > 0, 1 - sq_sum / np.where(total > 0, total, 1.0), np.nan))

    return {"mae": mae, "rmse": rmse, "r2": r2}
