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

from .bodymodels.base import BodyModel
from .joints import JointLimits
from .lbs import CollapsedSkeleton
from .netinput import CROP_MARGIN, INPUT_SIZE, NUM_KEYPOINTS, camera_features, heatmaps

D = math.radians
L_HIP, R_HIP = 11, 12
# Keypoint pairs a detector may swap (body-model keypoint order).
PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (17, 18), (19, 20)]
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
    side = lambda **kw: {"flex": 0.0, "abd": _u(rng, -3, 10), "twist": _u(rng, -10, 10), "knee": _u(rng, 0, 10), "ankle": _u(rng, -10, 10), **kw}  # noqa: E731
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
    a = {"fwd": _u(rng, -15, 20), "raise": _u(rng, -50, -25), "twist": _u(rng, -40, 40), "elbow": _u(rng, 0, 40), "etwist": _u(rng, -40, 40)}
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
    v = np.zeros(3)
    v[axis] = angle
    return roma.rotvec_to_rotmat(torch.tensor(v)).numpy()


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


class SyntheticData:
    """Seeded batches of synthetic people as the network sees them."""

    def __init__(self, body: BodyModel, keypoint_noise: float = 1.0) -> None:
        self.body = body
        # Scales the keypoints' jitter and their outlier rate (1: the benchmark's detector-like set).
        self.keypoint_noise = keypoint_noise
        self.limits = JointLimits(body.bone_names, body.pose_limits)
        self.poses = PoseSampler(self.limits)
        self.skeleton = CollapsedSkeleton(body.bone_parents, self.limits.index.tolist(), body.skin_matrix)
        faces = torch.as_tensor(body.faces, dtype=torch.long)
        self._faces = faces
        # Without images only the keypoints' support and a sample for the box are posed.
        self._sparse_ids = torch.unique(torch.cat([body.keypoint_vertex_ids, torch.arange(0, body.num_vertices, 5)]))

    def bodies(
        self, shape: torch.Tensor, pose_rot: torch.Tensor, vertex_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posed vertices (all, or ``vertex_ids``) and keypoints in model space."""
        rest = self.body.rest(shape, vertex_ids, self.limits.index)
        T = self.skeleton.transforms(rest.bone_poses, pose_rot)
        v = self.skeleton.skin(rest.vertices, T, vertex_ids)
        return v, self.body.keypoints(v, vertex_ids)

    def batch(self, seeds: list[int] | np.ndarray, augment: bool = True, images: bool = True) -> SynthBatch:
        """Samples for ``seeds``; ``images=False``: keypoint input only (no mask or heatmaps),
        and ``vertices`` holds a vertex sample."""
        rngs = [np.random.default_rng([7, int(s)]) for s in seeds]
        b = len(rngs)
        shape = torch.tensor(np.stack([sample_phenotype(r, self.body.shape_labels) for r in rngs]), dtype=torch.float32)
        pose_aa = torch.tensor(np.stack([self.poses(r) for r in rngs]), dtype=torch.float32)
        pose_rot = roma.rotvec_to_rotmat(pose_aa)
        with torch.no_grad():
            v_model, kp_model = self.bodies(shape, pose_rot, None if images else self._sparse_ids)
        cams = [sample_camera_pose(r) for r in rngs]
        R = torch.tensor(np.stack([c[0] for c in cams]), dtype=torch.float32)
        K = torch.tensor(np.stack([c[1] for c in cams]), dtype=torch.float32)
        size = torch.tensor([[c[2], c[3]] for c in cams], dtype=torch.float32)

        # Place the pelvis: apparent height 30-95% of the image, anywhere near the middle.
        pelvis_model = kp_model[:, [L_HIP, R_HIP]].mean(1)
        extent = (v_model.amax(1) - v_model.amin(1)).norm(dim=1)  # body diagonal, pose-aware
        transl = []
        for i, r in enumerate(rngs):
            w, h = float(size[i, 0]), float(size[i, 1])
            f = float(K[i, 0, 0])
            depth = f * float(extent[i]) / (r.uniform(0.3, 0.95) * max(w, h) * 0.9)
            u, v = r.uniform(0.3, 0.7) * w, r.uniform(0.35, 0.65) * h
            pelvis = np.array([(u - w / 2) * depth / f, (v - h / 2) * depth / f, depth])
            transl.append(pelvis - (R[i] @ pelvis_model[i]).numpy())
        transl = torch.tensor(np.stack(transl), dtype=torch.float32)
        v_cam = torch.einsum("bij,bvj->bvi", R, v_model) + transl[:, None]
        kp_cam = torch.einsum("bij,bkj->bki", R, kp_model) + transl[:, None]

        uv_v = project_batch(v_cam, K)
        uv_k = project_batch(kp_cam, K)
        inside_v = _inside(uv_v, size)
        inside_k = _inside(uv_k, size)

        # Detector-like keypoints (image pixels).
        kp2d = torch.zeros(b, NUM_KEYPOINTS, 3)
        centers, sides = torch.zeros(b, 2), torch.zeros(b)
        for i, r in enumerate(rngs):
            pts = uv_v[i][inside_v[i]]
            lo, hi = pts.amin(0), pts.amax(0)
            box_h = float(max(hi[1] - lo[1], hi[0] - lo[0], 8.0))
            uv = uv_k[i].clone()
            conf = torch.tensor(r.uniform(0.55, 1.0, NUM_KEYPOINTS), dtype=torch.float32)
            if augment:
                k = self.keypoint_noise
                uv += torch.tensor(r.normal(0, r.uniform(0.004, 0.02) * box_h * k, (NUM_KEYPOINTS, 2)), dtype=torch.float32)
                out = r.random(NUM_KEYPOINTS) < 0.03 * k
                uv[out] += torch.tensor(r.normal(0, 0.1 * box_h, (int(out.sum()), 2)), dtype=torch.float32)
                for a, c in PAIRS:
                    if r.random() < 0.025:
                        uv[[a, c]] = uv[[c, a]]
                drop = torch.tensor(r.random(NUM_KEYPOINTS) < 0.05)
                conf[drop] = torch.tensor(r.uniform(0.0, 0.25, int(drop.sum())), dtype=torch.float32)
            conf[~inside_k[i]] = 0.0
            kp2d[i, :, :2], kp2d[i, :, 2] = uv, conf
            # The crop: around the box as a detector reports it, jittered like a real box.
            vis = kp2d[i, conf > 0.5, :2]
            allp = torch.cat([pts, vis]) if len(vis) else pts
            x0y0 = allp.amin(0).clamp(min=0)
            x1y1 = torch.minimum(allp.amax(0), size[i])
            side = float((x1y1 - x0y0).max().clamp(min=8.0)) * CROP_MARGIN
            center = (x0y0 + x1y1) / 2
            if augment:
                center = center + torch.tensor(r.normal(0, 0.03 * side, 2), dtype=torch.float32)
                side *= float(np.exp(r.normal(0, 0.06)))
                if r.random() < 0.1:  # truncated: the crop misses part of the person
                    center = center + torch.tensor(r.uniform(-0.2, 0.2, 2) * side, dtype=torch.float32)
            centers[i], sides[i] = center, side

        # Network input: mask and heatmaps in crop coordinates.
        to_crop = lambda uv: crop_coords(uv, centers, sides)  # noqa: E731
        if images:
            mask = self._render_masks(to_crop(uv_v), to_crop(project_batch(self._centroids(v_cam), K)), inside_v)
        else:
            mask = torch.zeros(b, INPUT_SIZE, INPUT_SIZE)
        if augment and images:
            mask = _augment_masks(mask, to_crop(kp2d[..., :2]), rngs)
        xy = to_crop(kp2d[..., :2])
        amp = kp2d[..., 2].clone()
        amp[amp < 0.3] = 0.0
        inside_crop = (xy.abs() <= 1.0).all(-1)
        amp[~inside_crop] = 0.0
        if augment:
            amp = _occlude(mask, xy, amp, rngs)
            kp2d[..., 2] = torch.where(amp > 0, kp2d[..., 2], kp2d[..., 2].clamp(max=0.2))
        inputs = torch.cat([mask[:, None], heatmaps(xy, amp)], 1) if images else torch.zeros(b, 0, 0, 0)

        pelvis_cam = kp_cam[:, [L_HIP, R_HIP]].mean(1)
        root_xy = to_crop(project_batch(pelvis_cam[:, None], K))[:, 0]
        log_depth = torch.log(pelvis_cam[:, 2] * sides / K[:, 0, 0])
        return SynthBatch(
            inputs=inputs, keypoints_in=torch.cat([xy, amp[..., None]], -1),
            camera_in=camera_features(centers, sides, K), shape=shape, pose=pose_rot, global_rot=R, transl=transl, K=K, image_size=size,
            crop_center=centers, crop_side=sides, keypoints2d=kp2d, keypoints3d=kp_cam, vertices=v_cam,
            root_xy=root_xy, log_depth=log_depth,
        )  # fmt: skip

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
        bi = torch.arange(b)[:, None].expand_as(ok)
        m = torch.zeros(b, s, s)
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


def _augment_masks(mask: torch.Tensor, kp_xy: torch.Tensor, rngs: list[np.random.Generator]) -> torch.Tensor:
    """Clothes, hair and a soft segmenter: grow, blob, erode and blur the masks."""
    s = INPUT_SIZE
    g = (torch.arange(s, dtype=torch.float32) + 0.5) / s * 2 - 1
    out = []
    for i, r in enumerate(rngs):
        m = mask[i][None, None]
        grow = int(r.choice([0, 0, 1, 1, 2, 3]))
        if grow:
            m = F.max_pool2d(m, 2 * grow + 1, 1, grow)
        # Blobs at keypoints: hair at the head, loose clothes at hips, knees or arms.
        for _ in range(int(r.choice([0, 0, 1, 2, 3]))):
            k = int(r.choice([0, 0, 3, 4, 11, 12, 13, 14, 7, 8]))
            cx, cy = (kp_xy[i, k] + torch.tensor(r.normal(0, 0.05, 2), dtype=torch.float32)).tolist()
            rx, ry = r.uniform(0.03, 0.12, 2)
            e = ((g[None, :] - cx) / rx) ** 2 + ((g[:, None] - cy) / ry) ** 2 <= 1.0
            m = torch.maximum(m, e.float()[None, None])
        if r.random() < 0.25:
            m = -F.max_pool2d(-m, 3, 1, 1)
        if r.random() < 0.05:  # a stray piece of background segmented as person
            cx, cy = r.uniform(-1, 1, 2)
            rx, ry = r.uniform(0.05, 0.2, 2)
            m = torch.maximum(m, ((((g[None, :] - cx) / rx) ** 2 + ((g[:, None] - cy) / ry) ** 2) <= 1).float()[None, None])
        if r.random() < 0.6:
            m = F.avg_pool2d(m, 3, 1, 1, count_include_pad=False)
        out.append(m[0, 0])
    return torch.stack(out)


def _occlude(mask: torch.Tensor, xy: torch.Tensor, amp: torch.Tensor, rngs: list[np.random.Generator]) -> torch.Tensor:
    """Occluders: a box over part of the person hides the mask and most keypoints under it."""
    s = INPUT_SIZE
    amp = amp.clone()
    for i, r in enumerate(rngs):
        if r.random() > 0.2:
            continue
        w, h = r.uniform(0.2, 0.8, 2)
        x0, y0 = r.uniform(-1, 1 - w), r.uniform(-1, 1 - h)
        j0, j1 = int((x0 + 1) / 2 * s), int((x0 + w + 1) / 2 * s)
        i0, i1 = int((y0 + 1) / 2 * s), int((y0 + h + 1) / 2 * s)
        mask[i, i0:i1, j0:j1] = 0.0
        under = (xy[i, :, 0] >= x0) & (xy[i, :, 0] <= x0 + w) & (xy[i, :, 1] >= y0) & (xy[i, :, 1] <= y0 + h)
        hide = under & torch.tensor(r.random(NUM_KEYPOINTS) < 0.8)
        amp[i, hide] = 0.0
    return amp
