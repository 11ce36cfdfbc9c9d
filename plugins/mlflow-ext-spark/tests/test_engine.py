"""The Spark engine against the numpy engine on the same frames (local Spark, one session)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow_ext import Profile, check
from mlflow_ext.errors import ConfigError, DataError

from mlflow_ext_spark import SparkEngine

N = 4000


def _frame(seed: int, n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "x": rng.normal(size=n),
        "i": rng.integers(0, 40, size=n),
        "w": rng.exponential(size=n).round(2),  # heavy ties
        "c": rng.choice(list("abcdefghij"), size=n, p=[.3, .2, .1, .1, .1, .05, .05, .04, .03, .03]),
        "b": rng.random(n) < 0.3,
        "id": [f"u{k}" for k in rng.integers(0, 10 * n, size=n)],  # more categories than top_k
        "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, size=n), unit="s"),
    })
    df.loc[::13, "x"] = np.nan
    df["c"] = df["c"].where(rng.random(n) > 0.02)
    return df


@pytest.fixture(scope="module")
def frames(spark: Any) -> dict[str, Any]:
    """The reference and a drifted batch with data-quality problems, as pandas and as Spark frames."""
    ref = _frame(0)
    cur = _frame(1).drop(columns=["i"])
    cur["x"] = cur["x"] + 0.6
    cur.loc[:40, "w"] = 50.0  # out of range
    cur.loc[:2, "x"] = np.inf
    cur.loc[:60, "c"] = "zz"  # unseen category
    cur.loc[::5, "c"] = None  # null rate up
    cur["extra"] = 1.0
    return {"ref": ref, "cur": cur, "sref": spark.createDataFrame(ref), "scur": spark.createDataFrame(cur)}


@pytest.fixture(scope="module")
def profiles(frames: dict[str, Any]) -> tuple[Profile, Profile]:
    return Profile.from_frame(frames["ref"], top_k=5), Profile.from_frame(frames["sref"], top_k=5)


def test_profile_equals_the_numpy_engine_within_the_documented_tolerance(
        frames: dict[str, Any], profiles: tuple[Profile, Profile]) -> None:
    numpy_profile, spark_profile = profiles
    assert spark_profile.n_rows == numpy_profile.n_rows == N
    assert list(spark_profile.columns) == list(numpy_profile.columns)
    for name, expected in numpy_profile.columns.items():
        got = spark_profile.columns[name]
        assert (got.kind, got.count, got.nulls, got.values, got.other) == (
            expected.kind, expected.count, expected.nulls, expected.values, expected.other), name
        if expected.kind == "numeric":
            assert (got.min, got.max) == (expected.min, expected.max)
            assert got.mean == pytest.approx(expected.mean, rel=1e-12)
            assert got.std == pytest.approx(expected.std, rel=1e-12)
            _assert_edges_within_rank_error(frames["ref"][name], got.edges, 1e-4)
        elif expected.kind == "datetime":
            assert (got.min, got.max) == (expected.min, expected.max)
        else:
            assert got.counts == expected.counts, name
    # on the same edges the histograms are exact
    same_edges = Profile.from_frame(frames["sref"], top_k=5, bins=numpy_profile.edges)
    for name, col in numpy_profile.columns.items():
        assert same_edges.columns[name].counts == col.counts, name
    assert spark_profile.sample is not None and len(spark_profile.sample) == N  # all rows: N < sample_size
    assert sorted(spark_profile.sample["id"]) == sorted(frames["ref"]["id"])


def _assert_edges_within_rank_error(values: pd.Series, edges: tuple[float, ...], relative_error: float) -> None:
    """Each inner edge is a value whose rank is within relative_error * n of the exact quantile's."""
    finite = np.sort(values.dropna().to_numpy(dtype=np.float64))
    n = len(finite)
    exact = np.unique(np.quantile(finite, np.linspace(0, 1, 11)))
    assert len(edges) == len(exact) and edges[0] == finite[0] and edges[-1] == finite[-1]
    for p, edge in zip(np.linspace(0, 1, 11)[1:-1], edges[1:-1], strict=False):
        low = finite[max(0, math.floor((p - relative_error) * (n - 1)))]
        high = finite[min(n - 1, math.ceil((p + relative_error) * (n - 1)))]
        assert low <= edge <= high


@pytest.mark.parametrize("detectors", [
    None,
    {"numeric": "psi", "categorical": "psi", "boolean": "jensen_shannon"},
    {"numeric": "jensen_shannon", "columns": {"w": "wasserstein", "id": None}},
])
def test_check_equals_the_numpy_engine(frames: dict[str, Any], profiles: tuple[Profile, Profile],
                                       detectors: dict[str, Any] | None) -> None:
    reference = profiles[0]
    expected = check(reference, frames["cur"], detectors=detectors)
    got = check(reference, frames["scur"], detectors=detectors)
    assert got == expected
    kinds = {f.kind for f in got.quality}
    assert {"missing_column", "extra_columns", "non_finite", "out_of_range", "unseen_categories",
            "null_rate"} <= kinds
    assert "x" in got.drifted_columns and got.status in ("warn", "alert")


