"""Performance estimation without labels (CBPE, DLE) on seeded streams whose answers are known."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from mlflow_ext.errors import ConfigError, DataError
from mlflow_ext.estimation import (
    CBPEModel,
    DLEModel,
    EstimatedMetric,
    estimate,
    fit_cbpe,
    fit_dle,
    load,
    realized,
    reliability_curve,
    reliability_figure,
)

BATCH = 1000
WEIGHTS = np.array([[2.0, -1.5], [-1.0, 2.0], [0.0, 0.0]])  # rows: classes; the last class is the baseline


def draw(rng: np.random.Generator, n: int, *, classes: int = 2, spread: float = 1.5,
         flip_above: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logistic (softmax) data. A smaller ``spread`` moves mass to the uncertain middle: covariate
    shift that lowers accuracy with the label relation unchanged. ``flip_above`` is concept drift:
    labels of rows with x0 above it swap classes 0 and 1."""
    x = rng.normal(0.0, spread, size=(n, 2))
    logits = x @ WEIGHTS[-classes:].T + (0.3 if classes == 2 else 0.0)
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    y = (rng.random((n, 1)) > proba.cumsum(axis=1)).sum(axis=1)
    if flip_above is not None:
        region = (x[:, 0] > flip_above) & (y < 2)
        y[region] = 1 - y[region]
    return x, y


@dataclass(frozen=True)
class Fitted:
    clf: LogisticRegression
    cbpe: CBPEModel


def fitted(classes: int, seed: int) -> Fitted:
    rng = np.random.default_rng(seed)
    clf = LogisticRegression().fit(*draw(rng, 3000, classes=classes))
    x_val, y_val = draw(rng, 3000, classes=classes)
    return Fitted(clf, fit_cbpe(y_val, clf.predict_proba(x_val), classes=clf.classes_))


@pytest.fixture(scope="module")
def binary() -> Fitted:
    return fitted(2, seed=1)


@pytest.fixture(scope="module")
def multiclass() -> Fitted:
    return fitted(3, seed=2)


def by_name(metrics: tuple[EstimatedMetric, ...]) -> dict[str, EstimatedMetric]:
    return {m.name: m for m in metrics}


def reference(model: CBPEModel | DLEModel, name: str) -> float:
    return next(m.value for m in model.reference if m.name == name)


def run_stream(f: Fitted, batches: list[tuple[np.ndarray, np.ndarray]],
               name: str = "accuracy") -> list[tuple[EstimatedMetric, float]]:
    """(estimated, realized) ``name`` per batch."""
    pairs = []
    for x, y in batches:
        scores = f.clf.predict_proba(x)
        actual = next(m.value for m in realized(f.cbpe, y, scores) if m.name == name)
        pairs.append((by_name(estimate(f.cbpe, scores))[name], actual))
    return pairs


# -- realized: the same metrics scikit-learn computes ----------------------------------------------


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_realized_metrics_equal_scikit_learn_with_the_same_averaging(kind: str, request: pytest.FixtureRequest) -> None:
    f: Fitted = request.getfixturevalue(kind)
    x, y = draw(np.random.default_rng(5), BATCH, classes=len(f.clf.classes_))
    scores, pred = f.clf.predict_proba(x), f.clf.predict(x)
    average = "binary" if kind == "binary" else "macro"
    auc = roc_auc_score(y, scores[:, 1]) if kind == "binary" else roc_auc_score(y, scores, multi_class="ovr")
    expected = {"accuracy": accuracy_score(y, pred), "precision": precision_score(y, pred, average=average),
                "recall": recall_score(y, pred, average=average), "f1": f1_score(y, pred, average=average),
                "roc_auc": auc}
    got = {m.name: m.value for m in realized(f.cbpe, y, scores)}
    assert got == pytest.approx(expected, abs=1e-12)


# -- CBPE on streams with known answers ------------------------------------------------------------


def test_covariate_shift_estimate_tracks_realized_within_band_and_catches_the_drop(binary: Fitted) -> None:
    rng = np.random.default_rng(10)
    spreads = [1.5] * 8 + [0.6] * 8  # the shift happens at batch 8
    pairs = run_stream(binary, [draw(rng, BATCH, spread=s) for s in spreads])
    ref = reference(binary.cbpe, "accuracy")

    assert pairs[8][1] < ref - 0.08  # the shift really costs accuracy
    within = [e.band_low <= a <= e.band_high for e, a in pairs]
    assert sum(within) >= 0.8 * len(spreads), pairs
    incident = [e.excludes(ref) and e.value < ref for e, _ in pairs]
    assert incident == [False] * 8 + [True] * 8  # caught in the batch where it happens, not before


def test_no_shift_raises_no_incident_on_any_metric(binary: Fitted) -> None:
    rng = np.random.default_rng(11)
    for _ in range(15):
        x, _y = draw(rng, BATCH)
        for m in estimate(binary.cbpe, binary.clf.predict_proba(x)):
            assert not m.excludes(reference(binary.cbpe, m.name)), m


