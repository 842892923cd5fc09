"""What the regression network sees: a square crop around the person holding
the person mask and one heatmap per 2D keypoint.

Masks and keypoints (not pixels) are the input so that a network trained on
synthetic bodies transfers to photos: MediaPipe gives both for a real photo,
and the synthetic generator draws both from a posed body. The same crop
geometry maps keypoints in and the predicted camera back out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .. import keypoints as kpl

INPUT_SIZE = 96  # pixels per side of the network input
CROP_MARGIN = 1.25  # crop side / the longer side of the person's box
HEATMAP_SIGMA = 1.5  # pixels of the input
IN_CHANNELS = 1 + kpl.NUM  # the mask and one heatmap per keypoint
MIN_KEYPOINT_CONF = 0.3  # below this a detected keypoint is left out of the heatmaps


@dataclass
class Crop:
    """A square in image pixels: ``center`` (2,) and ``side``; crop coordinates run -1..1."""

    center: np.ndarray
    side: float

    @classmethod
    def around(cls, box: np.ndarray, margin: float = CROP_MARGIN) -> "Crop":
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(x1 - x0, y1 - y0, 8.0) * margin
        return cls(center=np.array([(x0 + x1) / 2, (y0 + y1) / 2]), side=side)

    def to_crop(self, uv: np.ndarray) -> np.ndarray:
        return (uv - self.center) / (self.side / 2)

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        return xy * (self.side / 2) + self.center

    def warp_matrix(self) -> np.ndarray:
        """2x3 affine from image pixels to input pixels (for ``cv2.warpAffine``)."""
        s = INPUT_SIZE / self.side
        return np.array(
            [[s, 0, INPUT_SIZE / 2 - s * self.center[0]], [0, s, INPUT_SIZE / 2 - s * self.center[1]]], np.float64
        )


def heatmaps(xy: torch.Tensor, amplitude: torch.Tensor) -> torch.Tensor:
    """(B, K, S, S) Gaussian heatmaps for crop coordinates ``xy`` (B, K, 2) and amplitudes (B, K)."""
    g = (torch.arange(INPUT_SIZE, dtype=xy.dtype, device=xy.device) + 0.5) / INPUT_SIZE * 2 - 1  # pixel centres, -1..1
    sigma = HEATMAP_SIGMA * 2 / INPUT_SIZE
    dx = (g[None, None, :] - xy[..., 0:1]) ** 2  # (B, K, S)
    dy = (g[None, None, :] - xy[..., 1:2]) ** 2
    return amplitude[..., None, None] * torch.exp(-(dy[..., :, None] + dx[..., None, :]) / (2 * sigma * sigma))


def camera_features(center: torch.Tensor, side: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(B, 3): where the crop sits in the camera's view, (centre - principal point) / focal and
    side / focal. Crop coordinates alone hide perspective: a body at the image's edge is seen
    obliquely, and the crop's angular size sets the scale of depth."""
    f = torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)
    return torch.cat([(center - K[:, :2, 2]) / f, (side / K[:, 0, 0])[:, None]], -1)


def keypoint_amplitude(conf: np.ndarray) -> np.ndarray:
    return np.where(conf >= MIN_KEYPOINT_CONF, np.clip(conf, 0.0, 1.0), 0.0)


def photo_input(mask: np.ndarray, keypoints2d: np.ndarray, crop: Crop) -> tuple[torch.Tensor, torch.Tensor]:
    """Network input from a detection's full-image mask and (K, 3) keypoints: the (C, S, S)
    mask and heatmaps, and the (K, 3) keypoints in crop coordinates with their weight."""
    m = cv2.warpAffine(
        mask.astype(np.float32), crop.warp_matrix(), (INPUT_SIZE, INPUT_SIZE),
        flags=cv2.INTER_AREA if crop.side > INPUT_SIZE else cv2.INTER_LINEAR, borderValue=0.0,
    )  # fmt: skip
    xy = torch.tensor(crop.to_crop(keypoints2d[:, :2]), dtype=torch.float32)[None]
    amp = torch.tensor(keypoint_amplitude(keypoints2d[:, 2]), dtype=torch.float32)[None]
    amp[(xy.abs() > 1.0).any(-1)] = 0.0  # outside the crop: as in training
    hm = heatmaps(xy, amp)[0]
    image = torch.cat([torch.from_numpy(np.clip(m, 0, 1))[None], hm], 0)
    return image, torch.cat([xy[0], amp[0, :, None]], -1)
