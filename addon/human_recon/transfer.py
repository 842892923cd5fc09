"""Transfer motion in Blender: read a Human Recon rig's motion and another armature, run the
math (``retarget``), and bake one action on the target. All or nothing: on any failure the
target keeps the action it had."""

from __future__ import annotations

from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix

from . import bonemaps
from .retarget import Skeleton, matrix_to_quaternion, quaternion_to_matrix, solve
from .rig import CONTACTS_PROP, evaluating_only, new_action, write_curve

MAX_FRAMES = 20000  # about 11 minutes at 30 fps; longer clips go in parts (memory grows with frames x bones)


class TransferError(ValueError):
    """A transfer that cannot be made; the message says what to do."""


@dataclass
class Report:
    preset: str
    bones: int
    frames: int
    leg_ratio: float
    planted_frames: dict[str, int]
    action: str
    seconds: float = 0.0
    muted: int = 0  # constraints on mapped bones, muted so they do not move them off the motion

    def line(self, source: str, target: str) -> str:
        planted = sum(self.planted_frames.values())
        feet = f"; feet planted on {planted} frame-feet" if self.planted_frames else ""
        label = bonemaps.PRESET_LABELS.get(self.preset, "custom")
        muted = f"; muted {self.muted} constraints on mapped bones" if self.muted else ""
        return (f"Transferred {self.frames} frames from {source} to {target} ({label} map, {self.bones} bones, "
                f"legs x{self.leg_ratio:.2f}{feet}{muted}) as action '{self.action}'")  # fmt: skip


def skeleton(obj) -> Skeleton:
    bones = list(obj.data.bones)
    index = {b.name: i for i, b in enumerate(bones)}
    return Skeleton(
        names=[b.name for b in bones],
        parents=np.array([index[b.parent.name] if b.parent else -1 for b in bones]),
        rest=np.array([b.matrix_local for b in bones], dtype=np.float64),
        world=np.array(obj.matrix_world, dtype=np.float64),
    )


def action_fcurves(obj) -> list:
    """The F-curves that animate ``obj``: its action's slot (Blender 4.4+) or the action's own."""
    ad = obj.animation_data
    if ad is None or ad.action is None:
        return []
    action = ad.action
    if hasattr(action, "layers"):
        slot = getattr(ad, "action_slot", None)
        curves = []
        for layer in action.layers:
            for strip in layer.strips:
                bag = strip.channelbag(slot) if slot is not None else None
                if bag is not None:
                    curves.extend(bag.fcurves)
        if curves or not hasattr(action, "fcurves"):
            return curves
    return list(action.fcurves)


def _euler_matrix(angles: np.ndarray, order: str) -> np.ndarray:
    c, s = np.cos(angles), np.sin(angles)
    one, zero = np.ones(len(angles)), np.zeros(len(angles))
    axes = {
        "X": np.stack([np.stack([one, zero, zero], -1), np.stack([zero, c[:, 0], -s[:, 0]], -1),
                       np.stack([zero, s[:, 0], c[:, 0]], -1)], -2),
        "Y": np.stack([np.stack([c[:, 1], zero, s[:, 1]], -1), np.stack([zero, one, zero], -1),
                       np.stack([-s[:, 1], zero, c[:, 1]], -1)], -2),
        "Z": np.stack([np.stack([c[:, 2], -s[:, 2], zero], -1), np.stack([s[:, 2], c[:, 2], zero], -1),
                       np.stack([zero, zero, one], -1)], -2),
    }  # fmt: skip
    return axes[order[2]] @ axes[order[1]] @ axes[order[0]]  # the first letter turns first


