"""Shared fixtures: real photos and one warm reconstructor for the session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian opencv-doc (installed by .ci/run)
PERSON = ROOT / "examples" / "person.jpg"  # crop of a frame of sports2d's demo video (BSD-3-Clause)


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


def run_cli(*args: str, cache_dir: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m inference`` in a fresh process, as the add-on does."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if cache_dir:
        env["HUMAN_RECON_CACHE_DIR"] = cache_dir
    return subprocess.run(
        [sys.executable, "-m", "inference", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
