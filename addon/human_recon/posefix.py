"""Fixing a reconstructed pose by hand: "Flip in depth".

One photo leaves each limb segment's bend in depth open: an upper arm, forearm, thigh or shin
turned towards the camera and one turned away by as much look the same in the picture, and the
fit has to pick one. Where it picked wrong (a hand reaching behind the head read as in front of
it), Flip in depth turns the segment to the other one: from the scene's camera the picture stays
the same, the depth is the other way. The joints further along the limb stay where the picture
shows them (each on its camera ray, a bone's length from the joint before), and the hand or foot
keeps its orientation. Works on any rig whose bones ``bonemaps`` recognises.
"""

from __future__ import annotations

import bpy
from mathutils import Matrix, Vector

from . import bonemaps

# The segments a photo leaves open in depth, and the roles further along their limb.
FLIPPABLE = {"upper_arm": ["forearm", "hand"], "forearm": ["hand"], "thigh": ["shin", "foot"], "shin": ["foot"]}
SIDE_ON = 1e-4  # m: a segment whose other depth lies this close is seen side-on (one pose, not two)


class PoseFixError(ValueError):
    """A fix that cannot be made; the message says what to do."""


def other_depth(origin: Vector, head: Vector, end: Vector) -> Vector:
    """The other point on the camera ray through ``end`` that lies as far from ``head`` as ``end``
    does (the segment head -> end turned the other way in depth, its picture unchanged); ``end``
    itself where the ray only grazes that sphere. The ray's points o + t u at distance L from p
    solve t^2 - 2 t u.(p - o) + |p - o|^2 - L^2 = 0, whose two roots add up to 2 u.(p - o)."""
    u = (end - origin).normalized()
    return origin + u * (2.0 * (head - origin).dot(u) - (end - origin).dot(u))


def on_ray(origin: Vector, through: Vector, anchor: Vector, length: float) -> Vector:
    """The point on the camera ray through ``through`` at ``length`` from ``anchor``, the root
    nearer ``through``; where the ray passes farther than ``length`` from ``anchor``, its nearest
    point (the picture then moves the least it can)."""
    u = (through - origin).normalized()
    mid = (anchor - origin).dot(u)  # the ray's point nearest the anchor
    gap2 = (origin + u * mid - anchor).length_squared
    half = max(length * length - gap2, 0.0) ** 0.5
    t_now = (through - origin).dot(u)
    t = min((mid - half, mid + half), key=lambda r: abs(r - t_now))
    return origin + u * t


def _eye(camera, point: Vector) -> Vector:
    """Where the camera looks at ``point`` from: its centre, or (orthographic) a point far back
    along its axis in line with ``point``."""
    m = camera.matrix_world
    if camera.data.type == "ORTHO":
        back = (m.to_3x3() @ Vector((0.0, 0.0, 1.0))).normalized()
        return point + back * 1000.0
    return m.translation.copy()


def _camera(context):
    """The scene's camera, which the photo was seen from."""
    if context.scene.camera is None:
        raise PoseFixError("The scene has no camera; make the reconstruction's camera the scene's (it is what "
                           "the photo was seen from).")  # fmt: skip
    return context.scene.camera


def _is_ancestor(bone, of) -> bool:
    """Whether data bone ``bone`` is ``of`` or one of its parents."""
    b = of
    while b is not None:
        if b == bone:
            return True
        b = b.parent
    return False


