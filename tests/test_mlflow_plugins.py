"""What registers with MLflow itself, through the installed entry points: the drift evaluator and
the lineage run context provider."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import mlflow_ext
from mlflow_ext import tracking
from mlflow_ext.checks import check
from mlflow_ext.errors import ConfigError
from mlflow_ext.profile import Profile


def frames(shift: float, n: int = 800) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"age": rng.normal(40, 10, n), "plan": rng.choice(["a", "b"], n)})
    current = pd.DataFrame({"age": rng.normal(40 + shift, 10, n), "plan": rng.choice(["a", "b"], n)})
    current["label"] = (current["age"] > 45).astype(int)
    current["scored"] = current["label"]
    return reference, current


def evaluate(current: pd.DataFrame, **kwargs: Any) -> tuple[Any, str]:
    import mlflow

    with mlflow.start_run() as run:
        result = mlflow.models.evaluate(data=current, targets="label", predictions="scored",
                                        model_type="classifier", **kwargs)
    return result, run.info.run_id


def test_drift_evaluator_logs_the_checks_drift_metrics(store: str) -> None:
    reference, current = frames(shift=8.0)
    profile = Profile.from_frame(reference)
    result, run_id = evaluate(current, evaluators=["drift"], evaluator_config={"drift": {"reference": profile}})

    expected = check(profile, current[["age", "plan"]])
    assert expected.drifted_columns == ("age",)
    assert result.metrics["mlflow_ext.n_drifted"] == 1
    assert result.metrics["mlflow_ext.drift.age.p_value"] == pytest.approx(expected.drift[0].p_value)
    run = tracking.client().get_run(run_id)
    assert run.data.metrics["mlflow_ext.drift.age.statistic"] == pytest.approx(expected.drift[0].statistic)
    assert run.data.metrics["mlflow_ext.drift_share"] == pytest.approx(0.5)
    assert run.data.tags["mlflow_ext.drift.status"] == expected.status
    stored = tracking.client().download_artifacts(run_id, "mlflow_ext/drift.json")
    assert '"drifted_columns": [\n    "age"\n  ]' in Path(stored).read_text()


def test_drift_evaluator_takes_a_profile_path_and_check_options(store: str, tmp_path: Path) -> None:
    reference, current = frames(shift=0.0)
    Profile.from_frame(reference).save(tmp_path / "ref")
    result, _ = evaluate(current, evaluators="drift",
                         evaluator_config={"reference": str(tmp_path / "ref"), "detectors": {"numeric": "psi"}})
    assert result.metrics["mlflow_ext.n_drifted"] == 0
    assert "mlflow_ext.drift.age.p_value" not in result.metrics  # PSI has no p-value
    assert "mlflow_ext.drift.age.effect_size" in result.metrics


def test_drift_evaluator_takes_a_registered_model_reference(store: str) -> None:
    from sklearn.linear_model import LogisticRegression

    reference, current = frames(shift=8.0)
    reference["label"] = (reference["age"] > 40).astype(int)

    @mlflow_ext.track(model_name="churn", target="label", pip_requirements=["scikit-learn"])
    def train(frame: pd.DataFrame) -> Any:
        return LogisticRegression().fit(frame[["age"]], frame["label"])

    train(reference[["age", "label"]])
    result, _ = evaluate(current, evaluators=["drift"], evaluator_config={"drift": {"reference": "churn/1"}})
    assert result.metrics["mlflow_ext.n_drifted"] == 1
    assert "mlflow_ext.drift.plan.statistic" not in result.metrics  # not a feature of the model


def test_drift_evaluator_is_not_run_by_default(store: str) -> None:
    _, current = frames(shift=8.0)
    # evaluators=None: every installed evaluator is asked (numbers only: MLflow's own classifier
    # evaluator fails on pandas 3 string columns)
    result, run_id = evaluate(current.drop(columns="plan"))
    assert "accuracy_score" in result.metrics
    assert not [k for k in result.metrics if k.startswith("mlflow_ext.")]
    assert "mlflow_ext.drift.status" not in tracking.client().get_run(run_id).data.tags


def test_drift_evaluator_config_errors_name_the_key(store: str) -> None:
    reference, current = frames(shift=0.0)
    with pytest.raises(ConfigError, match="unknown key\\(s\\) 'alhpa'. Valid: reference, detectors, alpha"):
        evaluate(current, evaluators=["drift"],
                 evaluator_config={"drift": {"reference": Profile.from_frame(reference), "alhpa": 0.01}})
    with pytest.raises(ConfigError, match="reference must be a Profile, a profile path or a model reference"):
        evaluate(current, evaluators=["drift"], evaluator_config={"drift": {"reference": 42}})


def test_context_provider_tags_every_run(store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "first"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()
    monkeypatch.chdir(repo)
    with mlflow.start_run() as run:
        pass
    tags = tracking.client().get_run(run.info.run_id).data.tags
    assert tags["mlflow_ext.package_version"] == mlflow_ext.__version__
    assert (tags["mlflow_ext.git.commit"], tags["mlflow_ext.git.dirty"]) == (head, "false")


def test_mlflow_loads_the_provider_without_heavy_imports() -> None:
    code = ("import sys, warnings; warnings.simplefilter('error'); import mlflow; "
            "print(sorted(m for m in sys.modules if m.startswith('mlflow_ext')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # MLflow imports the provider's module at import; it must not pull in profiles, checks or sklearn
    assert out.stdout.strip() == "['mlflow_ext', 'mlflow_ext._lineage', 'mlflow_ext.mlflow_plugins']"
