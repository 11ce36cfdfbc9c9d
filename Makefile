# The two commands a new user needs: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-alibi test-spark bench bench-spark bench-team lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(PY) recipes/demo.py

test: setup test-alibi test-spark
	$(PY) -m pytest

# The alibi-detect plugin in an environment of its own: alibi-detect needs numpy<2 and pandas<3, and
# the core's speed targets assume numpy 2. ALIBI_EXTRAS=test leaves PyTorch out (alibi_mmd and
# alibi_lsdd are then skipped): torch==2.13.0 must resolve to the CPU wheel, never a CUDA build.
ALIBI := .venvs/alibi
ALIBI_EXTRAS ?= test,torch

$(ALIBI)/.installed: pyproject.toml plugins/mlflow-ext-alibi/pyproject.toml
	test -x $(ALIBI)/bin/python || $(PYTHON) -m venv $(ALIBI)
	$(ALIBI)/bin/python -m pip install --quiet --disable-pip-version-check "numpy<2" "pandas<3" "pyarrow<26" \
		-e . -e "plugins/mlflow-ext-alibi[$(ALIBI_EXTRAS)]"
	touch $@

test-alibi: $(ALIBI)/.installed
	cd plugins/mlflow-ext-alibi && ../../$(ALIBI)/bin/python -m pytest

# The Spark engine shares the core's environment (pyspark 4 runs with numpy 2 and pandas 3); its tests
# need Java, which they install with apt-get where it is missing (or skip, saying why).
$(VENV)/.spark-installed: $(STAMP) plugins/mlflow-ext-spark/pyproject.toml
	$(PY) -m pip install --quiet --disable-pip-version-check -e "plugins/mlflow-ext-spark[test]"
	touch $@

test-spark: $(VENV)/.spark-installed
	cd plugins/mlflow-ext-spark && ../../$(PY) -m pytest

lint: setup
	$(PY) -m ruff check mlflow_ext tests bench plugins
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .pytest_cache mlflow.db mlruns demo-output

# The drift benchmark against alibi-detect and Evidently (see bench/README.md); takes about half an hour.
bench: setup
	bash bench/peers.sh
	$(PY) bench/bench_drift.py

# The Spark engine vs the numpy engine on 10M x 50 floats from Parquet (writes ~4 GB to bench/.data/).
bench-spark: $(VENV)/.spark-installed
	$(PY) bench/bench_spark.py

# Checks and promotion decisions from 1, 4 and 8 concurrent clients against a PostgreSQL-backed
# `mlflow server` (1 and 4 workers) and a sqlite file (see bench/README.md); about 7 minutes.
bench-team: setup
	$(PY) bench/bench_team.py
