"""The Blender extension in real headless Blender (bpy 5.0.1): build, install, reconstruct.

bpy is imported here with a private user folder (BLENDER_USER_RESOURCES must be
set before the first import), and the operator runs the real inference
subprocess with this test run's interpreter.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time

import numpy as np
import pytest

from .conftest import ADDON, PERSON, ROOT, assert_one_error_report, opencv_photo

bpy = pytest.importorskip("bpy")
import build_addon  # noqa: E402


def _scene_state():
    return (len(bpy.data.objects), len(bpy.data.collections), len(bpy.data.meshes), len(bpy.data.armatures))


def _new_collection(before: set[str]):
    """The one collection an operator added (bpy.data lists collections by name, not age)."""
    (name,) = {c.name for c in bpy.data.collections} - before
    return bpy.data.collections[name]


def _prefs():
    return bpy.context.preferences.addons[ADDON].preferences


@pytest.fixture(scope="module")
def built(installed, tmp_path_factory):
    out = tmp_path_factory.mktemp("result")
    before = _scene_state()
    names = {c.name for c in bpy.data.collections}
    assert bpy.ops.human_recon.reconstruct_image(filepath=str(PERSON), result_dir=str(out), height=1.82,
                                                 lens_auto=False, focal_mm=35.0) == {"FINISHED"}  # fmt: skip
    coll = _new_collection(names)
    assert coll.name == "person"  # named after the photo
    objs = {o.type: o for o in coll.objects}
    assert _scene_state()[0] == before[0] + 3
    from inference.io.result import ReconResult

    return objs, ReconResult.load(out / "person.npz")


def test_zip_passes_blenders_validator(addon_zip):
    proc = build_addon.validate(addon_zip)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import zipfile

    names = zipfile.ZipFile(addon_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "inference_pkg/inference/pipeline.py" in names and "inference_pkg/requirements.txt" in names


def test_panel_and_operator_registered(installed):
    for panel in ("VIEW3D_PT_human_recon", "VIEW3D_PT_human_recon_fix", "VIEW3D_PT_human_recon_transfer",
                  "VIEW3D_PT_human_recon_export"):
        assert hasattr(bpy.types, panel)
    for op in ("reconstruct_image", "import_sequence", "import_result", "transfer_motion", "fill_bone_map",
               "save_bone_map", "load_bone_map", "export_motion", "flip_depth"):  # fmt: skip
        assert hasattr(bpy.ops.human_recon, op)
    assert bpy.context.scene.human_recon.body_model == "anny"


def test_fingers_are_posed_as_fitted(built):
    """The photo's hands are fitted (both are raised and in view) and the armature's finger
    bones carry the fitted rotations."""
    objs, res = built
    arm = objs["ARMATURE"]
    (p,) = res.people
    assert p.frame_hands_fitted[0].all()
    names = list(res.bone_names)
    bent = 0
    for side in "LR":
        for d in range(1, 6):
            for k in (1, 2, 3):
                name = f"finger{d}-{k}.{side}"
                q = np.array(arm.pose.bones[name].rotation_quaternion)
                want = p.bone_rotations[0, names.index(name)]
                assert min(np.abs(q - want).max(), np.abs(q + want).max()) < 1e-4
                bent += 2 * np.degrees(np.arccos(min(1.0, abs(q[0])))) > 10
    assert bent >= 6


def test_armature_and_skin_weights(built, body):
    objs, res = built
    arm, mesh = objs["ARMATURE"], objs["MESH"]
    assert len(arm.data.bones) == len(body.bone_names) == len(res.bone_names)
    assert [b.name for b in arm.data.bones] == list(res.bone_names)
    for i, b in enumerate(arm.data.bones):
        p = res.bone_parents[i]
        assert (b.parent.name if b.parent else None) == (res.bone_names[p] if p >= 0 else None)
    assert mesh.modifiers["Armature"].object == arm and len(mesh.data.vertices) == body.num_vertices
    # Vertex groups carry the skin weights exactly.
    names = list(res.bone_names)
    rng = np.random.default_rng(0)
    for v in rng.choice(len(mesh.data.vertices), 200, replace=False):
        got = {mesh.vertex_groups[g.group].name: g.weight for g in mesh.data.vertices[int(v)].groups}
        want = {names[j]: w for j, w in zip(res.skin_indices[v], res.skin_weights[v]) if w > 0}
        assert got.keys() == want.keys()
        assert max(abs(got[k] - want[k]) for k in want) < 1e-5


def _evaluated_world_vertices(mesh):
    deps = bpy.context.evaluated_depsgraph_get()
    ev = mesh.evaluated_get(deps)
    me = ev.to_mesh()
    co = np.empty(len(me.vertices) * 3)
    me.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    mw = np.array(mesh.matrix_world)
    co = co.reshape(-1, 3)
    return co @ mw[:3, :3].T + mw[:3, 3]


def test_body_stands_as_tall_as_asked(built):
    """The operator's Height reaches the inference: the rest mesh in Blender is 1.82 m tall."""
    objs, res = built
    co = np.empty(len(objs["MESH"].data.vertices) * 3)
    objs["MESH"].data.vertices.foreach_get("co", co)
    assert np.ptp(co.reshape(-1, 3)[:, 2]) == pytest.approx(1.82, abs=2e-3)
    assert bpy.context.scene.human_recon.height == pytest.approx(1.70)  # the panel's default


