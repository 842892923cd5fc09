"""Synthetic training and test data from the body model, made on the fly.

Each sample is a body (phenotype across sex, age, muscle, weight, height and
proportions), a pose within the joint limits, a camera (phone to telephoto
focal lengths, distance, tilt, roll, any turn about the vertical so side and
back views come up), and what a detector would report for it: the person
mask and 2D keypoints with confidences, drawn into the network's input crop.
Detector-like faults are added on purpose: keypoint noise and outliers,
dropped and left/right swapped keypoints, occluders, truncated crops, masks
grown by clothes and hair. Everything is seeded, so a seed names a sample.

Poses mix leg postures (standing, walking, running, sitting, crouching,
kneeling, lunging, random) with per-arm postures (down, swinging, forward,
raised, out, bent, on the hip, random), plus spine, neck and wrist variation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import roma
import torch
import torch.nn.functional as F

from inference import keypoints as kpl
from inference.bodymodels.base import BodyModel
from inference.bodymodels.joints import JointLimits
from inference.bodymodels.lbs import CollapsedSkeleton
from inference.camera import Camera
from inference.detect import Detection, mirrored
from inference.metrics import render_silhouette
from inference.regress.netinput import CROP_MARGIN, INPUT_SIZE, camera_features, heatmaps

D = math.radians
PAIRS = kpl.PAIRS  # keypoint pairs a detector may swap
# Seed ranges: training seeds are < 1e7 or >= 3e7; validation and the benchmark's held-out
# test set are never trained on.
VAL_SEED0 = 10_000_000
TEST_SEED0 = 20_000_000
# The benchmark's simulated 3D landmarks: the true keypoints plus this noise (m; across, depth).
LANDMARK_NOISE_M = (0.03, 0.03, 0.06)
# Model space (Anny: left +X, back +Y, up +Z) -> camera (x right, y down, z away), facing the camera.
FACING = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])

LEGS = ["stand", "walk", "run", "sit", "crouch", "kneel", "lunge", "random"]
LEG_P = [0.22, 0.16, 0.14, 0.12, 0.1, 0.07, 0.07, 0.12]
ARMS = ["down", "swing", "forward", "raised", "out", "bent", "hip", "random"]
ARM_P = [0.2, 0.14, 0.14, 0.14, 0.1, 0.1, 0.06, 0.12]


@dataclass
class SynthBatch:
    inputs: torch.Tensor  # (B, C, S, S) network input: mask and heatmaps
    keypoints_in: torch.Tensor  # (B, K, 3) network input: crop coordinates and weight
    camera_in: torch.Tensor  # (B, 3) network input: the crop's place in the camera (netinput.camera_features)
    shape: torch.Tensor  # (B, P) phenotype
    pose: torch.Tensor  # (B, N, 3, 3) local rotations of the fitted bones
    global_rot: torch.Tensor  # (B, 3, 3)
    transl: torch.Tensor  # (B, 3)
    K: torch.Tensor  # (B, 3, 3)
    image_size: torch.Tensor  # (B, 2) width, height
    crop_center: torch.Tensor  # (B, 2) image pixels
    crop_side: torch.Tensor  # (B,)
    keypoints2d: torch.Tensor  # (B, K, 3) detector-like keypoints (image pixels, confidence)
    keypoints3d: torch.Tensor  # (B, K, 3) true keypoints, camera space
    vertices: torch.Tensor  # (B, V, 3) true posed mesh, camera space
    root_xy: torch.Tensor  # (B, 2) true pelvis in crop coordinates
    log_depth: torch.Tensor  # (B,) log(pelvis depth * crop side / focal)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _legs(rng: np.random.Generator, kind: str) -> tuple[dict, dict, float]:
    """Per-side (flex, abduction, twist, knee, ankle) in degrees, and a forward lean."""
    def side(**kw) -> dict:
        return {"flex": 0.0, "abd": _u(rng, -3, 10), "twist": _u(rng, -10, 10), "knee": _u(rng, 0, 10),
                "ankle": _u(rng, -10, 10), **kw}  # fmt: skip

    lean = _u(rng, -5, 10)
    if kind == "stand":
        l, r = side(flex=_u(rng, -15, 15)), side(flex=_u(rng, -15, 15))
        l["abd"], r["abd"] = _u(rng, -5, 20), _u(rng, -5, 20)
    elif kind in ("walk", "run"):
        a = _u(rng, 10, 35) if kind == "walk" else _u(rng, 25, 65)
        ph = _u(rng, 0, 2 * math.pi)
        knee_hi = 45 if kind == "walk" else 120
        l = side(flex=a * math.sin(ph), knee=_u(rng, 0, knee_hi))
        r = side(flex=-a * math.sin(ph), knee=_u(rng, 0, knee_hi))
        lean = _u(rng, 0, 12) if kind == "walk" else _u(rng, 5, 30)
    elif kind == "sit":
        l = side(flex=_u(rng, 60, 105), knee=_u(rng, 50, 120), abd=_u(rng, -5, 30))
        r = side(flex=_u(rng, 60, 105), knee=_u(rng, 50, 120), abd=_u(rng, -5, 30))
        lean = _u(rng, -15, 25)
    elif kind == "crouch":
        l = side(flex=_u(rng, 85, 125), knee=_u(rng, 95, 148), abd=_u(rng, 0, 35), ankle=_u(rng, -30, 0))
        r = side(flex=_u(rng, 85, 125), knee=_u(rng, 95, 148), abd=_u(rng, 0, 35), ankle=_u(rng, -30, 0))
        lean = _u(rng, 10, 45)
    elif kind == "kneel":
        l = side(flex=_u(rng, -10, 30), knee=_u(rng, 80, 140))
        r = side(flex=_u(rng, -10, 95), knee=_u(rng, 60, 140))
        if rng.random() < 0.5:
            l, r = r, l
    elif kind == "lunge":
        l = side(flex=_u(rng, 40, 95), knee=_u(rng, 40, 110))
        r = side(flex=_u(rng, -35, 0), knee=_u(rng, 0, 90))
        if rng.random() < 0.5:
            l, r = r, l
        lean = _u(rng, 0, 30)
    else:
        l, r = None, None
    return l, r, lean


def _arm(rng: np.random.Generator, kind: str) -> dict:
    """(fwd, raise, twist, elbow, elbow twist) in degrees; raise is from Anny's A-pose (45 deg down)."""
    a = {
        "fwd": _u(rng, -15, 20),
        "raise": _u(rng, -50, -25),
        "twist": _u(rng, -40, 40),
        "elbow": _u(rng, 0, 40),
        "etwist": _u(rng, -40, 40),
    }
    if kind == "swing":
        a.update(fwd=_u(rng, -45, 60), elbow=_u(rng, 10, 110))
    elif kind == "forward":
        a.update(fwd=_u(rng, 40, 110), raise_=0, elbow=_u(rng, 0, 100))
        a["raise"] = _u(rng, -40, 40)
    elif kind == "raised":
        a.update(raise_=0, fwd=_u(rng, -30, 60), elbow=_u(rng, 0, 120))
        a["raise"] = _u(rng, 60, 148)
    elif kind == "out":
        a.update(fwd=_u(rng, -25, 35), elbow=_u(rng, 0, 60))
        a["raise"] = _u(rng, 20, 75)
    elif kind == "bent":
        a.update(fwd=_u(rng, -20, 70), elbow=_u(rng, 70, 150))
        a["raise"] = _u(rng, -50, 20)
    elif kind == "hip":
        a.update(fwd=_u(rng, -35, -5), elbow=_u(rng, 70, 120), twist=_u(rng, -60, 0))
        a["raise"] = _u(rng, -25, 5)
    a.pop("raise_", None)
    return a


