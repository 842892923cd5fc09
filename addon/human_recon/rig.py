"""Builds the Blender scene from a result: per person an armature and a skinned mesh, posed
(or keyframed), and the one camera that matches the photo.

Everything goes into one new collection named after the photo; the people are named left to
right, ``Person 1``, ``Person 2``, .... If anything
fails half-way, whatever was created is removed again, so the scene is either
complete or unchanged.
"""

from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from .result_io import Person, Result, file_number, frame_files

# The camera's sensor is the full frame's (36 x 24 mm) diagonal cut to the picture's shape, so its
# Focal Length reads as the lens's 35 mm equivalent: what EXIF records and --focal-mm takes.
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)  # as the inference's lens.FULL_FRAME_DIAGONAL_MM
CONTACTS_PROP = "human_recon_foot_contact"  # custom property on a clip's armatures
# Custom property on the result's collection: the result's notes, one a line (who was skipped or
# filled in and why, where the camera's focal length came from), where the user can read them later.
NOTES_PROP = "human_recon_notes"


def _matrix(a: np.ndarray) -> Matrix:
    return Matrix([list(map(float, row)) for row in a])


class SceneBuilder:
    """Creates datablocks and remembers them, so a failure can undo everything."""

    def __init__(self) -> None:
        self.objects: list[bpy.types.Object] = []
        self.data: list[tuple[object, object]] = []  # (collection of datablocks, datablock)
        self.collection: bpy.types.Collection | None = None
        self.saved_render = None
        self.curves: dict[str, _Curves] = {}  # each animated object's F-curves, by object name

    def rollback(self) -> None:
        if self.saved_render is not None:
            scene, camera, res = self.saved_render
            scene.camera = camera
            scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = res
        for obj in self.objects:
            if obj.name in bpy.data.objects:
                bpy.data.objects.remove(obj, do_unlink=True)
        for coll, block in reversed(self.data):
            try:
                coll.remove(block)
            except (ReferenceError, RuntimeError):
                pass
        if self.collection is not None and self.collection.name in bpy.data.collections:
            bpy.data.collections.remove(self.collection)

    def _track(self, coll, block):
        self.data.append((coll, block))
        return block

    def build(self, result: Result, context: bpy.types.Context, name: str | None = None,
              pose_correctives: bool = True) -> dict:
        self.pose_correctives = pose_correctives
        try:
            return self._build(result, context, name)
        except BaseException:
            self.rollback()
            raise

    def _build(self, r: Result, context, name: str | None) -> dict:
        name = name or Path(r.image_path).stem or "Human"
        scene = context.scene
        coll = bpy.data.collections.new(name)
        self.collection = coll
        scene.collection.children.link(coll)
        if r.notes:
            coll[NOTES_PROP] = "\n".join(r.notes)
        rigs = []
        for k, person in enumerate(r.people):  # left to right, as the result orders them
            label = f"Person {k + 1}"
            arm_obj = self._armature(r, person, coll, label)
            arm_obj.matrix_world = _matrix(r.person_matrix_world(k))
            mesh_obj = self._mesh(r, person, coll, label, arm_obj)
            self._pose(r, person, arm_obj, frame=0)
            if r.frames > 1:
                self._animate(r, person, arm_obj, scene)
                if person.foot_contact is not None and len(person.foot_contact) == r.frames:
                    # Planted feet per frame (bit 0 left, bit 1 right) for Transfer motion's IK.
                    bits = person.foot_contact[:, 0].astype(int) | (person.foot_contact[:, 1].astype(int) << 1)
                    arm_obj[CONTACTS_PROP] = bits.tolist()
                if not person.present.all():
                    self._visibility(person, (arm_obj, mesh_obj), scene)
            if r.smpl_shapedirs is not None:
                self._smpl_shape_keys(r, person, mesh_obj, scene)
            rigs.append({"armature": arm_obj, "mesh": mesh_obj})
        cam_obj = self._camera(r, coll, name, scene)
        return {"collection": coll, "people": rigs, "camera": cam_obj}

    def _armature(self, r: Result, person: Person, coll, name: str):
        arm = self._track(bpy.data.armatures, bpy.data.armatures.new(f"{name} Rig"))
        obj = bpy.data.objects.new(name, arm)
        self.objects.append(obj)
        coll.objects.link(obj)
        view_layer = bpy.context.view_layer
        # Edit bones exist only in edit mode, which needs the object active.
        prev_active = view_layer.objects.active
        view_layer.objects.active = obj
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            bones = []
            for i, bname in enumerate(r.bone_names):
                eb = arm.edit_bones.new(bname)
                eb.head = person.heads[i].tolist()
                eb.tail = person.tails[i].tolist()
                # The rest frame fixes the roll (the Y axis already runs head to tail).
                eb.matrix = _matrix(person.rest_matrices[i])
                bones.append(eb)
            for i, p in enumerate(r.bone_parents):
                if p >= 0:
                    bones[i].parent = bones[int(p)]
        finally:
            bpy.ops.object.mode_set(mode="OBJECT")
            view_layer.objects.active = prev_active
        return obj

    def _mesh(self, r: Result, person: Person, coll, name: str, arm_obj):
        me = self._track(bpy.data.meshes, bpy.data.meshes.new(f"{name} Body"))
        me.from_pydata(person.rest_vertices.tolist(), [], r.faces.tolist())
        me.update()
        obj = bpy.data.objects.new(f"{name} Body", me)
        self.objects.append(obj)
        coll.objects.link(obj)
        groups = [obj.vertex_groups.new(name=b) for b in r.bone_names]
        verts, slots = np.nonzero(r.skin_weights > 0)
        bones = r.skin_indices[verts, slots].tolist()
        for v, b, wt in zip(verts.tolist(), bones, r.skin_weights[verts, slots].tolist()):
            groups[b].add([v], wt, "ADD")
        mod = obj.modifiers.new("Armature", "ARMATURE")
        mod.object = arm_obj
        obj.parent = arm_obj
        return obj

    def _pose(self, r: Result, person: Person, arm_obj, frame: int) -> None:
        for i, bname in enumerate(r.bone_names):
            pb = arm_obj.pose.bones[bname]
            pb.rotation_mode = "QUATERNION"
            pb.rotation_quaternion = person.rotations[frame, i].tolist()

    def _animate(self, r: Result, person: Person, arm_obj, scene) -> None:
        """One action: every bone's rotation per frame, and the root's motion on the root bone."""
        n = r.frames
        frames = np.arange(n, dtype=np.float64) + scene.frame_start
        bag = self._new_action(arm_obj, "OBJECT", f"{arm_obj.name} Motion")
        self.curves[arm_obj.name] = bag

        def curve(path: str, index: int, values: np.ndarray, group: str) -> None:
            write_curve(bag, path, index, frames, values, group)

        for j, bname in enumerate(r.bone_names):
            if j == 0:
                continue  # the root carries the body's motion, below
            q = person.rotations[:, j]
            for c in range(4):
                curve(f'pose.bones["{bname}"].rotation_quaternion', c, q[:, c], bname)
        # Root motion: the body moves relative to its first frame, the camera stays put.
        root = r.bone_names[0]
        L = person.rest_matrices[0]
        Linv = np.linalg.inv(L)
        m0inv = np.linalg.inv(person.model_to_camera(0))
        basis = np.stack([Linv @ m0inv @ person.model_to_camera(f) @ L for f in range(n)])
        from mathutils import Matrix as M

        quats = np.array([list(M(b[:3, :3].tolist()).to_quaternion()) for b in basis])
        for t in range(1, n):  # keep the quaternion path continuous
            if np.dot(quats[t], quats[t - 1]) < 0:
                quats[t] *= -1
        arm_obj.pose.bones[root].rotation_mode = "QUATERNION"
        for c in range(3):
            curve(f'pose.bones["{root}"].location', c, basis[:, c, 3], root)
        for c in range(4):
            curve(f'pose.bones["{root}"].rotation_quaternion', c, quats[:, c], root)
        scene.frame_end = int(frames[-1])
        if r.fps > 0:
            scene.render.fps = max(1, round(r.fps))
            scene.render.fps_base = scene.render.fps / r.fps

    def _visibility(self, person: Person, objects, scene) -> None:
        """A person who is not in the whole clip is hidden (viewport and render) in the frames
        before they come in and after they leave: keys on each object, held constant."""
        frames = np.arange(len(person.present), dtype=np.float64) + scene.frame_start
        hidden = (~person.present).astype(np.float64)
        for obj in objects:
            bag = self.curves.get(obj.name) or self._new_action(obj, "OBJECT", f"{obj.name} Visibility")
            for path in ("hide_viewport", "hide_render"):
                write_curve(bag, path, 0, frames, hidden, "Visibility", interpolation=0)  # CONSTANT
            obj.hide_viewport = obj.hide_render = bool(hidden[0])

    def _smpl_shape_keys(self, r: Result, person: Person, mesh_obj, scene) -> None:
        """SMPL add-on conventions: Basis = the template, Shape000-009 = the betas, and
        Pose000-206 = pose correctives whose values follow the pose (keyed per frame)."""
        me = mesh_obj.data
        me.vertices.foreach_set("co", r.smpl_v_template.astype(np.float64).ravel())
        basis = mesh_obj.shape_key_add(name="Basis", from_mix=False)
        basis.data.foreach_set("co", r.smpl_v_template.astype(np.float64).ravel())
        betas = person.betas if person.betas is not None else np.zeros(10)
        for k in range(r.smpl_shapedirs.shape[2]):
            key = mesh_obj.shape_key_add(name=f"Shape{k:03d}", from_mix=False)
            key.slider_min, key.slider_max = -10.0, 10.0
            key.data.foreach_set("co", (r.smpl_v_template + r.smpl_shapedirs[:, :, k]).astype(np.float64).ravel())
            key.value = float(betas[k])
        if not self.pose_correctives or r.smpl_posedirs is None:
            return
        n = r.frames
        feats = np.stack([person.pose_feature(f) for f in range(n)])  # (N, 207)
        keys = []
        for k in range(r.smpl_posedirs.shape[2]):
            key = mesh_obj.shape_key_add(name=f"Pose{k:03d}", from_mix=False)
            key.slider_min, key.slider_max = -10.0, 10.0
            key.data.foreach_set("co", (r.smpl_v_template + r.smpl_posedirs[:, :, k]).astype(np.float64).ravel())
            key.value = float(feats[0, k])
            keys.append(key)
        if n > 1:  # one action on the shape keys updates the correctives for the whole clip
            bag = self._new_action(me.shape_keys, "KEY", f"{mesh_obj.name} Correctives")
            frames = np.arange(n, dtype=np.float64) + scene.frame_start
            for k, key in enumerate(keys):
                write_curve(bag, f'key_blocks["{key.name}"].value', 0, frames, feats[:, k], "Pose correctives")

    def _new_action(self, owner, id_type: str, name: str) -> "_Curves":
        action, curves = new_action(owner, id_type, name)
        self._track(bpy.data.actions, action)
        return curves

    def _picture_behind(self, r: Result, frames: list[str] | None):
        """The image the camera shows behind the rig, loaded: the photo, the clip's video, or the
        first of a folder clip's ``frames`` (None: none Blender can show). A photo Blender cannot
        read (HEIC) comes as JPEG bytes in the result: packed into the .blend, so it stays when
        the result's folder goes."""
        if r.background_jpeg:
            fd, tmp = tempfile.mkstemp(suffix=".jpg", prefix="human_recon_")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(r.background_jpeg)
                img = self._track(bpy.data.images, bpy.data.images.load(tmp))
                img.pack()
                img.name = os.path.basename(r.image_path) or img.name
            finally:
                os.unlink(tmp)
            return img
        path = r.image_path if r.image_path and os.path.isfile(r.image_path) else frames[0] if frames else None
        return None if path is None else self._track(bpy.data.images, bpy.data.images.load(path, check_existing=True))

    def _camera(self, r: Result, coll, name: str, scene):
        cam = self._track(bpy.data.cameras, bpy.data.cameras.new(f"{name} Camera"))
        sensor = FULL_FRAME_DIAGONAL_MM * r.width / float(np.hypot(r.width, r.height))
        lens, sx, sy = r.lens(sensor)
        cam.sensor_fit = "HORIZONTAL"
        cam.sensor_width = sensor
        cam.lens = lens
        cam.shift_x, cam.shift_y = sx, sy
        cam.clip_start, cam.clip_end = 0.05, 1000.0
        obj = bpy.data.objects.new(f"{name} Camera", cam)
        self.objects.append(obj)
        coll.objects.link(obj)
        obj.matrix_world = _matrix(r.camera_matrix_world())
        frames = _folder_frames(r)
        img = self._picture_behind(r, frames)
        if img is not None:
            bg = cam.background_images.new()
            bg.image = img
            bg.alpha = 1.0
            bg.display_depth = "BACK"
            cam.show_background_images = True
            if r.frames > 1:
                _follow_clip(img, bg.image_user, r, scene, frames)
        rs = scene.render
        self.saved_render = (scene, scene.camera, (rs.resolution_x, rs.resolution_y, rs.resolution_percentage))
        scene.camera = obj
        scene.render.resolution_x = r.width
        scene.render.resolution_y = r.height
        scene.render.resolution_percentage = 100
        scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
        return obj


