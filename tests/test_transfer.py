"""Transfer motion (add-on ``transfer`` / ``retarget`` / ``bonemaps``) in real Blender (bpy):
a real clip's result moved onto armatures built with each preset's bone names, in T-pose and
A-pose, with other proportions, rolls and extra bones than Anny's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import PERSON, run_cli

bpy = pytest.importorskip("bpy")
from .addon_import import bonemaps, retarget, transfer  # noqa: E402
from .rigs import build  # noqa: E402

SEGMENTS = [("upper_arm", "forearm"), ("forearm", "hand"), ("thigh", "shin"), ("shin", "foot")]
SEGMENTS = [(f"{a}.{s}", f"{b}.{s}") for a, b in SEGMENTS for s in "LR"] + [("spine", "chest"), ("neck", "head")]


@pytest.fixture()
def source(installed, walk_result):
    """A fresh scene holding the clip's rig (Person 1), as Import result builds it."""
    bpy.ops.wm.read_homefile(use_empty=True)  # keeps the installed add-on
    assert bpy.ops.human_recon.import_result(filepath=str(walk_result)) == {"FINISHED"}
    return bpy.data.objects["Person 1"]


def _roles(arm) -> dict[str, str]:
    return bonemaps.detect([b.name for b in arm.data.bones])[1]


def _world_heads(arm, names, frames) -> np.ndarray:
    """(F, len(names), 3) world positions of bone heads as Blender evaluates them."""
    scene = bpy.context.scene
    out = []
    for f in frames:
        scene.frame_set(int(f))
        out.append([np.array(arm.matrix_world @ arm.pose.bones[n].head) for n in names])
    return np.array(out)


def _frames(arm) -> np.ndarray:
    lo, hi = arm.animation_data.action.frame_range
    return np.arange(int(lo), int(hi) + 1)


def _segment_angles(src, tgt, frames) -> np.ndarray:
    """(F, segments) angle in degrees between each limb segment's world direction on both rigs."""
    rs, rt = _roles(src), _roles(tgt)
    roles = sorted({r for seg in SEGMENTS for r in seg})
    hs = _world_heads(src, [rs[r] for r in roles], frames)
    ht = _world_heads(tgt, [rt[r] for r in roles], frames)
    ix = {r: k for k, r in enumerate(roles)}
    ds = np.stack([hs[:, ix[b]] - hs[:, ix[a]] for a, b in SEGMENTS], 1)
    dt = np.stack([ht[:, ix[b]] - ht[:, ix[a]] for a, b in SEGMENTS], 1)
    # A segment the target folds to a point (Rigify's first two spine controls share a head)
    # has no direction to compare (0 / 0 here; its column is dropped below).
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.sum(ds * dt, -1) / np.linalg.norm(ds, axis=-1) / np.linalg.norm(dt, axis=-1)
    rest = {r: np.array(tgt.data.bones[rt[r]].head_local) for r in roles}
    to_world = np.array(tgt.matrix_world.to_3x3())
    real = [np.linalg.norm(to_world @ (rest[b] - rest[a])) >= 0.01 for a, b in SEGMENTS]
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))[:, real]


def _rest_leg(arm) -> float:
    r = _roles(arm)
    pts = {k: np.array(arm.matrix_world @ arm.data.bones[r[k]].head_local) for k in r}
    legs = [[pts[f"thigh.{s}"], pts[f"shin.{s}"], pts[f"foot.{s}"]] for s in "LR"]
    return np.mean([np.linalg.norm(a - b) + np.linalg.norm(b - c) for a, b, c in legs])


RIGS = [  # preset, T- or A-pose, proportions, stored like a Mixamo FBX import
    pytest.param("MIXAMO", dict(legs=1.15, arms=0.9, y_up_cm=True), id="mixamo-T-fbx-axes"),
    pytest.param("RIGIFY", dict(a_pose=True, size=0.85), id="rigify-A-euler"),
    pytest.param("UE5", dict(legs=0.9, arms=1.1, size=1.1), id="ue5-T"),
    pytest.param("SMPL", dict(a_pose=True, roll=-0.5), id="smpl-A"),
    pytest.param("ANNY", dict(size=1.2, extras=False), id="anny-T"),
]