def limb_of(obj, bone_name: str) -> tuple[str, list[str]]:
    """The segment ``bone_name`` lies on: its role ("forearm.L", ...) and the bones of that role
    and of the roles further along the limb, in order. A bone between a role's bone and the next
    one's (a twist bone) belongs to that segment."""
    found_preset, roles = bonemaps.detect([b.name for b in obj.data.bones])
    if not found_preset:
        raise PoseFixError(f"'{obj.name}' has no bones Human Recon knows (Anny, SMPL, Mixamo, Rigify, UE5); "
                           "Flip in depth works on those rigs.")  # fmt: skip
    bones = obj.data.bones
    picked = bones.get(bone_name)
    if picked is None:
        raise PoseFixError(f"'{obj.name}' has no bone '{bone_name}'; select a bone of its arms or legs.")
    for side in "LR":
        for role, further in FLIPPABLE.items():
            names = [roles.get(f"{r}.{side}") for r in [role] + further]
            if names[0] is None or names[1] is None:
                continue
            start, end = bones[names[0]], bones[names[1]]
            if _is_ancestor(start, picked) and _is_ancestor(picked, end) and picked != end:
                return f"{role}.{side}", [n for n in names if n is not None]
    raise PoseFixError(f"'{bone_name}' is not on an upper arm, forearm, thigh or shin; select one of those "
                       "bones (the ones a photo leaves open in depth).")  # fmt: skip


def _limb(context, obj, bone_name: str) -> tuple[object, str, list[str]]:
    """The scene's camera and the segment (``limb_of``) of ``obj``'s bone, or the refusal."""
    if obj is None or obj.type != "ARMATURE":
        raise PoseFixError("Select the armature (Person 1, ...) and one of its arm or leg bones.")
    camera = _camera(context)
    return (camera, *limb_of(obj, bone_name))


def flip_in_depth(context, obj, bone_name: str) -> str:
    """Turn the limb segment of ``obj``'s bone ``bone_name`` to its other depth as seen from the
    scene's camera (module docstring), at the current frame; an animated rig gets keys there.
    Returns the segment's role."""
    camera, role, names = _limb(context, obj, bone_name)
    _flip(context, obj, camera, role, names)
    return role


def _flip(context, obj, camera, role: str, names: list[str]) -> None:
    """``flip_in_depth`` for a limb already found: ``names`` its bones, root first."""
    pose = obj.pose.bones
    world = obj.matrix_world
    joints = [world @ pose[n].head for n in names]  # the segment's start, its end, then further on
    eye = _eye(camera, joints[1])
    flipped = other_depth(eye, joints[0], joints[1])
    if (flipped - joints[1]).length < SIDE_ON:
        raise PoseFixError(f"{role} is seen side-on from the camera: turned either way in depth it is the same pose.")
    if (flipped - eye).dot(joints[1] - eye) <= 0:
        raise PoseFixError(f"{role}'s other depth lies behind the camera; turn it by hand.")
    wanted = [joints[0], flipped]
    for a, b in zip(joints[1:-1], joints[2:]):
        wanted.append(on_ray(_eye(camera, b), b, wanted[-1], (b - a).length))
    before = {n: pose[n].matrix_basis.copy() for n in names}
    quats = {n: pose[n].rotation_quaternion.copy() for n in names}
    try:
        _turn(context, obj, names, wanted)
    except Exception:
        for n, basis in before.items():  # never a half-turned limb
            pose[n].matrix_basis = basis
        context.view_layer.update()
        raise
    for n, q in quats.items():  # the quaternion on the side of the one it replaces (keys blend the short way)
        pb = pose[n]
        if pb.rotation_mode == "QUATERNION" and pb.rotation_quaternion.dot(q) < 0:
            pb.rotation_quaternion = -pb.rotation_quaternion
    if obj.animation_data is not None and obj.animation_data.action is not None:
        frame = context.scene.frame_current
        for name in names:
            pb = pose[name]
            path = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(
                pb.rotation_mode, "rotation_euler")
            pb.keyframe_insert(data_path=path, frame=frame, group=name)