@contextmanager
def evaluating_only(view_layer, objects):
    """While the block runs, every other visible object of ``view_layer`` is hidden, except what
    the armatures' bone constraints look at: Blender evaluates the whole scene on every frame it
    bakes or exports, and only these objects need it."""
    needed = set(objects) | {getattr(c, "target", None) for o in objects if o.type == "ARMATURE"
                             for pb in o.pose.bones for c in pb.constraints}  # fmt: skip
    hidden = [o for o in view_layer.objects if o not in needed and not o.hide_viewport]
    for o in hidden:
        o.hide_viewport = True
    try:
        yield
    finally:
        for o in hidden:
            o.hide_viewport = False


def new_action(owner, id_type: str, name: str) -> tuple[bpy.types.Action, "_Curves"]:
    """A new action assigned to ``owner``, and where its F-curves are made: the channelbag of
    its one slot (Blender 4.4+: layered actions), or the action itself (4.2-4.3)."""
    action = bpy.data.actions.new(name)
    owner.animation_data_create()
    owner.animation_data.action = action
    if not hasattr(action, "slots"):
        return action, _Curves(legacy_action=action)
    slot = action.slots.new(id_type=id_type, name=owner.name)
    owner.animation_data.action_slot = slot
    strip = action.layers.new("Layer").strips.new(type="KEYFRAME")
    return action, _Curves(channelbag=strip.channelbag(slot, ensure=True))


