"""Flip in depth (add-on ``posefix``) in real Blender (bpy): on the rigs Import result builds
from the bundled photo's result and from a real clip's (keyed at the current frame)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from .conftest import PERSON, assert_one_error_report

bpy = pytest.importorskip("bpy")
from bpy_extras.object_utils import world_to_camera_view  # noqa: E402

from benchmarks.real import flipped_in_depth  # noqa: E402

from .addon_import import posefix, transfer  # noqa: E402


@pytest.fixture(scope="module")
def photo_result(reconstructor, tmp_path_factory):
    return reconstructor.reconstruct(PERSON).save(tmp_path_factory.mktemp("fix") / "person.npz")


def _imported(path) -> object:
    """A fresh scene holding the result's rig, as Import result builds it; its armature."""
    bpy.ops.wm.read_homefile(use_empty=True)  # keeps the installed add-on
    assert bpy.ops.human_recon.import_result(filepath=str(path)) == {"FINISHED"}
    (arm,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    return arm


@pytest.fixture()
def rig(installed, photo_result):
    return _imported(photo_result)


def _state(arm, names: list[str]) -> dict:
    """The limb's joints (world), their place in the picture, and the last bone's orientation."""
    scene, cam = bpy.context.scene, bpy.context.scene.camera
    joints = [arm.matrix_world @ arm.pose.bones[n].head for n in names]
    views = [world_to_camera_view(scene, cam, j) for j in joints]
    return {
        "joints": np.array([list(j) for j in joints]),
        "picture": np.array([[v.x, v.y] for v in views]),
        "last": (arm.matrix_world @ arm.pose.bones[names[-1]].matrix).to_quaternion(),
    }


def _along_ray(state: dict, eye: np.ndarray) -> np.ndarray:
    """Each joint's distance along the camera ray through the segment's end, from the eye."""
    u = state["joints"][1] - eye
    return (state["joints"] - eye) @ (u / np.linalg.norm(u))


@pytest.mark.parametrize("bone, role", [
    ("lowerarm01.L", "forearm.L"), ("upperarm02.R", "upper_arm.R"),  # a twist bone: its segment's
    ("lowerleg02.L", "shin.L"), ("upperleg01.R", "thigh.R"),
])  # fmt: skip
def test_a_flip_keeps_the_picture_and_turns_the_segment_in_depth(rig, bone, role):
    assert posefix.limb_of(rig, bone)[0] == role
    names = posefix.limb_of(rig, bone)[1]
    eye = np.array(bpy.context.scene.camera.matrix_world.translation)
    before = _state(rig, names)
    assert bpy.ops.human_recon.flip_depth(armature=rig.name, bone=bone) == {"FINISHED"}
    after = _state(rig, names)
    # The same picture: every joint of the limb where the photo shows it, the segment's start
    # unmoved, each bone as long as it was, the hand or foot turned as it was.
    assert np.abs(after["picture"] - before["picture"]).max() < 1e-5
    assert np.linalg.norm(after["joints"][0] - before["joints"][0]) < 1e-5
    lengths = lambda s: np.linalg.norm(np.diff(s["joints"], axis=0), axis=1)  # noqa: E731
    assert np.abs(lengths(after) - lengths(before)).max() < 1e-4
    assert after["last"].rotation_difference(before["last"]).angle < 1e-3
    # The other depth: the segment's end on the other side of the start's foot on the ray.
    b, a = _along_ray(before, eye), _along_ray(after, eye)
    assert abs(b[1] - b[0]) > 1e-3, "a segment seen side-on proves nothing"
    assert a[1] - a[0] == pytest.approx(-(b[1] - b[0]), abs=1e-4)
    # The kit benchmark's oracle (benchmarks.real.flipped_in_depth) turns a limb as the tool does.
    to_cam = np.diag([1.0, -1.0, -1.0]) @ np.array(bpy.context.scene.camera.matrix_world.inverted().to_3x3())
    cam = lambda s: (s["joints"] - eye) @ to_cam.T  # noqa: E731  (OpenCV axes, the camera at the origin)
    chain = tuple(range(len(names)))
    assert np.abs(flipped_in_depth(cam(before), chain, 0) - cam(after)).max() < 1e-4
    # Twice is no change.
    assert bpy.ops.human_recon.flip_depth(armature=rig.name, bone=bone) == {"FINISHED"}
    assert np.abs(_state(rig, names)["joints"] - before["joints"]).max() < 1e-4


def test_the_mesh_follows_the_flipped_arm(rig):
    mesh = next(o for o in bpy.data.objects if o.type == "MESH")

    def verts():
        ev = mesh.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh()
        out = np.array([list(mesh.matrix_world @ v.co) for v in ev.vertices])
        mesh.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh_clear()
        return out

    before = verts()
    assert bpy.ops.human_recon.flip_depth(armature=rig.name, bone="upperarm01.L") == {"FINISHED"}
    moved = np.linalg.norm(verts() - before, axis=1)
    assert moved.max() > 0.01 and (moved > 1e-4).mean() < 0.25  # the arm moves, the rest of the body does not


def test_what_cannot_be_flipped_is_refused_and_left_as_it_was(rig):
    names = [b.name for b in rig.pose.bones]
    pose = lambda: np.array([list(rig.pose.bones[n].matrix_basis.to_quaternion()) for n in names])  # noqa: E731
    before = pose()
    flip = bpy.ops.human_recon.flip_depth
    assert_one_error_report(lambda: flip(armature=rig.name, bone="head"), "not on an upper arm, forearm, thigh or shin")
    assert_one_error_report(lambda: flip(armature=rig.name, bone="wrist.L"), "not on an upper arm")
    assert_one_error_report(lambda: flip(armature=rig.name, bone="no such bone"), "has no bone 'no such bone'")
    assert_one_error_report(lambda: flip(armature="Nobody", bone="lowerarm01.L"), "No object named 'Nobody'")
    mesh = next(o for o in bpy.data.objects if o.type == "MESH")
    assert_one_error_report(lambda: flip(armature=mesh.name, bone="lowerarm01.L"), "Select the armature")
    camera, bpy.context.scene.camera = bpy.context.scene.camera, None
    assert_one_error_report(lambda: flip(armature=rig.name, bone="lowerarm01.L"), "The scene has no camera")
    bpy.context.scene.camera = camera
    bpy.context.view_layer.objects.active = rig  # as in the panel: the active object's active bone
    rig.data.bones.active = None
    assert_one_error_report(flip, "Select one of the armature's arm or leg bones")
    assert np.abs(pose() - before).max() == 0.0
    rig.data.bones.active = rig.data.bones["lowerleg01.R"]
    assert flip() == {"FINISHED"}
    changed = {n for n, a, b in zip(names, pose(), before) if np.abs(a - b).max() > 1e-6}
    assert changed == {"lowerleg01.R", "foot.R"}


def test_an_animated_rig_is_keyed_at_the_current_frame_only(installed, walk_result):
    arm = _imported(walk_result)
    scene = bpy.context.scene
    names = posefix.limb_of(arm, "lowerarm01.R")[1]
    scene.frame_set(20)
    other = _state(arm, names)["joints"]
    scene.frame_set(10)
    before = _state(arm, names)
    q_before = arm.pose.bones["lowerarm01.R"].rotation_quaternion.copy()
    assert bpy.ops.human_recon.flip_depth(armature=arm.name, bone="lowerarm01.R") == {"FINISHED"}
    assert arm.pose.bones["lowerarm01.R"].rotation_quaternion.dot(q_before) >= 0  # keys blend the short way
    flipped = _state(arm, names)["joints"]
    assert np.linalg.norm(flipped[1] - before["joints"][1]) > 1e-3
    keyed = [c for c in transfer.action_fcurves(arm)
             if c.data_path == 'pose.bones["lowerarm01.R"].rotation_quaternion']  # fmt: skip
    assert len(keyed) == 4
    q = arm.pose.bones["lowerarm01.R"].rotation_quaternion
    for c in keyed:
        assert c.evaluate(10) == pytest.approx(q[c.array_index], abs=1e-6)
    scene.frame_set(20)  # the other frames keep their keys
    assert np.abs(_state(arm, names)["joints"] - other).max() < 1e-6
    scene.frame_set(10)  # and the flip holds at its frame
    assert np.abs(_state(arm, names)["joints"] - flipped).max() < 1e-5


def test_a_stretch_of_a_clip_is_flipped_frame_by_frame(installed, walk_result):
    """Every frame of the preview range turned, each keeping its picture; the frames around it
    untouched; the current frame kept; and a rig without animation refuses a range."""
    arm = _imported(walk_result)
    scene = bpy.context.scene
    names = posefix.limb_of(arm, "lowerleg01.L")[1]
    states = {}
    for f in range(8, 23):
        scene.frame_set(f)
        states[f] = _state(arm, names)
    scene.frame_set(30)
    scene.use_preview_range, scene.frame_preview_start, scene.frame_preview_end = True, 10, 20
    assert bpy.ops.human_recon.flip_depth(armature=arm.name, bone="lowerleg01.L", over_range=True) == {"FINISHED"}
    assert scene.frame_current == 30
    for f, before in states.items():
        scene.frame_set(f)
        after = _state(arm, names)
        moved = np.linalg.norm(after["joints"][1] - before["joints"][1])
        if 10 <= f <= 20:
            assert moved > 1e-4 and np.abs(after["picture"] - before["picture"]).max() < 1e-5, f
        else:
            assert moved < 1e-6, f
    flip = lambda name: bpy.ops.human_recon.flip_depth(armature=name, bone="lowerleg01.L", over_range=True)  # noqa: E731
    camera, scene.camera = scene.camera, None
    assert_one_error_report(lambda: flip(arm.name), "The scene has no camera")
    scene.camera = camera
    photo_rig = _imported(walk_result)
    photo_rig.animation_data_clear()
    assert_one_error_report(lambda: flip(photo_rig.name), "has no animation")


class _Layout:
    """Records what a panel draws: Blender's own UILayout exists only in a window's redraw."""

    def __init__(self) -> None:
        self.items: list = []
        self.enabled = True

    def column(self):
        return self

    def row(self):
        return self

    def label(self, text: str) -> None:
        self.items.append(("label", text))

    def prop(self, _data, name: str) -> None:
        self.items.append(("prop", name))

    def operator(self, idname: str, icon: str = "") -> SimpleNamespace:
        op = SimpleNamespace(idname=idname)
        self.items.append(("operator", op))
        return op


def test_the_fix_pose_panel_offers_the_flip_for_the_active_bone(installed, photo_result, walk_result):
    draw = bpy.types.VIEW3D_PT_human_recon_fix.draw

    def drawn():
        layout = _Layout()
        draw(SimpleNamespace(layout=layout), bpy.context)
        ops = [x for kind, x in layout.items if kind == "operator"]
        return layout, [(kind, x) for kind, x in layout.items if kind != "operator"], ops

    for path, animated in ((photo_result, False), (walk_result, True)):
        arm = _imported(path)
        bpy.context.view_layer.objects.active = arm
        arm.data.bones.active = None
        layout, shown, (op,) = drawn()
        assert not layout.enabled and shown == [("label", "Select an arm or leg bone (Pose Mode)")]
        arm.data.bones.active = arm.data.bones["lowerarm01.L"]
        bpy.context.scene.human_recon.flip_range = True
        layout, shown, (op,) = drawn()
        assert layout.enabled and op.idname == "human_recon.flip_depth" and shown[0] == ("label", "Bone: lowerarm01.L")
        assert (("prop", "flip_range") in shown) == animated and op.over_range == animated
