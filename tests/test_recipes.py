"""The runnable recipes: complete folders, reproducible data, and backtests that behave as their READMEs say.

Classification (churn): a covariate shift mid-stream breaks the champion: one warning, then the late
labels confirm the drop (one incident), exactly one retrain and exactly one promotion.
Regression (housing): the inputs drift but the error does not: warnings, no alert, no retrain.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlflow_ext.backtest import backtest
from mlflow_ext.policy import load_policy
from tests.test_backtest import RECIPES, recipe_module

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")

RUNNABLE = ("churn", "housing")


@pytest.mark.parametrize("recipe", RUNNABLE)
def test_a_recipe_folder_has_a_valid_policy_a_generator_a_trainer_and_a_readme(recipe: str) -> None:
    folder = RECIPES / recipe
    assert {"policy.toml", "train.py", "generate.py", "README.md"} <= {p.name for p in folder.iterdir()}
    policy = load_policy(folder / "policy.toml", check_environment=False)
    assert list(policy.models) == [recipe]
    assert f"mlflow-ext backtest --policy recipes/{recipe}/policy.toml" in (folder / "README.md").read_text()


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.parquet")):
        digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("recipe", RUNNABLE)
def test_a_generator_is_reproducible_from_its_seed(recipe: str, tmp_path: Path) -> None:
    generate = recipe_module(recipe, "generate").generate
    generate(tmp_path / "a", seed=3)
    generate(tmp_path / "b", seed=3)
    generate(tmp_path / "c", seed=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


@pytest.mark.usefixtures("store")
def test_churn_shift_warns_once_alerts_once_retrains_once_and_promotes_once(tmp_path: Path) -> None:
    from mlflow_ext.cli import app

    manifest = recipe_module("churn", "generate").generate(tmp_path / "churn")
    report, keep = tmp_path / "backtest.html", tmp_path / "kept"
    run = CliRunner().invoke(app, ["backtest", "--policy", str(RECIPES / "churn" / "policy.toml"), "--history",
                                   str(manifest), "--json", "--report", str(report), "--keep", str(keep)])
    assert run.exit_code == 0, run.output
    result = json.loads(run.stdout)
    entries = result["entries"]
    statuses = [e["status"] for e in entries]
    first_alert = statuses.index("alert")

    assert statuses[:first_alert].count("warn") == 1
    warned = entries[statuses.index("warn")]
    assert (warned["kind"], warned["name"], warned["drifted"]) == ("batch", "batch-03", ["monthly_charges"])
    alert = entries[first_alert]
    assert (alert["kind"], alert["name"], alert["alerts"]) == ("labels", "batch-03", ["log"])
    accuracy = next(m for m in alert["performance"] if m["name"] == "accuracy")
    assert accuracy["degraded"] and accuracy["ci_high"] < 0.5 < accuracy["reference"]
    assert result["incidents"] == ["w3"]
    assert result["retrains"] == ["2"] and sum(e["retrain"] in ("ok", "failed") for e in entries) == 1
    assert result["promotions"] == ["2"]
    (decision,) = [e["decision"] for e in entries if e["decision"] and e["kind"] != "train"]
    assert decision["outcome"] == "promoted"
    assert {r["rule"]: r["passed"] for r in decision["rules"]} == {"beats_champion": True, "metric_threshold": True}
    # decided on the batch after the retrain (fresh rows), and monitoring follows the new champion
    promoted_at = next(i for i, e in enumerate(entries) if e["decision"] and e["kind"] != "train")
    assert promoted_at > first_alert
    assert {e["status"] for e in entries[promoted_at + 1:]} == {"ok"}
    assert {e["version"] for e in entries[promoted_at + 1:]} == {"2"}

    html = report.read_text()
    assert "data:image/png;base64," in html and "promoted v2" in html and "beats_champion" in html
    assert result["ui_command"] == f"mlflow ui --backend-store-uri sqlite:///{keep / 'mlflow.db'}"
    import mlflow

    kept = mlflow.MlflowClient(tracking_uri=f"sqlite:///{keep / 'mlflow.db'}",
                               registry_uri=f"sqlite:///{keep / 'mlflow.db'}")
    assert kept.get_registered_model("churn").aliases == {"champion": 2, "previous-champion": 1}


@pytest.mark.usefixtures("store")
def test_housing_inputs_drift_without_hurting_the_error_so_it_only_warns(tmp_path: Path) -> None:
    manifest = recipe_module("housing", "generate").generate(tmp_path / "housing")
    result = backtest(RECIPES / "housing" / "policy.toml", manifest)

    statuses = [e.status for e in result.entries]
    assert "warn" in statuses and "alert" not in statuses and "error" not in statuses
    assert {"area_m2", "neighbourhood"} <= {c for e in result.entries for c in e.drifted}
    assert (result.incidents, result.alerts_fired, result.retrains_fired, result.promotions) == ((), 0, 0, ())
    errors = [m for e in result.entries for m in e.performance if m.name == "rmse"]
    assert errors and not any(m.degraded for m in errors)
