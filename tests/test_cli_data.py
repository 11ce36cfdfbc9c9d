"""`mlflow-ext profile` and `mlflow-ext check`: files, exit codes, --json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlflow_ext.cli import app
from mlflow_ext.profile import Profile

runner = CliRunner()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    n = 2_000
    ref = pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(size=n), "city": rng.choice(list("abc"), n)})
    ref.to_csv(root / "ref.csv", index=False)
    ref.sample(frac=0.5, random_state=1).to_parquet(root / "same.parquet")
    ref.assign(x=ref["x"] + 1, y=ref["y"] - 1).to_parquet(root / "drifted.parquet")
    ref.assign(x=ref["x"] + 1).to_csv(root / "one.csv", index=False)
    ref.iloc[:0].to_csv(root / "empty.csv", index=False)
    result = runner.invoke(app, ["profile", str(root / "ref.csv"), "-o", str(root / "prof")])
    assert result.exit_code == 0, result.output
    return {p.stem: p for p in root.iterdir()}


def test_profile_writes_json_and_sample(files: dict[str, Path], tmp_path: Path) -> None:
    assert sorted(p.name for p in files["prof"].iterdir()) == ["profile.json", "reference.parquet"]
    result = runner.invoke(app, ["profile", str(files["ref"]), "-o", str(tmp_path / "p.json"), "--json",
                                 "--sample-size", "50"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["n_rows"] == 2000 and document["sample_size"] == 50
    assert len(pd.read_parquet(tmp_path / "p.parquet")) == 50
    assert json.loads(Profile.load(tmp_path / "p.json").to_json()) == document


@pytest.mark.parametrize(("batch", "code", "status"), [("same", 0, "ok"), ("drifted", 3, "alert"), ("one", 0, "warn")])
def test_check_exit_codes_and_json(files: dict[str, Path], batch: str, code: int, status: str) -> None:
    result = runner.invoke(app, ["check", str(files[batch]), "--reference", str(files["prof"]), "--json"])
    assert result.exit_code == code, result.output
    document = json.loads(result.stdout)
    assert document["status"] == status and document["reasons"]
    human = runner.invoke(app, ["check", str(files[batch]), "--reference", str(files["prof"] / "profile.json")])
    assert human.exit_code == code
    assert f"Status: {status}" in human.stdout and "Drift" in human.stdout


def test_check_error_status_exits_1(files: dict[str, Path]) -> None:
    result = runner.invoke(app, ["check", str(files["empty"]), "--reference", str(files["prof"]), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "error"


def test_check_detector_option(files: dict[str, Path]) -> None:
    result = runner.invoke(app, ["check", str(files["drifted"]), "-r", str(files["prof"]), "--json",
                                 "-d", "numeric=psi", "-d", "columns.y=none", "-d", "categorical=jensen_shannon"])
    assert result.exit_code == 3, result.output  # x drifts: 1 of the 2 tested columns reaches the alert share
    drift = json.loads(result.stdout)["drift"]
    assert [(d["column"], d["detector"]) for d in drift] == [("x", "psi"), ("city", "jensen_shannon")]


@pytest.mark.parametrize(("args", "message"), [
    (["check", "{drifted}", "-r", "{prof}", "-d", "numeric"], "--detector: expected KEY=NAME, got 'numeric'"),
    (["check", "{drifted}", "-r", "{prof}", "-d", "numeric=pis"], "No detector named 'pis'"),
    (["check", "{drifted}", "-r", "{prof}", "--correction", "x"], "correction: unknown method 'x'"),
    (["check", "{drifted}", "-r", "{missing}"], "Cannot read the profile"),
    (["check", "{notdata}", "-r", "{prof}"], "is not a tabular file"),
    (["profile", "{notdata}", "-o", "{out}"], "is not a tabular file"),
])
def test_cli_errors_exit_1_with_a_message(files: dict[str, Path], tmp_path: Path, args: list[str],
                                          message: str) -> None:
    (tmp_path / "notdata.bin").write_bytes(b"\x00\x01")
    paths = {**{k: str(v) for k, v in files.items()}, "missing": str(tmp_path / "nope"),
             "notdata": str(tmp_path / "notdata.bin"), "out": str(tmp_path / "out")}
    result = runner.invoke(app, [a.format(**paths) for a in args])
    assert result.exit_code == 1
    assert message in result.stderr
    assert not (tmp_path / "out").exists()  # no partial output


def test_corrupt_and_future_profiles_are_errors(files: dict[str, Path], tmp_path: Path) -> None:
    document = json.loads((files["prof"] / "profile.json").read_text())
    (tmp_path / "future.json").write_text(json.dumps({**document, "schema_version": 99, "sample_file": None}))
    result = runner.invoke(app, ["check", str(files["same"]), "-r", str(tmp_path / "future.json")])
    assert result.exit_code == 1 and "newer mlflow-ext" in result.stderr and "Upgrade" in result.stderr
    (tmp_path / "cut.json").write_text((files["prof"] / "profile.json").read_text()[:100])
    result = runner.invoke(app, ["check", str(files["same"]), "-r", str(tmp_path / "cut.json")])
    assert result.exit_code == 1 and "not valid JSON" in result.stderr
