"""Anny result -> SMPL parameters (AMASS layout), fitted to joints and surface.

    python -m inference convert RESULT.npz --smpl-model SMPL_NEUTRAL.pkl --output RESULT_smpl.npz

For every frame the Anny body is rebuilt from the result, then one SMPL body
shape for the clip and per-frame SMPL poses are fitted to Anny's keypoints
(COCO-17, toes, heels) and to its surface (symmetric nearest-point distance on
vertex samples). The remaining keypoint and surface errors are reported in mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import roma
import torch

from . import keypoints as kpl
from .bodymodels.anny import AnnyBody
from .bodymodels.joints import JointLimits
from .bodymodels.smpl import SMPLBody
from .io.result import PersonResult, ReconResult

# SMPL model axes (left +X, up +Y, forward +Z) in Anny's model axes (left +X, up +Z, forward -Y).
SMPL_TO_ANNY = torch.tensor([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
CHUNK = 32


@dataclass
class Conversion:
    amass: dict
    keypoint_error_mm: float
    surface_error_mm: float
    initial_keypoint_error_mm: float


def anny_frames(result: PersonResult, anny: AnnyBody) -> tuple[torch.Tensor, torch.Tensor]:
    """A person's posed Anny vertices and keypoints in camera space, every frame."""
    shape = torch.tensor(result.shape_params, dtype=torch.float32)[None]
    q = torch.tensor(result.bone_rotations[:, :, [1, 2, 3, 0]], dtype=torch.float32)  # xyzw
    R = torch.tensor(result.global_rotation, dtype=torch.float32)
    t = torch.tensor(result.root_translation, dtype=torch.float32)
    with torch.no_grad():
        rest = anny.rest(shape).scaled(float(result.body_scale))
        out_v, out_k = [], []
        for s in range(0, len(q), CHUNK):
            b = len(q[s : s + CHUNK])
            rest_b = rest.expand(b)
            v, _ = anny.pose(rest_b, roma.unitquat_to_rotmat(q[s : s + CHUNK]))
            v = torch.einsum("bij,bvj->bvi", R[s : s + CHUNK], v) + t[s : s + CHUNK, None]
            out_v.append(v)
            out_k.append(anny.keypoints(v[:, anny.keypoint_vertex_ids], anny.keypoint_vertex_ids))
    return torch.cat(out_v), torch.cat(out_k)


def _nearest(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean distance from each point of ``a`` (B, N, 3) to its nearest in ``b`` (B, M, 3)."""
    with torch.no_grad():
        idx = torch.cdist(a, b).argmin(dim=2)
    picked = torch.gather(b, 1, idx[..., None].expand(-1, -1, 3))
    return (a - picked).norm(dim=-1).mean(1)


def anny_to_smpl(result: ReconResult, person: PersonResult, anny: AnnyBody, smpl: SMPLBody,
                 steps: int = 200) -> Conversion:  # fmt: skip
    """SMPL fitted to one ``person`` of an Anny ``result``, every frame."""
    verts, kps = anny_frames(person, anny)
    n = len(verts)
    rng = np.random.default_rng(0)
    anny_ids = torch.tensor(np.sort(rng.choice(verts.shape[1], 1500, replace=False)))
    smpl_ids = torch.tensor(np.sort(rng.choice(smpl.num_vertices, 1000, replace=False)))
    lim = JointLimits(smpl.bone_names, smpl.pose_limits)
    # Start: Anny's orientation and pelvis, SMPL's mean shape.
    grot = roma.rotmat_to_rotvec(torch.tensor(person.global_rotation, dtype=torch.float32) @ SMPL_TO_ANNY)
    hips = kps[:, kpl.HIPS].mean(1)
    transl = hips.clone()
    grot = grot.clone().requires_grad_(True)
    transl.requires_grad_(True)
    pose_sub = torch.zeros(n, len(lim.index), 3, requires_grad=True)
    betas = torch.zeros(1, 10, requires_grad=True)
    opt = torch.optim.Adam([grot, transl, pose_sub, betas], lr=0.03)
    target_v = verts[:, anny_ids]

    def forward():
        pose = lim.full_pose(pose_sub)
        rest = smpl.rest(betas)
        v, _ = smpl.pose(rest, roma.rotvec_to_rotmat(pose))
        v = v - rest.bone_heads[:, :1]  # turn about the pelvis joint, like SMPL
        v = torch.einsum("bij,bvj->bvi", roma.rotvec_to_rotmat(grot), v) + transl[:, None]
        return v, smpl.keypoints(v), pose

    with torch.no_grad():
        _, k0, _ = forward()
        initial = (k0 - kps).norm(dim=-1).mean().item() * 1000
    for step in range(steps):
        v, k, _ = forward()
        kp_loss = (k - kps).norm(dim=-1).mean()
        surface = torch.zeros(())
        if step >= steps // 3:  # joints first, then the surface refines
            sv = v[:, smpl_ids]
            surface = (_nearest(sv, target_v) + _nearest(target_v, sv)).mean() / 2
        loss = kp_loss + surface + lim.penalty(pose_sub).mean() + 1e-3 * betas.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pose_sub.copy_(lim.clamp(pose_sub))
        v, k, pose = forward()
        kp_err = (k - kps).norm(dim=-1).mean().item() * 1000
        sv = v[:, smpl_ids]
        surf = ((_nearest(sv, target_v) + _nearest(target_v, sv)) / 2).mean().item() * 1000
        j0 = smpl.rest(betas).bone_heads[0, 0]
        # Our pose turned about the pelvis: as SMPL trans, transl - j0 (SMPL adds j0 back).
        rot = roma.rotvec_to_rotmat(grot)
        trans_model = transl - torch.einsum("bij,j->bi", rot, j0)  # about the model origin
    amass = smpl.amass(betas.detach(), rot.numpy().astype(np.float64), trans_model.numpy().astype(np.float64),
                       pose.numpy().astype(np.float64), result.fps or 30.0)  # fmt: skip
    for k in ("smpl_shapedirs", "smpl_posedirs", "smpl_v_template"):
        amass.pop(k)
    return Conversion(amass=amass, keypoint_error_mm=kp_err, surface_error_mm=surf, initial_keypoint_error_mm=initial)
