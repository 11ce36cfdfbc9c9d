"""promote / rollback / history on each backend, with real sklearn models."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlflow_ext import ConfigError, DataError, NotFoundError, PluginError
from mlflow_ext.promotion import Decision, history, promote, rollback
from mlflow_ext.tracking import get_or_create_experiment

pytestmark = pytest.mark.backends

MODEL = "churn"


def training_frame(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)})
    frame["label"] = (frame["a"] + 0.3 * rng.normal(size=n) > 0).astype(int)
    return frame


_SAVED: dict[tuple[bool, bool], tuple[Path, float]] = {}


def _saved_model(flip: bool, extra: bool) -> tuple[Path, float]:
    """A small classifier saved once per test session (logging a model from scratch takes seconds)."""
    import atexit
    import shutil
    import tempfile

    import mlflow
    from sklearn.linear_model import LogisticRegression

    if (flip, extra) not in _SAVED:
        frame = training_frame()
        features = frame[["a", "b", "c"] if extra else ["a", "b"]]
        model = LogisticRegression().fit(features, 1 - frame["label"] if flip else frame["label"])
        folder = Path(tempfile.mkdtemp(prefix="mlflow-ext-test-model-")) / "model"
        atexit.register(shutil.rmtree, folder.parent, True)
        mlflow.sklearn.save_model(model, folder, input_example=features.head(3), serialization_format="cloudpickle")
        _SAVED[(flip, extra)] = (folder, float(model.score(features, frame["label"])))
    return _SAVED[(flip, extra)]


def register(name: str, versions: int, *, flip: bool = False, extra: bool = False) -> list[str]:
    """Log one small classifier and register it ``versions`` times; returns the version numbers.

    With ``flip`` the classifier predicts the opposite class (a much worse model); with ``extra``
    it also requires the column ``c``. Its training run logs ``mlflow_ext.val.accuracy``.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    folder, accuracy = _saved_model(flip, extra)
    # Not the Default experiment: the store template's points into the folder pytest started in.
    training = get_or_create_experiment("training")
    with mlflow.start_run(experiment_id=training) as run:
        mlflow.log_metric("mlflow_ext.val.accuracy", accuracy)
        mlflow.log_artifacts(str(folder), "model")
    made = [mlflow.register_model(f"runs:/{run.info.run_id}/model", name) for _ in range(versions)]
    columns = ["a", "b", "c"] if extra else ["a", "b"]
    tags = {"mlflow_ext.target": "label", "mlflow_ext.features": json.dumps(columns),
            "mlflow_ext.task": "classification"}
    client = MlflowClient()
    for version in made:
        for key, value in tags.items():
            client.set_model_version_tag(name, version.version, key, value)
    return [str(v.version) for v in made]


@dataclass(frozen=True)
class Fixed:
    """A real rule with a fixed verdict: passes when ``observed >= bound``."""

    name: str = "fixed"
    observed: float = 1.0
    bound: float = 0.5

    def evaluate(self, context: Any) -> Any:
        from mlflow_ext.rules import RuleResult

        passed = self.observed >= self.bound
        return RuleResult(rule=self.name, passed=passed, observed=self.observed, bound=self.bound,
                          message=f"{self.name} is {self.observed} (needs at least {self.bound}).")


@dataclass(frozen=True)
class Broken:
    """A rule whose evaluation fails the way a candidate that cannot predict does."""

    name: str = "broken"

    def evaluate(self, context: Any) -> Any:
        raise RuntimeError("predict() got an unexpected column")


def alias_of(alias: str, name: str = MODEL) -> str | None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def decision_runs(name: str = MODEL) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(f"mlflow-ext/{name}")
    if experiment is None:
        return []
    return list(client.search_runs([experiment.experiment_id], "tags.`mlflow_ext.kind` = 'decision'",
                                   order_by=["attributes.start_time ASC"]))


@pytest.fixture
def versions(store: str) -> list[str]:
    return register(MODEL, 4)