def test_the_focal_length_given_is_the_cameras(built):
    """The operator's focal length (35 mm equivalent) reaches the inference and the scene's camera."""
    objs, res = built
    w, h = (int(v) for v in res.image_size)
    f = 35.0 / np.hypot(36, 24) * np.hypot(w, h)
    assert res.camera_K[0, 0] == pytest.approx(f, rel=1e-4)
    assert any(n.startswith("focal length given: 35 mm") for n in res.notes)
    cam = objs["CAMERA"].data  # the sensor spans the picture's width
    assert cam.sensor_fit == "HORIZONTAL" and cam.lens / cam.sensor_width == pytest.approx(f / w, rel=1e-3)
    assert cam.lens == pytest.approx(35.0, rel=1e-3)  # its Focal Length reads as the 35 mm equivalent given
    assert bpy.context.scene.human_recon.lens_auto  # the panel's default: the photo's own
    # The result's notes stay with the collection, for the user to read later.
    notes = objs["CAMERA"].users_collection[0]["human_recon_notes"].splitlines()
    assert notes == [str(n) for n in res.notes] and notes[0].startswith("focal length given: 35 mm")


def test_evaluated_mesh_matches_inference(built):
    objs, res = built
    world = _evaluated_world_vertices(objs["MESH"])
    # Blender's world is the body's model space: take the camera-space mesh back into it.
    (p,) = res.people
    R, t = p.global_rotation[0], p.root_translation[0]
    expected = (p.vertices_cam - t) @ R
    err = np.linalg.norm(world - expected, axis=1)
    assert err.max() < 1e-3, err.max()  # within 1 mm per vertex


def test_camera_projection_matches_inference(built):
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    from inference.camera import project_np

    objs, res = built
    cam = objs["CAMERA"]
    scene = bpy.context.scene
    assert scene.camera == cam
    w, h = (int(x) for x in res.image_size)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (w, h)
    world = _evaluated_world_vertices(objs["MESH"])
    ours = project_np(res.people[0].vertices_cam.astype(np.float64), res.camera_K)
    idx = np.random.default_rng(1).choice(len(world), 500, replace=False)
    theirs = []
    for i in idx:
        p = world_to_camera_view(scene, cam, Vector(world[i]))
        theirs.append((p.x * w, (1 - p.y) * h))
    err = np.linalg.norm(np.array(theirs) - ours[idx], axis=1)
    assert err.max() < 1.0, err.max()  # within 1 px
    assert cam.data.background_images[0].image.filepath.endswith("person.jpg")


