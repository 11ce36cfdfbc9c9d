"""alibi-detect's batch drift detectors behind the mlflow-ext Detector protocol.

Per column (``alibi_ks``, ``alibi_chi2``, ``alibi_cvm``, ``alibi_tabular``): one alibi detector per
column, fed that column's non-null values, so a column's result never depends on another column's
nulls. Multivariate (``alibi_mmd``, ``alibi_lsdd``, ``alibi_classifier``): one verdict over all the
columns together, returned as ``DetectorResult.overall``; use them under ``detectors.overall``.

Every result carries alibi's statistic and p-value, and an effect size that does not grow with the
sample size, with a practical threshold (``check`` requires both before it calls a column drifted):

==================  ==========================================  ==================================
detector            effect size                                 default threshold
==================  ==========================================  ==================================
alibi_ks            the KS distance D (as the core's ``ks``)    0.05
alibi_chi2          Cramér's V at equal sizes (as ``chi2``)     0.1
alibi_cvm           root of the Cramér-von Mises distance:      0.03 (about the shift that gives
                    RMS gap of the two CDFs on the pooled data  D = 0.05)
alibi_tabular       D for numeric, V for categorical columns    0.05 / 0.1
alibi_mmd           MMD² (Gaussian kernel, standardized data)   0.005
alibi_lsdd          LSDD (standardized data)                    0.015
alibi_classifier    KS distance between the out-of-fold         0.05
                    probabilities of reference and batch rows
==================  ==========================================  ==================================

The multivariate thresholds were set on 4 standard normal columns: a shift of about 0.3 standard
deviations in one of them reaches them, a shift of 0.1 does not. They depend on the number of
columns; tune them on your own data (``mlflow-ext check`` prints the effect sizes).

alibi-detect is imported on first use, never when the plugin is listed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from mlflow_ext.detectors import OVERALL, ColumnDrift, DetectorResult

from mlflow_ext_alibi import _data

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AlibiCVM", "AlibiChi2", "AlibiClassifier", "AlibiKS", "AlibiLSDD", "AlibiMMD", "AlibiTabular"]


@contextmanager
def quiet() -> Iterator[None]:
    """Silence alibi-detect's logging and warnings for a call (it warns on every small sample)."""
    import logging
    import warnings

    logger = logging.getLogger("alibi_detect")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _column(detector: str, name: str, statistic: float, p: float, effect: float, threshold: float,
            alpha: float) -> ColumnDrift:
    p = min(max(float(p), 0.0), 1.0) if math.isfinite(p) else 1.0
    return ColumnDrift(column=name, detector=detector, statistic=float(statistic), p_value=p,
                       effect_size=float(effect), threshold=float(threshold),
                       drifted=bool(effect >= threshold and p <= alpha))


def _feature(make: Callable[[], Any], x: np.ndarray) -> tuple[float, float]:
    """alibi's feature-level (p-value, distance) of the one-column detector ``make`` builds."""
    with quiet():
        data = make().predict(x[:, None], drift_type="feature", return_p_val=True, return_distance=True)["data"]
    return float(np.asarray(data["p_val"]).ravel()[0]), float(np.asarray(data["distance"]).ravel()[0])


def _ks(ref: np.ndarray, cur: np.ndarray, alpha: float) -> tuple[float, float]:
    from alibi_detect.cd import KSDrift

    return _feature(lambda: KSDrift(ref[:, None], p_val=alpha), cur)


def _chi2(ref: np.ndarray, cur: np.ndarray, alpha: float) -> tuple[float, float]:
    from alibi_detect.cd import ChiSquareDrift

    return _feature(lambda: ChiSquareDrift(ref[:, None], p_val=alpha), cur)


class _PerColumn:
    """One alibi test per column; subclasses say how a column is tested."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    alpha: float

    def _test(self, name: str, kind: str, reference: pd.Series, current: pd.Series) -> ColumnDrift:
        raise NotImplementedError  # every subclass tests its own kinds

    def _columns(self, reference: pd.DataFrame, current: pd.DataFrame) -> tuple[ColumnDrift, ...]:
        kinds = _data.columns(self.name, self.kinds, reference, current)
        return tuple(self._test(name, kind, reference[name], current[name]) for name, kind in kinds)

    def detect(self, reference: pd.DataFrame, current: pd.DataFrame) -> DetectorResult:
        """Test every column of ``current`` against the same column of ``reference``."""
        return DetectorResult(columns=self._columns(reference, current))


class AlibiKS(_PerColumn):
    """alibi-detect's KSDrift: two-sample Kolmogorov-Smirnov (asymptotic p-value); effect size D."""

    name = "alibi_ks"
    kinds = frozenset({"numeric"})

    def __init__(self, *, threshold: float = 0.05, alpha: float = 0.05) -> None:
        self.threshold = threshold
        self.alpha = alpha

    def _test(self, name: str, kind: str, reference: pd.Series, current: pd.Series) -> ColumnDrift:
        ref, cur = _data.finite(name, reference, current)
        p, d = _ks(ref, cur, self.alpha)
        return _column(self.name, name, d, p, d, self.threshold, self.alpha)