class _Curves:
    """Where an action's F-curves are made, alike on every supported Blender: a layered action's
    channelbag (4.4+; its ``fcurves.new`` takes no group before 5.0, so groups are set after),
    or the action's own F-curves (4.2-4.3)."""

    def __init__(self, channelbag=None, legacy_action=None) -> None:
        self.channelbag = channelbag
        self.legacy_action = legacy_action
        self.groups: dict = {}

    def new(self, path: str, index: int, group: str):
        if self.legacy_action is not None:
            return self.legacy_action.fcurves.new(path, index=index, action_group=group)
        fc = self.channelbag.fcurves.new(path, index=index)
        if group not in self.groups:
            self.groups[group] = self.channelbag.groups.new(group)
        fc.group = self.groups[group]
        return fc


def write_curve(curves: _Curves, path: str, index: int, frames: np.ndarray, values: np.ndarray, group: str,
                 interpolation: int = 1) -> None:  # fmt: skip
    """One F-curve with a key per frame, written in bulk (a key_insert per key is far slower).
    ``interpolation``: 1 LINEAR (frames are samples), 0 CONSTANT."""
    n = len(frames)
    fc = curves.new(path, index, group)
    fc.keyframe_points.add(n)
    co = np.empty(2 * n)
    co[0::2], co[1::2] = frames, values
    fc.keyframe_points.foreach_set("co", co)
    fc.keyframe_points.foreach_set("interpolation", [interpolation] * n)
    fc.update()