@pytest.mark.parametrize("ks_points", [10, 100])
def test_ks_on_fewer_points_than_reference_values_is_within_the_documented_bound(
        frames: dict[str, Any], profiles: tuple[Profile, Profile], ks_points: int) -> None:
    """With more distinct reference values than ks_points, D is at most 1/ks_points too small, never
    too large; the other detectors' statistics and the quality findings stay exact."""
    reference = profiles[0]
    assert len(np.unique(reference.sample["x"].dropna())) > 10 * ks_points  # so the bound is what is tested
    expected = check(reference, frames["cur"])
    got = SparkEngine(ks_points=ks_points).check(reference, frames["scur"])
    assert got.quality == expected.quality and got.n_rows == expected.n_rows
    exact = {r.column: r for r in expected.drift}
    assert [r.column for r in got.drift] == list(exact)
    for r in got.drift:
        d = exact[r.column].statistic
        if r.detector == "ks":
            assert d - 1 / ks_points - 1e-12 <= r.statistic <= d + 1e-12 and r.effect_size == r.statistic, r.column
        else:  # p-values are corrected across all columns, so only the statistics are compared
            assert (r.statistic, r.effect_size) == (d, exact[r.column].effect_size), r.column
    if ks_points == 10:  # few enough points that D does move (within the bound)
        assert any(r.statistic != exact[r.column].statistic for r in got.drift if r.detector == "ks")


def test_wasserstein_on_a_batch_larger_than_the_sample_is_close(spark: Any, profiles: tuple[Profile, Profile]) -> None:
    reference = dataclasses.replace(profiles[0], sample_size=1000)
    batch = _frame(2)
    batch["x"] = batch["x"] * 1.2
    options = {"detectors": {"numeric": "wasserstein", "categorical": None, "boolean": None}}
    expected = {r.column: r.effect_size for r in check(reference, batch, **options).drift}
    got = {r.column: r.effect_size for r in check(reference, spark.createDataFrame(batch), **options).drift}
    assert got.keys() == expected.keys() == {"x", "i", "w"}
    for name in got:  # a 1000-row sample of the batch: W1 within ~0.05 reference sd
        assert got[name] == pytest.approx(expected[name], abs=0.06), name


def test_the_number_of_spark_jobs_does_not_grow_with_the_columns(spark: Any) -> None:
    rng = np.random.default_rng(5)
    narrow = pd.DataFrame({f"x{k}": rng.normal(size=500) for k in range(2)})
    wide = pd.DataFrame({f"x{k}": rng.normal(size=500) for k in range(24)})
    jobs = []
    for frame in (narrow, wide):
        sdf = spark.createDataFrame(frame).cache()
        sdf.count()
        tracker = spark.sparkContext.statusTracker()
        group = f"profile-{frame.shape[1]}"
        spark.sparkContext.setJobGroup(group, group)
        reference = Profile.from_frame(sdf, sample_size=100)
        check(reference, sdf)
        spark.sparkContext.setJobGroup("other", "other")
        jobs.append(len(tracker.getJobIdsForGroup(group)))
        sdf.unpersist()
    assert jobs[0] == jobs[1] and jobs[0] <= 12


def test_errors_name_the_column_and_lose_nothing(spark: Any, profiles: tuple[Profile, Profile]) -> None:
    with pytest.raises(DataError, match="Column 'x' has 1 infinite value"):
        Profile.from_frame(spark.createDataFrame(pd.DataFrame({"x": [1.0, np.inf, 2.0]})))
    with pytest.raises(DataError, match=r"Column 'v' has an unsupported type: array<int>"):
        Profile.from_frame(spark.sql("SELECT array(1, 2) AS v"))
    with pytest.raises(DataError, match="The data to profile has no rows"):
        Profile.from_frame(spark.sql("SELECT 1.0 AS x WHERE false"))
    with pytest.raises(ConfigError, match=r"bins\['c'\]: edges apply to numeric columns; 'c' is categorical"):
        Profile.from_frame(spark.sql("SELECT 'a' AS c"), bins={"c": [0, 1]})
    with pytest.raises(ConfigError, match="relative_error: expected a number in \\[0, 1\\), got 2"):
        SparkEngine(relative_error=2).profile(spark.sql("SELECT 1.0 AS x"))
    with pytest.raises(ConfigError, match="ks_points: expected a whole number >= 1, got 0"):
        SparkEngine(ks_points=0).check(profiles[0], spark.sql("SELECT 1.0 AS x"))
    empty = check(profiles[0], spark.sql("SELECT 1.0 AS x WHERE false"))
    assert empty.status == "error" and "The batch is empty" in empty.reasons[0]
    other = check(profiles[0], spark.sql("SELECT 1.0 AS nope"))
    assert other.status == "error" and "no column in common" in other.reasons[0]