def _base_name(obj) -> str:
    """An object's name without the ".001" Blender adds when the name is taken."""
    name, _, suffix = obj.name.rpartition(".")
    return name if name and suffix.isdigit() else obj.name


def test_two_people_two_rigs_one_camera(installed, two_people_photo, tmp_path):
    """Everyone in the photo is rigged: one collection, an armature and a skinned mesh per person
    named left to right, one camera through which each body lands on its own person."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    from inference.camera import project_np
    from inference.io.result import ReconResult

    names = {c.name for c in bpy.data.collections}
    assert bpy.ops.human_recon.reconstruct_image(filepath=str(two_people_photo), result_dir=str(tmp_path)) == {
        "FINISHED"
    }
    coll = _new_collection(names)
    assert coll.name == "two people"
    res = ReconResult.load(tmp_path / "two people.npz")
    assert len(res.people) == 2 and res.people_found == 2
    # Left to right: the man on the box, then the woman.
    assert res.people[0].person_box[2] < res.people[1].person_box[0] + 200
    arms = sorted((o for o in coll.objects if o.type == "ARMATURE"), key=lambda o: o.name)
    meshes = sorted((o for o in coll.objects if o.type == "MESH"), key=lambda o: o.name)
    cams = [o for o in coll.objects if o.type == "CAMERA"]
    # Names as Blender gives them (an earlier import's "Person 1" makes this one "Person 1.001").
    assert [_base_name(o) for o in arms] == ["Person 1", "Person 2"] and len(cams) == 1
    assert [_base_name(o) for o in meshes] == ["Person 1 Body", "Person 2 Body"]
    scene = bpy.context.scene
    assert scene.camera == cams[0]
    w, h = (int(x) for x in res.image_size)
    rng = np.random.default_rng(2)
    for arm, mesh, person in zip(arms, meshes, res.people):
        assert len(arm.data.bones) == 104 and mesh.modifiers["Armature"].object == arm and mesh.parent == arm
        world = _evaluated_world_vertices(mesh)
        ours = project_np(person.vertices_cam.astype(np.float64), res.camera_K)
        idx = rng.choice(len(world), 300, replace=False)
        theirs = []
        for i in idx:
            p = world_to_camera_view(scene, cams[0], Vector(world[i]))
            theirs.append((p.x * w, (1 - p.y) * h))
        err = np.linalg.norm(np.array(theirs) - ours[idx], axis=1)
        assert err.max() < 1.0, (arm.name, err.max())
        x0, y0, x1, y1 = person.person_box  # each body lies on its own person
        inside = (ours[:, 0] > x0 - 20) & (ours[:, 0] < x1 + 20) & (ours[:, 1] > y0 - 20) & (ours[:, 1] < y1 + 20)
        assert inside.mean() > 0.95


def test_clip_with_a_newcomer_one_action_each_hidden_until_they_come(installed, tmp_path):
    """Frames 30-75 of the sports2d clip: the man is there throughout, the woman walks in at
    about frame 58. Two armatures, each with its own action; hers hides her before she comes."""
    clip = ROOT / "tests" / "data" / "demo.mp4"
    if not clip.exists():
        pytest.skip("run scripts/fetch_test_data.sh for the test clip")
    result_io = sys.modules[f"{ADDON}.result_io"]
    names = {c.name for c in bpy.data.collections}
    res = bpy.ops.human_recon.import_sequence(filepath=str(clip), start=30, end=75, result_dir=str(tmp_path))
    assert res == {"FINISHED"}
    coll = _new_collection(names)
    r = result_io.load_result(tmp_path / "demo.npz")
    assert len(r.people) == 2
    arms = sorted((o for o in coll.objects if o.type == "ARMATURE"), key=lambda o: o.name)
    meshes = sorted((o for o in coll.objects if o.type == "MESH"), key=lambda o: o.name)
    assert [_base_name(o) for o in arms] == ["Person 1", "Person 2"]
    assert arms[0].animation_data.action != arms[1].animation_data.action
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 45)
    # The camera's background is the clip, playing along: scene frame 1 shows source frame 30.
    (cam,) = [o for o in coll.objects if o.type == "CAMERA"]
    (bg,) = cam.data.background_images
    assert bg.image.source == "MOVIE"
    for f in (1, 20, 45):
        scene.frame_set(f)
        assert bg.image_user.frame_current == 30 + f, f  # Blender counts a movie's frames from 1
    man, woman = r.people
    assert man.present.all() and not woman.present[:20].any() and woman.present[-5:].all()
    first = int(np.argmax(woman.present))
    for f, shown in ((0, False), (first - 1, False), (first, True), (44, True)):
        scene.frame_set(scene.frame_start + f)
        assert arms[1].hide_viewport == meshes[1].hide_viewport == (not shown), f
        assert arms[1].hide_render == (not shown) and not arms[0].hide_viewport


def test_hand_frames_filled_in_count_as_posed(installed):
    """The status line counts a clip's hand-frames posed from the hands found: fitted, or filled
    in between two fitted frames as the inference fills them (hands are searched in every 2nd
    frame of a 60 fps clip)."""
    from inference.sequence import SequenceOptions

    result_io = sys.modules[f"{ADDON}.result_io"]
    from inference.sequence import hand_gap_frames

    assert result_io.HAND_GAP == SequenceOptions().hand_gap  # seconds
    fitted = np.zeros(80, bool)
    fitted[0:10:2] = True  # searched every 2nd frame, found each time
    fitted[40] = True  # found again after a gap longer than HAND_GAP at 60 fps (30 frames)
    fitted[60] = True  # ... and again after a shorter one
    posed = result_io.hands_posed(fitted, 60.0)
    assert posed[:9].all() and not posed[9:40].any() and posed[40:61].all() and not posed[61:].any()
    assert hand_gap_frames(SequenceOptions().hand_gap, 60.0) == 30
    # At 30 fps the same gap in seconds is half the frames: 20 frames between fits is too long.
    assert not result_io.hands_posed(fitted, 30.0)[41:60].any()


def test_glb_has_one_skin_with_all_bones(built, tmp_path):
    objs, res = built
    path = tmp_path / "person.glb"
    for obj in bpy.context.view_layer.objects:  # this photo's rig only (other tests built more)
        obj.select_set(obj in (objs["ARMATURE"], objs["MESH"]))
    bpy.ops.export_scene.gltf(filepath=str(path), export_format="GLB", use_selection=True)
    data = path.read_bytes()
    magic, _, _ = struct.unpack_from("<4sII", data, 0)
    length, kind = struct.unpack_from("<I4s", data, 12)
    assert magic == b"glTF" and kind == b"JSON"
    gltf = json.loads(data[20 : 20 + length])
    assert len(gltf["skins"]) == 1
    joints = {gltf["nodes"][j]["name"] for j in gltf["skins"][0]["joints"]}
    assert joints == set(res.bone_names)


def test_photos_after_the_first_go_to_the_same_warm_worker(installed, tmp_path):
    """With "Keep models loaded" (the default) one inference process serves every run; turned
    off, it ends and each run has a process of its own."""
    runner = sys.modules[f"{ADDON}.runner"]
    assert _prefs().keep_loaded
    runner.stop_worker()
    bpy.context.scene.human_recon.image_path = str(PERSON)  # chosen: the models load meanwhile
    deadline = time.time() + 120
    while time.time() < deadline and runner.worker_preloaded() == 0:
        time.sleep(0.1)
    assert runner.worker_preloaded() == 1
    props = bpy.context.scene.human_recon
    for quality, loads in (("fast", 2), ("balanced", 3)):  # a setting the models depend on: loaded again
        props.quality = quality
        deadline = time.time() + 120
        while time.time() < deadline and runner.worker_preloaded() < loads:
            time.sleep(0.1)
        assert runner.worker_preloaded() == loads
    run = runner.InferenceRun(sys.executable, runner.reconstruct_args(str(PERSON), str(tmp_path / "p.npz")),
                              warm=True)  # fmt: skip
    run.wait(120)
    events = run.poll()
    assert run.result_path and "load_models" not in [e.data.get("stage") for e in events]

    def reconstruct(name: str) -> None:
        photo = tmp_path / f"{name}.jpg"
        photo.write_bytes(PERSON.read_bytes())
        assert bpy.ops.human_recon.reconstruct_image(filepath=str(photo), result_dir=str(tmp_path)) == {"FINISHED"}
        assert name in bpy.data.collections and (tmp_path / f"{name}.npz").exists()

    reconstruct("first")
    pid = runner.worker_pid()
    reconstruct("second")
    assert pid is not None and runner.worker_pid() == pid
    _prefs().keep_loaded = False
    try:
        assert runner.worker_pid() is None
        reconstruct("third")
        assert runner.worker_pid() is None
    finally:
        _prefs().keep_loaded = True
        bpy.context.scene.human_recon.image_path = ""


def test_runner_cancel_ends_child_and_builds_nothing(installed, tmp_path):
    runner = sys.modules[f"{ADDON}.runner"]
    before = _scene_state()
    out = tmp_path / "r.npz"
    run = runner.InferenceRun(sys.executable, runner.reconstruct_args(str(PERSON), str(out)))
    deadline = time.time() + 120
    while time.time() < deadline and not any(e.kind == "progress" for e in run.poll()):
        time.sleep(0.05)
    run.cancel()
    assert run.proc.poll() is not None  # the child is gone
    run.wait(10)
    run.poll()
    assert run.error is not None and run.error.code == "cancelled" and run.result_path is None
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert _scene_state() == before


def _fake_python(tmp_path, body: str) -> str:
    p = tmp_path / "python"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(0o755)
    return str(p)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "does not exist"),
        ("crash", "stopped unexpectedly"),
        ("garbage", "unexpected output"),
        ("old_version", "version 0.0.1"),
        ("broken_env", "environment is incomplete"),
    ],
)
def test_bad_interpreter_reports_and_leaves_scene(installed, tmp_path, case, message):
    scripts = {
        "crash": "echo 'Fatal Python error: Segmentation fault' >&2; exit 139",
        "garbage": "echo 'hello from a wrong program'; exit 0",
        "old_version": 'echo \'{"event": "start", "version": "0.0.1", "schema_version": 1}\'; sleep 5',
        "broken_env": "echo \"ModuleNotFoundError: No module named 'torch'\" >&2; exit 1",
    }
    python = str(tmp_path / "nope" / "python") if case == "missing" else _fake_python(tmp_path, scripts[case])
    _prefs().python_path = python
    before = _scene_state()
    try:
        assert_one_error_report(lambda: bpy.ops.human_recon.reconstruct_image(filepath=str(PERSON)), message)
    finally:
        _prefs().python_path = ""
    assert _scene_state() == before


def test_a_heic_photo_shows_behind_the_camera(installed, tmp_path):
    """Blender reads no HEIC (iPhones' photos): the result carries the photo as JPEG, packed into
    the .blend behind the camera, so it stays when the result's folder goes."""
    from PIL import Image

    from inference.io.images import reads_heif

    assert reads_heif()
    photo = tmp_path / "IMG_0002.HEIC"
    Image.open(PERSON).convert("RGB").save(photo, quality=95)
    names = {c.name for c in bpy.data.collections}
    assert bpy.ops.human_recon.reconstruct_image(filepath=str(photo)) == {"FINISHED"}  # no folder kept
    (cam,) = [o for o in _new_collection(names).objects if o.type == "CAMERA"]
    (bg,) = cam.data.background_images
    img = bg.image
    assert img.packed_file is not None and img.name == "IMG_0002.HEIC"
    assert tuple(img.size) == (460, 540) and img.has_data
    pixels = np.array(img.pixels[:]).reshape(540, 460, 4)[::-1, :, :3]  # Blender's rows run bottom-up
    original = np.asarray(Image.open(PERSON).convert("RGB"), np.float64) / 255
    assert np.abs(pixels - original).mean() < 0.05


def test_photo_without_person_reports_and_leaves_scene(installed):
    before = _scene_state()
    photo = str(opencv_photo("fruits.jpg"))
    assert_one_error_report(lambda: bpy.ops.human_recon.reconstruct_image(filepath=photo), "No person found")
    assert _scene_state() == before


def test_old_schema_result_is_refused(installed, built, tmp_path):
    result_io = sys.modules[f"{ADDON}.result_io"]
    runner = sys.modules[f"{ADDON}.runner"]
    objs, res = built
    path = res.save(tmp_path / "r.npz")
    with np.load(path) as z:
        data = dict(z)
    data["schema_version"] = np.asarray(0)
    np.savez(tmp_path / "old.npz", **data)
    with pytest.raises(runner.RunnerError) as exc:
        result_io.load_result(tmp_path / "old.npz")
    assert exc.value.code == "schema_mismatch"


def test_headless_job_script_writes_three_files(tmp_path, cache_dir):
    """The README's main job, in its own process: .npz, .blend, .glb and a PNG."""
    import subprocess

    scratch, out = tmp_path / "tmp", tmp_path / "out"
    scratch.mkdir()
    env = dict(os.environ, HUMAN_RECON_CACHE_DIR=cache_dir, PYTHONPATH=str(ROOT), TMPDIR=str(scratch))
    env.pop("BLENDER_USER_RESOURCES", None)
    out.mkdir()
    (out / "person.blend").write_bytes(b"an earlier run's file")  # a rerun replaces it, no .blend1 backup
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "blender_job.py"), str(PERSON), str(out), "--samples", "4"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for ext in ("npz", "blend", "glb", "png"):
        assert (out / f"person.{ext}").stat().st_size > 10_000
    assert sorted(p.name for p in out.iterdir()) == ["person.blend", "person.glb", "person.npz", "person.png"]
    # The job's zip, Blender user folder and inference scratch are gone (torch keeps its one per-user cache).
    assert [p.name for p in scratch.iterdir() if not p.name.startswith("torchinductor_")] == []
    from PIL import Image

    png = np.asarray(Image.open(out / "person.png").convert("RGB")).astype(int)
    photo = np.asarray(Image.open(PERSON).convert("RGB")).astype(int)
    assert png.shape == photo.shape
    changed = np.abs(png - photo).sum(axis=2) > 30  # where the body was drawn over the photo
    assert 0.05 < changed.mean() < 0.5


