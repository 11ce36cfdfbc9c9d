"""Metrics on labels match scikit-learn; McNemar matches scipy's binomial test; the bootstrap decides."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from sklearn import metrics as skm

from mlflow_ext import ConfigError, DataError
from mlflow_ext._stats import METRICS, Outputs, mcnemar_exact, metric_value, paired_test


def classification(n: int, seed: int, classes: int = 2, right: float = 0.8) -> tuple[np.ndarray, Outputs]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, n)
    pred = np.where(rng.random(n) < right, truth, rng.integers(0, classes, n))
    proba = rng.dirichlet(np.ones(classes), n)
    return truth, Outputs(pred, proba, tuple(range(classes)))


def sklearn_value(name: str, truth: np.ndarray, out: Outputs) -> float:
    binary = len(out.classes or ()) == 2
    average = "binary" if binary else "macro"
    proba = out.proba
    assert proba is not None
    return float({
        "accuracy": lambda: skm.accuracy_score(truth, out.prediction),
        "precision": lambda: skm.precision_score(truth, out.prediction, average=average, zero_division=0),
        "recall": lambda: skm.recall_score(truth, out.prediction, average=average, zero_division=0),
        "f1": lambda: skm.f1_score(truth, out.prediction, average=average, zero_division=0),
        "roc_auc": lambda: (skm.roc_auc_score(truth, proba[:, 1]) if binary
                            else skm.roc_auc_score(truth, proba, multi_class="ovr")),
        "log_loss": lambda: skm.log_loss(truth, proba, labels=list(out.classes or ())),
    }[name]())


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("name", ["accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"])
def test_classification_metrics_match_sklearn(name: str, classes: int) -> None:
    truth, out = classification(300, seed=classes, classes=classes)
    assert metric_value(name, truth, out) == pytest.approx(sklearn_value(name, truth, out), rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 60), classes=st.sampled_from([2, 3]))
def test_classification_metrics_match_sklearn_on_any_data(seed: int, n: int, classes: int) -> None:
    truth, out = classification(n, seed, classes, right=0.5)
    if len(set(truth.tolist())) < classes:
        truth[:classes] = np.arange(classes)  # roc_auc and log_loss need every class among the labels
    for name in ("accuracy", "f1", "roc_auc", "log_loss"):
        assert metric_value(name, truth, out) == pytest.approx(sklearn_value(name, truth, out), rel=1e-9)


def test_roc_auc_counts_tied_scores_as_one_half() -> None:
    truth = np.array([0, 1, 0, 1, 1, 0])
    scores = np.array([0.5, 0.5, 0.2, 0.9, 0.2, 0.9])
    out = Outputs(truth, np.c_[1 - scores, scores], (0, 1))
    assert metric_value("roc_auc", truth, out) == pytest.approx(skm.roc_auc_score(truth, scores))


@pytest.mark.parametrize("name", ["mae", "rmse", "r2"])
def test_regression_metrics_match_sklearn(name: str) -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(size=200)
    pred = truth + rng.normal(scale=0.4, size=200)
    expected = {"mae": skm.mean_absolute_error, "rmse": skm.root_mean_squared_error, "r2": skm.r2_score}[name]
    assert metric_value(name, truth, Outputs(pred)) == pytest.approx(expected(truth, pred), rel=1e-9)


def test_string_labels_use_the_last_sorted_label_as_positive() -> None:
    truth = np.array(["no", "yes", "yes", "no", "yes"])
    pred = np.array(["yes", "yes", "no", "no", "yes"])
    expected = skm.f1_score(truth, pred, pos_label="yes")
    assert metric_value("f1", truth, Outputs(pred)) == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(b=st.integers(0, 60), c=st.integers(0, 60))
def test_mcnemar_matches_the_binomial_test_on_discordant_pairs(b: int, c: int) -> None:
    if b + c == 0:
        assert mcnemar_exact(b, c) == 1.0
        return
    assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5, alternative="greater").pvalue)
    assert mcnemar_exact(b, c, alternative="two-sided") == pytest.approx(binomtest(b, b + c, 0.5).pvalue)


def test_paired_accuracy_uses_mcnemar_and_finds_a_clearly_better_model() -> None:
    truth, better = classification(400, seed=1, right=0.95)
    worse = Outputs(np.where(np.random.default_rng(9).random(400) < 0.7, truth, 1 - truth))
    test = paired_test("accuracy", truth, better, worse)
    assert test.test == "mcnemar" and test.delta > 0.2 and test.p_value < 1e-6
    same = paired_test("accuracy", truth, better, better)
    assert same.delta == 0 and same.p_value == 1.0


def test_paired_bootstrap_is_seeded_and_oriented_for_lower_is_better_metrics() -> None:
    rng = np.random.default_rng(4)
    truth = rng.normal(size=300)
    close, far = Outputs(truth + rng.normal(scale=0.3, size=300)), Outputs(truth + rng.normal(scale=1.0, size=300))
    first = paired_test("rmse", truth, close, far, n_boot=500, seed=7)
    assert first.test == "bootstrap" and first.delta > 0 and first.p_value < 0.01  # lower rmse is better
    assert paired_test("rmse", truth, close, far, n_boot=500, seed=7) == first
    backwards = paired_test("rmse", truth, far, close, n_boot=500)
    assert backwards.delta < 0 and backwards.p_value > 0.99


def test_paired_bootstrap_does_not_call_equal_models_better() -> None:
    truth, out = classification(300, seed=5)
    assert paired_test("roc_auc", truth, out, out, n_boot=300).p_value == 1.0


def test_every_metric_says_which_way_is_better() -> None:
    assert {name for name, spec in METRICS.items() if not spec.higher_is_better} == {"log_loss", "mae", "rmse"}


def test_bad_inputs_are_clear_errors() -> None:
    truth, out = classification(20, seed=0)
    with pytest.raises(ConfigError, match="Unknown metric 'acc'. Known: accuracy, precision"):
        metric_value("acc", truth, out)
    with pytest.raises(DataError, match="needs class probabilities"):
        metric_value("roc_auc", truth, Outputs(out.prediction))
    with pytest.raises(DataError, match="two 1-d arrays of one length"):
        metric_value("accuracy", truth[:5], out)
    with pytest.raises(DataError, match="Labels 7 are not among the model's classes"):
        metric_value("log_loss", np.r_[truth[:-1], 7], out)
    with pytest.raises(DataError, match="roc_auc needs at least two classes"):
        metric_value("roc_auc", np.zeros(20, dtype=int), out)
    with pytest.raises(ConfigError, match="n_boot: expected at least 100"):
        paired_test("f1", truth, out, out, n_boot=10)
