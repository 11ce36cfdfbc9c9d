"""The batch detectors: conformance, agreement with the core, and how they map alibi's output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import frame
from mlflow_ext import _registry
from mlflow_ext.builtin.detectors import KS
from mlflow_ext.checks import check
from mlflow_ext.errors import ConfigError, DataError
from mlflow_ext.profile import Profile
from mlflow_ext.testing import check_detector

from mlflow_ext_alibi.detectors import AlibiCVM, AlibiKS, AlibiMMD, AlibiTabular

CLI = str(Path(sys.executable).parent / "mlflow-ext")
TORCH = {"alibi_mmd", "alibi_lsdd"}
NAMES = ["alibi_chi2", "alibi_classifier", "alibi_cvm", "alibi_cvm_online", "alibi_fet_online", "alibi_ks",
         "alibi_lsdd", "alibi_mmd", "alibi_tabular"]


@pytest.mark.parametrize("name", NAMES)
def test_every_detector_passes_the_core_conformance_checks(name: str) -> None:
    if name in TORCH:
        pytest.importorskip("torch", reason="the torch extra is not installed (make test-alibi ALIBI_EXTRAS=test)")
    check_detector(name)


def test_plugins_lists_every_detector_with_the_licence_without_importing_alibi() -> None:
    listed = subprocess.run([CLI, "plugins", "--kind", "detector", "--json"], capture_output=True, text=True,
                            check=True)
    ours = {p["name"]: p for p in json.loads(listed.stdout) if p["distribution"] == "mlflow-ext-alibi"}
    assert sorted(ours) == NAMES
    assert {p["license"] for p in ours.values()} == {"Apache-2.0 AND BUSL-1.1"}
    probe = ("import sys; from mlflow_ext import _registry; _registry.plugins(); "
             "_registry.load('detector', 'alibi_mmd'); _registry.load('detector', 'alibi_cvm_online'); "
             "print(sorted(m for m in sys.modules if m.startswith(('alibi_detect', 'torch'))))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_core_ks_and_alibi_ks_agree_on_the_same_data() -> None:
    ref = frame(3000, seed=1)[["income", "age"]]
    for shift, drifted in ((0.0, False), (0.3, True)):
        cur = frame(2000, shift=shift, seed=2)[["income", "age"]]
        core, alibi = KS().detect(ref, cur).columns, AlibiKS().detect(ref, cur).columns
        for c, a in zip(core, alibi, strict=True):
            assert a.statistic == pytest.approx(c.statistic, abs=1e-6)  # the same D (alibi keeps float32)
            # alibi takes the asymptotic p-value, the core scipy's exact one: close at these sizes
            assert a.p_value == pytest.approx(c.p_value, abs=0.01, rel=0.25)
            assert (a.drifted, c.drifted) == (drifted, drifted)


def test_cvm_effect_size_stays_put_as_the_samples_grow_while_the_statistic_does_not() -> None:
    results = []
    for n in (500, 5000):
        ref = pd.DataFrame({"x": np.random.default_rng(0).normal(size=n)})
        cur = pd.DataFrame({"x": np.random.default_rng(1).normal(0.3, 1.0, size=n)})
        results.append(AlibiCVM().detect(ref, cur).columns[0])
    small, large = results
    assert large.statistic > 5 * small.statistic
    assert large.effect_size == pytest.approx(small.effect_size, rel=0.3)


def test_a_column_with_nulls_is_tested_on_its_values_only() -> None:
    ref, cur = frame(800, seed=1), frame(600, seed=2)
    holes = cur.copy()
    holes.loc[::3, "age"] = np.nan
    holes.loc[::5, "plan"] = None
    result = AlibiTabular().detect(ref, holes)
    clean = AlibiTabular().detect(ref, cur.iloc[[i for i in range(600) if i % 3]])
    assert result.columns[1] == clean.columns[1]  # age: the null rows left out
    assert [c.column for c in result.columns] == ["income", "age", "plan", "churned"]
    assert not any(c.drifted for c in result.columns)


def test_tabular_tests_each_column_with_its_own_test_and_decides_overall_with_bonferroni() -> None:
    ref, cur = frame(1500, seed=1), frame(1500, shift=1.0, seed=2)
    result = AlibiTabular().detect(ref, cur)
    assert [c.threshold for c in result.columns] == [0.05, 0.05, 0.1, 0.1]
    assert all(c.drifted for c in result.columns)
    assert result.overall is not None and result.overall.drifted
    assert result.overall.statistic == 4.0  # drifted columns


def test_check_alerts_on_a_multivariate_shift_that_no_column_shows() -> None:
    pytest.importorskip("torch", reason="the torch extra is not installed")
    rng = np.random.default_rng(0)
    ref = pd.DataFrame(rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], size=2000), columns=["a", "b"])
    # the same margins, the correlation flipped: per-column tests see nothing
    cur = pd.DataFrame(rng.multivariate_normal([0, 0], [[1, -0.9], [-0.9, 1]], size=500), columns=["a", "b"])
    profile = Profile.from_frame(ref)
    result = check(profile, cur, detectors={"numeric": "ks", "overall": "alibi_mmd"})
    assert result.drifted_columns == ()
    assert result.status == "alert"
    assert "Detector 'alibi_mmd' found drift over all columns together" in result.reasons[0]
    same = check(profile, ref.iloc[:500], detectors={"overall": AlibiMMD()})
    assert same.status == "ok" and not same.overall[0].drifted


def test_classifier_finds_drift_in_mixed_columns_with_nulls() -> None:
    ref, cur = frame(1000, seed=1), frame(600, shift=1.0, seed=2)
    cur.loc[::4, "income"] = np.nan
    result = check(Profile.from_frame(ref), cur, detectors={"overall": "alibi_classifier", "numeric": None,
                                                          "categorical": None, "boolean": None})
    assert result.status == "alert" and result.overall[0].detector == "alibi_classifier"


def test_bad_input_is_an_error_that_says_what_is_valid() -> None:
    ref = frame(100)
    with pytest.raises(ConfigError, match="'alibi_ks' cannot test categorical column 'plan'; it tests numeric"):
        AlibiKS().detect(ref, ref[["plan"]])
    with pytest.raises(DataError, match=r"Columns \['extra'\] of the current batch are not in the reference"):
        AlibiKS().detect(ref, ref[["age"]].assign(extra=1.0))
    with pytest.raises(DataError, match="Column 'age' has no finite values to compare in the current batch"):
        AlibiKS().detect(ref, pd.DataFrame({"age": [np.nan, np.inf]}))
    with pytest.raises(ConfigError, match=r"n_permutations: expected an integer, got 'many'"):
        _registry.create("detector", "alibi_mmd", {"n_permutations": "many"}, where="n_permutations")


def test_mmd_without_pytorch_names_the_extra_to_install() -> None:
    code = ("import sys; sys.modules['torch'] = None\n"  # as if PyTorch were not installed
            "from conftest import frame\n"
            "from mlflow_ext.errors import PluginError\n"
            "from mlflow_ext_alibi.detectors import AlibiMMD, AlibiLSDD\n"
            "for cls in (AlibiMMD, AlibiLSDD):\n"
            "    try:\n"
            "        cls().detect(frame(50)[['age']], frame(50)[['age']])\n"
            "    except PluginError as exc:\n"
            "        print(exc.message, '|', exc.hint)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).parent).stdout.splitlines()
    assert len(out) == 2
    assert out[0].startswith("Detector 'alibi_mmd' runs on alibi-detect's PyTorch backend, and PyTorch is not")
    assert "pip install 'mlflow-ext-alibi[torch]'" in out[0] and "torch==2.13.0" in out[0]
    assert out[1].startswith("Detector 'alibi_lsdd'")
