"""Placing a body in the camera and posing its keypoints: what both starts share."""

from __future__ import annotations

import numpy as np
import roma
import torch

from .. import keypoints as kpl
from ..bodymodels.base import BodyModel
from ..bodymodels.joints import JointLimits
from ..bodymodels.lbs import CollapsedSkeleton
from ..detect import Detection


def keypoint_skeleton(body: BodyModel, limits: JointLimits) -> CollapsedSkeleton:
    """The fitted bones' skinning of the vertices the keypoints read."""
    return CollapsedSkeleton(body.bone_parents, limits.index.tolist(), body.skin_matrix[body.keypoint_vertex_ids])


def posed_keypoints(body: BodyModel, skeleton: CollapsedSkeleton, rest, sub: torch.Tensor) -> torch.Tensor:
    """Model-space keypoints for axis-angle rotations ``sub`` of the fitted bones; ``rest``
    is the rest state of the keypoint vertices and fitted bones."""
    T = skeleton.transforms(rest.bone_poses, roma.rotvec_to_rotmat(sub))
    return body.keypoints(skeleton.skin(rest.vertices, T), body.keypoint_vertex_ids)


def orientation_from_landmarks(lm: np.ndarray) -> np.ndarray:
    """The body's left, back and up directions in camera space (as columns), from torso landmarks."""
    left = (lm[kpl.L_HIP] - lm[kpl.R_HIP]) + (lm[kpl.L_SHOULDER] - lm[kpl.R_SHOULDER])
    up = (lm[kpl.L_SHOULDER] + lm[kpl.R_SHOULDER] - lm[kpl.L_HIP] - lm[kpl.R_HIP]) / 2.0
    z = up / max(np.linalg.norm(up), 1e-6)
    x = left - np.dot(left, z) * z
    x = x / max(np.linalg.norm(x), 1e-6)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def solve_translation(points: np.ndarray, uv: np.ndarray, w: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Translation t so that ``points + t`` projects onto ``uv`` (weighted linear least squares)."""
    f = np.array([K[0, 0], K[1, 1]])
    c = np.array([K[0, 2], K[1, 2]])
    rows, rhs = [], []
    for p, q, wi in zip(points, uv, w):
        if wi <= 0:
            continue
        for a in range(2):
            # f (p_a + t_a) - (q_a - c_a)(p_z + t_z) = 0
            row = np.zeros(3)
            row[a] = f[a]
            row[2] = -(q[a] - c[a])
            rows.append(row * wi)
            rhs.append(((q[a] - c[a]) * p[2] - f[a] * p[a]) * wi)
    t, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    if t[2] < 0.5:  # behind or inside the camera: fall back to a plausible distance
        t[2] = max(t[2], 0.5)
    return t


def place_on_keypoints(kp: np.ndarray, det: Detection, K: np.ndarray, min_points: int = 4) -> np.ndarray | None:
    """Translation fitting the oriented, posed keypoints ``kp`` (camera axes, not yet placed)
    to the detection's confident 2D keypoints; None when fewer than ``min_points`` are confident."""
    w = np.where(det.keypoints2d[:, 2] > 0.5, det.keypoints2d[:, 2], 0.0)
    if np.count_nonzero(w) < max(min_points, 1):
        return None
    w[kpl.TORSO] *= 2.0  # the torso fixes distance best; limbs may still be off
    return solve_translation(kp, det.keypoints2d[:, :2], w, K)
