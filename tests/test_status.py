"""Fleet status and the `check --model` / `status` commands, against a real sqlite MLflow store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from mlflow_ext.cli import app
from mlflow_ext.model_check import check_model, status_table
from tests.model_fixtures import ID, TARGET, make_batch

pytest_plugins = ["tests.model_fixtures"]
runner = CliRunner()


def test_status_lists_every_model_with_aliases_last_check_and_performance_trend(model_store: str) -> None:
    before = {row.model: row for row in status_table()}
    assert set(before) == {"churn", "legacy"}
    assert (before["churn"].champion, before["churn"].challenger, before["churn"].last_check) == ("1", "2", None)
    assert before["legacy"].champion is None

    clean, drifted = make_batch(600, seed=21), make_batch(600, seed=22, shift=1.0, flip=0.35)
    first = check_model("churn", clean, id_column=ID)
    second = check_model("churn", drifted, id_column=ID)
    (row,) = status_table("churn")
    assert row.last_check is not None and row.last_check.run_id == second.run_id
    assert row.last_check.status == "alert" and "age" in row.last_check.drifted_columns
    accuracy = [next(m.value for m in c.result.performance if m.name == "accuracy") for c in (first, second)]
    assert row.performance_metric == "accuracy"
    assert row.performance_trend == pytest.approx(accuracy)  # oldest first


def test_status_command_prints_the_table_and_one_json_document(model_store: str) -> None:
    check_model("churn", make_batch(400, seed=23, shift=1.0), id_column=ID)
    human = runner.invoke(app, ["status"])
    assert human.exit_code == 0, human.output
    assert "churn" in human.output and "legacy" in human.output and "never checked" in human.output
    assert "alert" in human.output or "warn" in human.output
    document = json.loads(runner.invoke(app, ["status", "churn", "--json"]).stdout)
    assert [row["model"] for row in document] == ["churn"]
    assert document[0]["last_check"]["drifted_columns"]


def test_status_of_an_unknown_model_is_an_error_that_names_it(model_store: str) -> None:
    result = runner.invoke(app, ["status", "nope"])
    assert result.exit_code == 1
    assert "Error:" in result.stderr and "'nope'" in result.stderr


def test_check_command_with_a_model_records_the_run_and_gates_ci_on_alert(model_store: str, tmp_path: Path) -> None:
    batch = make_batch(800, seed=24, shift=1.0, flip=0.35)
    batch.drop(columns=[TARGET]).to_csv(tmp_path / "batch.csv", index=False)
    batch[[ID, TARGET]].to_parquet(tmp_path / "labels.parquet")
    result = runner.invoke(app, ["check", "batch.csv", "--model", "churn@champion", "--labels", "labels.parquet",
                                 "--id-column", ID, "--step", "4", "--json"])
    assert result.exit_code == 3, result.output
    document = json.loads(result.stdout)
    assert document["result"]["status"] == "alert" and document["step"] == 4
    assert document["report_uri"] == f"runs:/{document['run_id']}/report.html"
    tags = mlflow.MlflowClient().get_model_version("churn", "1").tags
    assert tags["mlflow_ext.last_check.run_id"] == document["run_id"]

    clean = make_batch(300, seed=25)
    clean.to_csv(tmp_path / "clean.csv", index=False)
    human = runner.invoke(app, ["check", "clean.csv", "--model", "churn/2", "--id-column", ID])
    assert human.exit_code == 0, human.output
    assert "Model churn version 2, window 5" in human.stdout and "Recorded run" in human.stdout


def test_check_needs_exactly_one_of_reference_and_model(model_store: str, tmp_path: Path) -> None:
    make_batch(10, seed=1).to_csv(tmp_path / "b.csv", index=False)
    result = runner.invoke(app, ["check", "b.csv"])
    assert result.exit_code == 2 and "give exactly one of them" in result.output


def test_help_of_status_and_check_does_not_import_mlflow() -> None:
    code = ("import sys\nfrom mlflow_ext.cli import app\nfor args in (['--help'], ['status', '--help'], "
            "['check', '--help']):\n    try:\n        app(args)\n    except SystemExit:\n        pass\n"
            "print('mlflow' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--model" in done.stdout and "status" in done.stdout
    assert done.stderr.strip() == "False"
