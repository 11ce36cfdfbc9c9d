"""Built-in detectors: parity with scipy, conformance of every installed detector, the contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlflow_ext.builtin.detectors import KS, PSI, Chi2, JensenShannon, Wasserstein
from mlflow_ext.checks import check
from mlflow_ext.detectors import ColumnDrift, DetectorResult
from mlflow_ext.errors import ConfigError, PluginError
from mlflow_ext.profile import Profile, histogram
from mlflow_ext.testing import check_detector, parametrize_detectors


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    cases = [
        ("continuous", rng.normal(size=300), rng.normal(0.1, 1.0, size=250)),
        ("ties", rng.integers(0, 6, size=400).astype(float), rng.integers(0, 7, size=380).astype(float)),
        ("rounded", np.round(rng.normal(size=1000), 1), np.round(rng.normal(0.05, 1, size=999), 1)),
        ("constant both", np.full(50, 3.0), np.full(40, 3.0)),
        ("constant vs not", np.full(50, 3.0), rng.normal(3, 1, size=60)),
        ("tiny", rng.normal(size=3), rng.normal(size=2)),
        ("one each", np.array([1.0]), np.array([2.0])),
        ("very unequal", rng.normal(size=10_000), rng.normal(0.02, 1, size=7)),
        ("unequal exact edge", rng.normal(size=10_000), rng.normal(size=9_999)),
        ("asymptotic", rng.normal(size=2_000), rng.normal(0.03, 1, size=60_000)),
        ("asymptotic ties", rng.integers(0, 50, size=5_000) * 1.0, rng.integers(0, 51, size=20_001) * 1.0),
    ]
    for i in range(8):  # random sizes, shifts and scales
        n1, n2 = rng.integers(2, 3_000, size=2)
        cases.append((f"random {i}", rng.normal(size=n1), rng.normal(rng.normal(0, 0.2), rng.uniform(0.5, 2), n2)))
    return cases


CASES = _cases()


@pytest.mark.parametrize(("label", "a", "b"), CASES, ids=[c[0] for c in CASES])
def test_ks_matches_scipy(label: str, a: np.ndarray, b: np.ndarray) -> None:
    result = KS().detect(pd.DataFrame({"v": a}), pd.DataFrame({"v": b})).columns[0]
    expected = stats.ks_2samp(a, b)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-6)
    assert result.effect_size == result.statistic


@pytest.mark.parametrize(("label", "a", "b"), CASES, ids=[c[0] for c in CASES])
def test_wasserstein_matches_scipy(label: str, a: np.ndarray, b: np.ndarray) -> None:
    result = Wasserstein().detect(pd.DataFrame({"v": a}), pd.DataFrame({"v": b})).columns[0]
    expected = stats.wasserstein_distance(a, b)
    assert result.statistic == pytest.approx(expected, rel=1e-9, abs=1e-12)
    scale = np.std(a, ddof=1) if len(a) > 1 and np.std(a) > 0 else 1.0
    assert result.effect_size == pytest.approx(expected / scale, rel=1e-9, abs=1e-12)


def test_ks_in_check_compares_the_reference_sample_with_the_batch() -> None:
    rng = np.random.default_rng(5)
    reference = pd.DataFrame({"a": rng.normal(size=30_000), "b": np.round(rng.normal(size=30_000), 1)})
    batch = pd.DataFrame({"a": rng.normal(0.05, 1, size=40_000), "b": np.round(rng.normal(size=8_000), 1).tolist()
                          + [np.nan] * 32_000})
    profile = Profile.from_frame(reference)
    assert profile.sample is not None
    result = check(profile, batch)
    for r in result.drift:
        expected = stats.ks_2samp(profile.sample[r.column], batch[r.column].dropna())
        assert r.statistic == pytest.approx(expected.statistic, abs=1e-9)
        assert r.p_value == pytest.approx(expected.pvalue, abs=1e-6)


def _table(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    cats = sorted(set(a) | set(b))
    ra, rb = a.value_counts(), b.value_counts()
    table = np.array([[ra.get(c, 0) for c in cats], [rb.get(c, 0) for c in cats]])
    return table, pd.DataFrame({"c": a}), pd.DataFrame({"c": b})


@pytest.mark.parametrize("seed", range(6))
def test_chi2_matches_scipy_contingency(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))  # k == 2 gives a 2x2 table, where scipy applies Yates' correction
    letters = list("abcdef")[:k]
    a = pd.Series(rng.choice(letters, size=int(rng.integers(20, 500))))
    b = pd.Series(rng.choice(letters, size=int(rng.integers(20, 500)), p=rng.dirichlet(np.ones(k))))
    table, ref, cur = _table(a, b)
    result = Chi2().detect(ref, cur).columns[0]
    expected = stats.chi2_contingency(table)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-12)


def test_chi2_on_booleans_and_unseen_categories() -> None:
    a, b = pd.Series([True] * 30 + [False] * 70), pd.Series([True] * 55 + [False] * 45)
    table, ref, cur = _table(a, b)
    result = Chi2().detect(ref, cur).columns[0]
    assert result.statistic == pytest.approx(stats.chi2_contingency(table).statistic)  # 2x2: Yates applied
    assert result.statistic != pytest.approx(stats.chi2_contingency(table, correction=False).statistic)
    a, b = pd.Series(list("aab") * 20), pd.Series(list("abcc") * 15)  # 'c' never seen: the 'other' bin
    table, ref, cur = _table(a, b)
    assert Chi2().detect(ref, cur).columns[0].statistic == pytest.approx(stats.chi2_contingency(table).statistic)


def test_chi2_effect_size_does_not_grow_with_the_batch() -> None:
    ref = pd.DataFrame({"c": ["a"] * 50_000 + ["b"] * 50_000})
    small = pd.DataFrame({"c": ["a"] * 52 + ["b"] * 48})
    large = pd.DataFrame({"c": ["a"] * 52_000 + ["b"] * 48_000})
    v_small, v_large = (Chi2().detect(ref, cur).columns[0] for cur in (small, large))
    assert v_small.effect_size == pytest.approx(v_large.effect_size)
    assert v_large.p_value < 1e-10 < v_small.p_value and not v_large.drifted  # significant but trivial


def test_jensen_shannon_and_psi_on_reference_bins() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=2_000), rng.normal(0.4, 1.2, size=1_500)
    profile = Profile.from_frame(pd.DataFrame({"v": a}))
    edges = np.asarray(profile.columns["v"].edges)
    ref_counts, cur_counts = histogram(np.sort(a), edges), histogram(np.sort(b), edges)
    js = JensenShannon().detect(pd.DataFrame({"v": a}), pd.DataFrame({"v": b})).columns[0]
    assert js.statistic == pytest.approx(jensenshannon(ref_counts, cur_counts), rel=1e-12)
    p = np.maximum(ref_counts / ref_counts.sum(), 1e-4)
    q = np.maximum(cur_counts / cur_counts.sum(), 1e-4)
    psi = PSI().detect(pd.DataFrame({"v": a}), pd.DataFrame({"v": b})).columns[0]
    assert psi.statistic == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-12)
    assert psi.p_value is None and psi.drifted  # a 0.4 sd shift is a moderate PSI
    cat = JensenShannon().detect(pd.DataFrame({"c": list("aabb")}), pd.DataFrame({"c": list("abbb")})).columns[0]
    assert cat.statistic == pytest.approx(jensenshannon([2, 2, 0], [1, 3, 0]))


def test_psi_catches_a_constant_reference_moving() -> None:
    result = PSI().detect(pd.DataFrame({"v": [5.0] * 100}), pd.DataFrame({"v": [7.0] * 100})).columns[0]
    assert result.drifted and result.statistic > 1


@parametrize_detectors()
def test_every_installed_detector_passes_conformance(detector_name: str) -> None:
    check_detector(detector_name)


def test_builtins_reject_kinds_they_do_not_test() -> None:
    with pytest.raises(ConfigError, match="Detector 'ks' cannot test categorical column 'c'; it tests numeric"):
        KS().detect(pd.DataFrame({"c": ["a", "b"]}), pd.DataFrame({"c": ["a", "b"]}))


class MeanShift:
    """The docstring example of mlflow_ext.detectors, as a third party would write it."""

    kinds = frozenset({"numeric"})

    def __init__(self, *, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def detect(self, reference: pd.DataFrame, current: pd.DataFrame) -> DetectorResult:
        results = []
        for name in current.columns:
            ref, cur = reference[name].dropna(), current[name].dropna()
            effect = float(abs(cur.mean() - ref.mean()) / (ref.std() or 1.0))
            results.append(ColumnDrift(column=name, detector="mean_shift", statistic=effect, p_value=None,
                                       effect_size=effect, threshold=self.threshold,
                                       drifted=effect >= self.threshold))
        return DetectorResult(columns=tuple(results))


def test_a_third_party_detector_passes_and_runs_in_check() -> None:
    check_detector(MeanShift)
    rng = np.random.default_rng(0)
    profile = Profile.from_frame(pd.DataFrame({"x": rng.normal(size=500), "y": rng.normal(size=500)}))
    batch = pd.DataFrame({"x": rng.normal(2, 1, size=300), "y": rng.normal(size=300)})
    result = check(profile, batch, detectors={"numeric": MeanShift()})
    assert [(r.column, r.detector, r.drifted) for r in result.drift] == [("x", "mean_shift", True),
                                                                         ("y", "mean_shift", False)]


class Positional:
    kinds = frozenset({"numeric"})

    def __init__(self, threshold: float = 0.1) -> None:
        self.threshold = threshold

    def detect(self, reference: pd.DataFrame, current: pd.DataFrame) -> DetectorResult:
        return DetectorResult()


class Transforms(MeanShift):
    def __init__(self, *, threshold: float = 0.5) -> None:
        self.threshold = threshold * 2


class AlwaysDrifts(MeanShift):
    def detect(self, reference: pd.DataFrame, current: pd.DataFrame) -> DetectorResult:
        base = super().detect(reference, current)
        return DetectorResult(columns=tuple(ColumnDrift(**{**r.__dict__, "drifted": True}) for r in base.columns))


class BadPValue(MeanShift):
    def detect(self, reference: pd.DataFrame, current: pd.DataFrame) -> DetectorResult:
        base = super().detect(reference, current)
        return DetectorResult(columns=tuple(ColumnDrift(**{**r.__dict__, "p_value": 1.5}) for r in base.columns))


class ReturnsDict(MeanShift):
    def detect(self, reference: pd.DataFrame, current: pd.DataFrame) -> DetectorResult:
        return {"x": 1}  # type: ignore[return-value]


@pytest.mark.parametrize(("cls", "match"), [
    (Positional, "'Positional' .*__init__ parameter 'threshold' must be keyword-only"),
    (Transforms, "must store option 'threshold' unchanged"),
    (AlwaysDrifts, "identical reference and batch must not drift"),
    (BadPValue, "p_value of 'num x' must be in \\[0, 1\\] or None; got 1.5"),
    (ReturnsDict, "detect must return a DetectorResult; got 'dict'"),
])
def test_conformance_names_the_broken_rule(cls: type, match: str) -> None:
    with pytest.raises(PluginError, match=match):
        check_detector(cls)
