"""`mlflow-ext promote / rollback / history`: exit codes, tables and --json, on each backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlflow_ext.cli import app
from tests.test_promotion import MODEL, alias_of, register

pytestmark = pytest.mark.backends

runner = CliRunner()


@pytest.fixture
def versions(store: str) -> list[str]:
    return register(MODEL, 3)


def test_promote_prints_the_outcome_and_exits_0(versions: list[str]) -> None:
    result = runner.invoke(app, ["promote", MODEL, "1", "--reason", "launch"])

    assert result.exit_code == 0, result.output
    assert "promoted: Promoted version 1 as 'champion'" in result.stdout
    assert "Recorded as run" in result.stdout
    assert alias_of("champion") == "1"


def test_promote_json_is_one_document_with_the_decision(versions: list[str]) -> None:
    runner.invoke(app, ["promote", MODEL, "1"])

    result = runner.invoke(app, ["promote", MODEL, "2", "--json", "--reason", "better"])

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["outcome"] == "promoted" and document["candidate"] == "2"
    assert (document["champion_before"], document["champion_after"]) == ("1", "2")
    assert document["reason"] == "better" and document["run_id"]


def test_a_refused_promotion_prints_the_rule_table_and_exits_3(versions: list[str], tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[[models.{MODEL}.promotion.rules]]\nrule = "approval"\nby = "bob"\n', encoding="utf-8")
    runner.invoke(app, ["promote", MODEL, "1"])

    table = runner.invoke(app, ["promote", MODEL, "2", "--policy", str(policy)])
    as_json = runner.invoke(app, ["promote", MODEL, "2", "--policy", str(policy), "--json"])
    dry = runner.invoke(app, ["promote", MODEL, "2", "--policy", str(policy), "--dry-run"])

    assert table.exit_code == as_json.exit_code == dry.exit_code == 3
    assert "approval" in table.stdout and "FAIL" in table.stdout and "refused: Refused: approval" in table.stdout
    document = json.loads(as_json.stdout)
    assert document["outcome"] == "refused" and document["failed_rules"] == ["approval"]
    assert document["rules"][0]["bound"] == "bob"
    assert alias_of("champion") == "1"
    forced = runner.invoke(app, ["promote", MODEL, "2", "--policy", str(policy), "--force", "--reason", "ok"])
    assert forced.exit_code == 0 and alias_of("champion") == "2"


def test_dry_run_moves_nothing_and_exits_0_when_it_would_pass(versions: list[str]) -> None:
    result = runner.invoke(app, ["promote", MODEL, "1", "--dry-run", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outcome"] == "dry-run"
    assert alias_of("champion") is None


def test_rollback_and_history(versions: list[str]) -> None:
    from mlflow.tracking import MlflowClient

    runner.invoke(app, ["promote", MODEL, "1", "--reason", "launch"])
    runner.invoke(app, ["promote", MODEL, "2", "--reason", "retrained"])

    rolled = runner.invoke(app, ["rollback", MODEL, "--reason", "bad canary", "--json"])
    assert rolled.exit_code == 0, rolled.output
    assert json.loads(rolled.stdout)["champion_after"] == "1"

    MlflowClient().set_registered_model_alias(MODEL, "champion", "3")
    table = runner.invoke(app, ["history", MODEL])
    assert table.exit_code == 0, table.output
    assert "bad canary" in table.stdout and "unrecorded" in table.stdout
    entries = json.loads(runner.invoke(app, ["history", MODEL, "--json"]).stdout)
    assert [(e["version"], e["action"], e["recorded"]) for e in entries] == [
        ("1", "promote", True), ("2", "promote", True), ("1", "rollback", True), ("3", "unrecorded", False)]


def test_user_errors_are_one_line_and_exit_1(versions: list[str]) -> None:
    unknown = runner.invoke(app, ["promote", "nope", "1"])
    assert unknown.exit_code == 1
    assert "Error: No registered model named 'nope'" in unknown.stderr

    forced = runner.invoke(app, ["promote", MODEL, "1", "--force"])
    assert forced.exit_code == 1
    assert "force=True needs a reason" in forced.stderr and "--reason TEXT" in forced.stderr

    no_previous = runner.invoke(app, ["rollback", MODEL, "--reason", "x"])
    assert no_previous.exit_code == 1 and "no 'previous-champion' version" in no_previous.stderr
    assert "Traceback" not in unknown.output + forced.output + no_previous.output


def test_eval_data_and_labels_reach_the_rules(store: str, tmp_path: Path) -> None:
    from tests.test_promotion import training_frame

    [bad] = register(MODEL, 1, flip=True)
    [good] = register(MODEL, 1)
    runner.invoke(app, ["promote", MODEL, bad])
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[[models.{MODEL}.promotion.rules]]\nrule = "beats_champion"\n', encoding="utf-8")
    data = tmp_path / "eval.csv"
    training_frame(120, seed=5).rename(columns={"label": "y"}).to_csv(data, index=False)

    result = runner.invoke(app, ["promote", MODEL, good, "--policy", str(policy), "--eval-data", str(data),
                                 "--labels", "y", "--json"])

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["rules"][0]["passed"] is True
    assert document["candidate_metrics"]["accuracy"] > document["champion_metrics"]["accuracy"]