class PoseSampler:
    """Local rotations (axis-angle, radians) of the fitted bones, within the joint limits."""

    def __init__(self, limits: JointLimits) -> None:
        self.limits = limits
        self.slot = {n: i for i, n in enumerate(limits.names)}

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        lim = self.limits
        n = len(lim.names)
        lo, hi = lim.lo.numpy(), lim.hi.numpy()
        p = np.zeros((n, 3))
        leg_kind = LEGS[rng.choice(len(LEGS), p=LEG_P)]
        l, r, lean = _legs(rng, leg_kind)
        arm_kinds = [ARMS[rng.choice(len(ARMS), p=ARM_P)] for _ in range(2)]
        if rng.random() < 0.4:  # symmetric arms are common (raised, down, on hips)
            arm_kinds[1] = arm_kinds[0]
        rand = lambda: rng.uniform(0.7 * lo, 0.7 * hi)  # noqa: E731
        full_random = rand()

        # Sides: Anny's y and z components mirror between left and right.
        for sign, suffix, leg, arm_kind in ((1, "L", l, arm_kinds[0]), (-1, "R", r, arm_kinds[1])):
            up, low, foot = (self.slot[f"{b}.{suffix}"] for b in ("upperleg01", "lowerleg01", "foot"))
            if leg is None:
                for i in (up, low, foot):
                    p[i] = full_random[i]
            else:
                p[up] = [D(-leg["flex"]), D(leg["twist"]) * sign, D(-leg["abd"]) * sign]
                p[low] = [D(leg["knee"]), 0.0, 0.0]
                p[foot] = [D(leg["ankle"]), D(_u(rng, -10, 10)) * sign, D(_u(rng, -10, 10)) * sign]
            ua, la, wr, cl = (self.slot[f"{b}.{suffix}"] for b in ("upperarm01", "lowerarm01", "wrist", "clavicle"))
            if arm_kind == "random":
                for i in (ua, la):
                    p[i] = full_random[i]
            else:
                a = _arm(rng, arm_kind)
                p[ua] = [D(a["fwd"]), D(a["twist"]) * sign, D(a["raise"]) * sign]
                p[la] = [D(a["elbow"]), D(a["etwist"]) * sign, 0.0]
            p[wr] = rng.uniform(0.6 * lo[wr], 0.6 * hi[wr])
            p[cl] = rng.uniform(0.5 * lo[cl], 0.5 * hi[cl])
        # Spine: the lean spread over three bones, plus twist and side bend.
        twist, side = rng.normal(0, D(10)), rng.normal(0, D(6))
        for b in ("spine05", "spine03", "spine01"):
            p[self.slot[b]] = [D(lean) / 3 + rng.normal(0, D(4)), twist / 3, side / 3]
        for b in ("neck01", "head"):
            p[self.slot[b]] = rng.normal(0, [D(12), D(15), D(8)])
        return np.clip(p, lo, hi)


