"""Hands: the finger bones and the wrist fitted to MediaPipe's 21 hand landmarks.

Each digit bends about its own anatomical axes, worked out from the rest skeleton: a finger
flexes about the axis across it in the palm's plane (positive towards the palm) and spreads
about the palm's normal; the thumb flexes towards the middle of the palm. So a finger cannot
bend backwards beyond a little hyperextension, whatever the rig's bone rolls are. Per digit the
fit moves four angles (base flexion and spread, middle and end flexion) and, per hand, the
wrist's rotation and the forearm's twist: 24 numbers.

The wrist starts where the palm's landmarks say (a rotation-only alignment of the palm in 3D),
the fingers where the landmarks' bend angles say; then Levenberg-Marquardt minimises the 2D
reprojection error of the 21 keypoints with the landmarks' 3D bone directions as a prior and a
pull towards a relaxed hand, all hands of a picture in one batch. Hands that were not found get
``RELAXED``, a loosely curled hand.

Only the kinematic chain from the forearm down is evaluated (no skinning), so a fit costs
milliseconds. The body model must have Anny's hand bones (``supports``); SMPL has none.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import roma
import torch

from .bodymodels.base import BodyModel, RestState, kept
from .bodymodels.joints import LIMITS
from .camera import Camera, project
from .detect.mediapipe_hands import wrist_crop

SIDES = ("L", "R")
NUM_DIGITS = 5
NUM_KEYPOINTS = 21
# MediaPipe's hand landmarks: the wrist, then per digit (thumb first) its four joints from the
# base to the tip. The parent of each, for bone directions.
KEYPOINT_PARENT = [-1] + [k - 1 if k % 4 != 1 else 0 for k in range(1, NUM_KEYPOINTS)]
PALM = [0, 1, 5, 9, 13, 17]  # keypoints the wrist's rotation alone places (the digits' bases)
# Per digit: base flexion, base spread, middle flexion, end flexion (degrees). The thumb's base is
# its carpometacarpal joint; a finger's its knuckle.
D = math.radians
THUMB_LIMITS = ((-20, -30, -10, -20), (50, 30, 60, 80))
FINGER_LIMITS = ((-20, -20, 0, -5), (90, 20, 110, 90))
# Where MediaPipe's wrist keypoint lies along Anny's wrist bone (0: its head, at the forearm's
# end; 1: its tail, where the metacarpals start): of 0, 0.3, 0.6 and 1, 0.3 left the smallest
# keypoint error after the fit on 213 real hands (docs/research-log.md).
WRIST_AT = 0.3
# The forearm's twist segment (the wrist's parent) turns about its own axis to let the palm face
# where it does (pronation and supination); the body fit leaves it at rest.
TWIST_LIMIT = D(85)
# The relaxed hand: a slight curl, growing from the index to the little finger.
RELAXED = np.radians([[10, 0, 10, 10], [10, 0, 20, 10], [15, 0, 25, 15], [20, 0, 30, 15], [25, 0, 35, 15]])


def digit_bones(side: str) -> list[list[str]]:
    """Per digit its bones from the wrist: (metacarpal,) base, middle, end phalanx."""
    out = [[f"finger1-1.{side}", f"finger1-2.{side}", f"finger1-3.{side}"]]
    for d in range(2, NUM_DIGITS + 1):
        out.append([f"metacarpal{d - 1}.{side}", f"finger{d}-1.{side}", f"finger{d}-2.{side}", f"finger{d}-3.{side}"])
    return out


def hand_bones(body: BodyModel, side: str) -> list[int]:
    """Skeleton indices of the bones the hand fit moves on one side: the forearm's twist
    segment, the wrist and the digits' bones."""
    names = body.bone_names
    wrist = names.index(f"wrist.{side}")
    return [int(body.bone_parents[wrist]), wrist] + [names.index(b) for digit in digit_bones(side) for b in digit]


def supports(body: BodyModel) -> bool:
    """Whether ``body``'s skeleton has the hand bones the fit moves."""
    names = set(body.bone_names)
    return all(b in names for s in SIDES for digit in digit_bones(s) for b in digit) and "wrist.L" in names


