#!/usr/bin/env bash
# Test clip: Sports2D/Demo/demo.mp4 from the PyPI package sports2d (BSD-3-Clause): two people,
# 230 frames. Extracted into tests/data/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=tests/data
[ -f "$DEST/demo.mp4" ] && exit 0
mkdir -p "$DEST"
TMP=$(mktemp -d)
.venv/bin/python -m pip download -q --disable-pip-version-check --no-deps sports2d==0.8.34 -d "$TMP"
.venv/bin/python - "$TMP" "$DEST" <<'PY'
import sys, zipfile, glob, shutil
whl = glob.glob(sys.argv[1] + "/sports2d-*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open("Sports2D/Demo/demo.mp4") as src, open(sys.argv[2] + "/demo.mp4", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
rm -rf "$TMP"