def build_scene(result: Result, context, name: str | None = None, pose_correctives: bool = True) -> dict:
    """Build each person's armature, skinned mesh and pose, and the camera; all or nothing.
    Returns the collection, ``people`` (per person ``armature`` and ``mesh``) and ``camera``."""
    return SceneBuilder().build(result, context, name, pose_correctives)


def _folder_frames(r: Result) -> list[str] | None:
    """A clip read from a folder: the files of its frames, in the result's order (None: not a
    folder, or frames Blender cannot show)."""
    if not (r.image_path and os.path.isdir(r.image_path)) or r.frame_indices is None or not len(r.frame_indices):
        return None
    files = frame_files(r.image_path)
    if not files or int(r.frame_indices[-1]) >= len(files):
        return None
    return [files[int(i)] for i in r.frame_indices]


def _follow_clip(img, user, r: Result, scene, frames: list[str] | None) -> None:
    """The camera's background plays along with the keyframes: the clip's first frame at the
    scene's first (Blender shows a movie's first frame only, unless told how many to play).
    Frames from a folder play as Blender's image sequence where their names number them one
    by one. A clip read at every n-th frame (``--step``) cannot play along: the background then
    holds the clip's first frame."""
    idx = r.frame_indices if r.frame_indices is not None and len(r.frame_indices) == r.frames else None
    steady = idx is not None and bool(np.all(np.diff(idx) == 1))
    user.frame_start = scene.frame_start
    user.use_auto_refresh = True
    if img.source == "MOVIE":
        user.frame_offset = int(idx[0]) if idx is not None else 0  # movie frame = scene frame - start + 1 + offset
        user.frame_duration = r.frames if steady else 1
        return
    numbers = [file_number(f) for f in frames] if frames and steady else []
    if numbers and None not in numbers and all(b - a == 1 for a, b in zip(numbers, numbers[1:])):
        img.source = "SEQUENCE"  # file number = scene frame - start + 1 + offset
        user.frame_offset = numbers[0] - 1
        user.frame_duration = r.frames
