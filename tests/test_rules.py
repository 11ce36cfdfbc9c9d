"""The built-in rules against real sklearn models in a real sqlite store.

One store for the module (logging models takes seconds): version 1 is a weak classifier (feature
b only), 2 a strong one (a and b), 3 the same model as 1, and 4 a model trained on data whose
labels are flipped, so it scores very well on its own training data and very badly on fresh data.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlflow_ext import ConfigError, DataError
from mlflow_ext.builtin.rules import (
    Approval,
    BeatsChampion,
    MaxLatency,
    MetricThreshold,
    NoDriftAlert,
    NoRegression,
    SchemaCompatible,
)
from mlflow_ext.rules import RuleContext

MODEL = "churn_rules"


def frame(n: int, seed: int, *, flip: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    label = (data["a"] + 0.5 * data["b"] + 0.3 * rng.normal(size=n) > 0).astype(int)
    data["label"] = 1 - label if flip else label
    return data


def _log(model_frame: pd.DataFrame, features: list[str]) -> str:
    import mlflow
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression

    x, y = model_frame[features], model_frame["label"]
    fitted = LogisticRegression().fit(x, y)
    with mlflow.start_run() as run:
        # what @track logs: validation metrics measured on the model's own (training-time) data
        mlflow.log_metrics({"mlflow_ext.val.accuracy": float(fitted.score(x, y)), "mlflow_ext.val.n_rows": len(x)})
        info = mlflow.sklearn.log_model(fitted, name="model", input_example=x.head(3),
                                        serialization_format="cloudpickle")
    version = mlflow.register_model(info.model_uri, MODEL).version
    tags = {"mlflow_ext.features": json.dumps(features), "mlflow_ext.target": "label",
            "mlflow_ext.task": "classification"}
    for key, value in tags.items():
        MlflowClient().set_model_version_tag(MODEL, version, key, value)
    assert run.info.run_id
    return str(version)


@pytest.fixture(scope="module")
def zoo(_store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import mlflow
    from mlflow.tracking import MlflowClient

    folder = tmp_path_factory.mktemp("rules-store")
    shutil.copy(_store_template, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_REGISTRY_URI", uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        train = frame(400, seed=1)
        assert _log(train, ["b"]) == "1"
        assert _log(train, ["a", "b"]) == "2"
        client = MlflowClient()
        one = client.get_model_version(MODEL, "1")
        copy = client.create_model_version(MODEL, source=one.source, run_id=one.run_id)
        for key, value in one.tags.items():
            client.set_model_version_tag(MODEL, copy.version, key, value)
        assert _log(frame(400, seed=2, flip=True), ["a", "b"]) == "4"
        yield uri
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _use_zoo(zoo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", zoo)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", zoo)
    mlflow.set_tracking_uri(zoo)
    mlflow.set_registry_uri(zoo)


FRESH = frame(600, seed=99)


def context(candidate: str, champion: str | None, eval_data: pd.DataFrame | None = FRESH) -> RuleContext:
    return RuleContext(model=MODEL, candidate=candidate, champion=champion, eval_data=eval_data,
                       target=None if eval_data is None else "label")


def set_tag(version: str, key: str, value: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().set_model_version_tag(MODEL, version, key, value)


# -- beats_champion ------------------------------------------------------------------------------


def test_a_clearly_better_candidate_beats_the_champion() -> None:
    ctx = context("2", "1")
    result = BeatsChampion(metric="accuracy", min_delta=0.05).evaluate(ctx)
    assert result.passed and result.rule == "beats_champion"
    assert isinstance(result.observed, float) and result.observed > 0.1 and result.bound == 0.05
    assert "exact McNemar" in result.message and "on 600 fresh rows" in result.message
    assert ctx.metrics("candidate")["accuracy"] - ctx.metrics("champion")["accuracy"] == pytest.approx(result.observed)


def test_an_equal_candidate_is_refused_as_not_significant() -> None:
    result = BeatsChampion(metric="accuracy").evaluate(context("3", "1"))
    assert not result.passed and result.observed == 0.0
    assert "p = 1 " in result.message and "not significantly better" in result.message


def test_it_judges_on_the_fresh_data_not_on_training_metrics() -> None:
    ctx = context("4", "1")
    # The flipped model logged a far better validation accuracy than the champion...
    assert ctx.run_metrics("4")["mlflow_ext.val.accuracy"] > ctx.run_metrics("1")["mlflow_ext.val.accuracy"] + 0.1
    result = BeatsChampion(metric="accuracy").evaluate(ctx)
    # ...and is refused, because on the fresh data it is much worse.
    assert not result.passed and isinstance(result.observed, float) and result.observed < -0.3


def test_a_bootstrap_metric_and_a_lower_is_better_metric() -> None:
    ctx = context("2", "1")
    auc = BeatsChampion(metric="roc_auc", min_delta=0.02, n_boot=500).evaluate(ctx)
    assert auc.passed and "paired bootstrap (500 resamples)" in auc.message
    loss = BeatsChampion(metric="log_loss", n_boot=500).evaluate(context("4", "1"))
    assert not loss.passed and isinstance(loss.observed, float) and loss.observed < 0


def test_without_a_champion_it_passes_and_says_so() -> None:
    result = BeatsChampion().evaluate(context("2", None))
    assert result.passed and "has no champion yet" in result.message


def test_without_eval_data_it_refuses_with_a_sentence() -> None:
    result = BeatsChampion().evaluate(context("2", "1", eval_data=None))
    assert not result.passed and result.message.startswith("beats_champion needs fresh labelled data: pass --eval-data")


def test_each_version_is_loaded_and_predicted_once_per_promotion() -> None:
    ctx = context("2", "1")
    BeatsChampion().evaluate(ctx)
    first = ctx.outputs("2")
    NoRegression(metrics=["accuracy", "f1", "roc_auc"]).evaluate(ctx)
    assert ctx.outputs("candidate") is first and ctx.load_model("2") is ctx.load_model("candidate")
    assert set(ctx.metrics("candidate")) == {"accuracy", "f1", "roc_auc"}


def test_eval_data_missing_a_models_input_names_the_version() -> None:
    with pytest.raises(DataError, match=r"lacks the input\(s\) 'a' of version 2 of 'churn_rules'"):
        BeatsChampion().evaluate(context("2", "1", eval_data=FRESH.drop(columns="a")))


# -- no_regression -------------------------------------------------------------------------------


def test_no_regression_passes_a_better_candidate_and_refuses_a_worse_one() -> None:
    rule = NoRegression(metrics=["accuracy", "log_loss"], tolerance=0.01)
    assert rule.evaluate(context("2", "1")).passed
    refused = rule.evaluate(context("1", "2"))
    assert not refused.passed and isinstance(refused.observed, float) and refused.observed > 0.01
    assert "is worse by" in refused.message and "more than the tolerance 0.01" in refused.message
    assert rule.evaluate(context("1", None)).passed


# -- metric_threshold ----------------------------------------------------------------------------


def test_metric_threshold_reads_the_candidates_logged_metric() -> None:
    ctx = context("2", "1", eval_data=None)
    assert MetricThreshold(metric="accuracy", min=0.5).evaluate(ctx).passed
    refused = MetricThreshold(metric="mlflow_ext.val.accuracy", min=0.999).evaluate(ctx)
    assert not refused.passed and refused.bound == 0.999 and "needs at least 0.999" in refused.message
    assert MetricThreshold(metric="accuracy", min=0.5, max=0.6).evaluate(ctx).bound == "[0.5, 0.6]"


def test_metric_threshold_on_a_metric_never_logged_lists_what_the_run_has() -> None:
    with pytest.raises(ConfigError, match=r"version 2 of 'churn_rules' never logged the metric 'auc'. Its run has: "
                                          r"mlflow_ext.val.accuracy, mlflow_ext.val.n_rows"):
        MetricThreshold(metric="auc", min=0.5).evaluate(context("2", "1"))


# -- schema_compatible ---------------------------------------------------------------------------


def test_schema_compatible() -> None:
    assert SchemaCompatible().evaluate(context("3", "1")).passed
    refused = SchemaCompatible().evaluate(context("2", "1"))
    assert not refused.passed and "it requires 'a', which the champion does not take" in refused.message
    narrower = SchemaCompatible().evaluate(context("1", "2"))
    assert narrower.passed and "It ignores 'a'" in narrower.message
    assert "no champion yet" in SchemaCompatible().evaluate(context("2", None)).message


# -- max_latency ---------------------------------------------------------------------------------


def test_max_latency_times_predict_on_the_eval_batches() -> None:
    ok = MaxLatency(max_ms=60_000, batch_size=50, samples=5).evaluate(context("2", "1"))
    assert ok.passed and isinstance(ok.observed, float) and ok.observed > 0
    assert "p95 predict latency" in ok.message and "5 batches of 50 rows" in ok.message
    assert not MaxLatency(max_ms=1e-9, samples=3).evaluate(context("2", "1")).passed


def test_max_latency_without_rows_refuses_with_a_sentence() -> None:
    result = MaxLatency(max_ms=100).evaluate(context("2", "1", eval_data=None))
    assert not result.passed and "pass --eval-data" in result.message


# -- approval and no_drift_alert -----------------------------------------------------------------


def test_approval_reads_the_version_tag() -> None:
    set_tag("2", "mlflow_ext.approved_by", "dana, Lee")
    assert Approval(by="lee").evaluate(context("2", "1")).passed
    other = Approval(by="sam").evaluate(context("2", "1"))
    assert not other.passed and "approved by 'dana, Lee', not by sam" in other.message
    missing = Approval(by="dana").evaluate(context("1", None))
    assert not missing.passed and "has no approval tag mlflow_ext.approved_by" in missing.message
    set_tag("1", "release.owner", "dana")
    assert Approval(by="dana", tag="release.owner").evaluate(context("1", None)).passed


def test_no_drift_alert_reads_the_last_check() -> None:
    unchecked = NoDriftAlert().evaluate(context("3", None))
    assert unchecked.passed and "never been checked" in unchecked.message
    assert not NoDriftAlert(require_check=True).evaluate(context("3", None)).passed
    set_tag("4", "mlflow_ext.last_check.status", "alert")
    alert = NoDriftAlert().evaluate(context("4", None))
    assert not alert.passed and alert.observed == "alert"
    set_tag("4", "mlflow_ext.last_check.status", "warn")
    assert NoDriftAlert(require_check=True).evaluate(context("4", None)).passed


# -- through a policy file and promote -----------------------------------------------------------


def test_promote_with_a_policy_file_runs_the_rules_on_the_eval_data(tmp_path: Path) -> None:
    from mlflow_ext import promote

    policy = tmp_path / "policy.toml"
    policy.write_text(f"""version = 1
