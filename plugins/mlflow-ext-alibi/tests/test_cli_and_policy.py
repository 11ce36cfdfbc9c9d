"""The detectors through `mlflow-ext check` and a policy file, like any other detector."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import frame
from mlflow_ext.checks import check
from mlflow_ext.errors import ConfigError
from mlflow_ext.policy import load_policy
from mlflow_ext.profile import Profile

CLI = str(Path(sys.executable).parent / "mlflow-ext")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    Profile.from_frame(frame(2000, seed=1)).save(folder / "profile")
    frame(800, seed=2).to_parquet(folder / "same.parquet")
    frame(800, shift=1.0, seed=3).to_parquet(folder / "moved.parquet")
    return folder


def run_check(files: Path, batch: str, *detectors: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    options = [arg for d in detectors for arg in ("-d", d)]
    done = subprocess.run([CLI, "check", str(files / batch), "--reference", str(files / "profile"), *options,
                           "--json"], capture_output=True, text=True, cwd=files)
    return done.returncode, json.loads(done.stdout)


def test_cli_check_with_alibi_ks_passes_a_batch_like_the_reference(files: Path) -> None:
    code, result = run_check(files, "same.parquet", "numeric=alibi_ks", "categorical=alibi_chi2")
    assert code == 0 and result["status"] == "ok"
    assert {d["detector"] for d in result["drift"]} == {"alibi_ks", "alibi_chi2", "chi2"}  # boolean keeps chi2


def test_cli_check_with_alibi_ks_fails_a_moved_batch_with_exit_code_3(files: Path) -> None:
    code, result = run_check(files, "moved.parquet", "numeric=alibi_ks", "overall=alibi_tabular")
    assert code == 3 and result["status"] == "alert"
    assert set(result["drifted_columns"]) >= {"income", "age"}
    assert [o["detector"] for o in result["overall"]] == ["alibi_tabular"] and result["overall"][0]["drifted"]


def write_policy(folder: Path, detectors: str) -> Path:
    path = folder / "policy.toml"
    path.write_text(f"version = 1\n\n[models.churn.check.detectors]\n{detectors}\n")
    return path


def test_a_policy_naming_alibi_detectors_loads_and_drives_the_check(files: Path) -> None:
    pytest.importorskip("torch", reason="the torch extra is not installed")
    policy = load_policy(write_policy(files, 'numeric = { detector = "alibi_cvm", threshold = 0.05 }\n'
                                             'categorical = "alibi_tabular"\n'
                                             'overall = { detector = "alibi_mmd", n_permutations = 50 }'))
    options = policy.models["churn"].check_options
    profile = Profile.load(files / "profile")
    moved = check(profile, frame(800, shift=1.0, seed=3), detectors=options["detectors"])
    assert moved.status == "alert"
    assert {d.detector for d in moved.drift} == {"alibi_cvm", "alibi_tabular", "chi2"}
    assert [o.detector for o in moved.overall] == ["alibi_mmd"]
    same = check(profile, frame(800, seed=2), detectors=options["detectors"])
    assert same.status == "ok"


def test_a_policy_with_a_bad_alibi_option_names_the_file_and_field(files: Path) -> None:
    path = write_policy(files, 'overall = { detector = "alibi_mmd", n_permutations = "many" }')
    with pytest.raises(ConfigError, match=r"policy.toml: models.churn.check.detectors.overall.n_permutations: "
                                          r"expected an integer, got 'many'"):
        load_policy(path)
