"""What detection hands on: one person in one image, and the two ways its labels are read."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .. import keypoints as kpl


@dataclass
class Detection:
    """One person in one image (pixel coordinates of the full image)."""

    box: np.ndarray  # (4,) x0, y0, x1, y1
    keypoints2d: np.ndarray  # (21, 3) x, y, confidence in the keypoint layout (inference.keypoints)
    landmarks3d: np.ndarray  # (21, 3) the detector's world landmarks (m, hip-centred, x right, y down, z away)
    mask: np.ndarray  # (H, W) float32 in [0, 1]
    score: float  # mean confidence of the keypoints

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


SHOWN_CONF = 0.2  # a joint counts as shown from this confidence (who is reconstructed, ``pipeline.why_skipped``)


def joints_shown(det: Detection) -> np.ndarray:
    """(13,) bool: which of the person's ``kpl.BODY`` joints are shown (SHOWN_CONF or surer)."""
    return det.keypoints2d[kpl.BODY, 2] >= SHOWN_CONF


def body_shown(seen: np.ndarray, joints: int) -> bool:
    """Whether the body joints marked ``seen`` (a bool per ``kpl.BODY`` joint) number at least
    ``joints``, a shoulder and a hip among them."""
    k = np.asarray(kpl.BODY)[seen]
    return bool(seen.sum() >= joints and np.isin(kpl.SHOULDERS, k).any() and np.isin(kpl.HIPS, k).any())


def prominence(det: Detection) -> float:
    """How large and clearly visible a person is: box height times mean keypoint confidence
    (a person cut off by the frame edge has low-confidence keypoints and counts less)."""
    return det.height * float(det.keypoints2d[:, 2].mean())


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])  # noqa: E731
    union = area(a) + area(b) - inter
    return float(inter / union) if union > 0 else 0.0


def grown_box(box: np.ndarray, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` grown on each side by ``margin`` times its longer side, within the image."""
    x0, y0, x1, y1 = box
    grow = max(x1 - x0, y1 - y0) * margin
    return (int(max(0, x0 - grow)), int(max(0, y0 - grow)), int(min(width, x1 + grow)), int(min(height, y1 + grow)))


def mirrored(det: Detection) -> Detection:
    """The same detection with left and right labels swapped (2D and 3D alike)."""
    return Detection(
        box=det.box,
        keypoints2d=det.keypoints2d[kpl.MIRROR].copy(),
        landmarks3d=det.landmarks3d[kpl.MIRROR].copy(),
        mask=det.mask,
        score=det.score,
    )


def to_body_convention(det: Detection, offsets: np.ndarray | None) -> Detection:
    """``det`` with each keypoint moved from where the detector puts it to where the body model's
    keypoint lies. ``offsets`` (K, 2): the detector's mean offset as fractions of the detection's
    own torso and width vectors (``keypoints.body_axes_2d``), so the shift turns and shrinks with
    the person; left-right symmetric, so it commutes with ``mirrored``. None: unchanged."""
    if offsets is None:
        return det
    up, width = kpl.body_axes_2d(det.keypoints2d)
    k = det.keypoints2d.copy()
    k[:, :2] -= offsets[:, :1] * up + offsets[:, 1:] * width
    return replace(det, keypoints2d=k)