def sample_phenotype(rng: np.random.Generator, labels: list[str]) -> np.ndarray:
    s = rng.uniform(0.0, 1.0, len(labels))
    if "age" in labels:
        # Mostly adults (young to old), some teenagers and children.
        s[labels.index("age")] = rng.uniform(0.55, 1.0) if rng.random() < 0.85 else rng.uniform(0.3, 0.55)
    return s


def _rot(axis: int, angle: float) -> np.ndarray:
    """Rotation by ``angle`` about coordinate axis ``axis`` (0: x, 1: y, 2: z)."""
    c, s = math.cos(angle), math.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = np.eye(3)
    R[i, i] = R[j, j] = c
    R[j, i], R[i, j] = s, -s
    return R


def sample_camera_pose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(global rotation (3, 3), intrinsics, width, height) for one photo."""
    aspect = [(4, 3), (3, 4), (16, 9), (9, 16), (1, 1)][rng.integers(5)]
    long_side = 1000.0
    w = long_side if aspect[0] >= aspect[1] else long_side * aspect[0] / aspect[1]
    h = long_side if aspect[1] >= aspect[0] else long_side * aspect[1] / aspect[0]
    f = float(np.hypot(w, h) * np.exp(rng.uniform(np.log(0.6), np.log(2.5))))  # wide phone .. short tele
    K = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    yaw = rng.uniform(-math.pi, math.pi)  # any turn: front, side and back views
    tilt = np.clip(rng.normal(0, D(12)), -D(40), D(40))
    roll = rng.normal(0, D(5)) if rng.random() > 0.05 else rng.uniform(-math.pi, math.pi)  # few acrobatics
    # Turn about the camera's vertical, then the camera's tilt and roll.
    R = _rot(2, roll) @ _rot(0, tilt) @ _rot(1, yaw) @ FACING
    return R, K, int(round(w)), int(round(h))


@dataclass
class MaskOps:
    """One sample's mask changes: clothes, hair and a soft segmenter (``_augment_masks``)."""

    grow: int  # dilation radius, input pixels
    blobs: list[tuple[int, np.ndarray, float, float]]  # (keypoint, offset (2,), x radius, y radius)
    erode: bool
    stray: tuple[float, float, float, float] | None  # a background piece: centre x, y, radii
    blur: bool


