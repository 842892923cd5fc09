"""Clips: frame order, tracking one person, filling gaps, smoothing, the CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from inference.errors import ReconError
from inference.io.frames import natural_key, open_frames
from inference.sequence import SequenceReconstructor
from inference.smoothing import gaussian_smooth, smooth_quaternions

from .conftest import PERSON, ROOT, run_cli

CLIP = ROOT / "tests" / "data" / "demo.mp4"  # sports2d demo (BSD-3-Clause), fetched by scripts/fetch_test_data.sh


@pytest.fixture(scope="module")
def clip():
    if not CLIP.exists():
        pytest.skip("run scripts/fetch_test_data.sh for the test clip")
    return CLIP


@pytest.fixture(scope="module")
def clip_result(reconstructor, clip):
    return SequenceReconstructor(reconstructor).run(open_frames(clip, end=40))


def test_natural_order_and_non_images(tmp_path):
    for name in ["frame10.png", "frame2.png", "frame1.png", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    src = open_frames(tmp_path)
    assert [f.name for f in src.files] == ["frame1.png", "frame2.png", "frame10.png"]
    assert src.skipped_files == ["notes.txt"]
    assert natural_key("f2") < natural_key("f10")
    with pytest.raises(ReconError) as exc:
        open_frames(tmp_path / "frame1.png")
    assert exc.value.code == "not_a_video"


def test_forty_frames_one_armature_track_holds(clip_result):
    r = clip_result
    assert r.bone_rotations.shape[:2] == (40, len(r.bone_names))
    assert r.root_translation.shape == (40, 3) and r.global_rotation.shape == (40, 3, 3)
    assert r.fps == pytest.approx(30.0)
    # The man on the box (left, the larger person at the start) is tracked; at most a frame or
    # two of his jump is filled in. The woman walks on the right half of the frame.
    seen = r.frame_detected
    assert seen.sum() >= 38 and r.frames_filled == 40 - seen.sum()
    nose_x = r.frame_keypoints2d[seen, 0, 0]
    assert (nose_x < 900).all() and (nose_x > 400).all()
    assert np.abs(np.diff(nose_x)).max() < 60


def test_smoothing_reduces_jitter_without_lag(clip_result):
    from benchmarks.clip import motion_metrics

    m = motion_metrics(clip_result)
    assert m["jitter_mm_per_frame2"] < 0.5 * m["jitter_mediapipe_mm_per_frame2"]
    assert abs(m["smoothing_lag_frames"]) <= 1


def test_quaternion_smoothing_keeps_sign_flips_out():
    rng = np.random.default_rng(0)
    q = np.tile([0.0, 0.0, np.sin(0.3), np.cos(0.3)], (20, 1)) + rng.normal(0, 0.01, (20, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[::3] *= -1  # the same rotations, sign-flipped
    s = smooth_quaternions(q, 1.5)
    assert np.allclose(np.abs((s * q).sum(1)), 1.0, atol=2e-3)
    x = np.sin(np.linspace(0, 3, 50))[:, None]
    assert np.abs(gaussian_smooth(x, 1.0) - x).max() < 0.01  # slow motion passes unchanged


def test_gaps_and_broken_frames_are_filled_and_reported(reconstructor, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    photo = Image.open(PERSON).convert("RGB")
    for i in range(6):
        photo.save(frames / f"frame{i}.jpg")
    Image.new("RGB", photo.size, (120, 120, 120)).save(frames / "frame3.jpg")  # nobody in frame 3
    (frames / "frame4.jpg").write_bytes((frames / "frame1.jpg").read_bytes()[:3000])  # broken file
    (frames / "readme.txt").write_text("not a frame")
    r = SequenceReconstructor(reconstructor).run(open_frames(frames))
    assert r.bone_rotations.shape[0] == 6
    assert list(r.frame_detected) == [True, True, True, False, False, True]
    assert r.frames_filled == 2 and len(r.notes) == 2 and "frame 3" in r.notes[0]
    # Filled frames lie between their neighbours.
    assert np.allclose(r.root_translation[3], r.root_translation[2], atol=0.05)


def test_sequence_cli_json_and_errors(tmp_path, clip, cache_dir):
    out = tmp_path / "clip.npz"
    proc = run_cli("sequence", str(clip), "--start", "10", "--end", "22", "--step", "2", "-o", str(out),
                   "--json-progress", cache_dir=cache_dir)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    frames = [e for e in events if e["event"] == "progress" and e["stage"] == "frames"]
    assert [e["frame"] for e in frames] == [1, 2, 3, 4, 5, 6]
    res = [e for e in events if e["event"] == "result"][0]
    assert res["frames"] == 6 and res["fps"] == pytest.approx(15.0)
    from inference.io.result import ReconResult

    r = ReconResult.load(out)
    assert list(r.frame_indices) == [10, 12, 14, 16, 18, 20]
    # A file that is not a video gets one clear line, and no output.
    bad = tmp_path / "clip.txt"
    shutil.copy(PERSON, bad)
    proc = run_cli("sequence", str(bad), "-o", str(tmp_path / "x.npz"), cache_dir=cache_dir)
    assert proc.returncode != 0 and proc.stderr.strip().startswith("error: ")
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.npz").exists()


def test_foot_lock_holds_a_planted_foot():
    from inference.sequence import SequenceOptions
    from inference.smoothing import foot_lock_offsets

    rng = np.random.default_rng(0)
    n = 30
    # The left foot is planted (its image position is still) but the fitted 3D foot wanders,
    # as monocular depth does; the right foot swings.
    true_left = np.array([0.1, 0.9, 5.0])
    feet = np.zeros((n, 4, 3))
    wobble = rng.normal(0, 0.03, (n, 3))
    feet[:, [0, 2]] = (true_left + wobble)[:, None]
    feet[:, [1, 3]] = (np.array([-0.1, 0.8, 5.0]) + np.linspace(0, 0.5, n)[:, None] * [1, 0, 0] + wobble)[:, None]
    ankles2d = np.zeros((n, 2, 3))
    ankles2d[:, 0] = [300, 500, 0.9]
    ankles2d[:, 1, 0] = np.linspace(200, 300, n)
    ankles2d[:, 1, 1], ankles2d[:, 1, 2] = 480, 0.9
    o = SequenceOptions()
    off = foot_lock_offsets(feet, ankles2d, 400.0, o.contact_speed, o.release)
    left = feet[:, 0] + off
    before = np.linalg.norm(np.diff(feet[:, 0], axis=0), axis=1).mean()
    after = np.linalg.norm(np.diff(left, axis=0), axis=1).mean()
    assert after < 0.35 * before
