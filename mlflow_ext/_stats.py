"""Statistics on labelled rows: model metrics and the paired tests that compare two models.

Shared by the promotion rules (and free for monitoring to reuse). Conventions:

- Metrics: ``accuracy``, ``precision``, ``recall``, ``f1``, ``roc_auc``, ``log_loss``
  (classification) and ``mae``, ``rmse``, ``r2`` (regression); point values match scikit-learn.
  precision / recall / f1 with two labels score the positive class, the last of the sorted labels
  (scikit-learn's ``pos_label=1`` for 0/1 labels); with more labels, the macro average over the
  labels seen in truth or predictions. A zero denominator counts as 0 (scikit-learn's
  ``zero_division=0``). roc_auc is binary, or macro one-vs-rest; it and log_loss need
  probabilities (one column per class, classes sorted); log_loss renormalises rows and clips to
  the float epsilon as scikit-learn does.
- Every metric is computed as a function of row weights (how often each row is drawn), so a whole
  bootstrap is a few matrix products instead of a Python loop per resample.
- Paired tests, both on the same rows for both models; ``delta`` is the candidate's improvement
  (oriented so that positive is better, whichever way the metric runs):
  accuracy uses the exact McNemar test, the binomial test on the discordant pairs (``b`` rows only
  the candidate gets right, ``c`` only the champion), one-sided by default
  (H0: the candidate is not better, p = P(X >= b), X ~ Bin(b + c, 1/2)); every other metric uses a
  seeded paired bootstrap (the same resampled rows for both models, ``n_boot`` resamples) whose
  one-sided p-value is the share of resampled deltas that are not positive, (1 + count) / (1 + n_boot).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mlflow_ext.errors import ConfigError, DataError

__all__ = [
    "CLASSIFICATION_METRICS",
    "METRICS",
    "REGRESSION_METRICS",
    "MetricName",
    "MetricSpec",
    "Outputs",
    "PairedTest",
    "mcnemar_exact",
    "metric_value",
    "paired_bootstrap",
    "paired_test",
    "resamples",
    "weighted",
]

MetricName = Literal["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "mae", "rmse", "r2"]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric needs and which way is better."""

    task: Literal["classification", "regression"]
    higher_is_better: bool
    needs_proba: bool = False


METRICS: dict[str, MetricSpec] = {
    "accuracy": MetricSpec("classification", True),
    "precision": MetricSpec("classification", True),
    "recall": MetricSpec("classification", True),
    "f1": MetricSpec("classification", True),
    "roc_auc": MetricSpec("classification", True, needs_proba=True),
    "log_loss": MetricSpec("classification", False, needs_proba=True),
    "mae": MetricSpec("regression", False),
    "rmse": MetricSpec("regression", False),
    "r2": MetricSpec("regression", True),
}
CLASSIFICATION_METRICS = tuple(n for n, s in METRICS.items() if s.task == "classification")
REGRESSION_METRICS = tuple(n for n, s in METRICS.items() if s.task == "regression")

# Bootstrap weights held in memory at once (16 MB of float64), whatever the number of rows.
_CHUNK_CELLS = 2_000_000

Weighted = Callable[[np.ndarray], np.ndarray]  # (b, n) row weights -> (b,) metric values


@dataclass(frozen=True)
class Outputs:
    """One model's outputs on the labelled rows: predictions, and class probabilities when it has them."""

    prediction: np.ndarray
    proba: np.ndarray | None = None
    classes: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class PairedTest:
    """Candidate against champion on the same rows: both values, the improvement and its p-value."""

    metric: str
    candidate: float
    champion: float
    delta: float
    p_value: float
    test: Literal["mcnemar", "bootstrap"]
    n: int


def _spec(name: str) -> MetricSpec:
    if name not in METRICS:
        raise ConfigError(f"Unknown metric {name!r}. Known: {', '.join(METRICS)}.")
    return METRICS[name]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _mean(values: np.ndarray) -> Weighted:
    return lambda w: (w @ values) / w.sum(axis=1)