def _draw_mask_ops(r: np.random.Generator) -> MaskOps:
    grow = int(r.choice([0, 0, 1, 1, 2, 3]))
    blobs = []
    # Blobs at keypoints: hair at the head, loose clothes at hips, knees or arms.
    for _ in range(int(r.choice([0, 0, 1, 2, 3]))):
        k = int(r.choice([0, 0, 3, 4, 11, 12, 13, 14, 7, 8]))
        offset = r.normal(0, 0.05, 2)
        rx, ry = r.uniform(0.03, 0.12, 2)
        blobs.append((k, offset, rx, ry))
    erode = r.random() < 0.25
    stray = None
    if r.random() < 0.05:  # a stray piece of background segmented as person
        cx, cy = r.uniform(-1, 1, 2)
        rx, ry = r.uniform(0.05, 0.2, 2)
        stray = (cx, cy, rx, ry)
    return MaskOps(grow, blobs, erode, stray, r.random() < 0.6)


@dataclass
class Draws:
    """A batch's random numbers, read from each sample's own generator before any geometry, in
    the order the generator has always been read (so a seed still names the same sample).
    Drawing is per-sample NumPy; ``SyntheticData.make`` turns the draws into bodies, cameras
    and detections in batched torch on any device, so a GPU can train on the draws of many
    CPU workers. Noise is kept in units of the person's box or the crop's side, which only the
    geometry knows."""

    augment: bool
    images: bool
    shape: np.ndarray  # (B, P) phenotype
    pose: np.ndarray  # (B, N, 3) fitted bones' axis-angle
    rot: np.ndarray  # (B, 3, 3) global rotation, model to camera
    K: np.ndarray  # (B, 3, 3)
    size: np.ndarray  # (B, 2) width, height
    place: np.ndarray  # (B, 3) apparent size (fraction of the frame), pelvis u, v (fractions)
    conf: np.ndarray  # (B, K) keypoint confidence, dropped keypoints' already low
    jitter: np.ndarray  # (B, K, 2) keypoint noise, box heights
    outliers: np.ndarray  # (B, K, 2) outlier offsets, box heights (zero for the others)
    swap: np.ndarray  # (B, len(PAIRS)) bool: left/right pairs swapped
    crop_shift: np.ndarray  # (B, 2) crop centre jitter, crop sides
    crop_scale: np.ndarray  # (B,) log of the crop side's jitter
    truncate: np.ndarray  # (B, 2) crop shift that cuts the person, crop sides (zero for most)
    occluder: np.ndarray  # (B, 4) x0, y0, width, height in crop coordinates; width 0: none
    hide: np.ndarray  # (B, K) bool: keypoints the occluder hides if it covers them
    mask_ops: list[MaskOps | None]


