"""Pinhole camera in OpenCV convention (x right, y down, z forward, metres, pixels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Camera:
    K: np.ndarray  # (3, 3) intrinsics
    width: int
    height: int

    @classmethod
    def for_image(cls, width: int, height: int, focal_px: float | None = None) -> "Camera":
        """A centred camera; the focal length defaults to the image diagonal, a fair
        guess for phone photos (about a 53 degree diagonal field of view)."""
        f = float(focal_px) if focal_px else float(np.hypot(width, height))
        K = np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1]], dtype=np.float64)
        return cls(K=K, width=int(width), height=int(height))

    def resized(self, width: int, height: int) -> "Camera":
        """The same camera for its picture resampled to ``width`` x ``height``: the same rays,
        in the new picture's pixels."""
        K = self.K.copy()
        K[0] *= width / self.width
        K[1] *= height / self.height
        return Camera(K=K, width=int(width), height=int(height))

    @property
    def focal(self) -> float:
        return float(self.K[0, 0])


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(..., 3) camera-space points to (..., 2) pixels; depth clamped to stay in front."""
    z = points[..., 2:3].clamp(min=1e-3)
    uv = points[..., :2] / z
    return uv * torch.stack([K[0, 0], K[1, 1]]) + torch.stack([K[0, 2], K[1, 2]])


def project_np(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    z = np.maximum(points[..., 2:3], 1e-3)
    return points[..., :2] / z * np.array([K[0, 0], K[1, 1]]) + np.array([K[0, 2], K[1, 2]])