def flip_over_range(context, obj, bone_name: str) -> tuple[str, int, int]:
    """``flip_in_depth`` at every frame of the scene's preview range (else its frame range), for a
    stretch of a clip where the fit bent the segment the wrong way; frames where the segment is
    seen side-on (or its other depth lies behind the camera) are left as they were. Returns the
    role, the frames flipped and the frames left."""
    camera, role, names = _limb(context, obj, bone_name)  # refused before any frame changes
    if obj.animation_data is None or obj.animation_data.action is None:
        raise PoseFixError(f"'{obj.name}' has no animation; flip this frame only, or import a clip.")
    scene = context.scene
    if scene.use_preview_range:
        first, last = scene.frame_preview_start, scene.frame_preview_end
    else:
        first, last = scene.frame_start, scene.frame_end
    now, flipped, left = scene.frame_current, 0, 0
    try:
        for frame in range(first, last + 1):
            scene.frame_set(frame)
            try:
                _flip(context, obj, camera, role, names)
                flipped += 1
            except PoseFixError:
                left += 1
    finally:
        scene.frame_set(now)
    return role, flipped, left


def _turn(context, obj, names: list[str], wanted: list[Vector]) -> None:
    """Pose the bones ``names`` (a limb, root first) so that each one's head lies at ``wanted``
    (world), the last bone keeping its orientation."""
    pose = obj.pose.bones
    last = pose[names[-1]].matrix.copy()  # the hand or foot keeps its orientation
    to_arm = obj.matrix_world.inverted()
    for i, name in enumerate(names[:-1]):
        # Turn this bone (and with it everything below) about its head so that the next role's
        # head lands where it is wanted. Its matrix is read now: the bones before moved it.
        pb = pose[name]
        head, nxt = to_arm @ wanted[i], to_arm @ wanted[i + 1]
        now_next = pose[names[i + 1]].head
        turn = (now_next - pb.head).rotation_difference(nxt - head).to_matrix().to_4x4()
        pb.matrix = Matrix.Translation(head) @ turn @ Matrix.Translation(-pb.head) @ pb.matrix
        context.view_layer.update()
    end = pose[names[-1]]
    keep = last.copy()
    keep.translation = end.head
    end.matrix = keep
    context.view_layer.update()


def over_range_prop():
    """Whether to flip at every frame of the range (the operator's option and the panel's)."""
    return bpy.props.BoolProperty(
        name="Every frame in the range",
        description="Flip at every frame of the preview range (or the scene's range), not this frame only",
        default=False,
    )


class HUMAN_RECON_OT_flip_depth(bpy.types.Operator):
    """Turn the active bone's limb segment (upper arm, forearm, thigh or shin) the other way in depth: the same
    picture from the scene's camera, the bend towards the camera instead of away, or back"""

    bl_idname = "human_recon.flip_depth"
    bl_label = "Flip in depth"
    bl_options = {"REGISTER", "UNDO"}

    armature: bpy.props.StringProperty(name="Armature", description="The rig (default: the active object)")
    bone: bpy.props.StringProperty(name="Bone", description="A bone of the segment (default: the active bone)")
    over_range: over_range_prop()

    def execute(self, context):
        obj = bpy.data.objects.get(self.armature) if self.armature else context.object
        bone = self.bone
        if not bone and obj is not None and obj.type == "ARMATURE" and obj.data.bones.active is not None:
            bone = obj.data.bones.active.name
        try:
            if self.armature and obj is None:
                raise PoseFixError(f"No object named '{self.armature}'; pick the armature.")
            if not bone and obj is not None and obj.type == "ARMATURE":
                raise PoseFixError("Select one of the armature's arm or leg bones (Pose Mode) first.")
            if self.over_range:
                role, flipped, left = flip_over_range(context, obj, bone)
                side_on = f" ({left} left as they were: no other depth there)" if left else ""
                self.report({"INFO"}, f"{obj.name}: {role} turned the other way in depth in {flipped} frames{side_on}")
                return {"FINISHED"}
            role = flip_in_depth(context, obj, bone)
        except PoseFixError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except Exception as exc:  # never a traceback
            self.report({"ERROR"}, f"Could not flip the bone ({type(exc).__name__}: {exc}).")
            return {"CANCELLED"}
        self.report({"INFO"}, f"{obj.name}: {role} turned the other way in depth")
        return {"FINISHED"}


classes = (HUMAN_RECON_OT_flip_depth,)