def test_concept_drift_is_invisible_to_the_estimate_while_realized_accuracy_falls(binary: Fitted) -> None:
    # The honest limit: the features do not move, only the label relation does, so CBPE cannot see it.
    rng = np.random.default_rng(12)
    pairs = run_stream(binary, [draw(rng, BATCH, flip_above=1.0) for _ in range(5)])
    ref = reference(binary.cbpe, "accuracy")
    assert all(not e.excludes(ref) for e, _ in pairs)  # the estimate stays flat...
    assert all(a < e.band_low - 0.1 for e, a in pairs)  # ...while accuracy collapses


def test_multiclass_estimates_track_realized_macro_metrics_under_shift(multiclass: Fitted) -> None:
    rng = np.random.default_rng(13)
    spreads = [1.5] * 5 + [0.5] * 5
    batches = [draw(rng, BATCH, classes=3, spread=s) for s in spreads]
    for name in ("accuracy", "f1"):
        pairs = run_stream(multiclass, batches, name)
        assert sum(e.band_low <= a <= e.band_high for e, a in pairs) >= 8, (name, pairs)
        assert np.mean([e.value for e, _ in pairs[5:]]) < np.mean([e.value for e, _ in pairs[:5]]) - 0.05


def test_calibration_repairs_overconfident_scores(binary: Fitted) -> None:
    rng = np.random.default_rng(14)

    def overconfident(x: np.ndarray) -> np.ndarray:
        sharp = binary.clf.predict_proba(x) ** 4
        return np.asarray(sharp / sharp.sum(axis=1, keepdims=True))

    x_val, y_val = draw(rng, 3000)
    model = fit_cbpe(y_val, overconfident(x_val), classes=[0, 1])
    x, y = draw(rng, 3000)
    curve = reliability_curve(model, y, overconfident(x))
    assert curve.ece_raw > 0.05 > curve.ece_calibrated
    assert sum(b.count for b in curve.raw) == sum(b.count for b in curve.calibrated) == 3000
    est = by_name(estimate(model, overconfident(x)))["accuracy"]
    assert est.band_low <= accuracy_score(y, overconfident(x).argmax(axis=1)) <= est.band_high

    png = io.BytesIO()
    reliability_figure(curve).savefig(png, format="png")
    assert png.getvalue().startswith(b"\x89PNG") and len(png.getvalue()) > 10_000


# -- DLE -------------------------------------------------------------------------------------------


