"""The body-model protocol the fit and the result writer use.

A body model is a skinned mesh on a skeleton: ``shape`` parameters give a rest
mesh and rest skeleton; per-bone local rotations (Blender's ``matrix_basis``
convention: each rotation is in its bone's rest frame) pose it with linear
blend skinning. Coordinates are the model's own (metres); the global
placement in the camera is applied outside the model.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch


@dataclass
class RestState:
    """Rest mesh and skeleton for a batch of shapes (model space)."""

    vertices: torch.Tensor  # (B, V, 3), or (B, S, 3) for a vertex subset
    bone_poses: torch.Tensor  # (B, J, 4, 4) rest bone frames (head at translation)
    bone_heads: torch.Tensor  # (B, J, 3)
    bone_tails: torch.Tensor  # (B, J, 3)
    shape: torch.Tensor | None = None  # (B, S) the shape it was made for (models with pose correctives)

    def expand(self, batch: int) -> "RestState":
        """The same (batch-1) rest state repeated ``batch`` times, without copying."""
        grow = lambda t: None if t is None else t.expand(batch, *t.shape[1:])  # noqa: E731
        return RestState(
            *(grow(getattr(self, f)) for f in ("vertices", "bone_poses", "bone_heads", "bone_tails", "shape"))
        )

    def scaled(self, factor: float) -> "RestState":
        """The rest body scaled by ``factor`` about the model's origin. Skinning and the keypoint
        regressors are linear in the rest positions, so every posed point scales with it."""
        if factor == 1.0:
            return self
        poses = self.bone_poses.clone()
        poses[..., :3, 3] *= factor
        return RestState(self.vertices * factor, poses, self.bone_heads * factor, self.bone_tails * factor, self.shape)


class BodyModel(Protocol):
    name: str
    bone_names: list[str]
    bone_parents: np.ndarray  # (J,) int, -1 for the root
    faces: np.ndarray  # (F, 3) int32 triangles
    num_vertices: int
    shape_labels: list[str]
    keypoint_names: list[str]  # what ``keypoints`` returns, in order
    keypoint_vertex_ids: torch.Tensor  # vertices the keypoint regressor reads
    skin_matrix: torch.Tensor  # (V, J) dense skin weights
    shape_bounds: tuple[float, float]  # the fit keeps shape parameters inside
    shape_fixed: torch.Tensor  # (S,) bool: parameters the fit does not change (Anny: age)
    model_axes: np.ndarray  # (3, 3) columns: the body's left, back and up in model space
    up_axis: str  # "Z" (Anny) or "Y" (SMPL): model space's up, for the Blender side
    scalable: bool  # results may scale the body uniformly (False: its parameters must keep describing it)
    detector_offsets: np.ndarray | None  # (K, 2) detect.to_body_convention's table, or None
    pose_limits: dict  # bone -> ((x, y, z) low, (x, y, z) high) radians: the bones the fit moves

    def default_shape(self, batch: int = 1) -> torch.Tensor: ...

    def rest(
        self, shape: torch.Tensor, vertex_ids: torch.Tensor | None = None, bone_ids: torch.Tensor | None = None
    ) -> RestState: ...

    def pose(
        self, rest: RestState, rotations: torch.Tensor, vertex_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posed (vertices, bone poses) for local rotations (B, J, 3, 3)."""
        ...

    def keypoints(self, posed_vertices: torch.Tensor, vertex_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, K, 3) keypoints regressed from posed vertices (full or the subset ``vertex_ids``)."""
        ...

    def skin(self) -> tuple[np.ndarray, np.ndarray]:
        """(V, K) bone indices and weights of the linear blend skinning."""
        ...


@dataclass
class BodyParams:
    """A batch of posed bodies placed in the camera: ``v_cam = R(global_rot) v_model + transl``."""

    global_rot: torch.Tensor  # (B, 3) axis-angle, model space -> camera space
    transl: torch.Tensor  # (B, 3) metres, camera space
    pose: torch.Tensor  # (B, J, 3) axis-angle local bone rotations (bone rest frames)
    shape: torch.Tensor  # (B, S) body-model shape parameters

    def detach(self) -> "BodyParams":
        return BodyParams(*(t.detach().clone() for t in (self.global_rot, self.transl, self.pose, self.shape)))

    def select(self, i: int) -> "BodyParams":
        return BodyParams(*(t[i : i + 1] for t in (self.global_rot, self.transl, self.pose, self.shape)))

    @staticmethod
    def stack(batches: list["BodyParams"]) -> "BodyParams":
        """One batch of the bodies of ``batches``, in order."""
        return BodyParams(*(torch.cat(ts) for ts in zip(*((b.global_rot, b.transl, b.pose, b.shape) for b in batches))))


def kept(store: OrderedDict, size: int, key, make: Callable):
    """``store[key]``, made by ``make()`` if missing; the least recently used of more than
    ``size`` entries goes (a small cache of what a clip asks for again each frame)."""
    hit = store.get(key)
    if hit is None:
        hit = store[key] = make()
        if len(store) > size:
            store.popitem(last=False)
    store.move_to_end(key)
    return hit
