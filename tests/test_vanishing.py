"""The focal length read from a picture's straight lines (``inference/vanishing.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from inference.io.frames import open_frames
from inference.lens import FocalLength
from inference.sequence import SequenceReconstructor
from inference.vanishing import SOURCE, find_lines, focal_from_lines, perpendicular_focal, vanishing_points

from .conftest import PERSON, ROOT, opencv_photo

# Pose2Sim's lab seen by its camera 4 (scripts/fetch_test_data.sh), and that camera's calibrated
# focal length in the halved frame (the wheel's Calib.qca.txt, as ../shared/realbench gives it).
LAB = ROOT / "tests" / "data" / "pose2sim_cam04_f000.jpg"
LAB_FOCAL_PX = 837.6


def _lab() -> np.ndarray:
    if not LAB.exists():
        pytest.skip(f"{LAB} missing: run scripts/fetch_test_data.sh")
    return np.asarray(Image.open(LAB).convert("RGB"))


def _box_lines(f: float, size: tuple[int, int], turn: np.ndarray, directions: np.ndarray, seed: int = 0) -> np.ndarray:
    """Segments a camera of focal length ``f`` sees of 3D edges along ``directions`` (3, 3), 25
    each, scattered 4-8 m in front of it and turned by ``turn``, with 0.3 px of noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    out = []
    for d in directions @ turn.T:
        for _ in range(25):
            start = rng.uniform([-3, -3, 4], [3, 3, 8])
            ends = np.stack([start, start + d * rng.uniform(0.5, 1.5)])
            uv = ends[:, :2] / ends[:, 2:] * f + [w / 2, h / 2]
            out.append(uv.ravel() + rng.normal(0, 0.3, 4))
    return np.array(out)


def _turn(yaw: float, tilt: float) -> np.ndarray:
    cy, sy, ct, st = math.cos(yaw), math.sin(yaw), math.cos(tilt), math.sin(tilt)
    return np.array([[1, 0, 0], [0, ct, -st], [0, st, ct]]) @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])


def test_three_perpendicular_directions_give_the_focal_length_and_others_none():
    size, turn = (800, 600), _turn(math.radians(35), math.radians(-15))
    for f in (500.0, 900.0, 1600.0):
        seg = _box_lines(f, size, turn, np.eye(3))
        found = perpendicular_focal(vanishing_points(seg, *size), math.hypot(*size))
        assert found == pytest.approx(f, rel=0.02)
    # Three directions 60 degrees apart meet at vanishing points no focal length makes perpendicular.
    slanted = np.array([[1, 0, 0], [0.5, math.sqrt(3) / 2, 0], [0.5, 0.29, 0.82]])
    seg = _box_lines(900.0, size, turn, slanted / np.linalg.norm(slanted, axis=1, keepdims=True))
    assert perpendicular_focal(vanishing_points(seg, *size), math.hypot(*size)) is None


def test_a_lab_photo_gives_its_calibrated_focal_length():
    rgb = _lab()
    lens = focal_from_lines(find_lines(rgb))
    assert lens is not None and lens.source == SOURCE
    assert lens.px(544, 960) == pytest.approx(LAB_FOCAL_PX, rel=0.03)
    # The same photo twice as large: the same lens.
    big = np.asarray(Image.fromarray(rgb).resize((1088, 1920), Image.Resampling.BICUBIC))
    assert focal_from_lines(find_lines(big)).equivalent_mm == pytest.approx(lens.equivalent_mm, rel=0.03)


@pytest.mark.parametrize("photo", ["messi5.jpg", "basketball1.png", "fruits.jpg", "baboon.jpg", "left06.jpg", None])
def test_pictures_without_a_frame_of_lines_give_none(photo):
    """A pitch, a gym seen across, fruit, a face, a chessboard before a desk (its squares and a
    shirt's stripes are lines, but not three perpendicular sets), the bundled photo's park."""
    path = PERSON if photo is None else opencv_photo(photo)
    assert focal_from_lines(find_lines(np.asarray(Image.open(path).convert("RGB")))) is None


def test_photos_and_clips_take_it_where_nothing_records_the_lens(reconstructor, tmp_path):
    _lab()
    r = reconstructor.reconstruct(LAB)
    assert len(r.people) == 2
    assert r.camera_K[0, 0] == pytest.approx(LAB_FOCAL_PX, rel=0.03)
    assert r.notes[0].startswith(f"focal length {SOURCE}: 3"), r.notes  # about 33 mm
    # A lens the user gives comes first.
    given = reconstructor.reconstruct(LAB, focal_mm=50)
    assert given.camera_K[0, 0] == pytest.approx(FocalLength(50).px(544, 960), rel=1e-6)
    # A clip's camera: its first frame's lines (a folder of frames that record no lens).
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        (frames / f"f{i}.jpg").write_bytes(LAB.read_bytes())
    clip = SequenceReconstructor(reconstructor).run(open_frames(frames))
    assert clip.camera_K[0, 0] == pytest.approx(LAB_FOCAL_PX, rel=0.03)
    assert clip.notes[0].startswith(f"focal length {SOURCE}"), clip.notes
