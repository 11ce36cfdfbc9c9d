"""The built-in detectors: ks, chi2, psi, jensen_shannon, wasserstein (numpy and scipy only).

Each works from sorted numbers or from bin counts, so one sort of a batch column serves all of them
(``check`` drives them through ``_numeric`` / ``_categorical`` / ``_finish``); ``detect`` is the
plain protocol entry for two DataFrames and runs the same kernels. Conventions and the reasons for
the default thresholds are in docs/statistics.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from scipy import special, stats

from mlflow_ext.detectors import ColumnDrift, DetectorResult
from mlflow_ext.errors import ConfigError, DataError
from mlflow_ext.profile import as_float, category_counts, histogram

if TYPE_CHECKING:
    import pandas as pd

    from mlflow_ext.profile import ColumnProfile, Profile

__all__ = ["KS", "PSI", "Chi2", "JensenShannon", "Wasserstein"]

KS_EXACT_MAX_N = 10_000  # scipy's 'auto': exact p-value when both samples have at most this many
Raw = tuple[float, ...]  # (statistic, effect size, detector-specific extras...)


@dataclass(frozen=True)
class NumericReference:
    """What the numeric detectors learn from the reference once: sorted sample, CDF, bins, scale."""

    sorted: np.ndarray  # finite values of the reference sample, ascending
    unique: np.ndarray  # its distinct values
    below: np.ndarray  # share of the sample strictly below each distinct value
    upto: np.ndarray  # share of the sample at or below each distinct value
    upto_count: np.ndarray  # the same as counts (exact integers for the Wasserstein crossing)
    edges: np.ndarray  # bin edges of the profile (full reference)
    counts: np.ndarray  # histogram of the full reference on those edges
    scale: float  # reference standard deviation, 1 when the reference is constant


def numeric_reference(column: ColumnProfile, sample: pd.Series) -> NumericReference:
    """Sort a reference sample column once and keep what every numeric detector needs."""
    values = as_float(sample)
    ordered = np.sort(values[np.isfinite(values)])
    unique, first = np.unique(ordered, return_index=True)
    n = len(ordered)
    upto_count = np.append(first[1:], n).astype(np.int64)
    return NumericReference(
        sorted=ordered,
        unique=unique,
        below=first / n if n else first.astype(np.float64),
        upto=upto_count / n if n else upto_count.astype(np.float64),
        upto_count=upto_count,
        edges=np.asarray(column.edges, dtype=np.float64),
        counts=np.asarray(column.counts, dtype=np.float64),
        scale=column.std if column.std else 1.0,
    )


def reference_state(profile: Profile, name: str) -> NumericReference:
    """The cached NumericReference of one column of a profile (computed on first use)."""
    cache: dict[str, NumericReference] = profile.learned.setdefault("numeric", {})
    state = cache.get(name)
    if state is None:
        if profile.sample is None:
            raise DataError(
                "The reference profile has no sample of rows, which the numeric detectors need.",
                hint="Load the profile with Profile.load(directory) so its reference.parquet comes with it.",
            )
        state = cache[name] = numeric_reference(profile.columns[name], profile.sample[name])
    return state


def category_bins(column: ColumnProfile, values: Sequence[str], counts: np.ndarray) -> np.ndarray:
    """Counts of a batch's categories (from category_counts) on the reference's top-K values plus 'other'."""
    import pandas as pd

    where = pd.Index(column.values, dtype=object).get_indexer(pd.Index(values, dtype=object))
    where[where < 0] = len(column.values)
    return np.bincount(where, weights=counts, minlength=len(column.values) + 1)


def reference_bins(column: ColumnProfile) -> np.ndarray:
    """The reference's counts on its top-K values plus 'other'."""
    return np.asarray([*column.counts, column.other], dtype=np.float64)