class SyntheticData:
    """Seeded batches of synthetic people as the network sees them."""

    def __init__(self, body: BodyModel, keypoint_noise: float = 1.0) -> None:
        self.body = body
        # Scales the keypoints' jitter and their outlier rate (1: the benchmark's detector-like set).
        self.keypoint_noise = keypoint_noise
        self.limits = JointLimits(body.bone_names, body.pose_limits)
        self.poses = PoseSampler(self.limits)
        self.skeleton = CollapsedSkeleton(body.bone_parents, self.limits.index.tolist(), body.skin_matrix)
        self._faces = torch.as_tensor(body.faces, dtype=torch.long)
        # Without images only the keypoints' support and a sample for the box are posed.
        self._sparse_ids = torch.unique(torch.cat([body.keypoint_vertex_ids, torch.arange(0, body.num_vertices, 5)]))
        self._bone_ids = self.limits.index
        self.device = torch.device("cpu")

    def to(self, device: str | torch.device) -> "SyntheticData":
        """Make the geometry on ``device`` (the body model moves too); drawing stays on the CPU."""
        self.device = torch.device(device)
        self.body.to(self.device)
        self.skeleton.to(self.device)
        self._faces, self._sparse_ids = self._faces.to(self.device), self._sparse_ids.to(self.device)
        self._bone_ids = self._bone_ids.to(self.device)
        return self

    def bodies(
        self, shape: torch.Tensor, pose_rot: torch.Tensor, vertex_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posed vertices (all, or ``vertex_ids``) and keypoints in model space."""
        rest = self.body.rest(shape, vertex_ids, self._bone_ids)
        T = self.skeleton.transforms(rest.bone_poses, pose_rot)
        v = self.skeleton.skin(rest.vertices, T, vertex_ids)
        return v, self.body.keypoints(v, vertex_ids)

    def batch(self, seeds: list[int] | np.ndarray, augment: bool = True, images: bool = True) -> SynthBatch:
        """Samples for ``seeds``; ``images=False``: keypoint input only (no mask or heatmaps),
        and ``vertices`` holds a vertex sample."""
        return self.make(self.draw(seeds, augment, images))

    def draw(self, seeds: list[int] | np.ndarray, augment: bool = True, images: bool = True) -> Draws:
        """The random part of ``batch`` (CPU, per sample): cheap enough for workers to feed a GPU."""
        per = [self._draw_one(np.random.default_rng([7, int(s)]), augment, images) for s in seeds]
        cols = {k: np.stack([p[k] for p in per]) for k in per[0] if k != "mask_ops"}
        return Draws(augment=augment, images=images, mask_ops=[p["mask_ops"] for p in per], **cols)

    def _draw_one(self, r: np.random.Generator, augment: bool, images: bool) -> dict:
        nk = kpl.NUM
        d = {"shape": sample_phenotype(r, self.body.shape_labels), "pose": self.poses(r)}
        R, K, w, h = sample_camera_pose(r)
        d.update(rot=R, K=K, size=np.array([w, h], np.float64))
        # Apparent height 30-95% of the image, the pelvis anywhere near the middle.
        d["place"] = np.array([r.uniform(0.3, 0.95), r.uniform(0.3, 0.7), r.uniform(0.35, 0.65)])
        conf = r.uniform(0.55, 1.0, nk)
        d.update(jitter=np.zeros((nk, 2)), outliers=np.zeros((nk, 2)), swap=np.zeros(len(PAIRS), bool),
                 crop_shift=np.zeros(2), crop_scale=np.float64(0.0), truncate=np.zeros(2),
                 occluder=np.zeros(4), hide=np.zeros(nk, bool), mask_ops=None)  # fmt: skip
        if augment:
            k = self.keypoint_noise
            d["jitter"] = r.normal(0, r.uniform(0.004, 0.02) * k, (nk, 2))
            out = r.random(nk) < 0.03 * k
            d["outliers"][out] = r.normal(0, 0.1, (int(out.sum()), 2))
            d["swap"] = np.array([r.random() < 0.025 for _ in PAIRS])
            drop = r.random(nk) < 0.05
            conf[drop] = r.uniform(0.0, 0.25, int(drop.sum()))
            # The crop: jittered like a detector's box; 10% truncated (it misses part of the person).
            d["crop_shift"] = r.normal(0, 0.03, 2)
            d["crop_scale"] = np.float64(r.normal(0, 0.06))
            if r.random() < 0.1:
                d["truncate"] = r.uniform(-0.2, 0.2, 2)
            if images:
                d["mask_ops"] = _draw_mask_ops(r)
            if r.random() <= 0.2:  # an occluder
                ow, oh = r.uniform(0.2, 0.8, 2)
                d["occluder"] = np.array([r.uniform(-1, 1 - ow), r.uniform(-1, 1 - oh), ow, oh])
                d["hide"] = r.random(nk) < 0.8
        d["conf"] = conf
        return d

    def make(self, d: Draws) -> SynthBatch:
        """Bodies, cameras and detector-like input from ``draws``, batched on ``self.device``."""
        dev = self.device
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=dev)  # noqa: E731
        b = len(d.shape)
        shape = t(d.shape)
        pose_rot = roma.rotvec_to_rotmat(t(d.pose))
        with torch.no_grad():
            v_model, kp_model = self.bodies(shape, pose_rot, None if d.images else self._sparse_ids)
        R, K, size = t(d.rot), t(d.K), t(d.size)

        # Place the pelvis (float64: the depth divides by a small fraction).
        pelvis_model = kp_model[:, kpl.HIPS].mean(1)
        extent = (v_model.amax(1) - v_model.amin(1)).norm(dim=1).double()  # body diagonal, pose-aware
        w, h, f = size[:, 0].double(), size[:, 1].double(), K[:, 0, 0].double()
        place = torch.as_tensor(d.place, dtype=torch.float64, device=dev)
        depth = f * extent / (place[:, 0] * torch.maximum(w, h) * 0.9)
        u, v = place[:, 1] * w, place[:, 2] * h
        pelvis = torch.stack([(u - w / 2) * depth / f, (v - h / 2) * depth / f, depth], 1)
        transl = (pelvis - (R @ pelvis_model[..., None])[..., 0].double()).float()
        v_cam = torch.einsum("bij,bvj->bvi", R, v_model) + transl[:, None]
        kp_cam = torch.einsum("bij,bkj->bki", R, kp_model) + transl[:, None]

        uv_v = project_batch(v_cam, K)
        uv_k = project_batch(kp_cam, K)
        inside_v = _inside(uv_v, size)
        inside_k = _inside(uv_k, size)

        # Detector-like keypoints (image pixels): noise in units of the person's box.
        lo, hi = _masked_min(uv_v, inside_v), -_masked_min(-uv_v, inside_v)
        box_h = (hi - lo).amax(-1).clamp(min=8.0)[:, None, None]
        uv = uv_k + t(d.jitter) * box_h + t(d.outliers) * box_h
        for p, (a, c) in enumerate(PAIRS):
            s = torch.as_tensor(d.swap[:, p], device=dev)[:, None]
            ua, uc = uv[:, a], uv[:, c]
            uv[:, a], uv[:, c] = torch.where(s, uc, ua), torch.where(s, ua, uc)
        conf = torch.where(inside_k, t(d.conf), 0.0)
        kp2d = torch.cat([uv, conf[..., None]], -1)
        # The crop: around the box as a detector reports it, jittered like a real box.
        vis = conf > 0.5
        x0y0 = torch.minimum(lo, _masked_min(uv, vis)).clamp(min=0)
        x1y1 = torch.minimum(torch.maximum(hi, -_masked_min(-uv, vis)), size)
        sides = (x1y1 - x0y0).amax(-1).clamp(min=8.0) * CROP_MARGIN
        centers = (x0y0 + x1y1) / 2 + t(d.crop_shift) * sides[:, None]
        sides = sides * torch.exp(t(d.crop_scale))
        centers = centers + t(d.truncate) * sides[:, None]

        # Network input: mask and heatmaps in crop coordinates.
        to_crop = lambda uv: crop_coords(uv, centers, sides)  # noqa: E731
        mask = None
        if d.images:
            mask = self._render_masks(to_crop(uv_v), to_crop(project_batch(self._centroids(v_cam), K)), inside_v)
            if d.augment:
                mask = _augment_masks(mask, to_crop(kp2d[..., :2]), d.mask_ops)
        xy = to_crop(kp2d[..., :2])
        amp = kp2d[..., 2].clone()
        amp[amp < 0.3] = 0.0
        amp[~(xy.abs() <= 1.0).all(-1)] = 0.0
        if d.augment:
            amp, mask = _occlude(mask, xy, amp, t(d.occluder), torch.as_tensor(d.hide, device=dev))
            kp2d[..., 2] = torch.where(amp > 0, kp2d[..., 2], kp2d[..., 2].clamp(max=0.2))
        inputs = torch.cat([mask[:, None], heatmaps(xy, amp)], 1) if d.images else torch.zeros(b, 0, 0, 0, device=dev)

        pelvis_cam = kp_cam[:, kpl.HIPS].mean(1)
        root_xy = to_crop(project_batch(pelvis_cam[:, None], K))[:, 0]
        log_depth = torch.log(pelvis_cam[:, 2] * sides / K[:, 0, 0])
        return SynthBatch(
            inputs=inputs, keypoints_in=torch.cat([xy, amp[..., None]], -1),
            camera_in=camera_features(centers, sides, K), shape=shape, pose=pose_rot, global_rot=R, transl=transl, K=K,
            image_size=size,
            crop_center=centers, crop_side=sides, keypoints2d=kp2d, keypoints3d=kp_cam, vertices=v_cam,
            root_xy=root_xy, log_depth=log_depth,
        )  # fmt: skip

    def detector_view(self, seed: int) -> tuple[SynthBatch, Camera, list[Detection]]:
        """Sample ``seed``, its camera, and what a detector would report for it, as labelled and
        mirrored: the detector-like keypoints, the body's silhouette, simulated 3D landmarks
        (``LANDMARK_NOISE_M``) and the box whose crop the sample was drawn with."""
        s = self.batch([seed])
        kp_t = s.keypoints3d[0].numpy().astype(np.float64)
        verts_t = s.vertices[0].numpy().astype(np.float64)
        w, h = (int(x) for x in s.image_size[0])
        K = s.K[0].numpy().astype(np.float64)
        camera = Camera(K=K, width=w, height=h)
        mask = render_silhouette(verts_t.astype(np.float32), self.body.faces, K, w, h).astype(np.float32)
        kp2d = s.keypoints2d[0].numpy().astype(np.float64)
        rng = np.random.default_rng([11, seed])
        lm = kp_t - kp_t[kpl.HIPS].mean(0) + rng.normal(0, LANDMARK_NOISE_M, kp_t.shape)
        half = float(s.crop_side[0]) / CROP_MARGIN / 2
        c = s.crop_center[0].numpy().astype(np.float64)
        box = np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])
        det = Detection(box=box, keypoints2d=kp2d, landmarks3d=lm, mask=mask, score=float(kp2d[:, 2].mean()))
        return s, camera, [det, mirrored(det)]

    def _centroids(self, v: torch.Tensor) -> torch.Tensor:
        return v[:, self._faces].mean(2)

    @staticmethod
    def _render_masks(xy_v: torch.Tensor, xy_f: torch.Tensor, inside_v: torch.Tensor) -> torch.Tensor:
        """Splat vertices and face centres into the input grid, then close the small gaps."""
        b = xy_v.shape[0]
        s = INPUT_SIZE
        pts = torch.cat([xy_v, xy_f], 1)
        ok = torch.cat([inside_v, torch.ones_like(xy_f[..., 0], dtype=torch.bool)], 1)
        ij = ((pts + 1) / 2 * s).floor().long()
        ok &= (ij >= 0).all(-1) & (ij < s).all(-1)
        bi = torch.arange(b, device=pts.device)[:, None].expand_as(ok)
        m = torch.zeros(b, s, s, device=pts.device)
        m[bi[ok], ij[..., 1][ok], ij[..., 0][ok]] = 1.0
        m = F.max_pool2d(m[:, None], 3, 1, 1)  # closing: dilate, then erode
        m = -F.max_pool2d(-m, 3, 1, 1)
        return m[:, 0]


def project_batch(p: torch.Tensor, K: torch.Tensor, min_depth: float = 1e-3) -> torch.Tensor:
    """(B, N, 3) camera-space points to (B, N, 2) pixels, one camera per batch item."""
    z = p[..., 2:3].clamp(min=min_depth)
    f = torch.stack([K[:, 0, 0], K[:, 1, 1]], -1)[:, None]
    c = torch.stack([K[:, 0, 2], K[:, 1, 2]], -1)[:, None]
    return p[..., :2] / z * f + c


def crop_coords(uv: torch.Tensor, center: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    """(B, N, 2) pixels to crop coordinates (-1..1) of squares ``center`` (B, 2), ``side`` (B,)."""
    return (uv - center[:, None]) / (side[:, None, None] / 2)


def _inside(uv: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    return (uv >= 0).all(-1) & (uv < size[:, None]).all(-1)


def _masked_min(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(B, N, D) -> (B, D): the minimum over the points where ``keep`` (B, N); +inf where none."""
    return torch.where(keep[..., None], x, torch.inf).amin(1)


def _augment_masks(mask: torch.Tensor, kp_xy: torch.Tensor, ops: list[MaskOps]) -> torch.Tensor:
    """Clothes, hair and a soft segmenter: grow, blob, erode and blur the masks."""
    s = INPUT_SIZE
    g = (torch.arange(s, dtype=torch.float32, device=mask.device) + 0.5) / s * 2 - 1
    ellipse = lambda cx, cy, rx, ry: ((((g[None, :] - cx) / rx) ** 2 + ((g[:, None] - cy) / ry) ** 2) <= 1.0).float()  # noqa: E731
    out = []
    for i, op in enumerate(ops):
        m = mask[i][None, None]
        if op.grow:
            m = F.max_pool2d(m, 2 * op.grow + 1, 1, op.grow)
        for k, offset, rx, ry in op.blobs:
            cx, cy = (kp_xy[i, k] + torch.tensor(offset, dtype=torch.float32, device=mask.device)).tolist()
            m = torch.maximum(m, ellipse(cx, cy, rx, ry)[None, None])
        if op.erode:
            m = -F.max_pool2d(-m, 3, 1, 1)
        if op.stray is not None:
            m = torch.maximum(m, ellipse(*op.stray)[None, None])
        if op.blur:
            m = F.avg_pool2d(m, 3, 1, 1, count_include_pad=False)
        out.append(m[0, 0])
    return torch.stack(out)


def _occlude(
    mask: torch.Tensor | None, xy: torch.Tensor, amp: torch.Tensor, box: torch.Tensor, hide: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Occluders: a box (x0, y0, w, h; crop coordinates, w = 0 for none) over part of the person
    hides the mask and the keypoints under it that ``hide`` names."""
    x0, y0, w, h = (c[:, None] for c in box.unbind(-1))
    on = w > 0
    under = (xy[..., 0] >= x0) & (xy[..., 0] <= x0 + w) & (xy[..., 1] >= y0) & (xy[..., 1] <= y0 + h)
    amp = amp.masked_fill(on & under & hide, 0.0)
    if mask is not None:
        s = INPUT_SIZE
        px = lambda c: ((c + 1) / 2 * s).long()  # noqa: E731  (c >= -1: truncation is floor)
        idx = torch.arange(s, device=mask.device)
        cols = (idx >= px(x0)) & (idx < px(x0 + w))
        rows = (idx >= px(y0)) & (idx < px(y0 + h))
        mask = mask.masked_fill(on[..., None] & rows[:, :, None] & cols[:, None, :], 0.0)
    return amp, mask