def draw_regression(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Noise grows with |a|: a shift of ``a`` moves rows into the noisy region."""
    x = pd.DataFrame({"a": rng.normal(shift, 1.0, n), "b": rng.normal(0.0, 1.0, n)})
    noise = rng.normal(0.0, 1.0, n) * (0.2 + 0.8 * np.abs(x["a"].to_numpy()))
    return x, 2 * x["a"].to_numpy() - x["b"].to_numpy() + noise


@dataclass(frozen=True)
class FittedRegressor:
    reg: LinearRegression
    dle: DLEModel


@pytest.fixture(scope="module")
def regressor() -> FittedRegressor:
    rng = np.random.default_rng(20)
    reg = LinearRegression().fit(*draw_regression(rng, 2000))
    x_val, y_val = draw_regression(rng, 2000)
    return FittedRegressor(reg, fit_dle(x_val, reg.predict(x_val), y_val))


def test_dle_cross_fitted_reference_estimate_is_honest(regressor: FittedRegressor) -> None:
    for m in regressor.dle.reference_estimate:
        assert m.band_low <= reference(regressor.dle, m.name) <= m.band_high, m


def test_dle_estimated_errors_rise_with_realized_when_the_batch_moves_into_the_noise(
        regressor: FittedRegressor) -> None:
    rng = np.random.default_rng(21)
    shifts = [0.0] * 5 + [1.0] * 5
    rows = []
    for shift in shifts:
        x, y = draw_regression(rng, BATCH, shift)
        pred = regressor.reg.predict(x)
        est = by_name(estimate(regressor.dle, pred, features=x))
        actual = {m.name: m.value for m in realized(regressor.dle, y, pred)}
        rows.append((est, actual))
    for name in ("mae", "rmse"):
        within = [e[name].band_low <= a[name] <= e[name].band_high for e, a in rows]
        assert sum(within) >= 8, (name, rows)
        ref = reference(regressor.dle, name)
        assert [e[name].excludes(ref) and e[name].value > ref for e, _ in rows] == [False] * 5 + [True] * 5
        assert min(a[name] for _, a in rows[5:]) > 1.15 * ref  # realized really rose


# -- serialization ---------------------------------------------------------------------------------


def test_cbpe_round_trip_is_json_and_estimates_identically(multiclass: Fitted, tmp_path: Path) -> None:
    written = multiclass.cbpe.save(tmp_path / "estimator")
    assert [p.name for p in (tmp_path / "estimator").iterdir()] == ["cbpe.json"]
    json.loads(written.read_text())  # plain JSON, nothing executable
    loaded = load(tmp_path / "estimator")
    assert loaded == multiclass.cbpe
    scores = multiclass.clf.predict_proba(draw(np.random.default_rng(30), 500, classes=3)[0])
    assert estimate(loaded, scores) == estimate(multiclass.cbpe, scores)


def test_dle_round_trip_estimates_identically(regressor: FittedRegressor, tmp_path: Path) -> None:
    regressor.dle.save(tmp_path)
    loaded = load(tmp_path)
    assert isinstance(loaded, DLEModel)
    x, _y = draw_regression(np.random.default_rng(31), 500, 0.5)
    pred = regressor.reg.predict(x)
    assert estimate(loaded, pred, features=x) == estimate(regressor.dle, pred, features=x)
    assert loaded.reference == regressor.dle.reference and loaded.features == ("a", "b")


def test_dle_trees_file_with_a_type_outside_the_allow_list_is_refused(regressor: FittedRegressor,
                                                                       tmp_path: Path) -> None:
    import functools

    import skops.io

    regressor.dle.save(tmp_path)
    payload = functools.partial(print, "loaded")  # stands in for anything that would run at load
    skops.io.dump({"mae": payload, "rmse": payload}, tmp_path / "dle.skops")
    with pytest.raises(DataError, match=r"holds types outside the allow-list: builtins.print, functools.partial"):
        load(tmp_path)


def test_loading_a_future_or_missing_estimator_is_refused(binary: Fitted, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"holds neither cbpe.json nor dle.json"):
        load(tmp_path)
    path = binary.cbpe.save(tmp_path)
    path.write_text(path.read_text().replace('"schema_version": 1', '"schema_version": 99'))
    with pytest.raises(DataError, match=r"schema_version 99; this mlflow-ext reads 1"):
        load(tmp_path)


# -- bad input -------------------------------------------------------------------------------------


def test_bad_classification_input_gets_clear_errors(binary: Fitted) -> None:
    scores = binary.clf.predict_proba(draw(np.random.default_rng(40), 100)[0])
    y = np.arange(100) % 2
    with pytest.raises(DataError, match=r"differ in length: 99 labels, 100 score rows"):
        fit_cbpe(y[:99], scores, classes=[0, 1])
    nan = scores.copy()
    nan[7, 0] = np.nan
    with pytest.raises(DataError, match=r"NaN or infinite values in 1 row\(s\), first row 7"):
        estimate(binary.cbpe, nan)
    with pytest.raises(DataError, match=r"lack class\(es\) \[1\] of the model's classes \[0, 1\]"):
        fit_cbpe(np.zeros(100, dtype=int), scores, classes=[0, 1])
    halved = scores / 2
    with pytest.raises(DataError, match=r"must sum to 1, but 100 row\(s\) do not \(row 0 sums to 0.5\)"):
        estimate(binary.cbpe, halved)
    with pytest.raises(DataError, match=r"probabilities in \[0, 1\], got values in \[-3"):
        estimate(binary.cbpe, np.column_stack([np.full(100, 4.0), np.full(100, -3.0)]))
    with pytest.raises(DataError, match=r"one column per class \(2\), got shape \(100, 3\)"):
        estimate(binary.cbpe, np.full((100, 3), 1 / 3))
    with pytest.raises(DataError, match=r"Labels \['0', '2'\] are not among the model's classes \[0, 1\]"):
        realized(binary.cbpe, np.where(y == 1, "2", "0").astype(object), scores)
    with pytest.raises(ConfigError, match=r"confidence: expected a number in \(0, 1\), got 1.5"):
        estimate(binary.cbpe, scores, confidence=1.5)


def test_bad_regression_input_gets_clear_errors(regressor: FittedRegressor) -> None:
    x, y = draw_regression(np.random.default_rng(41), 100)
    pred = regressor.reg.predict(x)
    with pytest.raises(DataError, match=r"predictions must be a 1-d array of 100 values, got shape \(99,\)"):
        fit_dle(x, pred[:99], y)
    with pytest.raises(DataError, match=r"y_true holds 1 NaN or infinite value"):
        fit_dle(x, pred, np.r_[y[:-1], np.nan])
    with pytest.raises(DataError, match=r"at least 50 reference rows for 5 folds, got 20"):
        fit_dle(x[:20], pred[:20], y[:20])
    with pytest.raises(DataError, match=r"Batch lacks feature column\(s\) \['b'\]"):
        estimate(regressor.dle, pred, features=x[["a"]])
    with pytest.raises(DataError, match=r"not numeric: \['b'\]"):
        estimate(regressor.dle, pred, features=x.assign(b="x"))
    with pytest.raises(ConfigError, match=r"DLE estimates need the batch's features"):
        estimate(regressor.dle, pred)  # type: ignore[call-overload]
