#!/usr/bin/env bash
# NannyML's own virtualenv for bench/bench_estimation.py, at bench/.venvs/nannyml (gitignored).
# Idempotent: a venv whose CBPE import already works is left alone. Usage: bash bench/setup_nannyml.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
DIR="$HERE/.venvs/nannyml"
PYTHON="${PYTHON:-python3.11}"
PIP_FLAGS=(--quiet --disable-pip-version-check)

# nannyml 0.13 predates pandas 3 and numpy 2, so both stay on the lines it was released against;
# pyarrow 20+ needs numpy 2; statsmodels is imported by nannyml but missing from its declared dependencies.
PINS=(nannyml==0.13.1 numpy==1.26.4 pandas==2.3.3 scipy==1.15.3 scikit-learn==1.6.1 statsmodels==0.14.4
      pyarrow==19.0.1)
CHECK="import pyarrow; from nannyml.performance_estimation.confidence_based import CBPE"

works() { [ -x "$DIR/bin/python" ] && NML_DISABLE_USAGE_LOGGING=1 "$DIR/bin/python" -c "$CHECK" >/dev/null 2>&1; }

if works; then
  echo "setup_nannyml.sh: ready ($DIR)"
  exit 0
fi
echo "setup_nannyml.sh: creating $DIR" >&2
rm -rf "$DIR"
mkdir -p "$(dirname "$DIR")"
"$PYTHON" -m venv "$DIR"
"$DIR/bin/python" -m pip install "${PIP_FLAGS[@]}" --upgrade pip
"$DIR/bin/python" -m pip install "${PIP_FLAGS[@]}" "${PINS[@]}"
if ! works; then
  echo "setup_nannyml.sh: installed but '$CHECK' fails:" >&2
  NML_DISABLE_USAGE_LOGGING=1 "$DIR/bin/python" -c "$CHECK" >&2 || true
  exit 1
fi
echo "setup_nannyml.sh: ready ($DIR)"