def test_first_promotion_sets_the_champion_and_records_the_decision(versions: list[str]) -> None:
    from mlflow.tracking import MlflowClient

    decision = promote(MODEL, 1, policy=[Fixed()], reason="first release")

    assert isinstance(decision, Decision)
    assert decision.promoted and decision.outcome == "promoted"
    assert (decision.champion_before, decision.champion_after) == (None, "1")
    assert decision.reason == "first release" and decision.who
    assert alias_of("champion") == "1" and alias_of("previous-champion") is None
    [run] = decision_runs()
    assert run.info.run_id == decision.run_id
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["mlflow_ext.outcome"] == "promoted" and tags["mlflow_ext.candidate"] == "1"
    assert tags["mlflow_ext.why"] == "first release" and tags["mlflow_ext.alias"] == "champion"
    assert metrics["mlflow_ext.rule.0_fixed.observed"] == 1.0
    assert metrics["mlflow_ext.rule.0_fixed.bound"] == 0.5
    assert metrics["mlflow_ext.rule.0_fixed.passed"] == 1.0
    assert "Promoted version 1" in tags["mlflow.note.content"]
    client = MlflowClient()
    document = json.loads(Path(client.download_artifacts(run.info.run_id, "decision.json")).read_text())
    assert document["outcome"] == "promoted" and document["rules"][0]["rule"] == "fixed"
    version_tags = client.get_model_version(MODEL, "1").tags
    assert version_tags["mlflow_ext.last_decision.run_id"] == decision.run_id
    assert version_tags["mlflow_ext.last_decision.role"] == "candidate"


def test_a_new_champion_leaves_the_old_one_as_previous_champion(versions: list[str]) -> None:
    from mlflow.tracking import MlflowClient

    promote(MODEL, 1)
    decision = promote(MODEL, 2, reason="better")

    assert (decision.champion_before, decision.champion_after) == ("1", "2")
    assert alias_of("champion") == "2" and alias_of("previous-champion") == "1"
    old = MlflowClient().get_model_version(MODEL, "1").tags
    assert old["mlflow_ext.last_decision.role"] == "champion"
    assert old["mlflow_ext.last_decision.run_id"] == decision.run_id


def test_a_failing_rule_refuses_records_and_moves_nothing(versions: list[str]) -> None:
    promote(MODEL, 1)

    decision = promote(MODEL, 2, policy=[Fixed(name="auc", observed=0.6, bound=0.8), Fixed(name="ok")])

    assert decision.outcome == "refused" and not decision.promoted
    assert decision.failed_rules == ("auc",)
    assert "auc did not pass" in decision.message
    assert alias_of("champion") == "1"
    run = decision_runs()[-1]
    assert run.data.tags["mlflow_ext.outcome"] == "refused"
    assert run.data.metrics["mlflow_ext.rule.0_auc.passed"] == 0.0
    assert run.data.metrics["mlflow_ext.rule.1_ok.passed"] == 1.0
    assert run.data.tags["mlflow_ext.rule.0_auc.message"] == "auc is 0.6 (needs at least 0.8)."


def test_dry_run_says_what_would_happen_and_records_it(versions: list[str]) -> None:
    promote(MODEL, 1)

    passing = promote(MODEL, 2, policy=[Fixed()], dry_run=True)
    failing = promote(MODEL, 3, policy=[Fixed(observed=0.1)], dry_run=True)

    assert passing.outcome == failing.outcome == "dry-run"
    assert "would be promoted" in passing.message and "would be refused (fixed failed)" in failing.message
    assert alias_of("champion") == "1"
    assert [r.data.tags["mlflow_ext.outcome"] for r in decision_runs()] == ["promoted", "dry-run", "dry-run"]


def test_force_needs_a_reason_and_is_recorded_with_the_failed_rules(versions: list[str]) -> None:
    promote(MODEL, 1)
    with pytest.raises(ConfigError, match="force=True needs a reason"):
        promote(MODEL, 2, policy=[Fixed(observed=0.1)], force=True)
    assert len(decision_runs()) == 1

    decision = promote(MODEL, 2, policy=[Fixed(observed=0.1)], force=True, reason="hotfix for incident 42")

    assert decision.promoted and decision.forced and decision.failed_rules == ("fixed",)
    assert "by force, overriding fixed" in decision.message
    assert alias_of("champion") == "2"
    run = decision_runs()[-1]
    assert run.data.tags["mlflow_ext.forced"] == "true"
    assert "**forced**, overriding: fixed" in run.data.tags["mlflow.note.content"]


def test_rollback_returns_to_the_previous_champion_through_a_recorded_decision(versions: list[str]) -> None:
    promote(MODEL, 1)
    promote(MODEL, 2)

    with pytest.raises(ConfigError, match="needs a reason"):
        rollback(MODEL, reason=" ")
    decision = rollback(MODEL, reason="v2 breaks the EU segment")

    assert decision.action == "rollback" and decision.promoted
    assert (decision.champion_before, decision.champion_after) == ("2", "1")
    assert alias_of("champion") == "1" and alias_of("previous-champion") == "2"
    assert decision_runs()[-1].data.tags["mlflow_ext.action"] == "rollback"
    explicit = rollback(MODEL, to=3, reason="skip to v3")
    assert explicit.champion_after == "3" and alias_of("champion") == "3"


def test_rollback_without_a_previous_champion_says_so(versions: list[str]) -> None:
    promote(MODEL, 1)
    with pytest.raises(NotFoundError, match="has no 'previous-champion' version"):
        rollback(MODEL, reason="oops")