def sample_motion(obj, scene) -> tuple[np.ndarray, np.ndarray]:
    """(frames, pose bases (F, J, 4, 4)): every frame of the rig's action, or its current pose."""
    curves: dict[tuple[str, str], dict[int, object]] = {}
    for fc in action_fcurves(obj):
        if fc.data_path.startswith('pose.bones["') and not fc.mute:
            name, _, prop = fc.data_path[len('pose.bones["') :].partition('"].')
            curves.setdefault((name, prop), {})[fc.array_index] = fc
    if curves:
        lo, hi = obj.animation_data.action.frame_range
        frames = np.arange(int(round(lo)), int(round(hi)) + 1)
    else:
        frames = np.array([scene.frame_current])
    n = len(frames)
    out = np.empty((n, len(obj.pose.bones), 4, 4))

    def channel(pb, prop: str, size: int) -> np.ndarray:
        now = np.array(getattr(pb, prop), dtype=np.float64).reshape(size)
        vals = np.repeat(now[None], n, axis=0)
        for i, fc in curves.get((pb.name, prop), {}).items():
            if i < size:
                vals[:, i] = [fc.evaluate(float(f)) for f in frames]
        return vals

    for j, pb in enumerate(obj.pose.bones):
        mode = pb.rotation_mode
        if mode == "QUATERNION":
            rot = quaternion_to_matrix(channel(pb, "rotation_quaternion", 4))
        elif mode == "AXIS_ANGLE":
            aa = channel(pb, "rotation_axis_angle", 4)
            rot = np.array([np.array(Matrix.Rotation(a[0], 3, a[1:])) for a in aa])
        else:
            rot = _euler_matrix(channel(pb, "rotation_euler", 3), mode)
        m = np.repeat(np.eye(4)[None], n, axis=0)
        m[:, :3, :3] = rot * channel(pb, "scale", 3)[:, None, :]
        m[:, :3, 3] = channel(pb, "location", 3)
        out[:, j] = m
    return frames, out


def source_contacts(obj, frames: int) -> dict[str, np.ndarray] | None:
    """The planted feet a clip's rig carries (from the image, per frame), if it matches the action."""
    bits = obj.get(CONTACTS_PROP)
    if bits is None or len(bits) != frames:
        return None
    bits = np.asarray(list(bits), dtype=np.int64)
    return {"L": (bits & 1) > 0, "R": (bits & 2) > 0}


def _armature(name: str, what: str):
    obj = bpy.data.objects.get(name) if name else None
    if obj is None or obj.type != "ARMATURE":
        found = f"'{name}' is not an armature" if obj is not None else f"no object named '{name}'"
        raise TransferError(f"{what.capitalize()}: {found}; pick an armature.")
    return obj


def target_map(target, preset: str, custom: dict[str, str] | None) -> tuple[str, dict[str, str]]:
    """(preset used, role -> target bone) for a preset name, AUTO, or a custom map."""
    names = [b.name for b in target.data.bones]
    if custom is not None:
        try:
            bonemaps.check(custom, names, f"'{target.name}'")
        except bonemaps.BoneMapError as exc:
            raise TransferError(str(exc)) from None
        return "CUSTOM", dict(custom)
    if preset == "AUTO":
        found_preset, found = bonemaps.detect(names)
        if not found_preset:
            raise TransferError(
                f"No known bones on '{target.name}' (tried Mixamo, Rigify, UE5, SMPL, Anny); map these bones in "
                f"the panel or load a bone map: {bonemaps.expected_bones()}.")  # fmt: skip
        return found_preset, found
    found = bonemaps.resolve(preset, names)
    missing = [r for r in bonemaps.REQUIRED if r not in found]
    if missing:
        want = ", ".join(bonemaps.PRESETS[preset][r][0] for r in missing)
        raise TransferError(f"'{target.name}' lacks the {bonemaps.PRESET_LABELS[preset]} bones {want}; "
                            "choose another preset or map the bones in the panel.")  # fmt: skip
    return preset, found


