"""Shared fixtures: real photos and one warm reconstructor for the session."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# bpy reads its user folder once, at its first import: a private one for the test run.
if "BLENDER_USER_RESOURCES" not in os.environ:
    _user = tempfile.mkdtemp(prefix="hr_blender_user_")
    os.environ["BLENDER_USER_RESOURCES"] = _user
    atexit.register(shutil.rmtree, _user, ignore_errors=True)  # registered before bpy's own: runs after it

ROOT = Path(__file__).resolve().parent.parent
ADDON = "bl_ext.user_default.human_recon"
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian opencv-doc (installed by .ci/run)
PERSON = ROOT / "examples" / "person.jpg"  # crop of a frame of sports2d's demo video (BSD-3-Clause)


def moving_person(frames: int) -> list:
    """A clip's frames (PIL RGB images) of the bundled photo, its person 4 px further right each."""
    from PIL import Image

    photo = Image.open(PERSON).convert("RGB")
    return [photo.transform(photo.size, Image.Transform.AFFINE, (1, 0, -4 * i, 0, 1, 0)) for i in range(frames)]


def opencv_photo(name: str) -> Path:
    p = OPENCV_DATA / name
    if not p.exists():
        pytest.skip(f"{p} missing: install Debian's opencv-doc (the CI script does)")
    return p


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    # Reuse the user's cache when set (CI sets it), so Anny is built once per machine.
    return os.environ.get("HUMAN_RECON_CACHE_DIR") or str(Path.home() / ".cache" / "human_recon")


@pytest.fixture(scope="session")
def reconstructor(cache_dir):
    from inference.pipeline import Reconstructor

    rec = Reconstructor(cache_dir=cache_dir)
    yield rec
    rec.close()


@pytest.fixture(scope="session")
def body(reconstructor):
    return reconstructor.body


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory):
    import build_addon

    return build_addon.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def installed(addon_zip, cache_dir):
    """The extension zip installed and enabled in this process's Blender (bpy), as a user would."""
    bpy = pytest.importorskip("bpy")
    os.environ["HUMAN_RECON_PYTHON"] = sys.executable
    os.environ["HUMAN_RECON_CACHE_DIR"] = cache_dir
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.extensions.package_install_files(filepath=str(addon_zip), repo="user_default", enable_on_install=True)
    import addon_utils

    assert addon_utils.check(ADDON)[1], "extension not enabled"
    return sys.modules[ADDON]


@pytest.fixture(scope="session")
def two_people_photo(tmp_path_factory):
    """Frame 100 of the sports2d clip as a photo: a man on a box (against the light) and a woman
    walking in front of it, on the right."""
    clip = ROOT / "tests" / "data" / "demo.mp4"
    if not clip.exists():
        pytest.skip("run scripts/fetch_test_data.sh for the test clip")
    from PIL import Image

    from inference.io.frames import open_frames

    ((_, rgb, _),) = list(open_frames(clip, start=100, end=101))
    path = tmp_path_factory.mktemp("two") / "two people.jpg"
    Image.fromarray(rgb).save(path, quality=92)
    return path


@pytest.fixture(scope="session")
def walk_result(tmp_path_factory, cache_dir):
    """The sports2d man walking (90 frames at 30 fps), reconstructed by the real CLI."""
    clip = ROOT / "tests" / "data" / "demo.mp4"
    if not clip.exists():
        pytest.skip("run scripts/fetch_test_data.sh for the test clip")
    out = tmp_path_factory.mktemp("walk") / "walk.npz"
    proc = run_cli("sequence", str(clip), "--end", "90", "--people", "largest", "-o", str(out), cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    return out


def run_cli(*args: str, cache_dir: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m inference`` in a fresh process, as the add-on does."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if cache_dir:
        env["HUMAN_RECON_CACHE_DIR"] = cache_dir
    return subprocess.run(
        [sys.executable, "-m", "inference", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def assert_one_error_report(call, message: str) -> None:
    """``call`` (an operator) fails with one error report holding ``message``: a script calling
    an operator gets its ERROR report as a RuntimeError (the UI shows it), never a traceback."""
    with pytest.raises(RuntimeError) as exc:
        call()
    text = str(exc.value)
    assert text.startswith("Error: ") and message in text, text
    assert len(text.strip().splitlines()) == 1 and "Traceback" not in text
