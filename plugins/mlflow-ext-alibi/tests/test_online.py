"""The online detectors keep their stream state in MLflow: a restarted monitor continues where it stopped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow_ext.detectors import ColumnDrift
from mlflow_ext.errors import ConfigError

from mlflow_ext_alibi.online import AlibiCVMOnline, AlibiFETOnline, OnlineState, load_state

HERE = Path(__file__).parent
OPTIONS = dict(ert=200.0, window_sizes=[10, 30], n_bootstraps=1000, reference_size=300)


def stream(n: int, *, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.normal(shift, 1.0, size=n), "y": rng.normal(size=n)})


REFERENCE = stream(300, shift=0.0, seed=0)
BATCHES = [stream(40, shift=0.0, seed=1), stream(40, shift=0.0, seed=2), stream(60, shift=2.0, seed=3)]

# One batch in a fresh process: what a monitor restarted between batches does.
CHILD = """
import sys, pickle
from test_online import BATCHES, OPTIONS, REFERENCE
from mlflow_ext_alibi.online import AlibiCVMOnline
result = AlibiCVMOnline(model="churn", **OPTIONS).detect(REFERENCE, BATCHES[int(sys.argv[1])])
sys.stdout.buffer.write(pickle.dumps(result))
"""


def run_in_new_process(batch: int) -> tuple[ColumnDrift, ...]:
    import pickle

    done = subprocess.run([sys.executable, "-c", CHILD, str(batch)], cwd=HERE, capture_output=True, check=True)
    return pickle.loads(done.stdout).columns  # type: ignore[no-any-return]


def test_a_restarted_monitor_continues_the_stream_where_it_stopped(store: str) -> None:
    # the same three batches fed to one detector that never stops, in this process
    steady = AlibiCVMOnline(model="steady", **OPTIONS)
    expected = [steady.detect(REFERENCE, batch).columns for batch in BATCHES]
    assert [r.drifted for r in expected[2]] == [True, False]  # x moved in the last batch, y did not
    assert [r.drifted for r in expected[0] + expected[1]] == [False] * 4

    # a fresh detector per batch, the last one in a new process: all they share is the state in MLflow
    assert AlibiCVMOnline(model="churn", **OPTIONS).detect(REFERENCE, BATCHES[0]).columns == expected[0]
    assert load_state("churn", "alibi_cvm_online") == {"x": OnlineState("x", 40, 0), "y": OnlineState("y", 40, 0)}
    assert AlibiCVMOnline(model="churn", **OPTIONS).detect(REFERENCE, BATCHES[1]).columns == expected[1]
    assert run_in_new_process(2) == expected[2]
    after = load_state("churn", "alibi_cvm_online")
    assert after["y"] == OnlineState("y", 140, 0)
    assert after["x"].detections >= 1 and after["x"].t < 60  # reset at each detection, then counted on
    assert after == load_state("steady", "alibi_cvm_online")


def test_without_a_model_each_batch_starts_afresh_and_nothing_is_saved(store: str) -> None:
    detector = AlibiCVMOnline(**OPTIONS)
    first = detector.detect(REFERENCE, BATCHES[0])
    assert detector.detect(REFERENCE, BATCHES[0]) == first  # no state: the same batch, the same result
    assert load_state("churn", "alibi_cvm_online") == {}


def test_a_new_reference_restarts_the_stream(store: str) -> None:
    AlibiCVMOnline(model="churn", **OPTIONS).detect(REFERENCE, BATCHES[0])
    assert load_state("churn", "alibi_cvm_online")["x"].t == 40
    AlibiCVMOnline(model="churn", **OPTIONS).detect(stream(300, shift=0.0, seed=9), BATCHES[1])
    assert load_state("churn", "alibi_cvm_online")["x"].t == 40  # not 80: the old windows do not belong here


def test_fet_online_detects_a_rise_in_a_boolean_rate_across_batches(store: str) -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"flag": rng.random(300) < 0.1})
    detector = AlibiFETOnline(model="churn", ert=200.0, window_sizes=[20], n_bootstraps=2000)
    calm = detector.detect(reference, pd.DataFrame({"flag": rng.random(50) < 0.1})).columns[0]
    risen = AlibiFETOnline(model="churn", ert=200.0, window_sizes=[20], n_bootstraps=2000).detect(
        reference, pd.DataFrame({"flag": rng.random(50) < 0.6})).columns[0]
    assert not calm.drifted and calm.effect_size < 1.0
    assert risen.drifted and risen.effect_size > 1.0 and risen.threshold == 1.0 and risen.p_value is None
    assert load_state("churn", "alibi_fet_online")["flag"].detections >= 1


def test_options_are_checked_when_the_detector_is_created() -> None:
    from mlflow_ext import _registry

    with pytest.raises(ConfigError, match=r"alternative: expected one of 'greater', 'less', got 'up'"):
        _registry.create("detector", "alibi_fet_online", {"alternative": "up"}, where="alternative")
    with pytest.raises(ConfigError, match=r"window_sizes: expected a list of integers, got 20"):
        _registry.create("detector", "alibi_cvm_online", {"window_sizes": 20}, where="window_sizes")
