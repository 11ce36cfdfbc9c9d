# The two commands a new user needs: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(PY) recipes/demo.py

test: setup
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check mlflow_ext tests
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .pytest_cache mlflow.db mlruns demo-output
