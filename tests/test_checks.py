"""check(): drift decisions with effect size and correction, quality findings, status, bad input."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlflow_ext.checks import (
    CheckResult,
    PerformanceMetric,
    adjust_pvalues,
    check,
    with_model_findings,
)
from mlflow_ext.detectors import ColumnDrift
from mlflow_ext.errors import ConfigError, DataError, MlflowExtError, PluginError
from mlflow_ext.profile import Profile


def _normal(rng: np.random.Generator, n: int, columns: int, shift: dict[int, float] | None = None) -> pd.DataFrame:
    shift = shift or {}
    return pd.DataFrame({f"f{i}": rng.normal(shift.get(i, 0.0), 1.0, size=n) for i in range(columns)})


@pytest.fixture(scope="module")
def mixed() -> tuple[Profile, pd.DataFrame]:
    rng = np.random.default_rng(1)
    n = 4_000
    df = pd.DataFrame({
        "x": rng.normal(size=n),
        "y": rng.normal(size=n),
        "city": rng.choice(["a", "b", "c"], size=n),
        "flag": rng.random(n) < 0.3,
        "when": pd.date_range("2024-01-01", periods=n, freq="min"),
    })
    return Profile.from_frame(df), df


def test_same_distribution_is_ok(mixed: tuple[Profile, pd.DataFrame]) -> None:
    profile, df = mixed
    result = check(profile, df.sample(frac=0.5, random_state=2))
    assert result.status == "ok" and result.drifted_columns == () and result.n_tested == 4
    assert result.reasons == ("No drift or data-quality problem in 4 tested column(s) of 2000 rows.",)


def test_trivial_shift_in_a_million_rows_does_not_alert() -> None:
    rng = np.random.default_rng(2)
    profile = Profile.from_frame(_normal(rng, 200_000, 4))
    batch = _normal(rng, 1_000_000, 4, shift={i: 0.01 for i in range(4)})
    result = check(profile, batch, min_drifted=1)
    assert result.status == "ok", result.reasons
    assert all(r.effect_size < r.threshold for r in result.drift)


def test_identical_columns_alert_at_most_alpha_of_the_time() -> None:
    alerts = {"holm": 0, "none": 0}
    seeds = 30
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        profile = Profile.from_frame(_normal(rng, 300, 100))
        batch = _normal(rng, 300, 100)
        for correction in alerts:
            result = check(profile, batch, correction=correction, min_drifted=1)
            alerts[correction] += result.status == "alert"
    assert alerts["holm"] <= 4  # expected at most alpha * 30 = 1.5
    assert alerts["none"] >= 20  # without correction, 100 tests almost always find something


def test_shift_in_20_of_100_columns_found_without_false_positives() -> None:
    rng = np.random.default_rng(3)
    shifted = set(range(0, 100, 5))
    profile = Profile.from_frame(_normal(rng, 20_000, 100))
    batch = _normal(rng, 20_000, 100, shift={i: 0.2 for i in shifted})
    result = check(profile, batch)
    assert set(result.drifted_columns) == {f"f{i}" for i in shifted}
    assert result.drift_share == pytest.approx(0.2)
    assert result.status == "warn"  # below the default alert share of 50%
    assert result.reasons[0].startswith("20 of 100 columns drifted (20%), below the alert share of 50%: 'f0' (ks ")
    assert check(profile, batch, drift_share=0.2).status == "alert"
    assert check(profile, batch, min_drifted=20).status == "alert"
    assert check(profile, batch, min_drifted=21).status == "warn"


def test_adjust_pvalues_known_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    assert adjust_pvalues(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_pvalues(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_pvalues(p, "none") == p
    with pytest.raises(ConfigError, match="correction: unknown method 'sidak'. Valid: holm, bonferroni, bh, none"):
        adjust_pvalues(p, "sidak")


def test_quality_findings(mixed: tuple[Profile, pd.DataFrame]) -> None:
    profile, df = mixed
    batch = df.head(1000).copy()
    batch["x"] = batch["x"].to_numpy() * 1.0
    batch.loc[:99, "x"] = 50.0  # 10% out of range
    batch.loc[100:109, "x"] = np.inf
    batch.loc[:299, "y"] = np.nan  # 30% nulls vs 0%
    batch["city"] = ["z"] * 20 + list(batch["city"][20:])  # 2% unseen
    batch["flag"] = batch["flag"].astype(str)  # boolean became text
    batch = batch.drop(columns="when").assign(extra=1)
    result = check(profile, batch)
    kinds = {(f.kind, f.column): f for f in result.quality}
    assert kinds[("missing_column", "when")].severity == "warn"
    assert kinds[("extra_columns", None)].severity == "info"
    out = kinds[("out_of_range", "x")]
    assert out.severity == "warn" and out.observed["count"] == 100
    assert kinds[("non_finite", "x")].observed["count"] == 10
    assert kinds[("null_rate", "y")].observed["current"] == pytest.approx(0.3)
    assert kinds[("unseen_categories", "city")].message.startswith(
        "Column 'city' has 20 value(s) (2.00%) in 1 categories not seen in the reference: 'z'")
    changed = kinds[("kind_changed", "flag")]
    assert "was boolean (bool) in the reference and is categorical" in changed.message
    assert "flag" not in {r.column for r in result.drift}
    assert result.status in ("warn", "alert")
    assert any("missing from the batch" in reason for reason in result.reasons)


def test_all_null_column_and_int_to_float_dtype_change() -> None:
    profile = Profile.from_frame(pd.DataFrame({"n": [1, 2, 3, 4] * 50, "c": list("abcd") * 50}))
    batch = pd.DataFrame({"n": [1.0, 2.0, 3.0, 4.0] * 10, "c": [None] * 40})
    result = check(profile, batch)
    found = {(f.kind, f.column): f.severity for f in result.quality}
    assert found == {("dtype_changed", "n"): "info", ("all_null", "c"): "warn"}
    assert [r.column for r in result.drift] == ["n"]


def test_empty_batch_and_no_common_columns_are_error_results(mixed: tuple[Profile, pd.DataFrame]) -> None:
    profile, df = mixed
    empty = check(profile, df.iloc[:0])
    assert empty.status == "error" and empty.reasons == ("The batch is empty (0 rows); nothing to check.",)
    other = check(profile, pd.DataFrame({"q": [1, 2]}))
    assert other.status == "error"
    assert other.reasons[0].startswith("The batch has no column in common with the reference: batch ['q'] (1)")


@pytest.mark.parametrize(("options", "error", "match"), [
    ({"detectors": {"numeric": "pis"}}, PluginError, "No detector named 'pis'. Installed: chi2, .*ks, psi"),
    ({"detectors": {"numerical": "ks"}}, ConfigError, "detectors: unknown key 'numerical'. Valid: numeric"),
    ({"detectors": {"categorical": "ks"}}, ConfigError,
     "detectors.categorical: detector 'ks' cannot test categorical column 'city'; it tests numeric"),
    ({"detectors": {"columns": {"nope": "ks"}}}, ConfigError, "'nope' is not a column of the reference"),
    ({"detectors": {"numeric": 3}}, ConfigError, "detectors.numeric: expected a detector name"),
    ({"correction": "fdr"}, ConfigError, "correction: unknown method 'fdr'"),
    ({"alpha": 0}, ConfigError, "alpha: expected a number in \\(0, 1\\], got 0"),
    ({"min_drifted": 0}, ConfigError, "min_drifted: expected an integer >= 1 or None, got 0"),
])
def test_invalid_arguments_raise(mixed: tuple[Profile, pd.DataFrame], options: dict[str, object],
                                 error: type[Exception], match: str) -> None:
    profile, df = mixed
    with pytest.raises(error, match=match):
        check(profile, df.head(10), **options)  # type: ignore[arg-type]


def test_invalid_inputs_raise(mixed: tuple[Profile, pd.DataFrame]) -> None:
    profile, df = mixed
    with pytest.raises(DataError, match="The current batch must be a pandas DataFrame, got dict"):
        check(profile, {"x": [1]})  # type: ignore[arg-type]
    with pytest.raises(DataError, match="reference must be a Profile, got DataFrame"):
        check(df, df)  # type: ignore[arg-type]
    without_sample = Profile.from_json(profile.to_json())
    with pytest.raises(DataError, match="no sample of rows"):
        check(without_sample, df.head(10))


def test_detectors_per_kind_and_column(mixed: tuple[Profile, pd.DataFrame]) -> None:
    profile, df = mixed
    result = check(profile, df.head(500), detectors={
        "numeric": "psi", "categorical": "jensen_shannon", "columns": {"y": "wasserstein", "flag": None},
    })
    assert [(r.column, r.detector) for r in result.drift] == [
        ("x", "psi"), ("y", "wasserstein"), ("city", "jensen_shannon")]


def test_result_round_trips_through_json(mixed: tuple[Profile, pd.DataFrame]) -> None:
    profile, df = mixed
    batch = df.head(800).assign(x=lambda d: d["x"] + 1)
    result = check(profile, batch)
    back = CheckResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back == result
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = "ok"  # type: ignore[misc]
    with pytest.raises(DataError, match="Not a check result"):
        CheckResult.from_dict({"status": "ok"})


def test_model_findings_recompute_status(mixed: tuple[Profile, pd.DataFrame]) -> None:
    profile, df = mixed
    result = check(profile, df.head(1000))
    assert result.status == "ok"
    metric = PerformanceMetric("accuracy", 0.71, reference=0.9, p_value=0.001, degraded=True)
    degraded = with_model_findings(result, performance=[metric])
    assert degraded.status == "alert"
    assert "Model metric 'accuracy' degraded: 0.71 vs 0.9 for the reference (p=0.001)." in degraded.reasons
    moved = ColumnDrift("prediction", "ks", 0.3, 1e-9, 0.3, 0.05, True, 1e-9)
    warned = with_model_findings(result, prediction_drift=[moved])
    assert warned.status == "warn" and "The model's prediction 'prediction' drifted" in warned.reasons[0]
    assert CheckResult.from_dict(json.loads(json.dumps(degraded.to_dict()))) == degraded


class Exploding:
    kinds = frozenset({"numeric"})

    def detect(self, reference: pd.DataFrame, current: pd.DataFrame) -> object:
        raise RuntimeError("boom")


def test_a_failing_plugin_detector_is_named(mixed: tuple[Profile, pd.DataFrame]) -> None:
    profile, df = mixed
    with pytest.raises(PluginError, match="Detector 'Exploding' failed on columns \\['x', 'y'\\] .*boom"):
        check(profile, df.head(50), detectors={"numeric": Exploding()})


@st.composite
def batches(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 15))
    columns: dict[str, object] = {}
    for name in draw(st.lists(st.sampled_from(["x", "y", "city", "flag", "when", "new"]), unique=True)):
        kind = draw(st.sampled_from(["float", "str", "bool", "mixed"]))
        if kind == "float":
            columns[name] = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n))
        elif kind == "str":
            columns[name] = draw(st.lists(st.one_of(st.text(max_size=2), st.none()), min_size=n, max_size=n))
        elif kind == "bool":
            columns[name] = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        else:
            values = draw(st.lists(st.one_of(st.integers(), st.text(max_size=2), st.none(), st.floats()),
                                   min_size=n, max_size=n))
            columns[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns, index=range(n))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(batches())
def test_generated_batches_give_a_result_or_a_clear_error(mixed: tuple[Profile, pd.DataFrame],
                                                          batch: pd.DataFrame) -> None:
    profile, _ = mixed
    try:
        result = check(profile, batch)
    except MlflowExtError:
        return
    assert result.status in ("ok", "warn", "alert", "error") and result.reasons
    json.dumps(result.to_dict())
