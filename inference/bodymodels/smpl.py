"""SMPL through ``smplx`` (imported only when SMPL is chosen: its code is licensed
for non-commercial use). The user supplies the model file; it is read by
``smpl_file`` with an allow-list unpickler, never ``pickle.load``.

Model space is SMPL's: Y up, the body faces +Z, its left is +X, metres. Each
joint's rest frame is the model frame at the joint (T-pose), so a joint's
axis-angle is its rotation in the bone's own axes, as SMPL add-ons expect.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from .. import keypoints as kpl
from ..errors import ReconError
from .base import RestState
from .smpl_file import load_smpl_file

JOINTS = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
]  # fmt: skip
# The keypoint layout (inference.keypoints: COCO-17 + feet), as vertex ids (face, toes, heels;
# smplx's SMPL-H table) or joints.
KEYPOINTS = [
    ("v", 332), ("v", 2800), ("v", 6260), ("v", 583), ("v", 4071),
    ("j", 16), ("j", 17), ("j", 18), ("j", 19), ("j", 20), ("j", 21),
    ("j", 1), ("j", 2), ("j", 4), ("j", 5), ("j", 7), ("j", 8),
    ("v", 3216), ("v", 6617), ("v", 3387), ("v", 6787),
]  # fmt: skip
D = math.radians


def _lim(x, y, z):
    return ((D(x[0]), D(y[0]), D(z[0])), (D(x[1]), D(y[1]), D(z[1])))


# SMPL joint frames: +X the body's left, +Y up, +Z forward. Knees bend about +X, hips
# flex about -X, the left elbow about -Y and the right about +Y.
LIMITS = {
    "spine1": _lim((-30, 45), (-20, 20), (-25, 25)),
    "spine2": _lim((-30, 45), (-25, 25), (-25, 25)),
    "spine3": _lim((-30, 45), (-25, 25), (-25, 25)),
    "neck": _lim((-45, 50), (-50, 50), (-35, 35)),
    "head": _lim((-45, 45), (-50, 50), (-35, 35)),
    "left_hip": _lim((-130, 45), (-45, 45), (-50, 50)),
    "right_hip": _lim((-130, 45), (-45, 45), (-50, 50)),
    "left_knee": _lim((0, 150), (-20, 20), (-10, 10)),
    "right_knee": _lim((0, 150), (-20, 20), (-10, 10)),
    "left_ankle": _lim((-45, 45), (-25, 25), (-30, 30)),
    "right_ankle": _lim((-45, 45), (-25, 25), (-30, 30)),
    "left_collar": _lim((-25, 25), (-20, 20), (-25, 25)),
    "right_collar": _lim((-25, 25), (-20, 20), (-25, 25)),
    "left_shoulder": _lim((-150, 150), (-150, 150), (-150, 150)),
    "right_shoulder": _lim((-150, 150), (-150, 150), (-150, 150)),
    "left_elbow": _lim((-80, 80), (-155, 0), (-15, 15)),
    "right_elbow": _lim((-80, 80), (0, 155), (-15, 15)),
    "left_wrist": _lim((-70, 70), (-40, 40), (-70, 70)),
    "right_wrist": _lim((-70, 70), (-40, 40), (-70, 70)),
}


class SMPLBody:
    name = "smpl"

    def __init__(self, model_file: str | os.PathLike | None = None, gender: str | None = None, **_: object) -> None:
        if not model_file:
            raise ReconError(
                "smpl_model_missing",
                "SMPL needs your SMPL model file (register at smpl.is.tue.mpg.de, download SMPL for Python); "
                "pass it with --smpl-model PATH or set it in the add-on preferences.",
            )
        data = load_smpl_file(model_file, gender)
        from smplx.lbs import lbs  # noqa: F401  (fail here, clearly, if smplx is missing)

        self.gender = data.gender
        t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        self.v_template = t(data.v_template)
        self.shapedirs = t(data.shapedirs)
        self.posedirs = t(data.posedirs.reshape(-1, data.posedirs.shape[-1]).T)  # (207, V*3) as smplx wants
        self.J_regressor = t(data.J_regressor)
        self.weights = t(data.weights)
        parents = data.kintree_table[0].copy()
        parents[0] = -1
        self.bone_parents = parents.astype(np.int32)
        self._parents_t = torch.tensor(parents, dtype=torch.long)
        self.bone_names = list(JOINTS)
        self.faces = data.f.astype(np.int32)
        self.num_vertices = int(data.v_template.shape[0])
        self.shape_labels = [f"beta{i}" for i in range(10)]
        self.shape_bounds = (-3.0, 3.0)
        self.shape_fixed = torch.zeros(10, dtype=torch.bool)
        self.model_axes = np.stack([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]], axis=1)
        self.up_axis = "Y"
        self.scalable = False  # the AMASS arrays (betas, trans) must keep describing the body
        self.detector_offsets = None  # not calibrated: SMPL's keypoints are taken as MediaPipe's
        self.pose_limits = LIMITS
        self.keypoint_names = list(kpl.NAMES)
        reg = torch.zeros(len(KEYPOINTS), self.num_vertices)
        for k, (kind, i) in enumerate(KEYPOINTS):
            if kind == "v":
                reg[k, i] = 1.0
            else:
                reg[k] = self.J_regressor[i] / self.J_regressor[i].sum()
        self._kp_weights = reg
        self.keypoint_vertex_ids = torch.nonzero(reg.abs().sum(0) > 0).squeeze(1)
        self.skin_matrix = self.weights

    def default_shape(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, 10)

    def rest(self, shape, vertex_ids=None, bone_ids=None) -> RestState:
        b = shape.shape[0]
        v = self.v_template[None] + torch.einsum("vdk,bk->bvd", self.shapedirs, shape)
        joints = torch.einsum("jv,bvd->bjd", self.J_regressor, v)
        # Tails: each bone points up its own +Y (SMPL's axes), as long as the way to its child.
        length = torch.full((b, len(JOINTS)), 0.08)
        for j, p in enumerate(self.bone_parents):
            if p >= 0:
                length[:, p] = (joints[:, j] - joints[:, p]).norm(dim=-1).clamp(min=0.03)
        tails = joints.clone()
        tails[..., 1] = tails[..., 1] + length
        poses = torch.eye(4).repeat(b, len(JOINTS), 1, 1)
        poses[:, :, :3, 3] = joints
        if bone_ids is not None:
            joints, tails, poses = joints[:, bone_ids], tails[:, bone_ids], poses[:, bone_ids]
        if vertex_ids is not None:
            v = v[:, vertex_ids]
        return RestState(vertices=v, bone_poses=poses, bone_heads=joints, bone_tails=tails, shape=shape)

    def pose(self, rest: RestState, rotations: torch.Tensor, vertex_ids=None):
        """smplx's LBS, pose correctives included; the root joint's rotation is applied about it."""
        from smplx.lbs import lbs

        assert rest.shape is not None, "SMPL rest states carry their shape"
        b = rotations.shape[0]
        verts, joints = lbs(
            rest.shape.expand(b, -1), rotations, self.v_template, self.shapedirs, self.posedirs,
            self.J_regressor, self._parents_t, self.weights, pose2rot=False,
        )  # fmt: skip
        if vertex_ids is not None:
            verts = verts[:, vertex_ids]
        poses = torch.eye(4).repeat(b, len(JOINTS), 1, 1)
        poses[:, :, :3, 3] = joints
        return verts, poses

    def keypoints(self, posed_vertices, vertex_ids=None):
        w = self._kp_weights if vertex_ids is None else self._kp_weights[:, vertex_ids]
        return torch.einsum("kv,bvd->bkd", w, posed_vertices)

    def skin(self):
        """All 24 influences per vertex (most are zero), so Blender skins exactly like smplx."""
        idx = np.tile(np.arange(len(JOINTS), dtype=np.int32), (self.num_vertices, 1))
        return idx, self.weights.numpy().astype(np.float32)

    def amass(self, shape: torch.Tensor, global_rot: np.ndarray, transl: np.ndarray, pose: np.ndarray,
              fps: float) -> dict:
        """The usual SMPL/AMASS arrays for frames with rotation matrices ``global_rot`` (N, 3, 3),
        translations ``transl`` (N, 3) (our convention: about the model origin) and local
        axis-angles ``pose`` (N, 24, 3). SMPL turns the body about the pelvis joint, so
        trans = t + R j0 - j0."""
        import roma

        with torch.no_grad():
            j0 = self.rest(shape[:1]).bone_heads[0, 0].numpy().astype(np.float64)
        rotvec = roma.rotmat_to_rotvec(torch.tensor(global_rot)).numpy()
        poses = pose.reshape(len(pose), -1).copy()
        poses[:, :3] = rotvec
        trans = transl + np.einsum("nij,j->ni", global_rot, j0) - j0
        return {
            "poses": poses.astype(np.float32),
            "betas": shape[0].numpy().astype(np.float32),
            "trans": trans.astype(np.float32),
            "gender": np.array(self.gender),
            "mocap_framerate": np.array(float(fps or 30.0)),
            "smpl_shapedirs": self.shapedirs.numpy(),
            "smpl_posedirs": self.posedirs.numpy().T.reshape(self.num_vertices, 3, -1),
            "smpl_v_template": self.v_template.numpy(),
        }