def test_history_lists_holders_from_when_to_when_and_an_unrecorded_outside_move(versions: list[str]) -> None:
    from mlflow.tracking import MlflowClient

    promote(MODEL, 1, reason="launch")
    promote(MODEL, 2, policy=[Fixed(observed=0.0)])  # refused: not a move
    promote(MODEL, 2, reason="retrained")
    rollback(MODEL, reason="regression")
    recorded = history(MODEL)
    assert [(e.version, e.action, e.reason) for e in recorded] == [
        ("1", "promote", "launch"), ("2", "promote", "retrained"), ("1", "rollback", "regression")]
    assert all(e.recorded for e in recorded)
    assert recorded[0].until == recorded[1].since and recorded[-1].until is None
    assert recorded[1].previous == "1"

    MlflowClient().set_registered_model_alias(MODEL, "champion", "4")  # behind mlflow-ext's back
    after = history(MODEL)

    assert len(after) == 4 and after[-1].version == "4" and not after[-1].recorded
    assert after[-1].action == "unrecorded" and after[-1].previous == "1"
    assert "outside mlflow-ext" in (after[-1].reason or "")


def test_history_of_an_alias_set_without_any_decision_is_one_unrecorded_entry(versions: list[str]) -> None:
    from mlflow.tracking import MlflowClient

    assert history(MODEL) == ()
    MlflowClient().set_registered_model_alias(MODEL, "champion", "2")
    [entry] = history(MODEL)
    assert (entry.version, entry.recorded, entry.previous) == ("2", False, None)


def test_a_promotion_after_an_outside_move_is_evaluated_against_the_real_champion(versions: list[str]) -> None:
    from mlflow.tracking import MlflowClient

    promote(MODEL, 1)
    MlflowClient().set_registered_model_alias(MODEL, "champion", "3")
    decision = promote(MODEL, 2)
    assert decision.champion_before == "3" and alias_of("previous-champion") == "3"


def test_unknown_model_version_or_deleted_run_is_a_clear_error_and_moves_nothing(versions: list[str]) -> None:
    from mlflow.tracking import MlflowClient

    with pytest.raises(NotFoundError, match="'nope'"):
        promote("nope", 1)
    with pytest.raises(NotFoundError, match="has no version 99"):
        promote(MODEL, 99)
    other = register("other", 1)
    run_id = MlflowClient().get_model_version("other", other[0]).run_id
    MlflowClient().delete_run(run_id)
    with pytest.raises(NotFoundError, match=f"run {run_id} that produced version 1 of 'other' is deleted"):
        promote("other", 1)
    assert alias_of("champion") is None and decision_runs() == [] and decision_runs("other") == []


def test_promoting_the_current_champion_is_refused_up_front(versions: list[str]) -> None:
    from mlflow_ext import ConflictError

    promote(MODEL, 1)
    with pytest.raises(ConflictError, match="already holds the alias 'champion'"):
        promote(MODEL, 1)


def test_evaluation_data_is_validated_before_any_rule_runs(versions: list[str], tmp_path: Path) -> None:
    frame = training_frame(30, seed=1)
    no_label = tmp_path / "no_label.csv"
    frame.drop(columns="label").to_csv(no_label, index=False)
    wrong = tmp_path / "wrong.parquet"
    frame.drop(columns="c").rename(columns={"b": "bee"}).to_parquet(wrong)

    with pytest.raises(DataError, match="no_label.csv has no label column 'label'"):
        promote(MODEL, 1, eval_data=no_label, policy=[Fixed()])
    with pytest.raises(DataError, match="wrong.parquet does not match the inputs of version 1 .*missing 'b'"):
        promote(MODEL, 1, eval_data=wrong, policy=[Fixed()])
    with pytest.raises(DataError, match="no label column 'target'"):
        promote(MODEL, 1, eval_data=frame, labels="target")
    assert alias_of("champion") is None and decision_runs() == []


def test_a_rule_that_cannot_be_evaluated_is_recorded_and_raised(versions: list[str]) -> None:
    promote(MODEL, 1)

    with pytest.raises(PluginError, match="The rule 'broken' failed .*unexpected column") as caught:
        promote(MODEL, 2, policy=[Fixed(), Broken()])

    assert alias_of("champion") == "1"
    run = decision_runs()[-1]
    assert run.data.tags["mlflow_ext.outcome"] == "refused"
    assert run.data.tags["mlflow_ext.rule.1_broken.passed"] == "false"
    assert run.info.run_id in (caught.value.hint or "")