[models.{MODEL}]
[[models.{MODEL}.promotion.rules]]
rule = "beats_champion"
min_delta = 0.05
[[models.{MODEL}.promotion.rules]]
rule = "no_regression"
metrics = ["roc_auc", "log_loss"]
""")
    first = promote(MODEL, "1", policy=policy, eval_data=FRESH, labels="label")
    assert first.promoted and "no champion yet" in first.rules[0].message
    refused = promote(MODEL, "3", policy=policy, eval_data=FRESH, labels="label")
    assert not refused.promoted and refused.failed_rules == ("beats_champion",)
    better = promote(MODEL, "2", policy=policy, eval_data=FRESH, labels="label")
    assert better.promoted and better.champion_before == "1"
    assert better.candidate_metrics["accuracy"] > better.champion_metrics["accuracy"] + 0.05
    assert {"accuracy", "roc_auc", "log_loss"} <= set(better.candidate_metrics)


@pytest.mark.parametrize("name", ["metric_threshold", "beats_champion", "no_regression", "schema_compatible",
                                  "max_latency", "approval", "no_drift_alert"])
def test_every_builtin_rule_is_registered_under_the_name_it_reports(name: str) -> None:
    from mlflow_ext import _registry

    assert _registry.load("rule", name).name == name  # type: ignore[attr-defined]


def test_a_metric_of_the_wrong_task_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"The metric rmse is for regression, but version 2 of 'churn_rules' is a "
                                          r"classification model"):
        BeatsChampion(metric="rmse").evaluate(context("2", "1"))
