"""The extension in every Blender version it claims besides .venv's (test_addon.py covers 5.0.1
in depth): 4.2 LTS, 4.5 LTS and 5.3 (CPython 3.13), each in its own environment made by
``scripts/setup_blenders.sh`` (``.ci/run`` does it). In each: the zip validates with that
Blender's own tool and installs, a photo becomes a rig, a two-person clip result becomes two
armatures with an action each (the newcomer hidden until she comes), "Set up environment"
makes the environment from Blender's own Python with no other Python on PATH, and a
cancelled set-up leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import PERSON, ROOT, run_cli

ENVS = ROOT / ".venv-blender"
VERSIONS = sorted((p.name for p in ENVS.glob("*") if (p / "bin" / "python").exists()),
                  key=lambda v: tuple(int(x) for x in v.split(".")))  # fmt: skip
CLIP = ROOT / "tests" / "data" / "demo.mp4"
CLIP_START, CLIP_FRAMES = 30, 45  # the man throughout; the woman walks in at about frame 58


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, cache_dir):
    import build_addon

    if not CLIP.exists():
        pytest.skip("run scripts/fetch_test_data.sh for the test clip")
    folder = tmp_path_factory.mktemp("versions")
    clip_result = folder / "clip.npz"
    proc = run_cli("sequence", str(CLIP), "--start", str(CLIP_START), "--end", str(CLIP_START + CLIP_FRAMES),
                   "-o", str(clip_result), cache_dir=cache_dir)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return build_addon.build(folder / "dist"), clip_result


@pytest.mark.skipif(not VERSIONS, reason="no .venv-blender/<version>: run scripts/setup_blenders.sh")
@pytest.mark.parametrize("version", VERSIONS or ["none"])
def test_extension_in_blender(version, inputs, tmp_path, cache_dir):
    zip_path, clip_result = inputs
    python = ENVS / version / "bin" / "python"
    env = dict(os.environ, HUMAN_RECON_PYTHON=sys.executable, HUMAN_RECON_CACHE_DIR=cache_dir,
               BLENDER_USER_RESOURCES=str(tmp_path / "blender"))  # fmt: skip
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [str(python), str(ROOT / "tests" / "blender_check.py"), str(zip_path), str(PERSON), str(clip_result),
         str(tmp_path)], capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-2000:]
    found = json.loads(lines[-1])
    assert "crashed" not in found, found.get("traceback")
    assert ".".join(map(str, found["blender"])).startswith(".".join(version.split(".")[:2]))
    assert found["blender_ext_validate"] and found["enabled"]
    photo = found["photo"]
    assert photo["result"] == ["FINISHED"] and photo["armatures"] == photo["meshes"] == photo["cameras"] == 1
    assert photo["bones"] == 104 and photo["skinned"]
    clip = found["clip"]
    assert clip["result"] == ["FINISHED"] and clip["armatures"] == ["Person 1", "Person 2"]
    assert min(clip["curves"]) > 400 and clip["keys_per_curve"] == [CLIP_FRAMES]
    # The woman (Person 2) is hidden until she walks in; the man never is.
    assert clip["hidden_first_last"] == [[False, True], [False, False]]
    # Transfer motion reads this version's actions and bakes one; its exporters write the result.
    transfer = found["transfer"]
    assert transfer["result"] == ["FINISHED"] and transfer["frames"] == CLIP_FRAMES
    assert transfer["worst_degrees"] < 1.0 and min(transfer["sizes"].values()) > 10_000, transfer
    constrained = transfer["constrained"]  # baked through the constraint, no helper left behind
    assert constrained["result"] == ["FINISHED"] and constrained["worst_degrees"] < 1.0, transfer
    assert constrained["helper_left"] == 0
    # Flip in depth: the wrist moves in depth, not in the picture, and the flip is keyed.
    flip = found["flip"]
    assert flip["result"] == ["FINISHED"] and flip["moved_m"] > 1e-3, flip
    assert flip["picture_moved"] < 1e-5 and flip["kept_m"] < 1e-5, flip
    # Set-up: Blender's own Python makes the environment; nothing else was on PATH.
    assert found["base_python"] == found["sys_executable"]
    assert found["setup"] == {"error": None, "python": found["setup"]["python"], "exists": True, "outdated": False}
    cancel = found["cancel"]
    assert cancel["made_before"] and cancel["error"] == "cancelled" and not cancel["left"], cancel
