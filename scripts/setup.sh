#!/usr/bin/env bash
# One-command set-up on a fresh machine (Debian, Python 3.10+, root or sudo for the browser):
# PyTorch CPU, scalinglab with its dev, Ray, Lightning, MLflow, Parquet and notebook extras, and Debian's
# chromium for the report's browser test, espeak-ng for the speech data set, fonts for the glyphs one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# The CPU wheel first: a bare `torch` requirement could otherwise pull a multi-GB CUDA build.
# (GPU users: install the torch build that fits your CUDA first; this line then changes nothing.)
$PY -c "import torch" 2>/dev/null || $PY -m pip install -q "torch==2.13.0"
$PY -m pip install -q -e ".[dev,ray,lightning,mlflow,parquet,notebook]"

# Debian packages, each skipped if already there: headless chromium for the report's browser test,
# espeak-ng for the speech data set's audio (data/speech.py), TrueType fonts for the glyphs data set
# (data/glyphs.py: its classes are rendered from the installed fonts; dev/test fonts unseen in training).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansCondensed.ttf ] || missing+=(fonts-dejavu-extra)
[ -d /usr/share/fonts/truetype/liberation ] || missing+=(fonts-liberation)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "scalinglab set up: $($PY -c 'import scalinglab, torch; print("scalinglab", scalinglab.__version__, "torch", torch.__version__)')"
