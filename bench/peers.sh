#!/usr/bin/env bash
# One virtualenv per peer under bench/.venvs/, with pinned versions that resolve together.
# Idempotent: a venv whose imports already work is left alone. Usage: bash bench/peers.sh [alibi|evidently]...
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENVS="$HERE/.venvs"
PYTHON="${PYTHON:-python3.11}"
PIP_FLAGS=(--quiet --disable-pip-version-check)

# alibi-detect 0.13 declares torch-free but heavy deps (opencv, scikit-image, transformers...). KSDrift
# and TabularDrift need only these, so the package goes in with --no-deps and this list beside it.
# numpy<2, pandas<3 and numba<0.60 are alibi-detect's own bounds; transformers<5 is imported by
# alibi_detect.cd even without torch; pyarrow 21+ needs numpy 2.
ALIBI_PINS=(
  numpy==1.26.4 pandas==2.3.3 scipy==1.17.1 scikit-learn==1.9.1 pyarrow==20.0.0
  numba==0.59.1 llvmlite==0.42.0 typing_extensions==4.16.0 tqdm==4.70.1 pydantic==2.14.4
  dill==0.3.9 toml==0.10.2 catalogue==2.0.10 transformers==4.57.6
)
ALIBI_IMPORT="import pyarrow; from alibi_detect.cd import KSDrift, TabularDrift"

# evidently 0.7 (the Report / presets API) still imports pandas internals removed in pandas 3.
EVIDENTLY_PINS=(evidently==0.7.23 pandas==2.3.3 numpy==2.4.6 scipy==1.17.1 pyarrow==26.0.1)
EVIDENTLY_IMPORT="import pyarrow; from evidently import Report; from evidently.presets import DataDriftPreset"

works() {  # venv dir, import statement
  [ -x "$1/bin/python" ] && "$1/bin/python" -c "$2" >/dev/null 2>&1
}

setup() {  # name
  local name="$1" dir="$VENVS/$1" check
  case "$name" in
    alibi) check="$ALIBI_IMPORT" ;;
    evidently) check="$EVIDENTLY_IMPORT" ;;
    *) echo "peers.sh: unknown peer '$name'. Valid: alibi, evidently." >&2; return 2 ;;
  esac
  if works "$dir" "$check"; then
    echo "peers.sh: $name ready ($dir)"
    return 0
  fi
  echo "peers.sh: creating $dir" >&2
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install "${PIP_FLAGS[@]}" --upgrade pip
  case "$name" in
    alibi)
      "$dir/bin/python" -m pip install "${PIP_FLAGS[@]}" "${ALIBI_PINS[@]}"
      "$dir/bin/python" -m pip install "${PIP_FLAGS[@]}" --no-deps alibi-detect==0.13.0 ;;
    evidently)
      "$dir/bin/python" -m pip install "${PIP_FLAGS[@]}" "${EVIDENTLY_PINS[@]}" ;;
  esac
  if ! works "$dir" "$check"; then
    echo "peers.sh: $name installed but '$check' fails:" >&2
    "$dir/bin/python" -c "$check" >&2 || true
    return 1
  fi
  echo "peers.sh: $name ready ($dir)"
}

mkdir -p "$VENVS"
if [ "$#" -eq 0 ]; then set -- alibi evidently; fi
for peer in "$@"; do setup "$peer"; done
