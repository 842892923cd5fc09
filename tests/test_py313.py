"""CPython 3.13 (Blender 5.1-5.3): the requirements resolve, and the detection stage runs.

The 3.13 environment (``.venv313``, made by ``scripts/setup_py313.sh``; ``.ci/run`` does it)
holds only what detection needs: mediapipe, numpy and pillow from requirements.txt."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from .conftest import PERSON, ROOT

PY313 = ROOT / ".venv313" / "bin" / "python"
OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable",
           "Could not fetch URL")  # fmt: skip

pytestmark = pytest.mark.skipif(not PY313.exists(), reason="no .venv313: run scripts/setup_py313.sh")


def test_detection_runs_under_python_313():
    code = (
        "import sys, json; from inference.detect import PoseDetector, find_people; "
        "from inference.io.images import load_image; d = PoseDetector('heavy'); "
        f"p = find_people(d, load_image({str(PERSON)!r})); d.close(); "
        "print(json.dumps({'python': list(sys.version_info[:2]), 'people': len(p), 'height': p[0].height, "
        "'visible': int((p[0].keypoints2d[:, 2] > 0.5).sum()), 'numpy': __import__('numpy').__version__}))"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([str(PY313), "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["python"] == [3, 13] and out["numpy"].startswith("2.")
    assert out["people"] == 1 and out["height"] > 300 and out["visible"] >= 15


def test_requirements_resolve_for_python_313(tmp_path):
    """pip resolves the whole inference environment for 3.13 (torch, mediapipe, anny, smplx,
    numpy 2) without installing it."""
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [str(PY313), "-m", "pip", "install", "--dry-run", "--quiet", "--disable-pip-version-check",
         "--ignore-installed", "--report", str(report), "-r", str(ROOT / "requirements.txt")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if proc.returncode != 0 and any(s in proc.stderr for s in OFFLINE):
        pytest.skip("PyPI is not reachable from here")
    assert proc.returncode == 0, proc.stderr[-2000:]
    installs = json.loads(report.read_text())["install"]
    versions = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in installs}
    assert versions["mediapipe"] == "1.2.3" and versions["torch"] == "2.14.1" and versions["numpy"].startswith("2.")
    assert {"anny", "smplx", "torchvision", "pillow", "safetensors"} <= set(versions)