@dataclass
class HandRig:
    """Hand chains (one per hand, batched along the first axis) for given body shapes: the
    bones in evaluation order, their rest frames relative to their parents, and each digit's
    anatomical axes in its bones' own frames. Every chain has the same structure (the slots)."""

    bones: torch.Tensor  # (H, K) skeleton indices, the wrist first, each after its parent
    wrist_parent: torch.Tensor  # (H,) skeleton index of the forearm bone above the wrist
    relative: torch.Tensor  # (H, K, 4, 4) inv(rest parent) @ rest bone
    lengths: torch.Tensor  # (H, K)
    flex_axes: torch.Tensor  # (H, 5, 3, 3) per digit and phalanx, the flexion axis in the bone's frame
    spread_axes: torch.Tensor  # (H, 5, 3) per digit, the base's spread axis in the base bone's frame
    wrist_lo: torch.Tensor  # (H, 3) the wrist's axis-angle limits
    wrist_hi: torch.Tensor
    # The shared structure, as positions in ``bones``:
    levels: list[tuple[list[int], list[int]]]  # (slots, their parents' slots) by depth below the wrist
    keypoint_slot: list[int]  # per hand keypoint, the bone it lies on
    keypoint_tail: torch.Tensor  # (21,) where along its bone each keypoint lies (0: head, 1: tail)
    phalanx_slots: list[int]  # the digits' phalanges, digit by digit, base first (15)
    order: list[int]  # ``local_rotations``' pieces (wrist, phalanges, metacarpals) to bone order

    def __len__(self) -> int:
        return len(self.bones)

    @classmethod
    def build(cls, body: BodyModel, rest_poses: torch.Tensor, rest_tails: torch.Tensor, side: str) -> "HandRig":
        """One hand's chain; ``rest_poses`` (J, 4, 4), ``rest_tails`` (J, 3): one body shape's
        rest skeleton."""
        names = body.bone_names
        wrist = names.index(f"wrist.{side}")
        digits = [[names.index(b) for b in digit] for digit in digit_bones(side)]
        bones = [wrist] + [b for digit in digits for b in digit]
        parents = [int(body.bone_parents[b]) for b in bones]
        parent_slot = [bones.index(p) if p in bones else -1 for p in parents]
        depth = [0] * len(bones)
        for k, p in enumerate(parent_slot):
            depth[k] = 0 if p < 0 else depth[p] + 1
        levels = [([k for k in range(len(bones)) if depth[k] == d], [parent_slot[k] for k in range(len(bones))
                   if depth[k] == d]) for d in range(1, max(depth) + 1)]  # fmt: skip
        rest = rest_poses.double()
        relative = torch.linalg.inv(rest[parents]) @ rest[bones]
        tails = rest_tails.double()
        lengths = (tails[bones] - rest[bones, :3, 3]).norm(dim=-1)
        phalanges = [digit[-3:] for digit in digits]
        phalanx_slots = [bones.index(b) for ph in phalanges for b in ph]
        metacarpal_slots = [k for k in range(1, len(bones)) if k not in phalanx_slots]
        order = [([0] + phalanx_slots + metacarpal_slots).index(k) for k in range(len(bones))]
        keypoint_slot, tail = [0], [WRIST_AT]
        for d in range(NUM_DIGITS):
            slots = phalanx_slots[3 * d : 3 * d + 3]
            keypoint_slot += [slots[0], slots[1], slots[2], slots[2]]
            tail += [0.0, 0.0, 0.0, 1.0]

        head = lambda b: rest[b, :3, 3]  # noqa: E731
        unit = lambda v: v / v.norm()  # noqa: E731
        bases = [head(ph[0]) for ph in phalanges]
        # The palm's normal, towards the palm: the side of the knuckles' plane the thumb lies on
        # (in the rest pose the thumb stands in front of the palm).
        normal = unit(torch.linalg.cross(bases[1] - head(wrist), bases[4] - head(wrist)))
        if torch.dot(tails[phalanges[0][2]] - head(wrist), normal) < 0:
            normal = -normal
        palm_centre = (head(wrist) + bases[2]) / 2
        flex, spread = [], []
        for d, ph in enumerate(phalanges):
            axes = []
            for b in ph:
                along = unit(tails[b] - head(b))
                towards = normal if d else unit(palm_centre - head(b))  # the thumb curls into the palm
                towards = unit(towards - torch.dot(towards, along) * along)
                axes.append(rest[b, :3, :3].T @ unit(torch.linalg.cross(along, towards)))
            flex.append(torch.stack(axes))
            base_along = unit(tails[ph[0]] - head(ph[0]))
            spread_axis = unit(torch.linalg.cross(rest[ph[0], :3, :3] @ axes[0], base_along))
            spread.append(rest[ph[0], :3, :3].T @ spread_axis)
        lo, hi = LIMITS[f"wrist.{side}"]
        return cls(torch.tensor([bones]), torch.tensor([parents[0]]), relative.float()[None], lengths.float()[None],
                   torch.stack(flex).float()[None], torch.stack(spread).float()[None], torch.tensor([lo]),
                   torch.tensor([hi]), levels, keypoint_slot, torch.tensor(tail), phalanx_slots, order)  # fmt: skip

    @staticmethod
    def stack(rigs: list["HandRig"]) -> "HandRig":
        """The chains of ``rigs`` as one batch."""
        first = rigs[0]
        cat = lambda name: torch.cat([getattr(r, name) for r in rigs])  # noqa: E731
        batched = ("bones", "wrist_parent", "relative", "lengths", "flex_axes", "spread_axes", "wrist_lo", "wrist_hi")
        return HandRig(*(cat(n) for n in batched), first.levels, first.keypoint_slot, first.keypoint_tail,
                       first.phalanx_slots, first.order)  # fmt: skip

    def local_rotations(self, wrist: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
        """(H, K, 3, 3) local rotations of the chains' bones: the wrist's axis-angle ``wrist``
        (H, 3) and the digits' ``angles`` (H, 5, 4) radians; metacarpals stay at rest."""
        h = wrist.shape[0]
        flex = about_axes(angles[:, :, [0, 2, 3]], *self._flex_skew)  # (H, 5, 3, 3, 3)
        spread = about_axes(angles[:, :, 1], *self._spread_skew)  # (H, 5, 3, 3)
        base = flex[:, :, 0] @ spread
        phalanges = torch.cat([base[:, :, None], flex[:, :, 1:]], 2).reshape(h, 3 * NUM_DIGITS, 3, 3)
        metacarpals = torch.eye(3).expand(h, len(self.order) - 1 - 3 * NUM_DIGITS, 3, 3)
        pieces = torch.cat([roma.rotvec_to_rotmat(wrist)[:, None], phalanges, metacarpals], 1)
        return pieces[:, self.order]

    def keypoints(self, forearm: torch.Tensor, rotations: torch.Tensor, twist: torch.Tensor | None = None
                  ) -> torch.Tensor:  # fmt: skip
        """(H, 21, 3) the hand keypoints (model space) from the forearm bones' posed frames
        ``forearm`` (H, 4, 4), the chains' local ``rotations`` (H, K, 3, 3) and the forearms'
        further ``twist`` (H,) radians about their own axis."""
        turn, place = forearm[:, :3, :3], forearm[:, :3, 3]
        if twist is not None:
            turn = turn @ twist_rotations(twist)
        rel_turn, rel_place = self.relative[..., :3, :3], self.relative[..., :3, 3]
        # Level by level below the wrist, each level's bones in one batch (rotations and heads
        # apart: cheaper than 4x4 frames); ``turns``/``heads`` hold them in the order computed.
        turns = (turn @ rel_turn[:, 0] @ rotations[:, 0])[:, None]
        heads = (place + (turn @ rel_place[:, 0, :, None])[..., 0])[:, None]
        level_parents, keypoint_index = self._order
        for (slots, _), index in zip(self.levels, level_parents):
            parent_turn, parent_head = turns.index_select(1, index), heads.index_select(1, index)
            turns = torch.cat([turns, parent_turn @ rel_turn[:, slots] @ rotations[:, slots]], 1)
            heads = torch.cat([heads, parent_head + (parent_turn @ rel_place[:, slots, :, None])[..., 0]], 1)
        along = turns.index_select(1, keypoint_index)[..., :, 1] * self.lengths[:, self.keypoint_slot, None]
        return heads.index_select(1, keypoint_index) + along * self.keypoint_tail[:, None]

    @cached_property
    def _order(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Where ``keypoints`` finds each level's parents and each keypoint's bone among the
        bones in the order it computes them."""
        position, parents = {0: 0}, []
        for slots, parent_slots in self.levels:
            parents.append(torch.tensor([position[p] for p in parent_slots]))
            position.update({s: len(position) + i for i, s in enumerate(slots)})
        return parents, torch.tensor([position[k] for k in self.keypoint_slot])

    @cached_property
    def _flex_skew(self) -> tuple[torch.Tensor, torch.Tensor]:
        return skew(self.flex_axes)

    @cached_property
    def _spread_skew(self) -> tuple[torch.Tensor, torch.Tensor]:
        return skew(self.spread_axes)

    def clamp(self, wrist: torch.Tensor, angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = digit_limits()
        wrist = torch.maximum(torch.minimum(wrist, self.wrist_hi), self.wrist_lo)
        return wrist, torch.maximum(torch.minimum(angles, hi), lo)


_RIGS: OrderedDict = OrderedDict()  # (id of a rest state, side) -> (the rest state, its hand rig)
RIGS_KEPT = 16  # a clip of four people: 4 x 2 hands, twice over


def hand_rig(body: BodyModel, rest: RestState, side: str) -> HandRig:
    """One side's ``HandRig`` for ``rest`` (one body shape's rest state), kept for a rest state
    asked for again: Anny gives a shape that is not being fitted the same rest state each time,
    and a clip's hand search asks for each person's in every frame."""
    make = lambda: (rest, HandRig.build(body, rest.bone_poses[0], rest.bone_tails[0], side))  # noqa: E731
    return kept(_RIGS, RIGS_KEPT, (id(rest), side), make)[1]  # the entry keeps ``rest``, so its id stays its own


def skew(axes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 3, 3) K, the cross-product matrix of each unit axis (..., 3), and K @ K."""
    k = torch.zeros(*axes.shape[:-1], 3, 3)
    x, y, z = axes.unbind(-1)
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -z, y, -x
    k = k - k.transpose(-1, -2)
    return k, k @ k


def about_axes(angles: torch.Tensor, k: torch.Tensor, k2: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotations by ``angles`` (...) about fixed unit axes given by ``skew`` (Rodrigues:
    I + sin(a) K + (1 - cos(a)) K^2, cheap to differentiate)."""
    a = angles[..., None, None]
    return torch.eye(3) + torch.sin(a) * k + (1 - torch.cos(a)) * k2


def homogeneous(rotations: torch.Tensor) -> torch.Tensor:
    """(..., 4, 4) from (..., 3, 3)."""
    bottom = torch.tensor([0.0, 0, 0, 1]).expand(*rotations.shape[:-2], 1, 4)
    return torch.cat([torch.cat([rotations, torch.zeros_like(rotations[..., :1])], -1), bottom], -2)


def twist_rotations(twist: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotations by ``twist`` (...) radians about a bone's own (Y) axis."""
    return roma.rotvec_to_rotmat(twist[..., None] * torch.tensor([0.0, 1.0, 0.0]))


@lru_cache(maxsize=1)
def digit_limits() -> tuple[torch.Tensor, torch.Tensor]:
    """(5, 4) low and high angle limits, radians."""
    lo = torch.tensor([THUMB_LIMITS[0]] + [FINGER_LIMITS[0]] * 4, dtype=torch.float32)
    hi = torch.tensor([THUMB_LIMITS[1]] + [FINGER_LIMITS[1]] * 4, dtype=torch.float32)
    return torch.deg2rad(lo), torch.deg2rad(hi)


def bend_angles(landmarks: np.ndarray) -> np.ndarray:
    """(5, 4) the digits' angles read off MediaPipe's 3D hand landmarks (21, 3): each joint's
    flexion is the angle between the bones either side of it (the thumb's base keeps
    ``RELAXED``'s); spreads are zero. The fit's start."""
    out = RELAXED.copy()
    for d in range(NUM_DIGITS):
        p = landmarks[[0] + list(range(4 * d + 1, 4 * d + 5))]
        seg = np.diff(p, axis=0)
        seg /= np.maximum(np.linalg.norm(seg, axis=1, keepdims=True), 1e-9)
        bends = np.degrees(np.arccos(np.clip((seg[:-1] * seg[1:]).sum(1), -1, 1)))  # at base, middle, end
        out[d, [0, 2, 3]] = np.radians(bends)
        if d == 0:
            out[d, 0] = RELAXED[0, 0]
        out[d, 1] = 0.0
    lo, hi = digit_limits()
    return np.clip(out, lo.numpy(), hi.numpy())


def kabsch(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(3, 3) the rotation R minimising |R (source - mean) - (target - mean)| over the points (N, 3)."""
    s = (source - source.mean(0)).double()
    t = (target - target.mean(0)).double()
    u, _, vt = torch.linalg.svd(s.T @ t)
    d = torch.sign(torch.linalg.det(vt.T @ u.T))
    return (vt.T @ torch.diag(torch.tensor([1.0, 1.0, float(d)], dtype=torch.float64)) @ u.T).float()


@dataclass
class HandTarget:
    """One hand to fit: its chain, where the body put the forearm, and what was detected."""

    rig: HandRig  # one chain
    forearm: torch.Tensor  # (4, 4) the forearm bone's posed frame, model space
    rotation: torch.Tensor  # (3, 3) model space -> camera space
    translation: torch.Tensor  # (3,)
    wrist: torch.Tensor  # (3,) the body fit's wrist axis-angle
    keypoints2d: np.ndarray  # (21, 3) detected pixels and score
    landmarks3d: np.ndarray  # (21, 3) MediaPipe's metric hand landmarks (camera-aligned axes)
    previous: "FittedHand | None" = None  # the same hand fitted in the frame before (a clip): the start


@dataclass
class FittedHand:
    rotations: np.ndarray  # (K, 3, 3) local rotations of the chain's bones (``HandRig.bones``)
    twist: float  # the forearm's further twist about its own axis, radians
    reprojection_error: float  # median keypoint error after the fit, share of the hand's size
    wrist: np.ndarray  # (3,) the wrist's axis-angle
    angles: np.ndarray  # (5, 4) the digits' angles (radians)


@dataclass
class HandFitOptions:
    # Levenberg-Marquardt with a finite-difference Jacobian (all hands and all 24 nudges in one
    # batch): 10 iterations left 4.22% median keypoint error on 220 real hands and 13.1 / 14.7
    # degrees of flexion error on two sets of rendered hands, in a sixth of the time of 40 Adam
    # steps (4.36%, 14.9 / 16.7 degrees; docs/research-log.md).
    iterations: int = 10
    warm_iterations: int = 4  # from the frame before's fit (a clip), where every hand has one
    keypoint_sigma: float = 0.05  # 2D error (share of the hand's size) that costs as much as...
    direction_weight: float = 0.25  # ... this weight times a 3D bone direction off by ``direction_sigma``
    direction_sigma: float = 0.06  # 1 - cos: about 20 degrees
    # Pull towards ``RELAXED`` per radian squared: MediaPipe's keypoints are noisy; 5 / 10 / 20
    # gave 14.5 / 13.1 / 13.5 degrees of flexion error on rendered hands (16.4 / 14.7 / 13.5 on a
    # held-out set) for 3.8 / 4.2 / 4.9% keypoint error on real hands.
    relaxed_weight: float = 10.0
    damping: float = 1e-2  # Levenberg-Marquardt's first damping, relative to the curvature


def hand_size(keypoints2d: np.ndarray) -> float:
    """A hand's size in pixels: the diagonal of its keypoints' box."""
    span = keypoints2d[:, :2].max(0) - keypoints2d[:, :2].min(0)
    return float(max(np.hypot(*span), 1.0))


TWIST_GRID = torch.linspace(-TWIST_LIMIT, TWIST_LIMIT, 35)


def start(target: HandTarget) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(1, 3), (1, 5, 4) and (1,): the palm turned so its keypoints line up with the
    landmarks' (shared between the forearm's twist and the wrist, so the wrist stays within
    its limits), and the digits at the landmarks' bend angles."""
    rig = target.rig
    with torch.no_grad():
        rot = rig.local_rotations(target.wrist[None], torch.zeros(1, NUM_DIGITS, 4))
        kp = rig.keypoints(target.forearm[None], rot)[0] @ target.rotation.T + target.translation
        turn = kabsch(kp[PALM], torch.tensor(target.landmarks3d[PALM], dtype=torch.float32))
        rel = rig.relative[0, 0, :3, :3]
        a = target.rotation @ target.forearm[:3, :3] @ rel
        wanted = a.T @ turn @ a @ roma.rotvec_to_rotmat(target.wrist)  # the wrist's local rotation, untwisted
        # With the forearm twisted by t: rel^T Ry(t)^T rel @ wanted is what the wrist must do.
        twisted = rel.T @ twist_rotations(TWIST_GRID).transpose(-1, -2) @ rel @ wanted
        wrists = roma.rotmat_to_rotvec(twisted)
        over = (torch.relu(wrists - rig.wrist_hi) + torch.relu(rig.wrist_lo - wrists)).pow(2).sum(-1)
        best = int(torch.argmin(over + 1e-3 * TWIST_GRID.pow(2)))
    angles = torch.tensor(bend_angles(target.landmarks3d), dtype=torch.float32)
    wrist, angles = rig.clamp(wrists[best][None], angles[None])
    return wrist, angles, TWIST_GRID[best : best + 1].clone()


NUM_PARAMS = 3 + 4 * NUM_DIGITS + 1  # per hand: the wrist's axis-angle, the digits' angles, the twist
NUDGE = 1e-3  # radians: the finite-difference step of the Jacobian


def fit_hands(targets: list[HandTarget], camera: Camera, options: HandFitOptions | None = None) -> list[FittedHand]:
    """Each target's wrist and digits fitted to its detection, all in one batch.

    Levenberg-Marquardt on ``x`` (H, 24): wrist, angles and twist, kept within their limits
    (numbers at a limit held there, each step clamped). Every evaluation runs the H hands and
    their 24 nudged copies as one batch of 25 H chains: the Jacobian comes from one call, and
    that call also tries the step.
    """
    if not targets:
        return []
    opt = options or HandFitOptions()
    n, copies = len(targets), 1 + NUM_PARAMS
    starts = [start(t) if t.previous is None else
              (torch.tensor(t.previous.wrist)[None], torch.tensor(t.previous.angles)[None],
               torch.tensor([t.previous.twist], dtype=torch.float32)) for t in targets]  # fmt: skip
    iterations = opt.warm_iterations if all(t.previous is not None for t in targets) else opt.iterations
    x = torch.cat([torch.cat([w, a.flatten(1), t[:, None]], 1) for w, a, t in starts])  # (H, 24)
    # Everything per hand repeated for the copies (copy-major: copy c of hand h at c * H + h).
    hands = HandRig.stack([t.rig for t in targets])
    rig = HandRig.stack([hands] * copies)
    each = lambda v: v.repeat(copies, *[1] * (v.dim() - 1))  # noqa: E731
    forearm = each(torch.stack([t.forearm for t in targets]))
    R = each(torch.stack([t.rotation for t in targets]))
    t_cam = each(torch.stack([t.translation for t in targets]))
    uv = torch.tensor(np.stack([t.keypoints2d[:, :2] for t in targets]), dtype=torch.float32)
    uv = each(uv - uv[:, :1])  # relative to the wrist: where the arm put the hand is the body fit's business
    size = each(torch.tensor([hand_size(t.keypoints2d) for t in targets], dtype=torch.float32))[:, None, None]
    parent, child = torch.tensor(KEYPOINT_PARENT[1:]), torch.arange(1, NUM_KEYPOINTS)
    w = torch.tensor(np.stack([t.landmarks3d for t in targets]), dtype=torch.float32)
    dirs = each(torch.nn.functional.normalize(w[:, child] - w[:, parent], dim=-1))
    relaxed = torch.tensor(RELAXED, dtype=torch.float32).flatten()
    K = torch.tensor(camera.K, dtype=torch.float32)
    # Residuals whose squares sum to: mean keypoint error^2 / sigma^2 + weight * mean (1 - cos) of
    # the bone directions / sigma + weight * mean squared angle off relaxed (|a - b|^2 = 2 (1 - cos)).
    scale_kp = 1 / (opt.keypoint_sigma * math.sqrt(NUM_KEYPOINTS))
    scale_dir = math.sqrt(opt.direction_weight / (2 * opt.direction_sigma * (NUM_KEYPOINTS - 1)))
    scale_relaxed = math.sqrt(opt.relaxed_weight / relaxed.numel())
    lo, hi = digit_limits()
    lo = torch.cat([hands.wrist_lo, lo.flatten().expand(n, -1), torch.full((n, 1), -TWIST_LIMIT)], 1)
    hi = torch.cat([hands.wrist_hi, hi.flatten().expand(n, -1), torch.full((n, 1), TWIST_LIMIT)], 1)
    nudges = torch.cat([torch.zeros(1, NUM_PARAMS), NUDGE * torch.eye(NUM_PARAMS)])[:, None]  # (25, 1, 24)

    def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(H, M) the residuals at ``x`` (H, 24) and (H, M, 24) their Jacobian."""
        xs = (x[None] + nudges).flatten(0, 1)
        wrist, angles, twist = xs[:, :3], xs[:, 3:-1].reshape(-1, NUM_DIGITS, 4), xs[:, -1]
        kp = torch.einsum("hij,hkj->hki", R, rig.keypoints(forearm, rig.local_rotations(wrist, angles), twist))
        kp = kp + t_cam[:, None]
        proj = project(kp, K)
        d = torch.nn.functional.normalize(kp[:, child] - kp[:, parent], dim=-1)
        r = torch.cat([((proj - proj[:, :1] - uv) / size).flatten(1) * scale_kp,
                       (d - dirs).flatten(1) * scale_dir, (xs[:, 3:-1] - relaxed) * scale_relaxed], 1)  # fmt: skip
        r = r.reshape(copies, n, -1)
        return r[0], ((r[1:] - r[:1]) / NUDGE).permute(1, 2, 0)

    with torch.no_grad():
        x = torch.minimum(torch.maximum(x, lo), hi)
        r, J = evaluate(x)
        damping = torch.full((n, 1), opt.damping)
        for _ in range(iterations):
            A = J.transpose(1, 2) @ J
            g = (J.transpose(1, 2) @ r[..., None])[..., 0]
            # A number at a limit that the step would push past is held there (its row and column
            # out of the solve): clamping such a step afterwards bends the others' step off course,
            # and rejected steps stall the fit (the worst tenth of real hands: 18% error, not 10%).
            held = ((x <= lo + 1e-6) & (g > 0)) | ((x >= hi - 1e-6) & (g < 0))
            free = (~held).float()
            A = A * free[:, :, None] * free[:, None, :] + torch.diag_embed(held.float())
            g = g * free
            diag = torch.diagonal(A, dim1=1, dim2=2)
            step = torch.linalg.solve(A + torch.diag_embed(damping * diag + 1e-6), -g)
            tried = torch.minimum(torch.maximum(x + step, lo), hi)
            r_new, J_new = evaluate(tried)
            better = r_new.pow(2).sum(1) < r.pow(2).sum(1)
            x, r = torch.where(better[:, None], tried, x), torch.where(better[:, None], r_new, r)
            J = torch.where(better[:, None, None], J_new, J)
            damping = torch.where(better[:, None], damping * 0.3, damping * 4)
        wrist, angles, twist = x[:, :3], x[:, 3:-1].reshape(n, NUM_DIGITS, 4), x[:, -1]
        rotations = hands.local_rotations(wrist, angles).numpy()
    err = (r[:, : 2 * NUM_KEYPOINTS].reshape(n, NUM_KEYPOINTS, 2) / scale_kp).norm(dim=-1)[:, 1:].median(dim=1)
    return [FittedHand(rotations[i], float(twist[i]), float(err.values[i]), wrist[i].numpy().copy(),
                       angles[i].numpy().copy()) for i in range(n)]  # fmt: skip


def relaxed_rotations(rig: HandRig, wrist: torch.Tensor) -> torch.Tensor:
    """(K, 3, 3) a one-hand chain's local rotations for a hand that was not fitted: the wrist
    (3,) as the body fit left it, the digits in ``RELAXED``."""
    return rig.local_rotations(wrist[None], torch.tensor(RELAXED, dtype=torch.float32)[None])[0]


MIN_WRIST_CONF = 0.3  # the body's wrist must be seen this well for its hand to be searched
NO_FINGERS = "not fitted: the "


def no_fingers(body: BodyModel) -> str:
    """Why a body model's hands are not fitted (it has no finger bones)."""
    return f"{NO_FINGERS}{body.name} body has no finger bones"


@dataclass
class PersonHands:
    """A person's two hands in one picture (left, right: the person's own)."""

    keypoints2d: np.ndarray  # (2, 21, 3) detected: pixels and score (zeros: not detected)
    fitted: np.ndarray  # (2,) bool: the fingers were fitted (else relaxed)
    error: np.ndarray  # (2,) median 2D keypoint error after the fit, share of the hand's size (NaN: none)
    why_not: list[str]  # per hand, why it was not fitted ("" where it was)
    fits: list[FittedHand | None]  # per hand, the fit (a clip's next frame starts from it)

    @classmethod
    def none(cls, why: str = "") -> "PersonHands":
        return cls(np.zeros((2, NUM_KEYPOINTS, 3), np.float32), np.zeros(2, bool), np.full(2, np.nan), [why, why],
                   [None, None])  # fmt: skip

    def notes(self, who: str) -> list[str]:
        """What a result should say about the hands not fitted (``who``: the person)."""
        if self.why_not[0].startswith(NO_FINGERS):
            return [f"{who}: hands {self.why_not[0]}"]
        if not self.why_not[0] or self.why_not[0] != self.why_not[1]:
            return [f"{who}: {side} hand {why}; it is relaxed"
                    for side, why in zip(("left", "right"), self.why_not) if why]  # fmt: skip
        return [f"{who}: hands {self.why_not[0]}; they are relaxed"]


def fit_people_hands(detector, rgb: np.ndarray, body: BodyModel, camera: Camera, poses: list,
                     wrists_seen: list[np.ndarray], options: HandFitOptions | None = None,
                     previous: list[PersonHands | None] | None = None) -> list[PersonHands]:  # fmt: skip
    """Every person's hands in one picture: each hand searched for around the wrist the body fit
    put it at (where ``wrists_seen``: (2,) bool, left and right), and the fingers and wrist of
    each hand found fitted to it; the other hands relaxed. ``poses``: each person's fitted
    ``BodyParams`` (batch of one), whose hand bones are overwritten. ``detector``: a
    ``detect.mediapipe_hands.HandDetector``. ``previous``: each person's hands in the frame
    before (a clip), where the fits start from."""
    if not supports(body):
        return [PersonHands.none(no_fingers(body)) for _ in poses]
    out = [PersonHands.none() for _ in poses]
    searches, slots = [], []  # the hands to search for: their crops, and what their fit needs
    K = torch.tensor(camera.K, dtype=torch.float32)
    for p, (params, seen) in enumerate(zip(poses, wrists_seen)):
        with torch.no_grad():
            rest = body.rest(params.shape[:1], body.keypoint_vertex_ids)
            _, frames = body.pose(rest, roma.rotvec_to_rotmat(params.pose[:1]), body.keypoint_vertex_ids)
            R = roma.rotvec_to_rotmat(params.global_rot[0])
            t = params.transl[0]
        for s, side in enumerate(SIDES):
            rig = hand_rig(body, rest, side)
            forearm = frames[0, rig.wrist_parent[0]]
            wrist = params.pose[0, rig.bones[0, 0]].clone()
            with torch.no_grad():
                relaxed = relaxed_rotations(rig, wrist)
                kp = rig.keypoints(forearm[None], relaxed[None])[0] @ R.T + t
                params.pose[0, rig.bones[0]] = roma.rotmat_to_rotvec(relaxed)
            if not seen[s] or float(kp[0, 2]) <= 0:
                out[p].why_not[s] = "not in view"
                continue
            uv = project(torch.stack([kp[0], forearm[:3, 3] @ R.T + t]), K).numpy()
            hand_px = camera.focal * float((kp[9] - kp[0]).norm() + (kp[12] - kp[9]).norm()) / float(kp[0, 2])
            searches.append((wrist_crop(uv[0], uv[1], hand_px), uv[0]))
            slots.append((p, s, rig, forearm, R, t, wrist))
    targets, fitted_slots = [], []
    for (p, s, rig, forearm, R, t, wrist), found in zip(slots, detector.detect_many(rgb, searches)):
        if found is None:
            out[p].why_not[s] = "not found"
            continue
        out[p].keypoints2d[s] = found.keypoints2d
        before = previous[p].fits[s] if previous and previous[p] is not None else None
        targets.append(HandTarget(rig, forearm, R, t, wrist, found.keypoints2d, found.landmarks3d, before))
        fitted_slots.append((p, s))
    for (p, s), fitted, target in zip(fitted_slots, fit_hands(targets, camera, options), targets):
        pose = poses[p].pose[0]
        pose[target.rig.bones[0]] = roma.rotmat_to_rotvec(torch.tensor(fitted.rotations))
        forearm = target.rig.wrist_parent[0]
        pose[forearm] = roma.rotmat_to_rotvec(roma.rotvec_to_rotmat(pose[forearm])
                                              @ twist_rotations(torch.tensor(fitted.twist)))  # fmt: skip
        out[p].fitted[s] = True
        out[p].error[s] = fitted.reprojection_error
        out[p].fits[s] = fitted
    return out


@torch.no_grad()
def hand_keypoints_over_frames(body: BodyModel, shape: torch.Tensor, scale: float, rotations: torch.Tensor,
                               global_rot: torch.Tensor, transl: torch.Tensor) -> np.ndarray:  # fmt: skip
    """(N, 2, 21, 3) both hands' keypoints in camera space, for a body ``shape`` (1, S) scaled
    by ``scale``, N frames' local bone ``rotations`` (N, J, 3, 3), global rotations (N, 3, 3)
    and translations (N, 3). Zeros for a body without hand bones."""
    n = rotations.shape[0]
    if not supports(body):
        return np.zeros((n, 2, NUM_KEYPOINTS, 3), np.float32)
    rest = body.rest(shape, body.keypoint_vertex_ids).scaled(scale)
    _, frames = body.pose(rest.expand(n), rotations, body.keypoint_vertex_ids)
    out = []
    for side in SIDES:
        rig = HandRig.build(body, rest.bone_poses[0], rest.bone_tails[0], side)
        kp = rig.keypoints(frames[:, rig.wrist_parent[0]], rotations[:, rig.bones[0]])
        out.append(torch.einsum("nij,nkj->nki", global_rot, kp) + transl[:, None])
    return torch.stack(out, 1).numpy().astype(np.float32)