def _labels(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    try:
        return np.unique(np.concatenate([truth, pred]))
    except TypeError as exc:
        raise DataError(f"Labels and predictions cannot be compared: {exc}.",
                        hint="Give labels of the type the model predicts.") from exc


def _counting(name: str, truth: np.ndarray, pred: np.ndarray) -> Weighted:
    """precision / recall / f1: binary on the last sorted label, else macro over the labels seen."""
    labels = _labels(truth, pred)
    positives = labels[-1:] if len(labels) <= 2 else labels
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for label in positives:
        is_true, is_pred = truth == label, pred == label
        parts.append(((is_true & is_pred).astype(float), (~is_true & is_pred).astype(float),
                      (is_true & ~is_pred).astype(float)))

    def value(w: np.ndarray) -> np.ndarray:
        scores = []
        for tp_rows, fp_rows, fn_rows in parts:
            tp, fp, fn = w @ tp_rows, w @ fp_rows, w @ fn_rows
            if name == "precision":
                scores.append(_ratio(tp, tp + fp))
            elif name == "recall":
                scores.append(_ratio(tp, tp + fn))
            else:
                scores.append(_ratio(2 * tp, 2 * tp + fp + fn))
        return np.mean(scores, axis=0)  # type: ignore[no-any-return]

    return value


def _auc(scores: np.ndarray, positive: np.ndarray) -> Weighted:
    """Weighted Mann-Whitney AUC: ties count one half, as in scikit-learn."""
    order = np.argsort(scores, kind="mergesort")
    ranked, pos = scores[order], positive[order].astype(float)
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])

    def value(w: np.ndarray) -> np.ndarray:
        ws = w[:, order]
        pos_w = np.add.reduceat(ws * pos, starts, axis=1)
        neg_w = np.add.reduceat(ws * (1 - pos), starts, axis=1)
        below = np.cumsum(neg_w, axis=1) - neg_w
        numerator = (pos_w * (below + 0.5 * neg_w)).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return numerator / (pos_w.sum(axis=1) * neg_w.sum(axis=1))  # type: ignore[no-any-return]

    return value


def _probabilistic(name: str, truth: np.ndarray, outputs: Outputs) -> Weighted:
    if outputs.proba is None or outputs.classes is None:
        raise DataError(f"The metric {name} needs class probabilities, and the model gives none.",
                        hint="Use a classifier with predict_proba, or a metric on labels (accuracy, f1).")
    classes = list(outputs.classes)
    proba = np.asarray(outputs.proba, dtype=np.float64)
    if proba.shape != (len(truth), len(classes)):
        raise DataError(f"Probabilities must have one row per label and one column per class: got shape "
                        f"{proba.shape} for {len(truth)} rows and {len(classes)} classes.")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({str(t) for t in truth if t not in index})
    if unknown:
        raise DataError(f"Labels {', '.join(unknown[:5])} are not among the model's classes "
                        f"({', '.join(map(str, classes))}).", hint="Evaluate on labels the model was trained on.")
    true_index = np.array([index[t] for t in truth])
    if name == "log_loss":
        proba = proba / proba.sum(axis=1, keepdims=True)
        eps = np.finfo(proba.dtype).eps
        return _mean(-np.log(np.clip(proba[np.arange(len(truth)), true_index], eps, 1 - eps)))
    present = sorted(set(true_index.tolist()))
    if len(present) < 2:
        raise DataError("roc_auc needs at least two classes among the labels, and there is one.",
                        hint="Evaluate on data with both outcomes, or use another metric.")
    if len(classes) == 2:
        return _auc(proba[:, 1], true_index == 1)
    per_class = [_auc(proba[:, k], true_index == k) for k in range(len(classes))]
    return lambda w: np.mean([auc(w) for auc in per_class], axis=0)


def weighted(name: str, truth: np.ndarray, outputs: Outputs) -> Weighted:
    """The metric ``name`` as a function of row weights."""
    spec = _spec(name)
    pred = np.asarray(outputs.prediction)
    if truth.ndim != 1 or pred.shape != truth.shape:
        raise DataError(f"Labels and predictions must be two 1-d arrays of one length, got shapes "
                        f"{truth.shape} and {pred.shape}.")
    if len(truth) == 0:
        raise DataError("There are no labelled rows to compute metrics on.",
                        hint="Give evaluation data with labels.")
    if spec.needs_proba:
        return _probabilistic(name, truth, outputs)
    if name == "accuracy":
        return _mean((truth == pred).astype(float))
    if spec.task == "classification":
        return _counting(name, truth, pred)
    try:
        y, error = truth.astype(np.float64), truth.astype(np.float64) - pred.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"The metric {name} needs numeric labels and predictions: {exc}.") from exc
    if name == "mae":
        return _mean(np.abs(error))
    squared = _mean(error**2)
    if name == "rmse":
        return lambda w: np.sqrt(squared(w))

    def r2(w: np.ndarray) -> np.ndarray:
        total = w.sum(axis=1)
        spread = w @ y**2 - (w @ y) ** 2 / total
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1 - (w @ error**2) / spread  # type: ignore[no-any-return]

    return r2


