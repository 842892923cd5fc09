#!/usr/bin/env bash
# Set up .venv/ in the repo root (CPython 3.11) and run the main job on a photo:
# out/<name>.npz (result), .blend (Blender scene), .glb (glTF) and .png (render over the photo).
# Usage: bash scripts/quickstart.sh [PHOTO] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
PHOTO=${1:-examples/person.jpg}
OUT=${2:-out}
.venv/bin/python scripts/blender_job.py "$PHOTO" "$OUT"
