"""The add-on in one Blender version, run by that version's Python (``bpy`` from PyPI); used by
tests/test_blender_versions.py, one process per version. Prints one JSON line of findings.

    BLENDER_PY blender_check.py ZIP PHOTO CLIP_RESULT OUT_DIR

The inference child is ``$HUMAN_RECON_PYTHON`` (an environment with torch); this interpreter
needs only bpy. Nothing here asserts: the test reads the findings and judges them.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ADDON = "bl_ext.user_default.human_recon"


def hanging_index() -> str:
    """A package index that accepts connections and never answers (pip waits on it)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    conns = []
    threading.Thread(target=lambda: [conns.append(server.accept()) for _ in range(8)], daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/simple"


def check(zip_path: str, photo: str, clip_result: str, out_dir: str) -> dict:
    found: dict = {"python": list(sys.version_info[:3])}
    import bpy

    found["blender"] = list(bpy.app.version)
    found["blender_ext_validate"] = _validate(zip_path)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    import addon_utils

    found["enabled"] = bool(addon_utils.check(ADDON)[1])
    mod = sys.modules[ADDON]

    res = bpy.ops.human_recon.reconstruct_image(filepath=photo, result_dir=out_dir)
    arm = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    mesh = [o for o in bpy.data.objects if o.type == "MESH"]
    found["photo"] = {"result": sorted(res), "armatures": len(arm), "meshes": len(mesh),
                      "cameras": len([o for o in bpy.data.objects if o.type == "CAMERA"]),
                      "bones": len(arm[0].data.bones) if arm else 0,
                      "skinned": bool(mesh and mesh[0].modifiers.get("Armature"))}  # fmt: skip

    for obj in list(bpy.data.objects):  # an empty scene again, the add-on still enabled
        bpy.data.objects.remove(obj)
    res = bpy.ops.human_recon.import_result(filepath=clip_result)
    arm = sorted((o for o in bpy.data.objects if o.type == "ARMATURE"), key=lambda o: o.name)
    keys = [_keyframe_counts(a) for a in arm]
    scene = bpy.context.scene
    hidden = []  # each armature's hide_viewport at the clip's first and last frame
    for f in (scene.frame_start, scene.frame_end):
        scene.frame_set(f)
        hidden.append([a.hide_viewport for a in arm])
    found["clip"] = {"result": sorted(res), "armatures": [a.name for a in arm], "curves": [len(k) for k in keys],
                     "keys_per_curve": sorted({n for k in keys for n in k.values()}),
                     "hidden_first_last": hidden}  # fmt: skip

    found["transfer"] = _transfer_and_export(bpy, arm[0], out_dir)
    found["flip"] = _flip(bpy, arm[0])

    # The set-up: Blender's own Python, with no python3.11 (nor python3.13) to be found on PATH.
    runner = mod.runner
    os.environ["PATH"] = tempfile.mkdtemp()
    found["base_python"] = runner.base_python()
    found["sys_executable"] = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "requirements.txt"
        req.write_text("")  # nothing to download: the environment and pip still run for real
        run = runner.SetupRun(Path(tmp) / "venv", req, min_free_bytes=0)
        run.wait(300)
        venv_py = runner.venv_python(Path(tmp) / "venv")
        found["setup"] = {"error": run.error and run.error.code, "python": run.python, "exists": venv_py.exists(),
                          "outdated": runner.environment_outdated(Path(tmp) / "venv", req)}  # fmt: skip
        req.write_text(f"--index-url {hanging_index()}\nhuman-recon-never-there\n")
        venv = Path(tmp) / "cancelled"
        run = runner.SetupRun(venv, req, min_free_bytes=0)
        t0 = time.time()
        while run.fraction < 0.05 and time.time() - t0 < 120:  # the environment is made, pip waits
            time.sleep(0.2)
        time.sleep(1.0)
        made = venv.exists()
        run.cancel()
        found["cancel"] = {"made_before": made, "error": run.error and run.error.code,
                           "left": venv.exists(), "seconds": round(time.time() - t0, 1)}  # fmt: skip
    return found


def _flip(bpy, arm) -> dict:
    """Flip in depth on a keyed rig at the clip's last frame: how far the left wrist moved, how far
    its place in the picture moved (view coordinates), and how far it is from there once the
    frame is left and come back to (the flip keyed)."""
    from bpy_extras.object_utils import world_to_camera_view

    scene = bpy.context.scene
    scene.frame_set(scene.frame_end)

    def wrist():
        p = arm.matrix_world @ arm.pose.bones["wrist.L"].head
        v = world_to_camera_view(scene, scene.camera, p)
        return p, (v.x, v.y)

    p0, v0 = wrist()
    try:
        res = sorted(bpy.ops.human_recon.flip_depth(armature=arm.name, bone="lowerarm01.L"))
    except RuntimeError as exc:  # the operator's error report
        return {"result": str(exc)}
    p1, v1 = wrist()
    scene.frame_set(scene.frame_end - 1)
    scene.frame_set(scene.frame_end)
    return {"result": res, "moved_m": (p1 - p0).length, "picture_moved": max(abs(a - b) for a, b in zip(v0, v1)),
            "kept_m": (wrist()[0] - p1).length}  # fmt: skip


def _transfer_and_export(bpy, source, out_dir: str) -> dict:
    """Transfer motion onto a copy of the rig made larger, then export it as FBX and BVH: the
    largest angle between the two rigs' forearm directions, and the files' sizes."""
    target = source.copy()
    target.data = source.data.copy()
    target.animation_data_clear()
    target.name = "Target"
    target.scale = (1.2, 1.2, 1.2)
    bpy.context.scene.collection.objects.link(target)
    res = bpy.ops.human_recon.transfer_motion(source=source.name, target=target.name)
    lo, hi = target.animation_data.action.frame_range

    def worst_angle() -> float:
        worst = 0.0
        for f in range(int(lo), int(hi) + 1, 7):
            bpy.context.scene.frame_set(f)
            pb = [(o.matrix_world, o.pose.bones) for o in (source, target)]
            d = [m @ b["lowerarm01.L"].head - m @ b["upperarm01.L"].head for m, b in pb]
            worst = max(worst, d[0].angle(d[1]) * 57.29578)
        return worst

    worst = worst_angle()
    # A constraint above the arm (half a Copy Rotation from an empty at rest): the transfer bakes
    # through Blender's own evaluation (nla.bake, bone selection as this version has it).
    empty = bpy.data.objects.new("Still", None)
    bpy.context.scene.collection.objects.link(empty)
    con = target.pose.bones["shoulder01.L"].constraints.new("COPY_ROTATION")  # between mapped bones
    con.target, con.influence = empty, 0.5
    objects = len(bpy.data.objects)
    res_constrained = bpy.ops.human_recon.transfer_motion(source=source.name, target=target.name)
    worst_constrained = worst_angle()
    sizes = {}
    for fmt in ("fbx", "bvh"):
        for o in bpy.context.view_layer.objects:
            o.select_set(o == target)
        bpy.context.view_layer.objects.active = target
        path = os.path.join(out_dir, f"target.{fmt}")
        bpy.ops.human_recon.export_motion(filepath=path, format=fmt)
        sizes[fmt] = os.path.getsize(path) if os.path.exists(path) else 0
    return {"result": sorted(res), "frames": int(hi - lo + 1), "worst_degrees": round(worst, 3), "sizes": sizes,
            "constrained": {"result": sorted(res_constrained), "worst_degrees": round(worst_constrained, 3),
                            "helper_left": len(bpy.data.objects) - objects}}  # fmt: skip


def _validate(zip_path: str) -> bool:
    """This Blender's own extension validator on the zip."""
    import importlib.util
    import subprocess

    base = Path(importlib.util.find_spec("bpy").origin).parent
    tools = sorted(base.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not tools:
        return False
    proc = subprocess.run([sys.executable, str(tools[-1]), "validate", zip_path], capture_output=True, text=True)
    return proc.returncode == 0


def _keyframe_counts(arm) -> dict[str, int]:
    """Keys per F-curve of the action on the armature's slot (4.4+) or of the action (4.2-4.3)."""
    action = arm.animation_data.action if arm.animation_data else None
    if action is None:
        return {}
    if hasattr(action, "slots"):
        slot = arm.animation_data.action_slot
        bags = [st.channelbag(slot) for layer in action.layers for st in layer.strips] if slot else []
        curves = [fc for bag in bags if bag is not None for fc in bag.fcurves]
    else:
        curves = action.fcurves
    return {f"{fc.data_path}[{fc.array_index}]": len(fc.keyframe_points) for fc in curves}


if __name__ == "__main__":
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="hr_blender_user_"))
    try:
        out = check(*sys.argv[1:5])
    except Exception as exc:  # the test shows what went wrong
        out = {"crashed": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    sys.stdout.flush()
    print(json.dumps(out), flush=True)
    os._exit(0)  # bpy's teardown is not what is tested here