def test_a_clip_read_at_every_nth_frame_holds_its_first_frame_behind(installed, tmp_path):
    """Blender plays a background movie one frame per scene frame: a clip read at every 3rd frame
    cannot follow it, so its camera shows the clip's first frame throughout, not a drifting one."""
    clip = ROOT / "tests" / "data" / "demo.mp4"
    if not clip.exists():
        pytest.skip("run scripts/fetch_test_data.sh for the test clip")
    names = {c.name for c in bpy.data.collections}
    res = bpy.ops.human_recon.import_sequence(filepath=str(clip), start=6, end=18, step=3, result_dir=str(tmp_path))
    assert res == {"FINISHED"}
    (cam,) = [o for o in _new_collection(names).objects if o.type == "CAMERA"]
    (bg,) = cam.data.background_images
    scene = bpy.context.scene
    for f in (scene.frame_start, scene.frame_end):
        scene.frame_set(f)
        assert bg.image_user.frame_current == 7, f  # source frame 6, counted from 1


def test_a_folder_of_frames_plays_behind_the_camera(installed, tmp_path):
    """A clip read from a folder of numbered frames: Blender's image sequence behind the camera,
    each scene frame showing the file the rig was keyed from."""
    import cv2

    clip = ROOT / "tests" / "data" / "demo.mp4"
    if not clip.exists():
        pytest.skip("run scripts/fetch_test_data.sh for the test clip")
    frames = tmp_path / "frames"
    frames.mkdir()
    cap = cv2.VideoCapture(str(clip))
    for i in range(8):
        ok, bgr = cap.read()
        assert ok
        cv2.imwrite(str(frames / f"shot_{100 + i:04d}.jpg"), bgr)
    cap.release()
    names = {c.name for c in bpy.data.collections}
    res = bpy.ops.human_recon.import_sequence(filepath=str(frames), start=2, result_dir=str(tmp_path))
    assert res == {"FINISHED"}
    (cam,) = [o for o in _new_collection(names).objects if o.type == "CAMERA"]
    (bg,) = cam.data.background_images
    assert bg.image.source == "SEQUENCE" and os.path.basename(bg.image.filepath) == "shot_0102.jpg"
    scene = bpy.context.scene
    for f in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(f)
        assert bg.image_user.frame_current == 102 + f - scene.frame_start, f  # shot_0102 ... shot_0107


