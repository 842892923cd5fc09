"""Person detection on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from inference.errors import ReconError
from inference.io.images import load_image

from .conftest import PERSON, opencv_photo


def test_person_found_with_box_keypoints_and_mask(reconstructor):
    rgb = load_image(PERSON)
    det = reconstructor.detector.detect(rgb)
    x0, y0, x1, y1 = det.box
    # The jumping man fills most of the crop's height.
    assert det.height > 0.6 * rgb.shape[0]
    assert det.keypoints2d.shape == (21, 3) and det.landmarks3d.shape == (21, 3)
    vis = det.keypoints2d[:, 2] > 0.5
    assert vis.sum() >= 15
    inside = (det.keypoints2d[vis, 0] >= x0 - 2) & (det.keypoints2d[vis, 0] <= x1 + 2)
    assert inside.all()
    mask = det.mask > 0.5
    assert mask.shape == rgb.shape[:2] and 0.05 < mask.mean() < 0.5
    # Arms are raised: both wrists above the nose.
    assert det.keypoints2d[9, 1] < det.keypoints2d[0, 1] and det.keypoints2d[10, 1] < det.keypoints2d[0, 1]


def test_small_person_found_through_crops(reconstructor):
    # Shrink the person to a small part of a big canvas: the whole-image pass misses, crops find it.
    import cv2

    rgb = load_image(PERSON)
    canvas = np.full((1400, 1800, 3), 110, np.uint8)
    small = cv2.resize(rgb, (230, 270))  # a fifth of the frame's height
    canvas[900:1170, 1500:1730] = small
    assert reconstructor.detector.detect_whole(canvas) is None  # the whole-image pass misses it
    det = reconstructor.detector.detect(canvas)
    cx = (det.box[0] + det.box[2]) / 2
    assert 1500 < cx < 1730 and det.box[1] > 880


def test_no_person_is_reported():
    from inference.detect import PoseDetector

    det = PoseDetector()
    with pytest.raises(ReconError) as exc:
        det.detect(load_image(opencv_photo("fruits.jpg")))
    assert exc.value.code == "no_person"


def test_keypoints_move_to_annys_convention_symmetrically(reconstructor):
    """MediaPipe's keypoints, moved to where Anny's lie: its hips sit higher and narrower than
    Anny's, so they move down the torso and apart; the shift is the same for the mirrored labels."""
    from inference.detect import mirrored, to_body_convention
    from inference.keypoints import body_axes_2d

    det = reconstructor.detector.detect(load_image(PERSON))
    offsets = reconstructor.body.detector_offsets
    moved = to_body_convention(det, offsets)
    up, width = body_axes_2d(det.keypoints2d)
    shift = moved.keypoints2d[:, :2] - det.keypoints2d[:, :2]
    hips = shift[[11, 12]].mean(0)
    assert -0.05 < hips @ up / (up @ up) < -0.02  # down the torso by 2-5% of it
    assert (shift[12] - shift[11]) @ width / (width @ width) > 0.05  # the hips apart
    assert np.abs(shift).max() < 0.2 * np.linalg.norm(up)  # a correction, not a new pose
    np.testing.assert_allclose(
        to_body_convention(mirrored(det), offsets).keypoints2d, mirrored(moved).keypoints2d, atol=1e-4
    )
    assert to_body_convention(det, None) is det
    np.testing.assert_array_equal(moved.keypoints2d[:, 2], det.keypoints2d[:, 2])
