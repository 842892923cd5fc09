#!/usr/bin/env bash
# A CPython 3.13 environment with what the detection stage needs (mediapipe, numpy, pillow, from
# requirements.txt), for tests/test_py313.py: Blender 5.1-5.3 bundle CPython 3.13.
# The interpreter: $PYTHON313, else python3.13 on PATH, else pyenv's newest 3.13.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON313:-}
if [ -z "$PY" ]; then
  if python3.13 --version >/dev/null 2>&1; then
    PY=python3.13
  elif command -v pyenv >/dev/null && [ -n "$(pyenv versions --bare | grep '^3\.13' | tail -1)" ]; then
    PY="$(pyenv root)/versions/$(pyenv versions --bare | grep '^3\.13' | tail -1)/bin/python3.13"
  else
    echo "setup_py313: no CPython 3.13 found; set PYTHON313" >&2
    exit 1
  fi
fi
if [ ! -x .venv313/bin/python ]; then
  "$PY" -m venv .venv313
fi
grep -E '^(mediapipe|numpy|pillow)' requirements.txt > .venv313/detect-requirements.txt
.venv313/bin/python -m pip install -q --disable-pip-version-check -r .venv313/detect-requirements.txt