def metric_value(name: str, truth: np.ndarray | Any, outputs: Outputs) -> float:
    """The metric ``name`` of one model's outputs on the labels ``truth``."""
    values = np.asarray(truth)
    return float(weighted(name, values, outputs)(np.ones((1, len(values))))[0])


def mcnemar_exact(b: int, c: int, *, alternative: Literal["greater", "two-sided"] = "greater") -> float:
    """Exact McNemar p-value from the discordant counts.

    ``b``: rows only the candidate gets right; ``c``: rows only the champion gets right.
    ``greater`` tests H0 "the candidate is not more accurate"; ``two-sided`` tests equal accuracy.
    """
    from scipy.stats import binom

    if b < 0 or c < 0:
        raise ConfigError(f"Discordant counts must be >= 0, got b={b}, c={c}.")
    n = b + c
    if n == 0:
        return 1.0
    if alternative == "greater":
        return float(binom.sf(b - 1, n, 0.5))
    # Bin(n, 1/2) is symmetric, so two-sided is twice the smaller tail (capped at 1).
    return float(min(1.0, 2 * binom.cdf(min(b, c), n, 0.5)))


def resamples(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap row weights (how often each row is drawn), in chunks of bounded size."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_CELLS // n)
    done = 0
    while done < n_boot:
        size = min(per_chunk, n_boot - done)
        # Counting drawn indices is ~2.5x faster than rng.multinomial over n categories.
        drawn = rng.integers(0, n, (size, n)) + (np.arange(size) * n)[:, None]
        yield np.bincount(drawn.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        done += size


def paired_bootstrap(candidate: Weighted, champion: Weighted, n: int, *, higher_is_better: bool,
                     n_boot: int = 2000, seed: int = 0) -> float:
    """One-sided p-value that the candidate is better, from a paired bootstrap of the rows."""
    if n_boot < 100:
        raise ConfigError(f"n_boot: expected at least 100 resamples, got {n_boot}.")
    not_better = valid = 0
    for weights in resamples(n, n_boot, seed):
        delta = candidate(weights) - champion(weights)
        if not higher_is_better:
            delta = -delta
        finite = np.isfinite(delta)  # resamples without both classes have no AUC: left out
        valid += int(finite.sum())
        not_better += int((delta[finite] <= 0).sum())
    return (1 + not_better) / (1 + valid)


def paired_test(name: str, truth: np.ndarray | Any, candidate: Outputs, champion: Outputs, *,
                n_boot: int = 2000, seed: int = 0) -> PairedTest:
    """Compare two models on the same labelled rows: McNemar for accuracy, paired bootstrap otherwise."""
    spec = _spec(name)
    values = np.asarray(truth)
    ones = np.ones((1, len(values)))
    f_cand, f_champ = weighted(name, values, candidate), weighted(name, values, champion)
    cand, champ = float(f_cand(ones)[0]), float(f_champ(ones)[0])
    delta = cand - champ if spec.higher_is_better else champ - cand
    if name == "accuracy":
        right_cand = values == np.asarray(candidate.prediction)
        right_champ = values == np.asarray(champion.prediction)
        b, c = int((right_cand & ~right_champ).sum()), int((~right_cand & right_champ).sum())
        return PairedTest(name, cand, champ, delta, mcnemar_exact(b, c), "mcnemar", len(values))
    p_value = paired_bootstrap(f_cand, f_champ, len(values), higher_is_better=spec.higher_is_better,
                               n_boot=n_boot, seed=seed)
    return PairedTest(name, cand, champ, delta, p_value, "bootstrap", len(values))