def transfer_motion(context, source_name: str, target_name: str, preset: str = "AUTO",
                    custom: dict[str, str] | None = None, plant_feet: bool = False) -> Report:  # fmt: skip
    """Bake ``source``'s motion on ``target`` as one new action; raise TransferError on bad input."""
    import time

    t0 = time.perf_counter()
    source, target = _armature(source_name, "source"), _armature(target_name, "target")
    if source == target:
        raise TransferError("Source and target are the same armature; pick another target.")
    if target.library is not None or getattr(target, "override_library", None) is not None:
        raise TransferError(f"'{target.name}' is linked from another file; make it local first.")
    if "EDIT" in (source.mode, target.mode):
        raise TransferError("Leave Edit Mode first (the armatures' bones are being edited).")
    src_preset, src_map = bonemaps.detect([b.name for b in source.data.bones])
    if src_preset not in ("ANNY", "SMPL"):
        raise TransferError(f"'{source.name}' is not a Human Recon rig (Anny or SMPL bones); "
                            "import a result first and pick its armature (Person 1, ...).")  # fmt: skip
    used, tgt_map = target_map(target, preset, custom)
    scene = context.scene
    action = source.animation_data.action if source.animation_data else None
    if action is not None and action.frame_range[1] - action.frame_range[0] + 1 > MAX_FRAMES:
        lo, hi = action.frame_range
        raise TransferError(f"The source's action spans frames {lo:.0f}-{hi:.0f}, more than {MAX_FRAMES} frames; "
                            "transfer it in parts (set the action's manual frame range).")  # fmt: skip
    frames, src_basis = sample_motion(source, scene)
    src, tgt = skeleton(source), skeleton(target)
    tgt_basis = np.array([pb.matrix_basis for pb in target.pose.bones], dtype=np.float64)
    fps = scene.render.fps / scene.render.fps_base
    plan = solve(src, src_basis, {r: src.index(b) for r, b in src_map.items()}, tgt, tgt_basis,
                 {r: tgt.index(b) for r, b in tgt_map.items()}, fps=fps, plant_feet=plant_feet,
                 contacts=source_contacts(source, len(frames)))  # fmt: skip
    name = f"{target.name} from {source.name}"
    # A mapped bone's own constraints would move it off the motion every frame: muted (and said).
    muted = [c for j in plan.mapped for c in target.pose.bones[j].constraints if not c.mute and c.influence > 0]
    for c in muted:
        c.mute = True
    try:
        if _constrained(target, plan.mapped):
            action = _bake_through_constraints(context, target, plan, frames, name)
        else:
            action = _bake(target, plan, frames, name)
    except BaseException:
        for c in muted:
            c.mute = False
        raise
    if used == "RIGIFY":  # the deforming bones follow the FK controls the motion is on
        for pb in target.pose.bones:
            if "IK_FK" in pb.keys():
                pb["IK_FK"] = 1.0
        target.update_tag()
    context.view_layer.update()
    planted = {s: int(sum(b - a for a, b in spans)) for s, spans in plan.contacts.items()}
    return Report(preset=used, bones=len(plan.mapped), frames=len(frames), leg_ratio=plan.leg_ratio,
                  planted_frames=planted, action=action.name, seconds=time.perf_counter() - t0,
                  muted=len(muted))  # fmt: skip


def _constrained(target, mapped: list[int]) -> bool:
    """Whether constraints move a mapped bone or one it hangs from (Rigify's controls hang from
    constrained helper bones): then the target's own hierarchy does not tell where bones go."""
    bones = target.pose.bones
    for j in mapped:
        pb = bones[j]
        while pb is not None:
            if any(not c.mute and c.influence > 0 for c in pb.constraints):
                return True
            pb = pb.parent
    return False


def _select_bones(target, names: set[str]) -> None:
    for pb in target.pose.bones:
        if "select" in pb.bl_rna.properties:  # Blender 5.0+
            pb.select = pb.name in names
        else:
            pb.bone.select = pb.name in names


