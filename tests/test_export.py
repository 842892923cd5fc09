"""``python -m inference export`` and the add-on's Export: real results written with Blender's
exporters, read back into a fresh scene by Blender's importers."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from .conftest import run_cli

bpy = pytest.importorskip("bpy")


def _heads(arm, frames) -> dict[str, np.ndarray]:
    """Bone name -> (F, 3) world head positions, as Blender evaluates them."""
    scene = bpy.context.scene
    out: dict[str, list] = {pb.name: [] for pb in arm.pose.bones}
    for f in frames:
        scene.frame_set(int(f))
        for pb in arm.pose.bones:
            out[pb.name].append(np.array(arm.matrix_world @ pb.head))
    return {k: np.array(v) for k, v in out.items()}


def _reference(walk_result) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.human_recon.import_result(filepath=str(walk_result)) == {"FINISHED"}
    arm = bpy.data.objects["Person 1"]
    lo, hi = arm.animation_data.action.frame_range
    frames = np.arange(int(lo), int(hi) + 1)
    return frames, _heads(arm, frames)


@pytest.mark.parametrize("fmt", ["fbx", "bvh"])
def test_fbx_and_bvh_read_back_with_the_same_joints(installed, walk_result, tmp_path, fmt):
    path = tmp_path / f"walk.{fmt}"
    proc = run_cli("export", str(walk_result), "--format", fmt, "-o", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "walk.npz -> " in proc.stdout and path.stat().st_size > 10_000
    frames, ref = _reference(walk_result)
    assert len(frames) == 90
    bpy.ops.wm.read_homefile(use_empty=True)
    if fmt == "fbx":  # the importer shifts keys by one frame unless told not to
        bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    else:  # Y up, as BVH files usually are: the importer's defaults turn it back
        bpy.ops.import_anim.bvh(filepath=str(path), update_scene_fps=True)
    (arm,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    got = _heads(arm, frames)
    assert set(got) == set(ref)  # every bone, no leaf bones added
    err = max(np.linalg.norm(got[n] - ref[n], axis=1).max() for n in ref)
    assert err <= 0.001, f"{fmt}: {err * 1000:.3f} mm"
    moved = max(np.linalg.norm(ref[n] - ref[n][0], axis=1).max() for n in ref)
    assert moved > 0.5  # the motion itself came through, not only the rest pose
    if fmt == "fbx":
        assert any(o.type == "MESH" and o.parent == arm for o in bpy.data.objects)  # the skinned body too


def test_glb_holds_the_clip_as_one_animation(installed, walk_result, tmp_path):
    glb = tmp_path / "walk.glb"
    proc = run_cli("export", str(walk_result), "--format", "glb", "-o", str(glb))
    assert proc.returncode == 0, proc.stderr
    data = glb.read_bytes()
    length, _ = struct.unpack_from("<I4s", data, 12)
    gltf = json.loads(data[20 : 20 + length])
    (anim,) = gltf["animations"]  # the rig's own action, no other
    channels = anim["channels"]
    rotated = {gltf["nodes"][c["target"]["node"]]["name"] for c in channels if c["target"]["path"] == "rotation"}
    assert len(rotated) >= 100  # every bone's rotation (Anny's 104 bones)
    counts = {gltf["accessors"][anim["samplers"][c["sampler"]]["input"]]["count"] for c in anim["channels"]}
    assert counts <= {90, 1, 2}  # a key per frame (constant channels may be reduced)


def test_anny_motion_exported_on_an_smpl_rig(installed, walk_result, tmp_path):
    """--rig smpl on an Anny result: the motion on an SMPL rig (here a synthetic SMPL-format file)."""
    from .smpl_fixture import write_smpl_pkl

    model = tmp_path / "SMPL_NEUTRAL.pkl"
    write_smpl_pkl(model)
    path = tmp_path / "walk_smpl.fbx"
    proc = run_cli("export", str(walk_result), "--format", "fbx", "--rig", "smpl", "--smpl-model", str(model),
                   "-o", str(path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "1 smpl rig(s)" in proc.stdout
    frames, ref = _reference(walk_result)
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    (arm,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    got = _heads(arm, frames)
    assert len(got) == 24 and "left_elbow" in got
    pairs = {("left_shoulder", "left_elbow"): ("upperarm01.L", "lowerarm01.L"),
             ("right_elbow", "right_wrist"): ("lowerarm01.R", "wrist.R"), ("neck", "head"): ("neck01", "head")}
    for (a, b), (c, d) in pairs.items():
        u, v = got[b] - got[a], ref[d] - ref[c]
        cos = np.sum(u * v, 1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 1.0, (a, b)
    # The SMPL pelvis follows the Anny root's path across the floor (he walks), scaled by the
    # legs' ratio; not up and down, where the export's planted feet may hold the hips lower.
    travel, source = got["pelvis"][-1, :2] - got["pelvis"][0, :2], ref["root"][-1, :2] - ref["root"][0, :2]
    assert np.linalg.norm(source) > 0.2, source
    cos = float(travel @ source / np.linalg.norm(travel) / np.linalg.norm(source))
    assert cos > 0.95 and 0.5 < np.linalg.norm(travel) / np.linalg.norm(source) < 2.0, (travel, source)
    assert run_cli("export", str(walk_result), "--format", "fbx", "--rig", "smpl", "-o",
                   str(tmp_path / "x.fbx")).returncode == 2  # fmt: skip


def test_glb_holds_both_people_and_one_person_bvh(installed, two_people_photo, tmp_path, cache_dir):
    res = tmp_path / "two.npz"
    proc = run_cli("reconstruct", str(two_people_photo), "-o", str(res), cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stderr
    glb = tmp_path / "two.glb"
    assert run_cli("export", str(res), "--format", "glb", "-o", str(glb)).returncode == 0
    data = glb.read_bytes()
    length, kind = struct.unpack_from("<I4s", data, 12)
    assert data[:4] == b"glTF" and kind == b"JSON"
    gltf = json.loads(data[20 : 20 + length])
    assert len(gltf["skins"]) == 2 and all(len(s["joints"]) == 104 for s in gltf["skins"])
    # BVH holds one skeleton: the command asks which.
    bvh = tmp_path / "two.bvh"
    proc = run_cli("export", str(res), "--format", "bvh", "-o", str(bvh))
    assert proc.returncode == 2 and "choose one with --person N" in proc.stderr and not bvh.exists()
    assert len(proc.stderr.strip().splitlines()) == 1
    assert run_cli("export", str(res), "--format", "bvh", "-o", str(bvh), "--person", "2").returncode == 0
    assert bvh.read_text().startswith("HIERARCHY\nROOT root")
    # Person 2 stands where the camera saw them, not at the origin: the BVH keeps that.
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.human_recon.import_result(filepath=str(res)) == {"FINISHED"}
    frame = [bpy.context.scene.frame_current]
    ref = _heads(bpy.data.objects["Person 2"], frame)
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.import_anim.bvh(filepath=str(bvh))
    (arm,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    got = _heads(arm, frame)
    assert max(np.linalg.norm(got[n] - ref[n]) for n in ref) <= 0.001
    assert np.linalg.norm(ref["root"][0]) > 0.3  # the placement mattered


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--format", "fbx", "-o", "{tmp}/out.bvh"], 2, "--output must end in .fbx"),
        (["--format", "fbx", "-o", "{tmp}/none/out.fbx"], 5, "does not exist"),
        (["--format", "bvh", "-o", "{tmp}/out.bvh", "--rig", "smpl"], 2, "needs your SMPL model file"),
        (["--format", "bvh", "-o", "{tmp}/out.bvh", "--person", "3"], 2, "holds 1 person"),
    ],
)
def test_bad_export_requests_get_one_line(walk_result, tmp_path, args, code, message):
    args = [a.format(tmp=tmp_path) for a in args]
    proc = run_cli("export", str(walk_result), *args)
    assert proc.returncode == code and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing written, not even a part file


def test_missing_result_and_existing_output(tmp_path):
    proc = run_cli("export", str(tmp_path / "nope.npz"), "--format", "fbx", "-o", str(tmp_path / "a.fbx"))
    assert proc.returncode == 3 and "not found" in proc.stderr
    (tmp_path / "a.fbx").write_text("keep me")
    (tmp_path / "r.npz").write_bytes(b"not a result")
    proc = run_cli("export", str(tmp_path / "r.npz"), "--format", "fbx", "-o", str(tmp_path / "a.fbx"))
    assert proc.returncode == 5 and "--overwrite" in proc.stderr
    proc = run_cli("export", str(tmp_path / "r.npz"), "--format", "fbx", "-o", str(tmp_path / "a.fbx"), "--overwrite")
    assert proc.returncode != 0 and "not a Human Recon result" in proc.stderr
    assert (tmp_path / "a.fbx").read_text() == "keep me"


def test_addon_exports_a_transferred_character(installed, walk_result, tmp_path):
    """The hand-off as an animator does it: motion onto their character, then Export to FBX."""
    from .rigs import build

    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.human_recon.import_result(filepath=str(walk_result)) == {"FINISHED"}
    target = build("MIXAMO", "Hero", y_up_cm=True)
    assert bpy.ops.human_recon.transfer_motion(source="Person 1", target="Hero", plant_feet=True) == {"FINISHED"}
    frames = np.arange(1, 91)
    ref = _heads(target, frames)
    for o in bpy.context.view_layer.objects:
        o.select_set(o == target)
    path = tmp_path / "hero.fbx"
    assert bpy.ops.human_recon.export_motion(filepath=str(path), format="fbx") == {"FINISHED"}
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    (arm,) = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    got = _heads(arm, frames)
    err = max(np.linalg.norm(got[n] - ref[n], axis=1).max() for n in ref)
    assert err <= 0.001, f"{err * 1000:.3f} mm"
    with pytest.raises(RuntimeError, match="must end in .bvh"):
        bpy.ops.human_recon.export_motion(filepath=str(tmp_path / "hero.fbx"), format="bvh")