def test_import_sequence_keyframes_one_armature(installed, tmp_path, body):
    import torch

    from inference.io.result import ReconResult

    clip = ROOT / "tests" / "data" / "demo.mp4"
    if not clip.exists():
        pytest.skip("run scripts/fetch_test_data.sh for the test clip")
    before = len([o for o in bpy.data.objects if o.type == "ARMATURE"])
    names = {c.name for c in bpy.data.collections}
    res = bpy.ops.human_recon.import_sequence(filepath=str(clip), start=0, end=12, result_dir=str(tmp_path))
    assert res == {"FINISHED"}
    arms = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    assert len(arms) == before + 1
    coll = _new_collection(names)
    arm = next(o for o in coll.objects if o.type == "ARMATURE")
    r = ReconResult.load(tmp_path / "demo.npz")
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 12) and scene.render.fps == 30
    from bpy_extras import anim_utils

    bag = anim_utils.action_get_channelbag_for_slot(arm.animation_data.action, arm.animation_data.action_slot)
    assert all(len(fc.keyframe_points) == 12 for fc in bag.fcurves)
    assert len(bag.fcurves) == 4 * len(r.bone_names) + 3  # rotations, plus the root's location
    # At a keyframe, Blender's evaluated body gives the inference's keypoints for that frame.
    mesh = next(o for o in coll.objects if o.type == "MESH")
    m0 = np.eye(4)
    (p,) = r.people  # the woman walks in at about frame 58
    m0[:3, :3], m0[:3, 3] = p.global_rotation[0], p.root_translation[0]
    for k in (0, 7):
        scene.frame_set(scene.frame_start + k)
        world = _evaluated_world_vertices(mesh)
        cam = world @ m0[:3, :3].T + m0[:3, 3]
        kp = body.keypoints(torch.tensor(cam, dtype=torch.float32)[None])[0, :17].numpy()
        assert np.abs(kp - p.frame_keypoints3d_cam[k]).max() < 2e-3, k