class AlibiChi2(_PerColumn):
    """alibi-detect's ChiSquareDrift on the union of categories; effect size Cramér's V."""

    name = "alibi_chi2"
    kinds = frozenset({"categorical", "boolean"})

    def __init__(self, *, threshold: float = 0.1, alpha: float = 0.05) -> None:
        self.threshold = threshold
        self.alpha = alpha

    def _test(self, name: str, kind: str, reference: pd.Series, current: pd.Series) -> ColumnDrift:
        ref, cur = _data.codes(name, reference, current)
        p, statistic = _chi2(ref, cur, self.alpha)
        return _column(self.name, name, statistic, p, _data.cramers_v(ref, cur), self.threshold, self.alpha)


class AlibiCVM(_PerColumn):
    """alibi-detect's CVMDrift: two-sample Cramér-von Mises; effect size the RMS gap of the two CDFs."""

    name = "alibi_cvm"
    kinds = frozenset({"numeric"})

    def __init__(self, *, threshold: float = 0.03, alpha: float = 0.05) -> None:
        self.threshold = threshold
        self.alpha = alpha

    def _test(self, name: str, kind: str, reference: pd.Series, current: pd.Series) -> ColumnDrift:
        from alibi_detect.cd import CVMDrift

        ref, cur = _data.finite(name, reference, current)
        p, t = _feature(lambda: CVMDrift(ref[:, None], p_val=self.alpha), cur)
        n, m = len(ref), len(cur)
        # scipy's T is nm/(n+m)^2 times the sum of squared CDF gaps over the n+m pooled points, so
        # this is the mean squared gap, free of the sample sizes
        effect = math.sqrt(max(t, 0.0) * (n + m) / (n * m))
        return _column(self.name, name, t, p, effect, self.threshold, self.alpha)


class AlibiTabular(_PerColumn):
    """alibi-detect's TabularDrift: KS on numeric, chi-square on categorical columns, and a verdict overall.

    The overall verdict is alibi's batch-level one: Bonferroni over the columns; its effect size is
    the largest column effect as a multiple of that column's threshold (so its threshold is 1).
    """

    name = "alibi_tabular"
    kinds = frozenset({"numeric", "categorical", "boolean"})

    def __init__(self, *, threshold: float = 0.05, categorical_threshold: float = 0.1, alpha: float = 0.05) -> None:
        self.threshold = threshold
        self.categorical_threshold = categorical_threshold
        self.alpha = alpha

    def _test(self, name: str, kind: str, reference: pd.Series, current: pd.Series) -> ColumnDrift:
        from alibi_detect.cd import TabularDrift

        if kind == "numeric":
            ref, cur = _data.finite(name, reference, current)
            p, d = _feature(lambda: TabularDrift(ref[:, None], p_val=self.alpha), cur)
            return _column(self.name, name, d, p, d, self.threshold, self.alpha)
        codes_ref, codes_cur = _data.codes(name, reference, current)
        p, statistic = _feature(lambda: TabularDrift(codes_ref[:, None], p_val=self.alpha,
                                                     categories_per_feature={0: None}), codes_cur)
        v = _data.cramers_v(codes_ref, codes_cur)
        return _column(self.name, name, statistic, p, v, self.categorical_threshold, self.alpha)

    def detect(self, reference: pd.DataFrame, current: pd.DataFrame) -> DetectorResult:
        """Every column's test, and the Bonferroni verdict over all of them."""
        columns = self._columns(reference, current)
        k = len(columns)
        p = min(1.0, min(c.p_value or 1.0 for c in columns) * k)
        ratio = max(c.effect_size / c.threshold if c.threshold > 0 else math.inf for c in columns)
        drifted = any(c.effect_size >= c.threshold and (c.p_value or 1.0) * k <= self.alpha for c in columns)
        overall = ColumnDrift(column=OVERALL, detector=self.name, statistic=float(sum(c.drifted for c in columns)),
                              p_value=p, effect_size=min(ratio, 1e6), threshold=1.0, drifted=drifted)
        return DetectorResult(columns=columns, overall=overall)


