"""`make demo` as a user runs it: recipes/demo.py in a fresh working folder, twice in a row, with the
repository's Python. The key lines of each act must be there: the promotion of v2, the refused
stale candidate, the served champion answering with version header 2, and the monitoring loop over
the served traffic reporting an accuracy from the /feedback labels."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.backends import VENV_BIN

DEMO = Path(__file__).resolve().parent.parent / "recipes" / "demo.py"
TIMEOUT = 300  # seconds per run; it takes well under a minute on 2 cores


def _run_demo(folder: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}  # the demo brings its own store
    done = subprocess.run([str(VENV_BIN / "python"), str(DEMO)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-5000:]}\nstderr:\n{done.stderr[-5000:]}"
    return done.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="the demo stops its server with a POSIX signal")
def test_the_demo_promotes_refuses_serves_and_monitors_the_served_traffic_twice_in_a_row(tmp_path: Path) -> None:
    first = _run_demo(tmp_path)
    assert "Starting clean" in first
    assert re.search(r"Decision on v2: PROMOTED: Promoted version 2 as 'champion' \(was version 1\)", first)
    assert re.search(r"Decision on v3: REFUSED: .*\n\s+FAIL beats_champion", first)

    answers = re.findall(r"customer \d+ \(.*\): churn = [01]  \[X-MLflow-Ext-Version: (\d+)\]", first)
    assert answers == ["2", "2", "2"], first
    assert "Sent the true labels to /feedback: 300 accepted." in first
    check = re.search(r"batch\s+batch-\S+\.parquet: (OK|WARN|ALERT) \(window \d+, v2\)", first)
    assert check, first
    accuracy = re.search(r"labels\s+labels-\S+\.parquet: \w+ \(labels for window \d+\); accuracy (\d\.\d+)", first)
    assert accuracy, first
    assert 0.8 < float(accuracy.group(1)) <= 1.0  # v2 was trained after the shift: it gets the last batch right
    assert '"serve churn"' in first and '"check churn/2 #7"' in first  # what to click

    inference = tmp_path / "demo-output" / "inference"
    logged = pd.concat([pd.read_parquet(p) for p in inference.glob("batch-*.parquet")])
    assert len(logged) == 300 and set(logged["version"]) == {"2"}  # SIGTERM flushed every served row
    assert not list(inference.glob(".*"))  # no half-written file left behind

    second = _run_demo(tmp_path)  # a previous demo's store and log are removed, a new free port is taken
    assert "starting clean (removed it)" in second
    assert re.findall(r"\[X-MLflow-Ext-Version: (\d+)\]", second) == ["2", "2", "2"]
    assert re.search(r"labels\s+labels-\S+\.parquet: .*accuracy 0\.\d+", second)
    logged = pd.concat([pd.read_parquet(p) for p in inference.glob("batch-*.parquet")])
    assert len(logged) == 300  # only this run's traffic
