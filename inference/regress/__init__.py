"""The fit's starting point: initial body parameters and camera placement, behind one
``Regressor`` protocol.

``NetworkRegressor`` (``network``; the default for Anny) runs the ResNet50 trained on
synthetic bodies (``net``, fed by ``netinput``) on the person's mask and keypoint
heatmaps: pose, shape and camera in one pass. ``LandmarkRegressor`` (``landmarks``;
``--init landmarks``, SMPL, or Anny without the weights) derives them from the
detector's metric 3D landmarks. Both are placed on the 2D keypoints (``placement``).
"""

from __future__ import annotations

import os
from typing import Protocol

from ..bodymodels.base import BodyModel, BodyParams
from ..camera import Camera
from ..detect import Detection
from .landmarks import LandmarkRegressor
from .network import WEIGHTS, NetworkRegressor

__all__ = ["INITS", "WEIGHTS", "LandmarkRegressor", "NetworkRegressor", "Regressor", "make_regressor"]

INITS = ("auto", "network", "landmarks")
# What "auto" picks for Anny when the weights are installed: the network's start,
# since it beats the landmark start on the synthetic bodies and on the photos and
# clip frames of the regressor benchmark (docs/benchmarks.md).
NETWORK_BY_DEFAULT = True


class Regressor(Protocol):
    """Initial body parameters for each detection hypothesis (a batch, one per hypothesis)."""

    def __call__(self, detections: list[Detection], camera: Camera) -> BodyParams: ...




def make_regressor(body: BodyModel, init: str = "auto", weights: str | os.PathLike | None = None) -> Regressor:
    """The fit's starting point: the detector's landmarks, or the trained network (Anny only;
    ``weights``: another weights file than the bundled one)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}")
    if init == "auto":
        init = "network" if NETWORK_BY_DEFAULT and body.name == "anny" and WEIGHTS.exists() else "landmarks"
    return NetworkRegressor(body, weights or WEIGHTS) if init == "network" else LandmarkRegressor(body)