def _proportions(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


class _Builtin:
    """Shared machinery: per-column kernels, then p-values for all columns at once."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[str]]
    threshold: float
    alpha: float | None = None

    def _numeric(self, ref: NumericReference, current: np.ndarray) -> Raw:
        """Kernel on a numeric column: ``current`` is the batch's finite values, sorted."""
        return self._categorical(ref.counts, histogram(current, ref.edges).astype(np.float64))

    def _categorical(self, ref: np.ndarray, current: np.ndarray) -> Raw:
        """Kernel on bin counts (reference, current) of the same bins."""
        raise NotImplementedError  # every subclass overrides the kernels that its kinds need

    def _pvalues(self, raws: Sequence[Raw]) -> list[float | None]:
        return [None] * len(raws)

    def _finish(self, names: Sequence[str], raws: Sequence[Raw]) -> list[ColumnDrift]:
        """Turn the kernels' outputs into results, computing p-values for all columns at once."""
        results = []
        for name, raw, p in zip(names, raws, self._pvalues(raws), strict=True):
            effect = float(raw[1])
            significant = p is None or self.alpha is None or p <= self.alpha
            results.append(
                ColumnDrift(
                    column=name,
                    detector=self.name,
                    statistic=float(raw[0]),
                    p_value=p,
                    effect_size=effect,
                    threshold=self.threshold,
                    drifted=bool(effect >= self.threshold and significant),
                )
            )
        return results

    def detect(self, reference: pd.DataFrame, current: pd.DataFrame) -> DetectorResult:
        """Compare every column of ``current`` with the same column of ``reference``."""
        from mlflow_ext.profile import Profile, validate_frame

        current = validate_frame(current, "The current batch")
        reference = validate_frame(reference, "The reference")
        names = list(current.columns)
        missing = [name for name in names if name not in reference.columns]
        if missing:
            raise DataError(f"Columns {missing[:5]!r} of the current batch are not in the reference.")
        profile = Profile.from_frame(reference[names], sample_size=max(len(reference), 1))
        raws = []
        for name in names:
            column = profile.columns[name]
            if column.kind not in self.kinds:
                raise ConfigError(
                    f"Detector {self.name!r} cannot test {column.kind} column {name!r}; "
                    f"it tests {', '.join(sorted(self.kinds))} columns."
                )
            if column.kind == "numeric":
                numbers = as_float(current[name])
                finite = np.sort(numbers[np.isfinite(numbers)])
                ref = reference_state(profile, name)
                if not len(finite) or not len(ref.sorted):
                    raise DataError(f"Column {name!r} has no finite values to compare in one of the frames.")
                raws.append(self._numeric(ref, finite))
            else:
                values, counts, _ = category_counts(current[name])
                bins = category_bins(column, values, counts)
                if not bins.sum() or not column.count:
                    raise DataError(f"Column {name!r} has no values to compare in one of the frames.")
                raws.append(self._categorical(reference_bins(column), bins))
        return DetectorResult(columns=tuple(self._finish(names, raws)))


class KS(_Builtin):
    """Two-sample Kolmogorov-Smirnov test; the effect size is the statistic D itself."""

    name = "ks"
    kinds = frozenset({"numeric"})

    def __init__(self, *, threshold: float = 0.05, alpha: float = 0.05) -> None:
        self.threshold = threshold
        self.alpha = alpha

    def _numeric(self, ref: NumericReference, current: np.ndarray) -> Raw:
        # Both CDFs at the reference's distinct values: F_ref - F_cur peaks at a reference value,
        # F_cur - F_ref just below one, so two searchsorted calls give scipy's exact D.
        before = np.searchsorted(current, ref.unique, side="left")
        return self._counts(ref, before, np.searchsorted(current, ref.unique, side="right"), len(current))

    def _counts(self, ref: NumericReference, before: np.ndarray, at: np.ndarray, n: int) -> Raw:
        """Kernel on the counts of the batch's ``n`` values below (``before``) and at or below (``at``)
        each of the reference's distinct values: all an engine that cannot sort the batch must compute."""
        d = max(float(np.max(ref.upto - at / n)), float(np.max(before / n - ref.below)), 0.0)
        return (d, d, float(len(ref.sorted)), float(n))

    def _pvalues(self, raws: Sequence[Raw]) -> list[float | None]:
        return list(ks_pvalues(np.array([r[0] for r in raws]), [int(r[2]) for r in raws], [int(r[3]) for r in raws]))


def ks_pvalues(d: np.ndarray, n1: Sequence[int], n2: Sequence[int]) -> list[float]:
    """Two-sided KS p-values as scipy.stats.ks_2samp(method='auto') computes them."""
    from scipy.stats._stats_py import _attempt_exact_2kssamp

    p = np.full(len(d), np.nan)
    asymptotic = []
    for i, (stat, a, b) in enumerate(zip(d, n1, n2, strict=True)):
        if max(a, b) <= KS_EXACT_MAX_N:
            ok, _, prob = _attempt_exact_2kssamp(a, b, math.gcd(a, b), float(stat), "two-sided")
            if ok:
                p[i] = prob
                continue
        asymptotic.append(i)
    if asymptotic:
        idx = np.array(asymptotic)
        big = np.maximum(np.take(n1, idx), np.take(n2, idx)).astype(np.float64)
        small = np.minimum(np.take(n1, idx), np.take(n2, idx)).astype(np.float64)
        p[idx] = stats.kstwo.sf(d[idx], np.round(big * small / (big + small)))
    return [float(x) for x in np.clip(p, 0.0, 1.0)]


class Chi2(_Builtin):
    """Chi-square test of the reference vs batch contingency table; effect size Cramér's V.

    V is computed as if both rows had the same size, so it measures how far the proportions are
    apart whatever the batch size (see docs/statistics.md).
    """

    name = "chi2"
    kinds = frozenset({"categorical", "boolean"})

    def __init__(self, *, threshold: float = 0.1, alpha: float = 0.05) -> None:
        self.threshold = threshold
        self.alpha = alpha

    def _categorical(self, ref: np.ndarray, current: np.ndarray) -> Raw:
        table = np.vstack([ref, current]).astype(np.float64)
        table = table[:, table.sum(axis=0) > 0]
        dof = table.shape[1] - 1
        if dof < 1 or not table.sum(axis=1).all():
            return (0.0, 0.0, 0.0)
        expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
        if dof == 1:  # Yates' correction, exactly where scipy.stats.chi2_contingency applies it
            diff = expected - table
            table = table + np.sign(diff) * np.minimum(0.5, np.abs(diff))
        statistic = float(((table - expected) ** 2 / expected).sum())
        p, q = _proportions(ref), _proportions(current)
        both = p + q
        v = math.sqrt(float(np.sum((p - q)[both > 0] ** 2 / (2 * both[both > 0]))))
        return (statistic, v, float(dof))

    def _pvalues(self, raws: Sequence[Raw]) -> list[float | None]:
        stat = np.array([r[0] for r in raws])
        dof = np.array([r[2] for r in raws])
        p = np.where(dof > 0, stats.chi2.sf(stat, np.maximum(dof, 1)), 1.0)
        return [float(x) for x in p]


class PSI(_Builtin):
    """Population stability index on the reference's bins; no p-value, the index is the effect size."""

    name = "psi"
    kinds = frozenset({"numeric", "categorical", "boolean"})

    def __init__(self, *, threshold: float = 0.1, epsilon: float = 1e-4) -> None:
        self.threshold = threshold
        self.epsilon = epsilon

    def _categorical(self, ref: np.ndarray, current: np.ndarray) -> Raw:
        p = np.maximum(_proportions(ref), self.epsilon)
        q = np.maximum(_proportions(current), self.epsilon)
        psi = float(np.sum((q - p) * np.log(q / p)))
        return (psi, psi)


class JensenShannon(_Builtin):
    """Jensen-Shannon distance (natural log) of the binned distributions, as scipy computes it."""

    name = "jensen_shannon"
    kinds = frozenset({"numeric", "categorical", "boolean"})

    def __init__(self, *, threshold: float = 0.1) -> None:
        self.threshold = threshold

    def _categorical(self, ref: np.ndarray, current: np.ndarray) -> Raw:
        p, q = _proportions(ref), _proportions(current)
        m = (p + q) / 2.0
        divergence = (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / 2.0
        distance = math.sqrt(max(float(divergence), 0.0))
        return (distance, distance)


class Wasserstein(_Builtin):
    """Wasserstein-1 distance between the reference sample and the batch, divided by the reference std."""

    name = "wasserstein"
    kinds = frozenset({"numeric"})

    def __init__(self, *, threshold: float = 0.1) -> None:
        self.threshold = threshold

    def _numeric(self, ref: NumericReference, current: np.ndarray) -> Raw:
        distance = wasserstein_sorted(ref, current)
        return (distance, distance / ref.scale)


def wasserstein_sorted(ref: NumericReference, u: np.ndarray) -> float:
    """W1 = integral of |F_ref - F_cur| without merging the two samples.

    Between two distinct reference values F_ref is a constant c; F_cur crosses c once (at x*), so
    the integral splits at x* into two pieces of G(x) = integral of F_cur up to x, which prefix sums
    of the sorted batch give at any x in O(log n).
    """
    n = len(u)
    prefix = np.concatenate(([0.0], np.cumsum(u)))

    def g(x: np.ndarray) -> np.ndarray:
        k = np.searchsorted(u, x, side="right")
        result: np.ndarray = (k * x - prefix[k]) / n
        return result

    v = ref.unique
    head = float(g(v[:1])[0])  # F_ref = 0 left of the first reference value
    end = max(float(u[-1]), float(v[-1]))
    tail = (end - float(v[-1])) - float(g(np.array([end]))[0] - g(v[-1:])[0])  # F_ref = 1 right of the last
    if len(v) == 1:
        return head + tail
    a, b, c = v[:-1], v[1:], ref.upto[:-1]
    m = len(ref.sorted)
    crossing = (ref.upto_count[:-1] * n + m - 1) // m  # ceil(c * n) in exact integers
    x = np.clip(u[np.clip(crossing - 1, 0, n - 1)], a, b)
    ga, gb, gx = g(a), g(b), g(x)
    middle = c * (x - a) - (gx - ga) + (gb - gx) - c * (b - x)
    return head + float(middle.sum()) + tail
