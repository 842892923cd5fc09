"""Which bones the fit moves, and how far each may bend.

Angles are axis-angle components in each bone's rest frame (Blender
convention: Y runs along the bone, so Y is twist). Anny's knees and elbows
bend about +X on both sides. Ranges are generous anatomical limits: they
exclude impossible poses (a knee bending forward), not unusual ones.
"""

from __future__ import annotations

import math

import torch

D = math.radians

# Anny: bone: ((x_lo, y_lo, z_lo), (x_hi, y_hi, z_hi)) in radians
LIMITS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "spine05": ((D(-30), D(-20), D(-25)), (D(45), D(20), D(25))),
    "spine03": ((D(-30), D(-25), D(-25)), (D(45), D(25), D(25))),
    "spine01": ((D(-30), D(-25), D(-25)), (D(45), D(25), D(25))),
    "neck01": ((D(-45), D(-50), D(-35)), (D(50), D(50), D(35))),
    "head": ((D(-45), D(-50), D(-35)), (D(45), D(50), D(35))),
    "upperleg01.L": ((D(-130), D(-45), D(-50)), (D(45), D(45), D(50))),
    "upperleg01.R": ((D(-130), D(-45), D(-50)), (D(45), D(45), D(50))),
    "lowerleg01.L": ((D(0), D(-20), D(-10)), (D(150), D(20), D(10))),
    "lowerleg01.R": ((D(0), D(-20), D(-10)), (D(150), D(20), D(10))),
    "foot.L": ((D(-45), D(-25), D(-30)), (D(45), D(25), D(30))),
    "foot.R": ((D(-45), D(-25), D(-30)), (D(45), D(25), D(30))),
    "clavicle.L": ((D(-25), D(-20), D(-25)), (D(25), D(20), D(25))),
    "clavicle.R": ((D(-25), D(-20), D(-25)), (D(25), D(20), D(25))),
    "upperarm01.L": ((D(-150), D(-80), D(-150)), (D(150), D(80), D(150))),
    "upperarm01.R": ((D(-150), D(-80), D(-150)), (D(150), D(80), D(150))),
    "lowerarm01.L": ((D(0), D(-80), D(-15)), (D(155), D(80), D(15))),
    "lowerarm01.R": ((D(0), D(-80), D(-15)), (D(155), D(80), D(15))),
    "wrist.L": ((D(-70), D(-30), D(-40)), (D(70), D(30), D(40))),
    "wrist.R": ((D(-70), D(-30), D(-40)), (D(70), D(30), D(40))),
}


class JointLimits:
    """Indices and bounds of the fitted bones for one skeleton."""

    def __init__(self, bone_names: list[str], limits: dict | None = None) -> None:
        limits = limits or LIMITS
        missing = [b for b in limits if b not in bone_names]
        if missing:
            raise ValueError(f"skeleton lacks bones {missing}")
        self.names = list(limits)
        self.num_bones = len(bone_names)
        self.index = torch.tensor([bone_names.index(b) for b in limits])
        self.lo = torch.tensor([limits[b][0] for b in limits])
        self.hi = torch.tensor([limits[b][1] for b in limits])

    def penalty(self, pose_sub: torch.Tensor) -> torch.Tensor:
        """Squared excess beyond the limits, per batch item. ``pose_sub``: (B, N, 3)."""
        over = torch.relu(pose_sub - self.hi) + torch.relu(self.lo - pose_sub)
        return over.pow(2).sum(dim=(1, 2))

    def full_pose(self, pose_sub: torch.Tensor) -> torch.Tensor:
        """(B, J, 3) rotations of the whole skeleton from the fitted bones' (B, N, 3); the rest stay at rest."""
        full = torch.zeros(pose_sub.shape[0], self.num_bones, 3, dtype=pose_sub.dtype)
        return full.index_copy(1, self.index, pose_sub)

    def clamp(self, pose_sub: torch.Tensor) -> torch.Tensor:
        return torch.maximum(torch.minimum(pose_sub, self.hi), self.lo)
