"""Quality measures of a fit: silhouette IoU and keypoint reprojection error."""

from __future__ import annotations

import cv2
import numpy as np

from .camera import project_np


def render_silhouette(
    vertices_cam: np.ndarray, faces: np.ndarray, K: np.ndarray, width: int, height: int
) -> np.ndarray:
    """Binary (H, W) mask of the mesh seen through the camera (filled triangles)."""
    uv = project_np(vertices_cam, K)
    ahead = vertices_cam[:, 2] > 1e-3
    tri = faces[ahead[faces].all(1)]
    # A closed mesh's front faces alone cover its whole silhouette (so do its back faces): half
    # the triangles to draw. Front: the outward normal (counter-clockwise winding) points back
    # towards the camera at the origin.
    v = vertices_cam[tri]
    normal = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    tri = tri[np.einsum("ij,ij->i", normal, v[:, 0]) < 0]
    # cv2 draws with fixed-point sub-pixel precision (shift=4 -> 1/16 px).
    pts = np.round(uv[tri] * 16).astype(np.int32)
    out = np.zeros((height, width), np.uint8)
    # One call per triangle: fillPoly on many overlapping polygons fills even-odd (holes).
    for t in pts:
        cv2.fillConvexPoly(out, t, 1, lineType=cv2.LINE_8, shift=4)
    return out.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def keypoint_error(
    pred_uv: np.ndarray, detected: np.ndarray, box_height: float, min_conf: float = 0.5
) -> tuple[float, float]:
    """Mean and max pixel distance of visible keypoints, as % of the box height."""
    vis = detected[:, 2] > min_conf
    if not vis.any():
        return float("nan"), float("nan")
    d = np.linalg.norm(pred_uv[vis] - detected[vis, :2], axis=1) / box_height * 100.0
    return float(d.mean()), float(d.max())
