"""One local SparkSession for the whole test run (Java found, or installed with apt-get, or skip)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest


def _java() -> str | None:
    """Why Java is unavailable, or None once it is (installing a headless JRE where apt-get can)."""
    if shutil.which("java"):
        return None
    if shutil.which("apt-get") and os.geteuid() == 0:
        for argv in (["apt-get", "update", "-qq"],
                     ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "default-jre-headless"]):
            done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ,
                                                                            "DEBIAN_FRONTEND": "noninteractive"})
            if done.returncode:
                return f"'{' '.join(argv)}' failed: {done.stderr.strip()[-300:]}"
        if shutil.which("java"):
            return None
    return "no 'java' on PATH and no apt-get (as root) to install default-jre-headless"


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    reason = _java()
    if reason is not None:
        print(f"\nSKIP Spark tests: {reason}", file=sys.stderr)
        pytest.skip(f"Java is not available: {reason}")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]").appName("mlflow-ext-spark-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
