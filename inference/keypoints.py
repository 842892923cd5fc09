"""The keypoint layout every stage shares: names, indices and the left/right mirror map.

Detections, body models, the start, the fit and the result all use one order:
COCO-17, then the big toes and the heels (21 keypoints). The result file keeps
the first 17 (COCO). This module is the only place that spells out indices.
"""

from __future__ import annotations

import numpy as np

COCO17 = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
FEET = ["left_big_toe", "right_big_toe", "left_heel", "right_heel"]
NAMES = COCO17 + FEET
NUM = len(NAMES)  # 21
NUM_COCO = len(COCO17)  # 17: what the result file keeps per frame

FACE = list(range(5))  # nose, eyes, ears
BODY = [0] + list(range(5, NUM_COCO))  # nose, shoulders, elbows, wrists, hips, knees, ankles (13)
FOOT = list(range(NUM_COCO, NUM))  # big toes, heels
NOSE = 0
L_SHOULDER, R_SHOULDER = 5, 6
L_WRIST, R_WRIST = 9, 10
L_HIP, R_HIP = 11, 12
L_ANKLE, R_ANKLE = 15, 16
SHOULDERS = [L_SHOULDER, R_SHOULDER]
HIPS = [L_HIP, R_HIP]
ANKLES = [L_ANKLE, R_ANKLE]
TORSO = [L_SHOULDER, R_SHOULDER, L_HIP, R_HIP]

# The body's limbs as keypoint pairs (arms, legs, shoulders, hips, torso sides, head to shoulders):
# a skeleton drawn in the picture.
LIMBS = [(5, 7), (7, 9), (6, 8), (8, 10), (5, 6), (11, 12), (5, 11), (6, 12), (11, 13), (13, 15), (12, 14),
         (14, 16), (0, 5), (0, 6)]  # fmt: skip

# Left/right twins, (left, right), in order: a detector may swap a pair, or the whole body.
PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20)]


def _mirror_map() -> list[int]:
    m = list(range(NUM))
    for a, b in PAIRS:
        m[a], m[b] = b, a
    return m


# Index map that relabels left as right and right as left (a mirrored labelling of the body).
MIRROR = _mirror_map()


def pelvis(kp):
    """Mid-hip of (..., 21, D) keypoints (numpy or torch), keeping the keypoint axis."""
    return (
        kp[..., HIPS, :].mean(-2, keepdims=True)
        if isinstance(kp, np.ndarray)
        else kp[..., HIPS, :].mean(-2, keepdim=True)
    )


def body_axes(keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The torso vector (hip centre to shoulder centre) and the left-to-right width vector (the
    mean of the shoulders' and the hips') of (K, D) keypoints, in their own units."""
    k = keypoints
    width = (k[R_SHOULDER] - k[L_SHOULDER] + k[R_HIP] - k[L_HIP]) / 2
    return k[SHOULDERS].mean(0) - k[HIPS].mean(0), width


def body_axes_2d(keypoints2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``body_axes`` of (K, 2+) image keypoints (their confidence column left out), pixels."""
    return body_axes(keypoints2d[:, :2])


def in_detector_convention(keypoints3d: np.ndarray, offsets: np.ndarray | None) -> np.ndarray:
    """A body model's (K, 3) keypoints moved to where the pose detector puts those keypoints on a
    person: ``detect.to_body_convention``'s shift undone, in 3D. ``offsets`` (K, 2) are fractions
    of the torso and width vectors, measured in the image on rendered bodies; the same fractions
    of the body's 3D vectors project to them. Their depth part is not known and stays 0. None:
    unchanged. For scoring against ground truth made from the detector's keypoints (the real
    multi-view kit's are MediaPipe's, triangulated), as a benchmark on Human3.6M scores a body
    model through that dataset's own joint regressor."""
    k = np.asarray(keypoints3d, np.float64)
    if offsets is None:
        return k
    up, width = body_axes(k)
    return k + offsets[:, :1] * up + offsets[:, 1:] * width
