"""The benchmarks' one entry point: bad input gets one line before any work starts."""

from __future__ import annotations

import os
import subprocess
import sys

from inference.errors import EXIT_INPUT

from .conftest import ROOT


def run_benchmarks(*args: str, cache_dir: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if cache_dir:
        env["HUMAN_RECON_CACHE_DIR"] = cache_dir
    cmd = [sys.executable, "-m", "benchmarks", *args] + (["--cache-dir", cache_dir] if cache_dir else [])
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)


def test_regressor_benchmark_rejects_a_missing_clip_before_it_starts(tmp_path, cache_dir):
    proc = run_benchmarks("regressor", "--clip", str(tmp_path / "none.mp4"), cache_dir=cache_dir, timeout=60)
    assert proc.returncode == EXIT_INPUT
    stderr = proc.stderr.strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith("error: ") and "none.mp4 not found" in stderr[0], proc.stderr
    assert proc.stdout == ""


def test_regressor_benchmark_rejects_a_folder_without_renders_before_it_starts(tmp_path, cache_dir):
    proc = run_benchmarks("regressor", "--samples", "0", "--renders", str(tmp_path), cache_dir=cache_dir, timeout=60)
    assert proc.returncode == EXIT_INPUT
    stderr = proc.stderr.strip().splitlines()
    assert len(stderr) == 1 and "No rendered bodies in" in stderr[0] and "training.render_bodies" in stderr[0], (
        proc.stderr
    )
    assert proc.stdout == ""