def test_smpl_rig_reproduces_smplx_vertices(installed, tmp_path, body):
    """SMPL conventions: lowercase joint names, T-pose rest with SMPL's axes, shape keys for
    the betas and the pose correctives; the evaluated mesh equals smplx's LBS."""
    from inference.io.result import ReconResult

    from .smpl_fixture import write_smpl_pkl

    model = tmp_path / "SMPL_NEUTRAL.pkl"
    write_smpl_pkl(model)
    _prefs().smpl_model = str(model)
    names = {c.name for c in bpy.data.collections}
    try:
        res = bpy.ops.human_recon.reconstruct_image(filepath=str(PERSON), body_model="smpl", result_dir=str(tmp_path))
    finally:
        _prefs().smpl_model = ""
    assert res == {"FINISHED"}
    r = ReconResult.load(tmp_path / "person.npz")
    coll = _new_collection(names)
    arm = next(o for o in coll.objects if o.type == "ARMATURE")
    mesh = next(o for o in coll.objects if o.type == "MESH")
    from inference.bodymodels.smpl import JOINTS

    assert {b.name for b in arm.data.bones} == set(JOINTS) and len(arm.data.bones) == 24
    assert arm.data.bones["left_knee"].parent.name == "left_hip"
    # Rest bones carry SMPL's axes (identity in model space), so axis-angles go straight in.
    for b in arm.data.bones:
        assert np.allclose(np.array(b.matrix_local)[:3, :3], np.eye(3), atol=1e-5)
    keys = [k.name for k in mesh.data.shape_keys.key_blocks]
    assert keys[:2] == ["Basis", "Shape000"] and "Shape009" in keys and "Pose206" in keys
    assert np.allclose(
        [mesh.data.shape_keys.key_blocks[f"Shape{k:03d}"].value for k in range(10)], r.people[0].extra["betas"],
        atol=1e-5,
    )
    # Blender's evaluated body, back in camera space, is smplx's (pose correctives included).
    world = _evaluated_world_vertices(mesh)
    to_world = np.array(arm.matrix_world)
    model_space = (world - to_world[:3, 3]) @ to_world[:3, :3]
    (p,) = r.people
    cam = model_space @ p.global_rotation[0].T + p.root_translation[0]
    assert np.abs(cam - p.vertices_cam).max() < 1e-3
    # SMPL is Y-up: the armature stands upright in Blender's Z-up world.
    assert np.allclose(to_world[:3, :3] @ [0, 1, 0], [0, 0, 1], atol=1e-6)


