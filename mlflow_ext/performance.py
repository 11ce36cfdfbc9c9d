"""Performance: a model's metrics on a labelled batch, with intervals, against its validation metrics.

``evaluate(task, y_true, y_pred, proba=..., reference={"accuracy": 0.86, ...})`` returns one frozen
``PerformanceMetric`` per metric it can compute. Conventions (also in docs/statistics.md):

- Metrics, computed by ``mlflow_ext._stats`` (the one implementation, shared with promotion):
  accuracy, f1 (binary: F1 of the positive class, the last of the sorted
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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlflow_ext._stats import METRICS, Outputs, Weighted, resamples, weighted
from mlflow_ext.checks import PerformanceMetric
from mlflow_ext.errors import ConfigError, DataError

__all__ = ["HIGHER_IS_BETTER", "TASKS", "evaluate", "wilson_interval"]

TASKS = ("classification", "regression")
# the metrics monitoring reports, and which way is better (one table for every metric: _stats)
HIGHER_IS_BETTER = {name: METRICS[name].higher_is_better
                    for name in ("accuracy", "f1", "roc_auc", "log_loss", "mae", "rmse", "r2")}


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
    outputs = Outputs(pred, None if proba is None else np.asarray(proba, dtype=np.float64),
                      None if classes is None else tuple(classes))
    if task == "classification":
        metrics.append(_accuracy(truth, pred, refs.get("accuracy"), alpha, tolerance, confidence))
        names = ["f1", *(["log_loss", "roc_auc"] if outputs.proba is not None and outputs.classes else [])]
    else:
        names = ["mae", "rmse", "r2"]
    scored: dict[str, Weighted] = {}
    for name in names:
        try:
            scored[name] = weighted(name, truth, outputs)
        except DataError:
            if name != "roc_auc":
                raise
            # ROC AUC is undefined when the labels hold a single class: leave it out
    weights = list(resamples(len(truth), n_boot, seed))
    for name, metric in scored.items():
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
