#!/usr/bin/env bash
# One environment per Blender version the add-on supports besides .venv's (bpy 5.0.1), for
# tests/test_blender_versions.py: .venv-blender/<version>/ with Blender as a Python module.
# Blender 4.2-5.0 bundle CPython 3.11, 5.1-5.3 CPython 3.13.
# Usage: bash scripts/setup_blenders.sh [VERSION ...]   (default: 4.2.23 4.5.15 5.3.0)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSIONS=${*:-4.2.23 4.5.15 5.3.0}
python_for() {  # the CPython a Blender version bundles
  case "$1" in
    4.*|5.0.*) want=3.11 ;;
    *) want=3.13 ;;
  esac
  if "python$want" --version >/dev/null 2>&1; then echo "python$want"; return; fi
  if command -v pyenv >/dev/null; then
    v=$(pyenv versions --bare | grep "^${want//./\\.}" | tail -1)
    [ -n "$v" ] && { echo "$(pyenv root)/versions/$v/bin/python$want"; return; }
  fi
  echo "setup_blenders: no CPython $want for Blender $1" >&2
  return 1
}
for v in $VERSIONS; do
  dir=.venv-blender/$v
  if [ ! -x "$dir/bin/python" ]; then
    "$(python_for "$v")" -m venv "$dir"
  fi
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "bpy==$v"
done
