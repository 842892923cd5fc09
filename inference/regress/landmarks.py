"""The landmark start: initial body parameters from the detector's metric 3D landmarks.

The torso's axes give the global orientation, a short 3D alignment of the body
model's keypoints to the landmarks gives the limbs, and a closed-form least
squares on the 2D keypoints places the body in the camera. It needs no
weights and works for every body model (SMPL too).
"""

from __future__ import annotations

import numpy as np
import roma
import torch

from .. import keypoints as kpl
from ..bodymodels.base import BodyModel, BodyParams
from ..bodymodels.joints import JointLimits
from ..camera import Camera
from ..detect import Detection
from .placement import keypoint_skeleton, orientation_from_landmarks, place_on_keypoints, posed_keypoints


class LandmarkRegressor:
    """Initial guess from MediaPipe's world landmarks (no trained weights needed)."""

    def __init__(self, body: BodyModel, ik_steps: int = 15) -> None:
        self.body = body
        self.limits = JointLimits(body.bone_names, body.pose_limits)
        self.ik_steps = ik_steps
        shape = body.default_shape()
        ids = body.keypoint_vertex_ids
        with torch.no_grad():
            self._rest = body.rest(shape, ids, self.limits.index)
        self.skeleton = keypoint_skeleton(body, self.limits)

    def _keypoints(self, rest_b, sub: torch.Tensor) -> torch.Tensor:
        return posed_keypoints(self.body, self.skeleton, rest_b, sub)

    def __call__(self, detections: list[Detection], camera: Camera) -> BodyParams:
        body, lim = self.body, self.limits
        b = len(detections)
        n_kp = len(body.keypoint_names)
        # Camera-space body frame times the model's own body frame: model space -> camera.
        axes_t = body.model_axes.T
        R0 = torch.tensor(
            np.stack([orientation_from_landmarks(d.landmarks3d) @ axes_t for d in detections]), dtype=torch.float32
        )
        target = torch.tensor(np.stack([d.landmarks3d for d in detections]), dtype=torch.float32)
        conf = torch.tensor(np.stack([d.keypoints2d[:, 2] for d in detections]), dtype=torch.float32)
        target = target - target[:, kpl.HIPS].mean(1, keepdim=True)

        # Limbs: align the model's keypoints, hip-centred and turned by R0, to the landmarks.
        rest = self._rest
        rest_b = rest.expand(b)
        sub = torch.zeros(b, len(lim.index), 3, requires_grad=True)
        opt = torch.optim.Adam([sub], lr=0.12)
        for _ in range(self.ik_steps):
            kp = self._keypoints(rest_b, sub)
            kp = kp - kp[:, kpl.HIPS].mean(1, keepdim=True)
            kp = torch.einsum("bij,bkj->bki", R0, kp)
            err = (kp - target).norm(dim=-1)
            loss = (conf * err).sum() / n_kp + 0.5 * lim.penalty(sub).sum() + 1e-3 * sub.pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            sub_c = lim.clamp(sub.detach())
            pose = lim.full_pose(sub_c)
            kp = torch.einsum("bij,bkj->bki", R0, self._keypoints(rest_b, sub_c)).numpy().astype(np.float64)

        transl = []
        for i, d in enumerate(detections):
            t = place_on_keypoints(kp[i], d, camera.K, min_points=1)
            transl.append(t if t is not None else np.array([0.0, 0.0, 3.0]))  # nothing confident: ahead
        return BodyParams(
            global_rot=roma.rotmat_to_rotvec(R0),
            transl=torch.tensor(np.stack(transl), dtype=torch.float32),
            pose=pose,
            shape=body.default_shape(b),
        )