def _bake_through_constraints(context, target, plan, frames: np.ndarray, name: str):
    """For rigs whose bones follow constraints: a helper armature carries each mapped bone's
    wanted world rotation (and the hips' path), copy constraints put the target's bones there,
    and Blender's own bake (visual keying) turns what it evaluates into keys on the target,
    frame by frame. Helper and constraints are removed again, whatever happens."""
    view_layer = context.view_layer
    ad = target.animation_data
    previous = ad.action if ad is not None else None
    actions_before = set(bpy.data.actions)
    arm = bpy.data.armatures.new("HR transfer helper")
    helper = bpy.data.objects.new("HR transfer helper", arm)
    context.scene.collection.objects.link(helper)
    constraints = []
    keep = (view_layer.objects.active, [o for o in view_layer.objects if o.select_get()])
    try:
        view_layer.objects.active = helper
        bpy.ops.object.mode_set(mode="EDIT")
        for j in plan.mapped:
            eb = arm.edit_bones.new(f"b{j}")
            eb.head, eb.tail = (0.0, 0.0, 0.0), (0.0, 0.1, 0.0)  # rest = identity: basis = world matrix
        bpy.ops.object.mode_set(mode="OBJECT")
        _, curves = new_action(helper, "OBJECT", "HR transfer helper")
        f = frames.astype(np.float64)
        for j in plan.mapped:
            path = f'pose.bones["b{j}"]'
            helper.pose.bones[f"b{j}"].rotation_mode = "QUATERNION"
            q = matrix_to_quaternion(plan.rotations[j])
            for c in range(4):
                write_curve(curves, f"{path}.rotation_quaternion", c, f, q[:, c], f"b{j}")
            if j == plan.hips:
                for c in range(3):
                    write_curve(curves, f"{path}.location", c, f, plan.hips_path[:, c], f"b{j}")
        for j in plan.mapped:
            pb = target.pose.bones[j]
            kinds = ["COPY_ROTATION"] + (["COPY_LOCATION"] if j == plan.hips else [])
            for kind in kinds:
                con = pb.constraints.new(kind)
                con.name = "HR transfer"
                con.target, con.subtarget = helper, f"b{j}"
                con.target_space = con.owner_space = "WORLD"
                constraints.append((pb, con))
        for o in view_layer.objects:
            o.select_set(o == target)
        view_layer.objects.active = target
        bpy.ops.object.mode_set(mode="POSE")
        _select_bones(target, {target.pose.bones[j].name for j in plan.mapped})
        # Only the target, the helper and what the target's constraints look at are evaluated on
        # every baked frame (the source's skinned body is the costly part).
        with evaluating_only(view_layer, [target, helper]):
            bpy.ops.nla.bake(frame_start=int(frames[0]), frame_end=int(frames[-1]), only_selected=True,
                             visual_keying=True, clear_constraints=False, use_current_action=False,
                             bake_types={"POSE"})  # fmt: skip
        action = target.animation_data.action
        if action is None or action == previous:
            raise TransferError("Blender's bake made no action on the target; see the system console.")
        action.name = name
        return action
    except BaseException:
        for a in set(bpy.data.actions) - actions_before:
            if a.name != "HR transfer helper":
                bpy.data.actions.remove(a)
        if target.animation_data is not None:
            target.animation_data.action = previous
        raise
    finally:
        for pb, con in constraints:
            pb.constraints.remove(con)
        if target.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        helper_action = helper.animation_data.action if helper.animation_data else None
        bpy.data.objects.remove(helper)
        bpy.data.armatures.remove(arm)
        if helper_action is not None:
            bpy.data.actions.remove(helper_action)
        view_layer.objects.active = keep[0]
        for o in view_layer.objects:
            o.select_set(o in keep[1])


def _bake(target, plan, frames: np.ndarray, name: str):
    """One new action on ``target`` with the plan's rotations (in each bone's own rotation mode)
    and the hips' location; the target's previous action is restored if anything fails."""
    ad = target.animation_data
    previous = (ad.action, getattr(ad, "action_slot", None)) if ad is not None else (None, None)
    action, curves = new_action(target, "OBJECT", name)
    try:
        f = frames.astype(np.float64)
        for j in plan.mapped:
            pb = target.pose.bones[j]
            path = f'pose.bones["{bpy.utils.escape_identifier(pb.name)}"]'
            rot = plan.basis[:, j, :3, :3]
            if pb.rotation_mode == "QUATERNION":
                values, prop = matrix_to_quaternion(rot), "rotation_quaternion"
            elif pb.rotation_mode == "AXIS_ANGLE":
                aa = [Matrix(r.tolist()).to_quaternion().to_axis_angle() for r in rot]
                values, prop = np.array([[a, *axis] for axis, a in aa]), "rotation_axis_angle"
            else:
                eul, prev = [], None
                for r in rot:
                    m = Matrix(r.tolist())
                    e = m.to_euler(pb.rotation_mode) if prev is None else m.to_euler(pb.rotation_mode, prev)
                    eul.append(list(e))
                    prev = e
                values, prop = np.array(eul), "rotation_euler"
            for c in range(values.shape[1]):
                write_curve(curves, f"{path}.{prop}", c, f, values[:, c], pb.name)
            if j == plan.hips:
                for c in range(3):
                    write_curve(curves, f"{path}.location", c, f, plan.basis[:, j, c, 3], pb.name)
        return action
    except BaseException:
        if previous[0] is not None or target.animation_data is not None:
            target.animation_data.action = previous[0]
            if previous[1] is not None:
                target.animation_data.action_slot = previous[1]
        bpy.data.actions.remove(action)
        raise