@pytest.mark.parametrize("preset, shape", RIGS)
def test_transfer_follows_source_limbs_and_path(source, preset, shape):
    target = build(preset, "Character", **shape)
    actions = set(bpy.data.actions)
    res = bpy.ops.human_recon.transfer_motion(source=source.name, target=target.name)
    assert res == {"FINISHED"}
    (action,) = set(bpy.data.actions) - actions  # one new action, on the target
    assert target.animation_data.action == action
    frames = _frames(source)
    assert np.array_equal(_frames(target), frames)
    ang = _segment_angles(source, target, frames)
    assert np.median(ang) <= 5.0 and ang.max() <= 15.0, (np.median(ang, 0), ang.max(0))
    # The hips' path is the source's scaled by the legs' length ratio.
    ratio = _rest_leg(target) / _rest_leg(source)
    hs = _world_heads(source, [_roles(source)["hips"]], frames)[:, 0]
    ht = _world_heads(target, [_roles(target)["hips"]], frames)[:, 0]
    src0 = np.array(source.matrix_world @ source.data.bones[_roles(source)["hips"]].head_local)
    tgt0 = np.array(target.matrix_world @ target.data.bones[_roles(target)["hips"]].head_local)
    assert np.linalg.norm(hs - src0, axis=1).max() > 0.5  # the man walks: the path is not trivial
    np.testing.assert_allclose(ht - tgt0, ratio * (hs - src0), atol=1e-3)


def _spans(source, side: str, frames) -> list[tuple[int, int]]:
    """The source's planted stretches of one foot: the clip's result says, from the image."""
    flags = transfer.source_contacts(source, len(frames))
    assert flags is not None, "the clip's rig carries no planted-foot flags"
    fps = bpy.context.scene.render.fps / bpy.context.scene.render.fps_base
    return retarget.runs(flags[side], retarget.shortest_contact(fps))


