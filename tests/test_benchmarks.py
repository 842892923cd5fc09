"""The benchmarks' one entry point: bad input gets one line before any work starts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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


def test_real_benchmark_scores_photos_with_the_kits_scorer(reconstructor):
    """Two photos of the kit through the photo pipeline, scored by the kit's own eval.py: both
    people in each are found and placed within what a monocular fit does; the other 78 photos
    count as missed, not as zero error."""
    from benchmarks.real import DEFAULT_KIT, compared, paired_difference, run_real_benchmark

    if not (DEFAULT_KIT / "eval.py").is_file():
        pytest.skip(f"{DEFAULT_KIT} (the multi-view kit) is not on this machine")
    report = run_real_benchmark(photos="cam0[24]_f000.jpg", reconstructor=reconstructor)
    assert report["photo_run"]["photos"] == 2 and not report["photo_run"]["failed"]
    overall = report["photos"]["overall"]
    assert overall["gt_people"] == 156 and overall["found"] == 4 and overall["missed"] == 152
    assert overall["false_positives"] == 0
    assert 20.0 < overall["pa_mpjpe_mm"]["mean"] < 120.0 and overall["mpjpe_mm"]["n"] == 4
    found = [p for p in report["photo_people"] if p["found"]]
    assert sorted((p["image"], p["person"]) for p in found) == [
        ("cam02_f000", "man"), ("cam02_f000", "woman"), ("cam04_f000", "man"), ("cam04_f000", "woman")]
    same = paired_difference(found, found)
    assert same["pa_mpjpe_mm"]["mean"] == 0.0 and same["pa_mpjpe_mm"]["n"] == 4
    # The body model's own keypoints, scored beside the kit's convention: the same people, other joints.
    own = report["photos_body_keypoints"]
    assert own["found"] == 4 and 20.0 < own["pa_mpjpe_mm"]["mean"] < 120.0
    assert own["mpjpe_mm"]["mean"] != overall["mpjpe_mm"]["mean"]
    again = compared(report, report, "photo")
    assert again["body_keypoints"]["pa_mpjpe_mm"]["mean"] == 0.0 and again["mpjpe_mm"]["n"] == 4
    # Flip in depth's reach: flips are kept only where they help, so never worse than the fit.
    reach = report["photo_flip_reach"]
    assert reach["pa_mpjpe_mm"]["n"] == 4 and reach["pa_mpjpe_mm"]["mean"] <= overall["pa_mpjpe_mm"]["mean"] + 0.05
    assert 0 <= reach["people_helped"] <= 4 and reach["flips"] <= 16


def test_real_benchmark_refuses_a_folder_that_is_not_the_kit(tmp_path):
    proc = run_benchmarks("real", "--kit", str(tmp_path))
    assert proc.returncode == EXIT_INPUT
    stderr = proc.stderr.strip().splitlines()
    assert len(stderr) == 1 and "not the multi-view kit" in stderr[0], proc.stderr


def test_hands_benchmark_renders_detects_and_fits_hands(cache_dir):
    """``benchmarks hands`` on two rendered and four synthetic hands: the report's numbers are
    there and sane (the rendering runs in its own process: it resets Blender's settings)."""
    import json

    pytest.importorskip("bpy")
    proc = run_benchmarks("hands", "--no-real", "--rendered", "2", "--synthetic", "4", "--json", cache_dir=cache_dir,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    rendered, synthetic = report["rendered"], report["synthetic"]
    assert rendered["hands"] == 2 and 0 <= rendered["found"] <= 2 and report["real"] is None
    if rendered["found"]:
        assert 0 <= rendered["flexion_error_deg"]["median"] < 60
        assert rendered["finger_bone_angle_error_deg"]["n"] == 15 * rendered["found"]
    assert synthetic["finger_bone_angle_error_deg"]["n"] == 4 * 15
    assert synthetic["finger_bone_angle_error_deg"]["median"] < 20


def test_the_kits_photos_saved_with_their_lens_keep_their_pixels(tmp_path):
    """``benchmarks real --exif-focal``: a copy of a real JPEG whose EXIF records the camera's
    focal length as a 35 mm equivalent, which the pipeline reads back; not a pixel re-encoded."""
    import numpy as np
    from PIL import Image

    from benchmarks.real import with_exif_focal
    from inference.io.images import exif_focal

    from .conftest import PERSON

    w, h = Image.open(PERSON).size
    f = 0.8 * np.hypot(w, h)  # a 35 mm lens
    camera = {"K": [[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], "image_size": [w, h]}
    copy = with_exif_focal(PERSON, camera, tmp_path)
    assert np.array_equal(np.asarray(Image.open(copy)), np.asarray(Image.open(PERSON)))
    lens = exif_focal(copy, w, h)
    assert lens is not None and lens.equivalent_mm == 35