def _policy(path: Path, rule: str, **options: Any) -> Path:
    lines = [f"[[models.{MODEL}.promotion.rules]]", f'rule = "{rule}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_builtin_rule_passes_and_refuses_through_promote(store: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    [bad] = register(MODEL, 1, flip=True)
    [good] = register(MODEL, 1)
    [wide] = register(MODEL, 1, extra=True)
    evaluation = training_frame(200, seed=7)
    client = MlflowClient()
    client.set_model_version_tag(MODEL, good, "mlflow_ext.approved_by", "alice")
    client.set_model_version_tag(MODEL, wide, "mlflow_ext.last_check.status", "alert")
    promote(MODEL, bad, reason="baseline")
    # (rule, options, candidate, passes?); champion: `bad`, or `good` when `bad` is the candidate
    cases: list[tuple[str, dict[str, Any], str, bool]] = [
        ("metric_threshold", {"metric": "accuracy", "min": 0.5}, good, True),
        ("metric_threshold", {"metric": "accuracy", "min": 0.5}, bad, False),
        ("beats_champion", {"metric": "accuracy", "min_delta": 0.1}, good, True),
        ("no_regression", {"metrics": ["accuracy", "f1"]}, good, True),
        ("schema_compatible", {}, good, True),
        ("schema_compatible", {}, wide, False),
        ("max_latency", {"max_ms": 10_000.0, "samples": 3}, good, True),
        ("max_latency", {"max_ms": 0.000001, "samples": 3}, good, False),
        ("approval", {"by": "alice"}, good, True),
        ("approval", {"by": "alice"}, wide, False),
        ("no_drift_alert", {}, good, True),
        ("no_drift_alert", {}, wide, False),
    ]
    for index, (rule, options, candidate, passes) in enumerate(cases):
        policy = _policy(tmp_path / f"p{index}.toml", rule, **options)
        if candidate == bad:
            promote(MODEL, good, reason="a good champion to judge the bad model against")
        decision = promote(MODEL, candidate, policy=policy, eval_data=evaluation, dry_run=True)
        if candidate == bad:
            rollback(MODEL, reason="back to the baseline")
        [result] = decision.rules
        assert (result.rule, result.passed) == (rule, passes), (rule, options, result)
        assert decision.outcome == "dry-run" and result.message
    # The paired rules refuse a worse candidate, and the refusal is recorded with both models' metrics.
    promote(MODEL, good, reason="good champion")
    beats = _policy(tmp_path / "beats.toml", "beats_champion", metric="accuracy")
    refused = promote(MODEL, bad, policy=beats, eval_data=evaluation)
    no_regression = _policy(tmp_path / "noreg.toml", "no_regression", metrics=["accuracy"])
    assert promote(MODEL, bad, policy=no_regression, eval_data=evaluation).outcome == "refused"
    assert refused.outcome == "refused" and refused.failed_rules == ("beats_champion",)
    assert refused.candidate_metrics["accuracy"] < 0.3 < 0.7 < refused.champion_metrics["accuracy"]
    assert {"accuracy", "f1", "roc_auc", "log_loss"} <= set(refused.champion_metrics)
    run = decision_runs()[-2]
    assert run.data.metrics["mlflow_ext.candidate.accuracy"] == refused.candidate_metrics["accuracy"]
    assert run.data.metrics["mlflow_ext.champion.roc_auc"] == refused.champion_metrics["roc_auc"]
    assert alias_of("champion") == good


def test_a_policy_naming_a_metric_never_logged_is_a_clear_recorded_refusal(store: str, tmp_path: Path) -> None:
    from mlflow_ext import ConfigError as Config

    versions = register(MODEL, 2)
    promote(MODEL, versions[0])
    policy = _policy(tmp_path / "p.toml", "metric_threshold", metric="auc_pr", min=0.5)

    with pytest.raises(Config, match="never logged the metric 'auc_pr'"):
        promote(MODEL, versions[1], policy=policy)

    assert alias_of("champion") == "1"
    assert decision_runs()[-1].data.tags["mlflow_ext.outcome"] == "refused"


def test_a_candidate_that_fails_to_predict_is_a_recorded_refusal(store: str) -> None:
    from mlflow.tracking import MlflowClient

    versions = register(MODEL, 2)
    promote(MODEL, versions[0])
    evaluation = training_frame(40, seed=3).assign(a="not a number")

    with pytest.raises(DataError, match="version 2 of 'churn' failed to predict"):
        promote(MODEL, versions[1], eval_data=evaluation)

    assert alias_of("champion") == "1"
    run = decision_runs()[-1]
    assert run.data.tags["mlflow_ext.outcome"] == "refused"
    assert "could not be evaluated" in run.data.tags["mlflow_ext.message"]
    assert MlflowClient().get_model_version(MODEL, "2").tags["mlflow_ext.last_decision.outcome"] == "refused"