def test_real_rigify_rig_follows_through_its_constraints(source):
    """A rig generated by Rigify (bundled with Blender): its FK controls hang from constrained
    helper bones, so the transfer bakes through Blender's own evaluation; the deforming bones
    (DEF-) follow, with the limbs switched to FK."""
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    bpy.ops.pose.rigify_generate()
    (rig,) = [o for o in bpy.data.objects if o.type == "ARMATURE" and o.name not in ("Person 1", "metarig")]
    bpy.ops.object.mode_set(mode="OBJECT")
    objects, actions = len(bpy.data.objects), set(bpy.data.actions)
    assert bpy.ops.human_recon.transfer_motion(source=source.name, target=rig.name) == {"FINISHED"}
    assert len(bpy.data.objects) == objects and len(set(bpy.data.actions) - actions) == 1  # no helper left
    assert not any(c.name.startswith("HR transfer") for pb in rig.pose.bones for c in pb.constraints)
    frames = _frames(source)[::6]
    ang = _segment_angles(source, rig, frames)
    assert ang.max() <= 3.0, ang.max(0)
    deform = {"upper_arm.L": "DEF-upper_arm.L", "forearm.L": "DEF-forearm.L", "hand.L": "DEF-hand.L",
              "thigh.R": "DEF-thigh.R", "shin.R": "DEF-shin.R", "foot.R": "DEF-foot.R"}  # fmt: skip
    rs = _roles(source)
    hs = _world_heads(source, [rs[r] for r in deform], frames)
    ht = _world_heads(rig, list(deform.values()), frames)
    for a, b in ((0, 1), (1, 2), (3, 4), (4, 5)):
        u, v = hs[:, b] - hs[:, a], ht[:, b] - ht[:, a]
        cos = np.sum(u * v, 1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() <= 3.0, list(deform)[a]


def test_constraints_above_and_on_mapped_bones(source):
    """A constraint on a bone between mapped ones is baked through; one on a mapped bone would
    move it off the motion every frame, so it is muted (and the report says so)."""
    target = build("UE5", "Character")
    empty = bpy.data.objects.new("Still", None)
    bpy.context.scene.collection.objects.link(empty)
    empty.rotation_euler = (0.2, 0.0, 0.5)  # the constraint turns the whole body: it matters
    between = target.pose.bones["root_extra"].constraints.new("COPY_ROTATION")  # above the hips, not mapped
    on = target.pose.bones["upperarm_r"].constraints.new("COPY_ROTATION")
    for con in (between, on):
        con.target = empty
    assert bpy.ops.human_recon.transfer_motion(source=source.name, target=target.name) == {"FINISHED"}
    assert on.mute and not between.mute
    ang = _segment_angles(source, target, _frames(source)[::5])
    assert ang.max() <= 1.0, ang.max(0)


def test_plant_feet_holds_planted_feet(source):
    target = build("MIXAMO", "Character", legs=1.1, y_up_cm=True)
    res = bpy.ops.human_recon.transfer_motion(source=source.name, target=target.name, plant_feet=True)
    assert res == {"FINISHED"}
    frames = _frames(source)
    rt = _roles(target)
    held = 0
    for side in "LR":
        ankle = _world_heads(target, [rt[f"foot.{side}"]], frames)[:, 0]
        for a, b in _spans(source, side, frames):
            drift = np.linalg.norm(ankle[a:b] - ankle[a], axis=1)
            assert drift.max() <= 0.01, (side, a, b, drift.max())
            held += b - a
    assert held >= 10  # the walk has contacts to hold
    # Off, the same feet slide: planting changed something.
    bpy.ops.human_recon.transfer_motion(source=source.name, target=target.name, plant_feet=False)
    free = {s: _world_heads(target, [rt[f"foot.{s}"]], frames)[:, 0] for s in "LR"}
    spans = [(s, a, b) for s in "LR" for a, b in _spans(source, s, frames)]
    slide = [np.linalg.norm(free[s][a:b] - free[s][a], axis=1).max() for s, a, b in spans]
    assert max(slide) > 0.01


def test_photo_pose_is_transferred(installed, tmp_path, cache_dir):
    out = tmp_path / "person.npz"
    proc = run_cli("reconstruct", str(PERSON), "-o", str(out), cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    bpy.ops.wm.read_homefile(use_empty=True)  # keeps the installed add-on
    assert bpy.ops.human_recon.import_result(filepath=str(out)) == {"FINISHED"}
    src = bpy.data.objects["Person 1"]
    target = build("UE5", "Character", a_pose=True)
    assert bpy.ops.human_recon.transfer_motion(source=src.name, target=target.name) == {"FINISHED"}
    frame = bpy.context.scene.frame_current
    assert np.array_equal(_frames(target), [frame])
    ang = _segment_angles(src, target, [frame])
    assert ang.max() <= 5.0, ang


def test_bone_map_fill_save_load_and_custom_transfer(source, tmp_path):
    target = build("MIXAMO", "Character", y_up_cm=True)
    # A rig renamed by hand: no preset knows its names, so the user maps them in the panel.
    for b in target.data.bones:
        b.name = b.name.replace("mixamorig:", "my_")
    props = bpy.context.scene.human_recon
    props.transfer_target = target
    _refused("No known bones on 'Character'", source=source.name, target=target.name)
    assert bpy.ops.human_recon.fill_bone_map() == {"FINISHED"}
    assert [e.role for e in props.bone_map] == bonemaps.ROLES and not any(e.bone for e in props.bone_map)
    for e in props.bone_map:  # what picking each bone in the list does
        e.bone = "my_" + bonemaps.PRESETS["MIXAMO"][e.role][0]
    path = tmp_path / "my_rig.json"
    assert bpy.ops.human_recon.save_bone_map(filepath=str(path)) == {"FINISHED"}
    assert json.loads(path.read_text())["bones"]["thigh.R"] == "my_RightUpLeg"
    props.bone_map.clear()
    assert bpy.ops.human_recon.load_bone_map(filepath=str(path)) == {"FINISHED"}
    assert props.transfer_preset == "CUSTOM" and len(props.bone_map) == len(bonemaps.ROLES)
    res = bpy.ops.human_recon.transfer_motion(source=source.name, target=target.name, preset="CUSTOM")
    assert res == {"FINISHED"}
    frames = _frames(source)[::10]
    rs = _roles(source)
    hs = _world_heads(source, [rs["upper_arm.L"], rs["forearm.L"]], frames)
    ht = _world_heads(target, ["my_LeftArm", "my_LeftForeArm"], frames)
    ds, dt = hs[:, 1] - hs[:, 0], ht[:, 1] - ht[:, 0]
    cos = np.sum(ds * dt, -1) / np.linalg.norm(ds, axis=-1) / np.linalg.norm(dt, axis=-1)
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() <= 5.0


def _refused(message_part: str, **kwargs) -> None:
    actions = set(bpy.data.actions)
    with pytest.raises(RuntimeError, match=message_part):
        bpy.ops.human_recon.transfer_motion(**kwargs)
    assert set(bpy.data.actions) == actions  # never a half-baked action


def test_bad_targets_and_maps_are_reported(source, tmp_path):
    plain = bpy.data.armatures.new("Plain")
    odd = bpy.data.objects.new("Odd", plain)
    bpy.context.scene.collection.objects.link(odd)
    bpy.context.view_layer.objects.active = odd
    bpy.ops.object.mode_set(mode="EDIT")
    for k in range(3):
        plain.edit_bones.new(f"Bone{k}").tail = (0, 0, 1)
    bpy.ops.object.mode_set(mode="OBJECT")
    _refused(r"No known bones on 'Odd'.*hips \(Hips\)", source=source.name, target="Odd")
    mesh = bpy.data.objects.new("Cube", bpy.data.meshes.new("Cube"))
    bpy.context.scene.collection.objects.link(mesh)
    _refused("Target: 'Cube' is not an armature", source=source.name, target="Cube")
    _refused("no object named 'Nobody'", source=source.name, target="Nobody")
    target = build("MIXAMO", "Character")
    _refused("not a Human Recon rig", source=target.name, target=source.name)
    _refused("same armature", source=source.name, target=source.name)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"bones": {"hips": "mixamorig:Hips", "thigh.L": "NoSuchBone"}}))
    _refused("names bones that 'Character' lacks: NoSuchBone", source=source.name, target=target.name,
             map_file=str(bad))  # fmt: skip
    bad.write_text("{ not json")
    _refused("is not a bone map", source=source.name, target=target.name, map_file=str(bad))
    _refused("lacks the UE5 Manny/Quinn bones pelvis, upperarm_l", source=source.name, target=target.name, preset="UE5")
    # A clip too long to transfer in one go.
    fc = next(c for c in transfer.action_fcurves(source) if c.data_path.endswith("location"))
    fc.keyframe_points.insert(30000, 0.0)
    _refused("spans frames 1-30000, more than 20000 frames", source=source.name, target=target.name)
    assert target.animation_data is None  # the target was left as it was


def test_one_undo_step_removes_the_transfer(source):
    build("RIGIFY", "Character")
    bpy.ops.ed.undo_push(message="before the transfer")
    count = len(bpy.data.actions)
    assert bpy.ops.human_recon.transfer_motion(source=source.name, target="Character") == {"FINISHED"}
    assert len(bpy.data.actions) == count + 1
    bpy.ops.ed.undo_push(message="Transfer motion")  # the step the UI records for an UNDO operator
    bpy.ops.ed.undo()
    target = bpy.data.objects["Character"]  # undo reloads the data: fetch it again
    assert target.animation_data is None or target.animation_data.action is None
    assert len(bpy.data.actions) == count
