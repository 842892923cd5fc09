"""Target armatures for the motion-transfer tests, built with each preset's bone names.

A simple human skeleton (metres, Z up, facing -Y, the character's left on +X) in T-pose or
A-pose, with its own proportions, bone rolls and extra bones the map leaves out (a root under
the hips, twist bones), the way real rigs differ from Anny's.
"""

from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Matrix

from .addon_import import bonemaps

# (role, parent role, head, tail) for the character's left side and the centre; a tail of
# None means "the head of the next role in the chain".
CENTRE = [
    ("hips", None, (0, 0, 1.0), (0, 0, 1.1)),
    ("spine", "hips", (0, 0, 1.1), None),
    ("chest", "spine", (0, 0, 1.25), None),
    ("upper_chest", "chest", (0, 0, 1.38), None),
    ("neck", "upper_chest", (0, 0, 1.52), None),
    ("head", "neck", (0, 0.01, 1.62), (0, 0.01, 1.82)),
]
LEFT = [
    ("shoulder", "upper_chest", (0.03, 0, 1.46), None),
    ("upper_arm", "shoulder", (0.18, 0, 1.46), None),
    ("forearm", "upper_arm", (0.46, 0, 1.46), None),
    ("hand", "forearm", (0.72, 0, 1.46), (0.9, 0, 1.46)),
    ("thigh", "hips", (0.1, 0, 0.96), None),
    ("shin", "thigh", (0.1, 0, 0.53), None),
    ("foot", "shin", (0.1, 0.01, 0.09), None),
    ("toes", "foot", (0.1, -0.12, 0.02), (0.1, -0.2, 0.02)),
]
CHAIN_NEXT = {"spine": "chest", "chest": "upper_chest", "upper_chest": "neck", "neck": "head",
              "shoulder": "upper_arm", "upper_arm": "forearm", "forearm": "hand", "thigh": "shin",
              "shin": "foot", "foot": "toes"}  # fmt: skip


def joints(a_pose: bool = False, legs: float = 1.0, arms: float = 1.0, size: float = 1.0) -> dict:
    """role -> (parent role, head, tail) in metres for a skeleton with these proportions."""
    out = {}
    table = [(r, p, np.array(h, float), None if t is None else np.array(t, float)) for r, p, h, t in CENTRE]
    for side, sign in (("L", 1), ("R", -1)):
        for r, p, h, t in LEFT:
            flip = np.array([sign, 1, 1.0])
            parent = p if p in ("hips", "upper_chest") else f"{p}.{side}"
            table.append((f"{r}.{side}", parent, np.array(h) * flip, None if t is None else np.array(t) * flip))
    heads = {r: h for r, _, h, _ in table}
    tails = {r: t for r, _, _, t in table}
    # Proportions: legs scale below the hips, arms out from the shoulders.
    for r in heads:
        base = r.split(".")[0]
        for pts in (heads, tails):
            if pts[r] is None:
                continue
            if base in ("thigh", "shin", "foot", "toes"):
                pts[r] = np.array([pts[r][0], pts[r][1], 0.96 - (0.96 - pts[r][2]) * legs])
            if base in ("upper_arm", "forearm", "hand"):
                side = 1 if r.endswith(".L") else -1
                pts[r] = np.array([side * 0.18 + (pts[r][0] - side * 0.18) * arms, pts[r][1], pts[r][2]])
    lift = 0.96 * (legs - 1)  # feet stay on the floor
    for r, p, _, _ in table:
        base, _, side = r.partition(".")
        nxt = CHAIN_NEXT.get(base)
        tail = tails[r] if tails[r] is not None else heads[f"{nxt}.{side}" if side else nxt]
        head = heads[r]
        if a_pose and base in ("upper_arm", "forearm", "hand"):
            s = 1 if side == "L" else -1
            pivot = heads[f"upper_arm.{side}"]
            rot = np.array(Matrix.Rotation(-s * math.radians(45), 3, "Y"))
            head, tail = pivot + rot @ (head - pivot), pivot + rot @ (tail - pivot)
        lifted = np.array([0, 0, lift])
        out[r] = (p, (head + lifted) * size, (tail + lifted) * size)
    return out


def build(preset: str, name: str, a_pose: bool = False, legs: float = 1.0, arms: float = 1.0,
          size: float = 1.0, roll: float = 0.3, y_up_cm: bool = False, extras: bool = True):  # fmt: skip
    """An armature object whose bones carry ``preset``'s names. ``y_up_cm``: stored the way an
    FBX from Mixamo imports (Y-up bones in centimetres, the object turned and scaled by 0.01)."""
    names = {role: cands[0] for role, cands in bonemaps.PRESETS[preset].items()}
    if preset == "MIXAMO":
        names = {r: f"mixamorig:{n}" for r, n in names.items()}
    arm = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, arm)
    bpy.context.scene.collection.objects.link(obj)
    to_arm = np.eye(3)
    if y_up_cm:
        to_arm = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]) * 100  # world -> armature (Y up, cm)
        obj.matrix_world = Matrix.Rotation(math.radians(90), 4, "X") @ Matrix.Scale(0.01, 4)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    edit = {}
    try:
        for k, (role, (parent, head, tail)) in enumerate(joints(a_pose, legs, arms, size).items()):
            eb = arm.edit_bones.new(names[role])
            eb.head, eb.tail = (to_arm @ head).tolist(), (to_arm @ tail).tolist()
            eb.roll = roll * (k % 3 - 1)  # rolls differ from bone to bone, as rigs' conventions do
            edit[role] = eb
            if parent is not None:
                eb.parent = edit[parent]
        if extras:  # bones the map leaves out: a root on the floor and a twist bone in each forearm
            root = arm.edit_bones.new("root_extra")
            root.head, root.tail = [0, 0, 0], (to_arm @ np.array([0, 0.0, 0.2])).tolist()
            edit["hips"].parent = root
            for side in "LR":
                fa = edit[f"forearm.{side}"]
                tw = arm.edit_bones.new(f"forearm_twist.{side}")
                tw.head, tw.tail = fa.head.copy(), (fa.head + fa.tail) / 2
                tw.roll = fa.roll
                tw.parent = fa
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    for pb in obj.pose.bones:
        pb.rotation_mode = "XYZ" if preset == "RIGIFY" else "QUATERNION"  # both kinds of rotation channels
    return obj
