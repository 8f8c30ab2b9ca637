#!/usr/bin/env bash
# One-command set-up on a fresh machine (Debian, Python 3.10+, root or sudo for the browser):
# PyTorch CPU, scalinglab with its dev, Ray, Lightning, MLflow, Parquet and notebook extras, and Debian's
# chromium for the report's browser test, espeak-ng for the speech data set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# The CPU wheel first: a bare `torch` requirement could otherwise pull a multi-GB CUDA build.
# (GPU users: install the torch build that fits your CUDA first; this line then changes nothing.)
$PY -c "import torch" 2>/dev/null || $PY -m pip install -q "torch==2.13.0"
$PY -m pip install -q -e ".[dev,ray,lightning,mlflow,parquet,notebook]"

# Headless chromium for the report's browser test (skipped if already there).
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
# espeak-ng for the speech data set's audio (data/speech.py; skipped if already there).
if ! command -v espeak-ng >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq espeak-ng >/dev/null
fi
echo "scalinglab set up: $($PY -c 'import scalinglab, torch; print("scalinglab", scalinglab.__version__, "torch", torch.__version__)')"
