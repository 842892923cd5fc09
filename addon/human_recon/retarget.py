"""Motion transfer math (numpy only, no bpy): one rig's motion on another rig's bones.

Both rigs are compared in world space. Each mapped bone of the target gets the world rotation
that points its body segment (its head to the head of the next mapped bone: upper arm to
forearm, thigh to shin, ...) the way the source's segment points, and turns it about that
segment as the source's bone turns. Rest poses may differ (T-pose, A-pose, other bone rolls,
other proportions): a per-bone rest offset turns the target's rest segment onto the source's
first. Only directions are copied, so the target keeps its own proportions; the hips' path
is the source's scaled by the ratio of the legs' lengths. Optionally, feet planted in the
source stay planted on the target (two-bone IK on thigh and shin).

Conventions follow Blender: a bone's rest matrix is in armature space (``Bone.matrix_local``),
its pose basis is relative to its rest (``PoseBone.matrix_basis``), and a child's posed matrix
is ``parent_posed @ inv(parent_rest) @ child_rest @ basis``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .bonemaps import segment_ends

MIN_SEGMENT_M = 0.01  # shorter rest segments are taken along the bone's own axis instead
CONTACT_SPEED_M_S = 0.35  # a source foot slower than this, and near its lowest, is planted
CONTACT_HEIGHT_M = 0.06
CONTACT_MIN_S = 0.1  # shorter contacts are noise
BLEND_FRAMES = 4  # a released foot eases back to its free path over these frames


@dataclass
class Skeleton:
    """An armature as the math needs it."""

    names: list[str]
    parents: np.ndarray  # (J,) parent index, -1 for a root
    rest: np.ndarray  # (J, 4, 4) rest matrices in armature space
    world: np.ndarray  # (4, 4) the armature object's world matrix

    def index(self, name: str) -> int:
        return self.names.index(name)

    def order(self) -> list[int]:
        """Bone indices, each after its parent."""
        done: list[int] = []
        seen: set[int] = set()
        for j in range(len(self.names)):
            chain = []
            while j >= 0 and j not in seen:
                chain.append(j)
                j = int(self.parents[j])
            for k in reversed(chain):
                seen.add(k)
                done.append(k)
        return done


@dataclass
class Plan:
    """What a transfer writes on the target: the pose basis of every bone, every frame."""

    basis: np.ndarray  # (F, J, 4, 4) target pose basis
    mapped: list[int]  # target bones given a rotation
    hips: int  # target bone given the body's path
    leg_ratio: float
    contacts: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # side -> [start, end) frame spans
    pins: dict[str, np.ndarray] = field(default_factory=dict)  # side -> (F, 3) pinned ankle or NaN
    world: np.ndarray | None = None  # (F, J, 4, 4) target posed world matrices
    rotations: dict[int, np.ndarray] = field(default_factory=dict)  # mapped bone -> (F, 3, 3) world rotation
    hips_path: np.ndarray | None = None  # (F, 3) world position of the hips bone's head


def forward(skel: Skeleton, basis: np.ndarray) -> np.ndarray:
    """Posed armature-space matrices (F, J, 4, 4) from pose bases (F, J, 4, 4)."""
    out = np.empty_like(basis)
    for j in skel.order():
        p = int(skel.parents[j])
        if p < 0:
            out[:, j] = skel.rest[j] @ basis[:, j]
        else:
            out[:, j] = out[:, p] @ (np.linalg.inv(skel.rest[p]) @ skel.rest[j]) @ basis[:, j]
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def rotation_part(m: np.ndarray) -> np.ndarray:
    """The rotation of matrices (..., 4, 4) or (..., 3, 3) that may carry a uniform scale."""
    r = m[..., :3, :3]
    return r / np.linalg.norm(r, axis=-2, keepdims=True)


def swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotations (..., 3, 3) taking directions ``a`` onto ``b`` (..., 3)."""
    a, b = np.broadcast_arrays(_unit(a), _unit(b))
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1)
    c = np.sum(a * b, axis=-1)
    # Opposite directions: half a turn about any axis perpendicular to a.
    other = np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0, 0], [0, 1.0, 0])
    axis = np.where((s < 1e-9)[..., None] & (c < 0)[..., None], np.cross(a, other), axis)
    k = _unit(axis)
    angle = np.arctan2(s, c)
    kx = np.zeros(k.shape[:-1] + (3, 3))
    kx[..., 0, 1], kx[..., 0, 2], kx[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    kx = kx - np.swapaxes(kx, -1, -2)
    sa, ca = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + sa * kx + (1 - ca) * (kx @ kx)


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def matrix_to_quaternion(r: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) w x y z of rotation matrices (..., 3, 3), sign-continuous along axis 0."""
    m = r.reshape(-1, 3, 3)
    t = np.trace(m, axis1=1, axis2=2)
    xx, yy, zz = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    a, b, c = m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]  # antisymmetric
    d, e, g = m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1]  # symmetric
    cand = np.stack([
        np.stack([1 + t, a, b, c], -1), np.stack([a, 1 + 2 * xx - t, d, e], -1),
        np.stack([b, d, 1 + 2 * yy - t, g], -1), np.stack([c, e, g, 1 + 2 * zz - t], -1),
    ], 1)  # fmt: skip
    # Shepperd: the candidate built on the largest diagonal term is the stable one.
    best = np.argmax(np.stack([t, xx, yy, zz], -1), axis=-1)
    q = _unit(cand[np.arange(len(m)), best])
    q = q * np.where(q[:, :1] < 0, -1.0, 1.0)
    q = q.reshape(r.shape[:-2] + (4,))
    for f in range(1, q.shape[0]):  # no flips between frames (q and -q are one rotation)
        flip = np.sum(q[f] * q[f - 1], axis=-1) < 0
        q[f][flip] *= -1
    return q


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.moveaxis(_unit(q), -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)  # fmt: skip


def _heading(pos: np.ndarray, left: int, right: int) -> float:
    """Angle about world Z of the right-to-left hip line."""
    v = pos[left] - pos[right]
    return float(np.arctan2(v[1], v[0]))


def leg_length(pos: np.ndarray, roles: dict[str, int]) -> float:
    """Mean length of the legs (hip to knee to ankle) at rest, from head positions (J, 3)."""
    lengths = []
    for side in "LR":
        chain = [roles[r] for r in (f"thigh.{side}", f"shin.{side}", f"foot.{side}") if r in roles]
        lengths.append(sum(np.linalg.norm(pos[b] - pos[a]) for a, b in zip(chain, chain[1:])))
    return float(np.mean(lengths))


def shortest_contact(fps: float) -> int:
    """Frames a planted stretch lasts at least; shorter ones are noise."""
    return max(3, round(CONTACT_MIN_S * fps))


def runs(flags: np.ndarray, shortest: int) -> list[tuple[int, int]]:
    """[start, end) spans of True in ``flags`` (F,) at least ``shortest`` frames long."""
    spans, start = [], None
    for f, on in enumerate(np.append(np.asarray(flags, bool), False)):
        if on and start is None:
            start = f
        elif not on and start is not None:
            if f - start >= shortest:
                spans.append((start, f))
            start = None
    return spans


def contact_spans(ankle: np.ndarray, fps: float, other: np.ndarray | None = None) -> list[tuple[int, int]]:
    """[start, end) frame spans where an ankle path (F, 3) is planted, for a source that does not
    say (a clip's result says, from the image): slow, and not above the other ankle (``other``,
    (F, 3)). Heights are compared between the feet, not with a floor: a monocular clip's floor
    may tilt or sink over a long take, both feet with it."""
    if len(ankle) < 3:
        return []
    speed = np.linalg.norm(np.gradient(ankle, axis=0), axis=-1) * fps
    planted = speed < CONTACT_SPEED_M_S
    if other is not None:
        planted &= ankle[:, 2] <= other[:, 2] + CONTACT_HEIGHT_M
    return runs(planted, shortest_contact(fps))


def solve(src: Skeleton, src_basis: np.ndarray, src_roles: dict[str, int], tgt: Skeleton,
          tgt_basis: np.ndarray, tgt_roles: dict[str, int], fps: float = 30.0, plant_feet: bool = False,
          contacts: dict[str, np.ndarray] | None = None) -> Plan:  # fmt: skip
    """The target's pose basis on every frame of the source's motion.

    ``src_basis``: (F, Js, 4, 4) the source's pose per frame; ``tgt_basis``: (Jt, 4, 4) the
    target's current pose (kept on bones the map leaves out); ``*_roles``: role -> bone index;
    ``contacts``: side ("L", "R") -> (F,) planted flags, where the source knows them.
    """
    roles = [r for r in src_roles if r in tgt_roles]
    g_src = src.world @ forward(src, src_basis)  # (F, Js, 4, 4) world
    g_src0 = src.world @ src.rest
    g_tgt0 = tgt.world @ tgt.rest
    # Face the target's way: turn the source about world Z so its hips line up with the target's.
    yaw = rot_z(_heading(g_tgt0[:, :3, 3], tgt_roles["thigh.L"], tgt_roles["thigh.R"])
                - _heading(g_src0[:, :3, 3], src_roles["thigh.L"], src_roles["thigh.R"]))  # fmt: skip
    ps, ps0, pt0 = (yaw @ g_src[..., :3, 3, None])[..., 0], g_src0[:, :3, 3] @ yaw.T, g_tgt0[:, :3, 3]
    qs, qs0, qt0 = yaw @ rotation_part(g_src), yaw @ rotation_part(g_src0), rotation_part(g_tgt0)

    want: dict[int, np.ndarray] = {}  # target bone -> (F, 3, 3) world rotation
    for role in roles:
        si, ti = src_roles[role], tgt_roles[role]
        ds0 = dt0 = ds = None
        for end in segment_ends(role):
            if end in src_roles and end in tgt_roles:
                se, te = src_roles[end], tgt_roles[end]
                a, b = ps0[se] - ps0[si], pt0[te] - pt0[ti]
                if min(np.linalg.norm(a), np.linalg.norm(b)) >= MIN_SEGMENT_M:
                    ds0, dt0, ds = a, b, ps[:, se] - ps[:, si]
                    break
        if ds0 is None:  # no segment: the bones' own axes (head to tail) correspond
            ds0, dt0, ds = qs0[si][:, 1], qt0[ti][:, 1], qs[:, si, :, 1]
        delta = qs[:, si] @ qs0[si].T  # the source bone's turn from its rest, in world space
        offset = swing(dt0, ds0)  # the target's rest segment onto the source's
        # Bones between this one and the segment's end may bend in the source: follow the end.
        follow = swing((delta @ _unit(ds0)[:, None])[..., 0], ds)
        want[ti] = follow @ delta @ offset @ qt0[ti]

    h_src, h_tgt = src_roles["hips"], tgt_roles["hips"]
    ratio = leg_length(pt0, tgt_roles) / max(leg_length(ps0, src_roles), 1e-6)
    hips_path = pt0[h_tgt] + ratio * (ps[:, h_src] - ps0[h_src])
    basis, posed = _compose(tgt, tgt_basis, want, h_tgt, hips_path)
    plan = Plan(basis=basis, mapped=sorted(want), hips=h_tgt, leg_ratio=ratio, world=tgt.world @ posed,
                rotations=want, hips_path=hips_path)  # fmt: skip
    if plant_feet:
        _plant(plan, tgt, tgt_basis, want, hips_path, ps, src_roles, tgt_roles, fps, contacts or {})
    return plan


def _compose(tgt: Skeleton, tgt_basis: np.ndarray, want: dict[int, np.ndarray], hips: int,
             hips_path: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Pose bases (F, J, 4, 4) that give the wanted world rotations and hips path, and the
    posed armature-space matrices."""
    n = len(hips_path)
    inv_world = np.linalg.inv(tgt.world)
    to_arm = rotation_part(tgt.world).T  # world rotations -> armature space
    basis = np.repeat(tgt_basis[None], n, axis=0)
    posed = np.empty_like(basis)
    for j in tgt.order():
        p = int(tgt.parents[j])
        k = tgt.rest[j][None] if p < 0 else posed[:, p] @ (np.linalg.inv(tgt.rest[p]) @ tgt.rest[j])
        k = np.broadcast_to(k, (n, 4, 4))
        if j in want:
            target = np.repeat(np.eye(4)[None], n, axis=0)
            target[:, :3, :3] = to_arm @ want[j]
            if j == hips:
                target[:, :3, 3] = (inv_world[:3, :3] @ hips_path[..., None])[..., 0] + inv_world[:3, 3]
                basis[:, j] = np.linalg.inv(k) @ target
            else:
                basis[:, j, :3, :3] = np.linalg.inv(k[:, :3, :3]) @ target[:, :3, :3]
        posed[:, j] = k @ basis[:, j]
    return basis, posed


def _plant(plan: Plan, tgt: Skeleton, tgt_basis, want, hips_path, ps, src_roles, tgt_roles, fps, contacts) -> None:
    """Hold each ankle where it was when the source's foot was planted: turn thigh and shin
    (two-bone IK, knee kept in its plane) so the ankle reaches the pin, then pose again. Where a
    pin is out of the leg's reach, the hips move towards it first."""
    n = len(hips_path)
    pos = plan.world[..., :3, 3]
    legs = {}
    for side in "LR":
        roles = [f"{r}.{side}" for r in ("thigh", "shin", "foot")]
        if not all(r in src_roles and r in tgt_roles for r in roles):
            continue
        if side in contacts:
            spans = runs(contacts[side], shortest_contact(fps))
        else:
            other = src_roles.get(f"foot.{'R' if side == 'L' else 'L'}")
            spans = contact_spans(ps[:, src_roles[roles[2]]], fps, None if other is None else ps[:, other])
        th, sh, ft = (tgt_roles[r] for r in roles)
        free = pos[:, ft]
        goal = np.full((n, 3), np.nan)
        for a, b in spans:
            goal[a:b] = free[a]
            for k in range(BLEND_FRAMES):  # ease out, unless the next contact starts first
                f = b + k
                if f >= n or any(s <= f < e for s, e in spans):
                    break
                w = (k + 1) / (BLEND_FRAMES + 1)
                goal[f] = (1 - w) * free[a] + w * free[f]
        plan.contacts[side], plan.pins[side] = spans, goal
        legs[side] = (th, sh, ft, goal)
    # Pins out of reach: the hips move towards them (a leg can only straighten so far).
    shift = np.zeros((n, 3))
    for th, sh, ft, goal in legs.values():
        reach = 0.995 * (np.linalg.norm(pos[0, sh] - pos[0, th]) + np.linalg.norm(pos[0, ft] - pos[0, sh]))
        to_pin = np.nan_to_num(goal - pos[:, th])
        excess = np.maximum(np.linalg.norm(to_pin, axis=-1) - reach, 0.0)
        shift += _unit(to_pin) * excess[:, None]
    if np.any(shift):
        hips_path = plan.hips_path = hips_path + shift
        plan.basis, posed = _compose(tgt, tgt_basis, want, plan.hips, hips_path)
        plan.world = tgt.world @ posed
        pos = plan.world[..., :3, 3]
    for th, sh, ft, goal in legs.values():
        frames = np.nonzero(~np.isnan(goal[:, 0]))[0]
        if not len(frames):
            continue
        hip, knee, ankle, t = pos[frames, th], pos[frames, sh], pos[frames, ft], goal[frames]
        l1 = np.linalg.norm(knee - hip, axis=-1)
        l2 = np.linalg.norm(ankle - knee, axis=-1)
        d = np.clip(np.linalg.norm(t - hip, axis=-1), np.abs(l1 - l2) + 1e-4, l1 + l2 - 1e-4)
        u = _unit(t - hip)
        normal = np.cross(knee - hip, ankle - knee)
        straight = np.linalg.norm(normal, axis=-1) < 1e-6 * l1 * l2
        normal[straight] = want[th][frames][straight][:, :, 0]  # a straight leg bends about its X axis
        v = _unit(np.cross(normal, u))
        off = (knee - hip) - np.sum((knee - hip) * u, -1, keepdims=True) * u
        v *= np.where(np.sum(v * off, -1, keepdims=True) < 0, -1.0, 1.0)
        along = (l1**2 - l2**2 + d**2) / (2 * d)
        new_knee = hip + u * along[:, None] + v * np.sqrt(np.maximum(l1**2 - along**2, 0))[:, None]
        s1 = swing(knee - hip, new_knee - hip)
        moved_ankle = new_knee + (s1 @ (ankle - knee)[..., None])[..., 0]
        s2 = swing(moved_ankle - new_knee, hip + u * d[:, None] - new_knee)
        want[th] = want[th].copy()
        want[sh] = want[sh].copy()
        want[th][frames] = s1 @ want[th][frames]
        want[sh][frames] = s2 @ s1 @ want[sh][frames]
    plan.basis, posed = _compose(tgt, tgt_basis, want, plan.hips, hips_path)
    plan.world = tgt.world @ posed