class _Multivariate:
    """One alibi test over all the columns together; the result is ``overall`` only."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    threshold: float
    alpha: float
    max_rows: int
    seed: int
    drop_missing: ClassVar[bool] = True

    def _run(self, ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
        """alibi's (p-value, distance) for the two matrices."""
        raise NotImplementedError  # every subclass runs its own alibi detector

    def _effect(self, distance: float) -> float:
        return max(distance, 0.0)

    def detect(self, reference: pd.DataFrame, current: pd.DataFrame) -> DetectorResult:
        """One verdict over all the columns of ``current`` (rows subsampled to ``max_rows``)."""
        kinds = _data.columns(self.name, self.kinds, reference, current)
        ref, cur = _data.matrix(self.name, reference, current, kinds, limit=self.max_rows, seed=self.seed,
                                drop_missing=self.drop_missing)
        p, distance = self._run(ref, cur)
        overall = _column(self.name, OVERALL, distance, p, self._effect(distance), self.threshold, self.alpha)
        return DetectorResult(overall=overall)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run with the global RNGs alibi draws from (random, numpy, torch) seeded, then restore them.

    alibi's permutations and bootstraps use the global generators: a fixed seed makes a detector
    repeatable, and restoring them leaves the caller's random streams as they were.
    """
    import random
    import sys

    torch = sys.modules.get("torch")
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state() if torch is not None else None)
    random.seed(seed)
    np.random.seed(seed)
    if torch is not None:
        torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        if torch is not None:
            torch.set_rng_state(saved[2])


def _predict(seed: int, make: Callable[[], Any], x: np.ndarray) -> tuple[float, float]:
    """Build an alibi detector and predict under a fixed seed: permutation tests must be repeatable."""
    from threadpoolctl import threadpool_limits

    # One OpenMP thread: the matrices are capped by max_rows, and on a busy machine (CI, a host
    # running other jobs) OpenMP's spinning workers made the classifier 40 times slower.
    with quiet(), seeded(seed), threadpool_limits(1):
        data = make().predict(x, return_p_val=True, return_distance=True)["data"]
    return float(data["p_val"]), float(data["distance"])


class AlibiMMD(_Multivariate):
    """alibi-detect's MMDDrift (PyTorch backend): maximum mean discrepancy, permutation p-value."""

    name = "alibi_mmd"
    kinds = frozenset({"numeric"})

    def __init__(self, *, threshold: float = 0.005, alpha: float = 0.05, n_permutations: int = 100,
                 max_rows: int = 1000, seed: int = 0) -> None:
        self.threshold = threshold
        self.alpha = alpha
        self.n_permutations = n_permutations
        self.max_rows = max_rows
        self.seed = seed

    def _run(self, ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
        _data.require_torch(self.name)
        from alibi_detect.cd import MMDDrift

        return _predict(self.seed, lambda: MMDDrift(ref, backend="pytorch", p_val=self.alpha, device="cpu",
                                                   n_permutations=self.n_permutations), cur)


class AlibiLSDD(_Multivariate):
    """alibi-detect's LSDDDrift (PyTorch backend): least-squares density difference, permutation p-value."""

    name = "alibi_lsdd"
    kinds = frozenset({"numeric"})

    def __init__(self, *, threshold: float = 0.015, alpha: float = 0.05, n_permutations: int = 100,
                 max_rows: int = 1000, seed: int = 0) -> None:
        self.threshold = threshold
        self.alpha = alpha
        self.n_permutations = n_permutations
        self.max_rows = max_rows
        self.seed = seed

    def _run(self, ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
        _data.require_torch(self.name)
        from alibi_detect.cd import LSDDDrift

        return _predict(self.seed, lambda: LSDDDrift(ref, backend="pytorch", p_val=self.alpha, device="cpu",
                                                    n_permutations=self.n_permutations), cur)


class AlibiClassifier(_Multivariate):
    """alibi-detect's ClassifierDrift with a scikit-learn gradient-boosted trees domain classifier.

    The classifier learns to tell reference rows from batch rows (``n_folds`` out-of-fold
    predictions); drift is when its probabilities separate them (one-sided KS). Categories are
    coded as integers and nulls are kept (the trees route them), so no deep-learning framework is needed.
    """

    name = "alibi_classifier"
    kinds = frozenset({"numeric", "categorical", "boolean"})
    drop_missing = False

    def __init__(self, *, threshold: float = 0.05, alpha: float = 0.05, n_folds: int = 3, max_iter: int = 50,
                 max_rows: int = 5000, seed: int = 0) -> None:
        self.threshold = threshold
        self.alpha = alpha
        self.n_folds = n_folds
        self.max_iter = max_iter
        self.max_rows = max_rows
        self.seed = seed

    def _run(self, ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
        from alibi_detect.cd import ClassifierDrift
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(max_iter=self.max_iter, random_state=self.seed)
        return _predict(self.seed, lambda: ClassifierDrift(ref, model=model, backend="sklearn", p_val=self.alpha,
                                                          preds_type="probs", n_folds=self.n_folds,
                                                          seed=self.seed), cur)