def test_import_result_file(installed, built, tmp_path):
    """A result made earlier by the CLI builds the same rig; a bad file is one report."""
    objs, res = built
    path = res.save(tmp_path / "saved run.npz")
    before = _scene_state()
    names = {c.name for c in bpy.data.collections}
    assert bpy.ops.human_recon.import_result(filepath=str(path)) == {"FINISHED"}
    assert _scene_state()[0] == before[0] + 3
    coll = _new_collection(names)
    arm = next(o for o in coll.objects if o.type == "ARMATURE")
    assert len(arm.data.bones) == len(res.bone_names)
    mesh = next(o for o in coll.objects if o.type == "MESH")
    world = _evaluated_world_vertices(mesh)
    assert np.abs(world - _evaluated_world_vertices(objs["MESH"])).max() < 1e-6
    (tmp_path / "junk.npz").write_bytes(b"not a result")
    before = _scene_state()
    assert_one_error_report(
        lambda: bpy.ops.human_recon.import_result(filepath=str(tmp_path / "junk.npz")), "not a Human Recon result"
    )
    assert _scene_state() == before


def test_smpl_clip_keys_pose_correctives(installed, tmp_path):
    from .smpl_fixture import write_smpl_pkl

    clip = ROOT / "tests" / "data" / "demo.mp4"
    if not clip.exists():
        pytest.skip("run scripts/fetch_test_data.sh for the test clip")
    model = tmp_path / "SMPL_NEUTRAL.pkl"
    write_smpl_pkl(model)
    _prefs().smpl_model = str(model)
    names = {c.name for c in bpy.data.collections}
    try:
        res = bpy.ops.human_recon.import_sequence(
            filepath=str(clip), end=4, body_model="smpl", result_dir=str(tmp_path)
        )
    finally:
        _prefs().smpl_model = ""
    assert res == {"FINISHED"}
    result_io = sys.modules[f"{ADDON}.result_io"]
    r = result_io.load_result(tmp_path / "demo.npz")
    mesh = next(o for o in _new_collection(names).objects if o.type == "MESH")
    keys = mesh.data.shape_keys
    from bpy_extras import anim_utils

    bag = anim_utils.action_get_channelbag_for_slot(keys.animation_data.action, keys.animation_data.action_slot)
    assert len(bag.fcurves) == 207 and all(len(fc.keyframe_points) == 4 for fc in bag.fcurves)
    scene = bpy.context.scene
    scene.frame_set(scene.frame_start + 2)
    values = np.array([keys.key_blocks[f"Pose{k:03d}"].value for k in range(207)])
    assert np.abs(values - r.people[0].pose_feature(2)).max() < 1e-5
