"""Optimisation refinement (the SMPLify idea) of body parameters against a photo.

The body model is fitted to the detected 2D keypoints (confidence-weighted,
robust) and to the person mask, under joint limits and a prior that keeps it
near the initial guess. Three stages, each cheap on a CPU:

1. rigid: global rotation and translation only, body fixed (no skinning);
2. pose: all fitted bones, several hypotheses at once (the detection as
   labelled and its left/right mirror, since BlazePose sometimes swaps the
   whole body); the clearly better one goes on;
3. full: pose, shape and the silhouette terms.

Only a subset of vertices is skinned during the fit (the keypoint regressor's
support and a uniform sample for the silhouette), which keeps a step at a few
milliseconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import roma
import torch
import torch.nn.functional as F

from . import keypoints as kpl
from .bodymodels.base import BodyModel, BodyParams, RestState
from .bodymodels.joints import JointLimits
from .bodymodels.lbs import CollapsedSkeleton
from .camera import Camera, project
from .detect import Detection

# Relative weight of each keypoint: the face and the feet count half.
KP_WEIGHTS = torch.ones(kpl.NUM)
KP_WEIGHTS[kpl.FACE + kpl.FOOT] = 0.5
SILHOUETTE_STRIDE = 9  # every n-th vertex joins the silhouette sample
MASK_SAMPLES = 400
MIRROR_MARGIN = 0.8  # the mirrored labelling must explain the image this much better
# Weight of the detector's 3D landmarks in that choice. From a network start both labellings
# fit the 2D keypoints about equally well (the body turned round); the landmarks carry the
# depth cues (which way the face and the feet point) that settle it.
MIRROR_LANDMARKS_WEIGHT = 0.2
# The silhouette's weight for a trained start, relative to the landmark start's (for_trained_start).
TRAINED_SILHOUETTE_SCALE = 0.3


@dataclass
class FitOptions:
    rigid_steps: int = 20
    pose_steps: int = 25
    full_steps: int = 35
    lr: float = 0.04
    landmarks3d_weight: float = 0.0  # MediaPipe's 3D landmarks as a loss term (0: start only)
    silhouette_weight: float = 10.0
    shape_prior: float = 0.01
    init_prior: float = 0.02
    # The pose and silhouette stages raise their step size over this many steps. A fresh Adam
    # moves every parameter by about a full step at once, whatever its gradient: from a good
    # start that kick threw the keypoint loss up 2-7x at the start of each stage.
    warmup_steps: int = 5
    # Adam divides each parameter's step by the size of its own gradient, so a parameter the
    # picture hardly constrains (a hidden joint, a bend in depth) moves by about a full step on
    # a gradient of rounding noise. A gradient smaller than ``adam_eps`` moves its parameter in
    # proportion (pose gradients: median 0.005). torch's default here; a clip's warm fits take
    # 1e-2 (``SequenceOptions.warm_fit``; docs/research-log.md, "Adam's epsilon").
    adam_eps: float = 1e-8
    mirror_guard: bool = True
    # Each limb bone whose depth MediaPipe's 3D landmarks read clearly (``_bone_depth``) is held
    # to point that way, towards the camera or away: a photo leaves a bone's bend in depth open
    # to the start, and the heavy model reads it better than the network for some bones (the
    # forearms and shins). On the real multi-view kit's photos: PA-MPJPE -1.1 mm (SE 0.3),
    # MPJPE -1.3 (0.4), 0 mirrored; blending the landmarks' positions instead cost up to 12 mm
    # (docs/research-log.md). 0: off.
    bone_depth_weight: float = 0.1

    def for_trained_start(self, factor: float = 0.5) -> "FitOptions":
        """Options for a start that already has a pose and a camera (the trained regressor's).
        There is no rigid stage: the start is already placed on the 2D keypoints by a closed-form
        fit, and rigid steps at this step size only threw it off (the keypoint loss rose from
        1.8x to 3.3x its final value in 5 steps; without them the fit ends closer, in fewer
        iterations: README, "Regressor benchmark"). The pose stage keeps ``factor`` of its
        steps; the silhouette stage keeps all of its steps, since it is what moves the body onto
        the person's mask. The start's pose is held half as firmly, and its phenotype not at all:
        the network predicts a body without clothes, and on a real photo the silhouette stage
        must be free to cover the clothes. This measured better than shrinking every stage alike
        on the synthetic bodies and on the photos (README, "Regressor benchmark").

        The silhouette weighs ``TRAINED_SILHOUETTE_SCALE`` as much: at full weight it outweighs
        the keypoints and pulls limbs off them, in depth too. Lighter, it took PA-MPJPE on the
        synthetic bodies (whose mask is exact) from 65.7 to 61.7 mm; on real photos the
        keypoints fit a fifth closer for about 0.01 less silhouette IoU (README)."""
        pose = max(1, round(self.pose_steps * factor)) if self.pose_steps else 0
        return replace(
            self, rigid_steps=0, pose_steps=pose, init_prior=self.init_prior / 2, shape_prior=0.0,
            silhouette_weight=self.silhouette_weight * TRAINED_SILHOUETTE_SCALE,
        )  # fmt: skip

    @property
    def total_steps(self) -> int:
        return self.rigid_steps + self.pose_steps + self.full_steps


@dataclass
class FitResult:
    params: BodyParams  # batch of one
    hypothesis: int  # index of the chosen detection hypothesis (1: mirrored labels)
    iterations: int
    stage_seconds: dict[str, float] = field(default_factory=dict)
    losses: dict[str, float] = field(default_factory=dict)
    keypoint_trace: list[float] = field(default_factory=list)  # keypoint loss per iteration (chosen hypothesis)


class MaskTargets:
    """Silhouette targets of one or more people (a batch row each): a distance field outside each
    mask and sample points inside it."""

    def __init__(self, masks: list[np.ndarray], box_heights: list[float], seed: int = 0) -> None:
        fields, samples = [], []
        for mask, box_height in zip(masks, box_heights):
            binary = (mask > 0.5).astype(np.uint8)
            # Distance (px) from each pixel to the mask, normalised by the person's height.
            fields.append(cv2.distanceTransform(1 - binary, cv2.DIST_L2, 3).astype(np.float32) / box_height)
            ys, xs = np.nonzero(binary)
            rng = np.random.default_rng(seed)
            pick = rng.choice(len(xs), size=min(MASK_SAMPLES, len(xs)), replace=False)
            samples.append(np.stack([xs[pick], ys[pick]], 1) + 0.5)
        n = max(len(p) for p in samples)  # a mask of fewer pixels repeats some (rows must match)
        h, w = masks[0].shape
        self.field = torch.from_numpy(np.stack(fields))[:, None]  # (P, 1, H, W)
        self.size = torch.tensor([w, h], dtype=torch.float32)
        self.samples = torch.tensor(np.stack([np.resize(p, (n, 2)) for p in samples]), dtype=torch.float32)
        self.box_height = torch.tensor(box_heights, dtype=torch.float32)

    def outside(self, uv: torch.Tensor) -> torch.Tensor:
        """Mean normalised distance of each row's projected points ``uv`` (P, N, 2) to its mask."""
        grid = (uv / self.size) * 2 - 1
        d = F.grid_sample(self.field, grid[:, None], align_corners=False, padding_mode="border")
        return d[:, 0, 0].mean(1)

    def coverage(self, uv: torch.Tensor) -> torch.Tensor:
        """Mean normalised distance from each row's mask samples to its nearest projected point."""
        with torch.no_grad():  # the nearest point is a choice, not a function to differentiate
            # By squared distance less the sample's own square (the same for every point): one
            # batched matmul of the coordinates, where cdist pads them to four columns (a slow
            # shape for the BLAS) and takes square roots; about half the time.
            d2 = torch.baddbmm(uv.pow(2).sum(-1)[:, None, :], self.samples, uv.transpose(1, 2), alpha=-2.0)
            nearest = d2.argmin(dim=2)
        picked = torch.gather(uv, 1, nearest[..., None].expand(-1, -1, 2))
        return (self.samples - picked).norm(dim=-1).mean(1) / self.box_height


@dataclass
class _Targets:
    """What the fit explains, one row per labelling hypothesis."""

    K: torch.Tensor  # (3, 3)
    keypoints: torch.Tensor  # (B, 21, 3) pixels and confidence (low confidences turned down further)
    height: torch.Tensor  # (B,) the person's box height, pixels
    landmarks3d: torch.Tensor  # (B, 21, 3)

    @classmethod
    def of(cls, detections: list[Detection], camera: Camera) -> "_Targets":
        target = torch.tensor(np.stack([d.keypoints2d for d in detections]), dtype=torch.float32)
        target[..., 2] = torch.where(target[..., 2] > 0.3, target[..., 2], 0.02 * target[..., 2])
        return cls(
            K=torch.tensor(camera.K, dtype=torch.float32),
            keypoints=target,
            height=torch.tensor([max(d.height, 8.0) for d in detections], dtype=torch.float32),
            landmarks3d=torch.tensor(np.stack([d.landmarks3d for d in detections]), dtype=torch.float32),
        )

    def select(self, rows: list[int]) -> "_Targets":
        return _Targets(self.K, self.keypoints[rows], self.height[rows], self.landmarks3d[rows])


@dataclass
class _Variables:
    """What the fit changes (and the start's pose, which the prior holds it to)."""

    grot: torch.Tensor  # (B, 3)
    transl: torch.Tensor  # (B, 3)
    pose_sub: torch.Tensor  # (B, N, 3) the fitted bones' axis-angles
    pose0: torch.Tensor  # (B, N, 3) the start's
    shape: torch.Tensor  # (B, S)

    @classmethod
    def of(cls, init: BodyParams, limits: JointLimits) -> "_Variables":
        pose0 = init.pose[:, limits.index].detach().clone()
        return cls(
            grot=init.global_rot.detach().clone().requires_grad_(True),
            transl=init.transl.detach().clone().requires_grad_(True),
            pose_sub=pose0.clone().requires_grad_(True),
            pose0=pose0,
            shape=init.shape.detach().clone(),
        )

    def select(self, rows: list[int]) -> "_Variables":
        grow = lambda v: v.detach()[rows].clone().requires_grad_(True)  # noqa: E731
        return _Variables(grow(self.grot), grow(self.transl), grow(self.pose_sub), self.pose0[rows], self.shape[rows])


class _Log:
    """Iterations, per-iteration keypoint losses (every hypothesis) and seconds per stage."""

    def __init__(self) -> None:
        self.iterations = 0
        self.trace: list[torch.Tensor] = []
        self.stage_seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stage_seconds[stage] = now - self._clock
        self._clock = now

    def select(self, rows: list[int]) -> None:
        self.trace = [v[rows] for v in self.trace]


class Fitter:
    def __init__(self, body: BodyModel, options: FitOptions | None = None) -> None:
        self.body = body
        self.options = options or FitOptions()
        self.limits = JointLimits(body.bone_names, body.pose_limits)
        sample = torch.arange(0, body.num_vertices, SILHOUETTE_STRIDE)
        self.vertex_ids = torch.unique(torch.cat([body.keypoint_vertex_ids, sample]))
        # Positions, within vertex_ids, of the keypoint support and of the silhouette sample.
        self._kp_cols = torch.searchsorted(self.vertex_ids, body.keypoint_vertex_ids)
        self._sil_cols = torch.searchsorted(self.vertex_ids, sample)
        self._fixed_shape = body.shape_fixed
        self.skeleton = CollapsedSkeleton(
            body.bone_parents, self.limits.index.tolist(), body.skin_matrix[self.vertex_ids]
        )

    # -- model evaluation -------------------------------------------------------------

    def _rest(self, shape: torch.Tensor) -> RestState:
        return self.body.rest(shape, self.vertex_ids, self.limits.index)

    def _posed(self, rest: RestState, pose_sub: torch.Tensor, grot: torch.Tensor, transl: torch.Tensor):
        T = self.skeleton.transforms(rest.bone_poses, roma.rotvec_to_rotmat(pose_sub))
        v = self.skeleton.skin(rest.vertices, T)
        R = roma.rotvec_to_rotmat(grot)
        v = torch.einsum("bij,bvj->bvi", R, v) + transl[:, None]
        kp = self.body.keypoints(v[:, self._kp_cols], self.body.keypoint_vertex_ids)
        return v, kp

    def _moments(self, rest: RestState) -> torch.Tensor:
        """(B, N+1, K, 4): the keypoints as linear in the skinning transforms T (B, N+1, 3, 4),
        keypoint k = sum over bones j of T_j @ m_jk, where m_jk sums the keypoint's vertex
        weights times bone j's skin weights times the homogeneous rest vertices. Keypoints are
        linear in the posed vertices and those in the transforms, so this is exact; a step of
        the pose stage then skins no vertex (its forward and backward 1.5 ms against 2.5)."""
        v = rest.vertices[:, self._kp_cols]  # (B, Vk, 3)
        homo = torch.cat([v, torch.ones_like(v[..., :1])], -1)  # (B, Vk, 4)
        w = self.skeleton.weights[self._kp_cols].T  # (N+1, Vk)
        b, j = homo.shape[0], w.shape[0]
        per_bone = (w[None, :, :, None] * homo[:, None]).reshape(b * j, -1, 4)
        return self.body.keypoints(per_bone, self.body.keypoint_vertex_ids).reshape(b, j, -1, 4)

    def _posed_keypoints(self, rest: RestState, moments: torch.Tensor, pose_sub: torch.Tensor, grot: torch.Tensor,
                         transl: torch.Tensor) -> torch.Tensor:  # fmt: skip
        """The keypoints ``_posed`` gives, from the ``_moments`` of ``rest``: no vertex skinned."""
        T = self.skeleton.transforms(rest.bone_poses, roma.rotvec_to_rotmat(pose_sub))
        kp = torch.einsum("bjrc,bjkc->bkr", T, moments)
        return torch.einsum("bij,bkj->bki", roma.rotvec_to_rotmat(grot), kp) + transl[:, None]

    # -- losses ----------------------------------------------------------------------

    @staticmethod
    def _kp_loss(kp: torch.Tensor, target: torch.Tensor, K: torch.Tensor, height: torch.Tensor) -> torch.Tensor:
        uv = project(kp, K)
        r = (uv - target[..., :2]).norm(dim=-1) / height[:, None]
        w = target[..., 2] * KP_WEIGHTS
        rho = torch.sqrt(r * r + 1e-4) - 1e-2  # Charbonnier: robust to a few wrong keypoints
        return (w * rho).sum(1) / w.sum(1).clamp(min=1e-6)

    def fit(self, detections: list[Detection], camera: Camera, init: BodyParams) -> FitResult:
        """Fit one body per detection hypothesis (batched); return the best one."""
        return self.fit_people([detections], camera, init)[0]

    def fit_people(self, people: list[list[Detection]], camera: Camera, init: BodyParams) -> list[FitResult]:
        """Several people's fits in one batch (``people``: each person's detection hypotheses;
        ``init``: their starts, row by row in that order): each person's best hypothesis, fitted.
        A step for several rows costs little more than for one (the fit is many small
        operations), and rows do not touch (Adam works element by element)."""
        o = self.options
        detections = [d for hyps in people for d in hyps]
        first = np.cumsum([0] + [len(h) for h in people])
        targets = _Targets.of(detections, camera)
        x = _Variables.of(init, self.limits)
        log = _Log()
        rest = self._rigid_stage(x, targets, log)
        log.lap("rigid")
        final = self._pose_stage(x, targets, rest, log)
        best = []  # each person's row
        for a, b in zip(first[:-1].tolist(), first[1:].tolist()):
            rows = list(range(a, b))
            mine = {k: v[rows] for k, v in final.items()}
            best.append(a + (self._choose_labelling(mine, targets.select(rows)) if o.mirror_guard and b - a > 1 else 0))
        x, targets = x.select(best), targets.select(best)
        log.select(best)
        log.lap("pose")
        chosen = [b - int(f) for b, f in zip(best, first[:-1])]
        if o.full_steps == 0:  # warm-started clip frames: pose only, no silhouette
            final = {k: v[best] for k, v in final.items() if not k.startswith("_")}
            return self._results(x, chosen, log, final)
        masks = MaskTargets([detections[b].mask for b in best], [float(h) for h in targets.height])
        losses = self._silhouette_stage(x, targets, masks, log)
        log.lap("full")
        return self._results(x, chosen, log, losses)

    def fit_each(self, detections: list[Detection], camera: Camera, init: BodyParams
                 ) -> tuple[BodyParams, torch.Tensor]:  # fmt: skip
        """Each detection's own body fitted, all at once (row i of ``init`` is detection i's
        start, its shape kept): rigid and pose stages only, no choice between rows; and each
        row's final loss (B,): keypoints, joint limits and the pull towards its start. A clip's
        warm-started frame fits everyone in it in one batch, which costs little more than one."""
        targets = _Targets.of(detections, camera)
        x = _Variables.of(init, self.limits)
        log = _Log()
        rest = self._rigid_stage(x, targets, log)
        final = self._pose_stage(x, targets, rest, log)
        pose = self.limits.full_pose(x.pose_sub.detach())
        params = BodyParams(global_rot=x.grot.detach(), transl=x.transl.detach(), pose=pose, shape=x.shape.detach())
        return params, final["total"].detach()

    def _rigid_stage(self, x: _Variables, t: _Targets, log: _Log) -> RestState:
        """Global rotation and translation only. The body does not change, so it is skinned once;
        returns its rest state for the pose stage."""
        with torch.no_grad():
            rest = self._rest(x.shape)
            _, kp_body = self._posed(rest, x.pose_sub, torch.zeros_like(x.grot), torch.zeros_like(x.transl))
        opt = torch.optim.Adam([x.grot, x.transl], lr=self.options.lr, eps=self.options.adam_eps)
        for _ in range(self.options.rigid_steps):
            kp = torch.einsum("bij,bkj->bki", roma.rotvec_to_rotmat(x.grot), kp_body) + x.transl[:, None]
            kp_loss = self._kp_loss(kp, t.keypoints, t.K, t.height)
            log.trace.append(kp_loss.detach())
            opt.zero_grad()
            kp_loss.sum().backward()
            opt.step()
            log.iterations += 1
        return rest

    def _pose_stage(self, x: _Variables, t: _Targets, rest: RestState, log: _Log) -> dict[str, torch.Tensor]:
        """All fitted bones, every hypothesis at once; returns the losses at its end (limits applied)."""
        o = self.options
        with torch.no_grad():
            moments = self._moments(rest)
        opt = torch.optim.Adam([x.grot, x.transl, x.pose_sub], lr=o.lr, eps=o.adam_eps)
        for it in range(o.pose_steps):
            _warm_up(opt, o.lr, it, o.warmup_steps)
            losses = self._pose_losses(rest, x, t, moments)
            log.trace.append(losses["keypoints"].detach())
            opt.zero_grad()
            losses["total"].sum().backward()
            opt.step()
            log.iterations += 1
        with torch.no_grad():
            x.pose_sub.copy_(self.limits.clamp(x.pose_sub))
            return self._pose_losses(rest, x, t, moments)

    def _choose_labelling(self, final: dict[str, torch.Tensor], t: _Targets) -> int:
        """1 if the mirrored labelling (hypothesis 1) explains the image clearly better, else 0.
        The bones' depth term is left out: it is the landmarks' word again, which the
        disagreement below already weighs (with it in, the kit's photos had mirrored people)."""
        tot = final["total"] + MIRROR_LANDMARKS_WEIGHT * _landmark_disagreement(final["_keypoints"], t.landmarks3d,
                                                                                t.keypoints[..., 2])  # fmt: skip
        if "bone_depth" in final:
            tot = tot - self.options.bone_depth_weight * final["bone_depth"]
        return 1 if float(tot[1]) < MIRROR_MARGIN * float(tot[0]) else 0

    def _silhouette_stage(self, x: _Variables, t: _Targets, masks: MaskTargets, log: _Log) -> dict[str, torch.Tensor]:
        """Pose, shape and the silhouette terms, for the chosen hypothesis; returns the final losses."""
        o = self.options
        shape = x.shape.clone().requires_grad_(True)
        x.shape = shape
        shape0 = shape.detach().clone()
        free = (~self._fixed_shape).float()
        opt = torch.optim.Adam([x.grot, x.transl, x.pose_sub, shape], lr=o.lr * 0.75, eps=o.adam_eps)
        for it in range(o.full_steps):
            _warm_up(opt, o.lr * 0.75, it, o.warmup_steps)
            losses = self._pose_losses(self._rest(shape), x, t)
            uv = project(losses.pop("_vertices")[:, self._sil_cols], t.K)
            sil = masks.outside(uv) + masks.coverage(uv)
            log.trace.append(losses["keypoints"].detach())
            total = losses["total"] + o.silhouette_weight * sil + o.shape_prior * (shape - shape0).pow(2).sum(1)
            opt.zero_grad()
            total.sum().backward()
            shape.grad *= free
            opt.step()
            with torch.no_grad():
                shape.clamp_(*self.body.shape_bounds)
            log.iterations += 1
        with torch.no_grad():
            x.pose_sub.copy_(self.limits.clamp(x.pose_sub))
            losses = self._pose_losses(self._rest(shape), x, t)
            uv = project(losses.pop("_vertices")[:, self._sil_cols], t.K)
            losses["silhouette"] = masks.outside(uv) + masks.coverage(uv)
        return losses

    def _results(self, x: _Variables, chosen: list[int], log: _Log, losses: dict[str, torch.Tensor]
                 ) -> list[FitResult]:  # fmt: skip
        """Each row's fit (``chosen``: the hypothesis each row is, among its person's)."""
        pose = self.limits.full_pose(x.pose_sub.detach())
        params = BodyParams(global_rot=x.grot.detach(), transl=x.transl.detach(), pose=pose, shape=x.shape.detach())
        return [
            FitResult(
                params=params.select(i).detach(),  # a copy: the hands pose each person in place
                hypothesis=h,
                iterations=log.iterations,
                stage_seconds=log.stage_seconds,
                losses={k: float(v[i]) for k, v in losses.items() if not k.startswith("_")},
                keypoint_trace=[float(v[i]) for v in log.trace],
            )
            for i, h in enumerate(chosen)
        ]

    def _pose_losses(self, rest: RestState, x: _Variables, t: _Targets, moments: torch.Tensor | None = None
                     ) -> dict[str, torch.Tensor]:  # fmt: skip
        """The fit's losses; with ``moments`` (``_moments`` of ``rest``) from the keypoints alone,
        else with the posed vertices (``_vertices``: the silhouette stage's)."""
        o = self.options
        if moments is None:
            v, kp = self._posed(rest, x.pose_sub, x.grot, x.transl)
        else:
            v, kp = None, self._posed_keypoints(rest, moments, x.pose_sub, x.grot, x.transl)
        kp_loss = self._kp_loss(kp, t.keypoints, t.K, t.height)
        limit = self.limits.penalty(x.pose_sub)
        prior = o.init_prior * (x.pose_sub - x.pose0).pow(2).sum((1, 2)) + 1e-3 * x.pose_sub.pow(2).sum((1, 2))
        total = kp_loss + 10.0 * limit + prior
        out = {"keypoints": kp_loss, "limits": limit, "prior": prior}
        if o.landmarks3d_weight > 0:
            l3 = _landmark_disagreement(kp, t.landmarks3d, t.keypoints[..., 2])
            total = total + o.landmarks3d_weight * l3
            out["landmarks3d"] = l3
        if o.bone_depth_weight > 0:
            depth = _bone_depth(kp, t.landmarks3d, t.keypoints[..., 2])
            total = total + o.bone_depth_weight * depth
            out["bone_depth"] = depth
        out["total"] = total
        if v is not None:
            out["_vertices"] = v
        out["_keypoints"] = kp
        return out


def _warm_up(opt: torch.optim.Optimizer, lr: float, step: int, warmup_steps: int) -> None:
    for g in opt.param_groups:
        g["lr"] = lr * min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else lr


# The limb bones (parent, child keypoint) whose depth direction ``_bone_depth`` holds, and how
# clearly MediaPipe must read it: the bone's depth at least this share of its length (a bone
# seen nearly side-on reads either way). 0.2 took one more person mirrored on the kit's photos.
# Upper arms, forearms, thighs, shins (COCO keypoint indices).
DEPTH_BONES = ((5, 7), (6, 8), (7, 9), (8, 10), (11, 13), (12, 14), (13, 15), (14, 16))
CLEAR_DEPTH = 0.3


def _bone_depth(kp: torch.Tensor, lm3d: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """(B,): how far the body's limb bones point in depth against the way MediaPipe's 3D
    landmarks clearly point them (towards the camera or away), weighed by the joints'
    confidence: each bone's depth over its length where its sign disagrees, else 0."""
    a, b = (list(x) for x in zip(*DEPTH_BONES))
    theirs = lm3d[:, b] - lm3d[:, a]
    mz = theirs[..., 2] / theirs.norm(dim=-1).clamp_min(1e-6)
    ours = kp[:, b] - kp[:, a]
    oz = ours[..., 2] / ours.norm(dim=-1).clamp_min(1e-6)
    against = torch.minimum(confidence[:, a], confidence[:, b]) * torch.relu(-torch.sign(mz) * oz)
    return torch.where(mz.abs() > CLEAR_DEPTH, against, torch.zeros_like(against)).sum(1)  # NaN landmarks: not clear


def _landmark_disagreement(kp: torch.Tensor, lm3d: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Confidence-weighted mean distance (m) between the body's keypoints and the detector's 3D
    landmarks, both hip-centred (the landmarks are camera-aligned: compare shapes, not positions)."""
    a = kp - kpl.pelvis(kp)
    b = lm3d - kpl.pelvis(lm3d)
    return (confidence * (a - b).norm(dim=-1)).mean(1)
