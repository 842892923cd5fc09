"""Speed and fidelity of Transfer motion and of export: ``python -m benchmarks transfer``.

A real clip's result (by default the sports2d clip played forward then back to 300 frames,
reconstructed here) is built as the add-on builds it, then transferred onto target rigs made
with the Mixamo, Rigify and UE5 bone names (T- and A-pose, other proportions). Reports the
time of each transfer (with and without planted feet), the angle between the source's and
the target's limb segments over every frame, how far planted feet drift, and the time of
each export format.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TARGETS = [("MIXAMO", dict(legs=1.15, arms=0.9, y_up_cm=True)), ("RIGIFY", dict(a_pose=True, size=0.85)),
           ("UE5", dict(legs=0.9, arms=1.1, size=1.1))]  # fmt: skip


def _ping_pong_result(clip: str, frames: int, folder: Path, cache_dir: str | None) -> Path:
    """The clip forward then backward up to ``frames`` frames, as a folder of frames, reconstructed."""
    import subprocess
    import sys

    from PIL import Image

    from inference.io.frames import open_frames

    all_frames = [rgb for _, rgb, _ in open_frames(clip)]
    order = list(range(len(all_frames))) + list(range(len(all_frames) - 2, 0, -1))
    while len(order) < frames:
        order += order
    for k, i in enumerate(order[:frames]):
        Image.fromarray(all_frames[i]).save(folder / f"frame{k:05d}.jpg", quality=92)
    out = folder / "clip.npz"
    cmd = [sys.executable, "-m", "inference", "sequence", str(folder), "--people", "largest", "-o", str(out)]
    if cache_dir:
        cmd += ["--cache-dir", cache_dir]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return out


def _fidelity(bpy, source, target, src_roles, frames, fps, transfer, retarget) -> dict:
    """Angles between the source's and the target's limb segments over every frame, and how far
    the target's ankles drift while the source's feet are planted."""
    from tests.addon_import import bonemaps

    scene = bpy.context.scene
    tgt_roles = bonemaps.detect([b.name for b in target.data.bones])[1]
    roles = [r for r in bonemaps.ROLES if r in tgt_roles]
    pos_s, pos_t = [], []
    for f in range(scene.frame_start, scene.frame_start + frames):
        scene.frame_set(f)
        pos_s.append([np.array(source.matrix_world @ source.pose.bones[src_roles[r]].head) for r in roles])
        pos_t.append([np.array(target.matrix_world @ target.pose.bones[tgt_roles[r]].head) for r in roles])
    pos_s, pos_t = np.array(pos_s), np.array(pos_t)
    ix = {r: k for k, r in enumerate(roles)}
    segs = [(f"{a}.{s}", f"{b}.{s}") for a, b in (("upper_arm", "forearm"), ("forearm", "hand"),
            ("thigh", "shin"), ("shin", "foot")) for s in "LR"]  # fmt: skip
    angles = []
    for a, b in segs:
        ds, dt = pos_s[:, ix[b]] - pos_s[:, ix[a]], pos_t[:, ix[b]] - pos_t[:, ix[a]]
        cos = np.sum(ds * dt, -1) / np.linalg.norm(ds, axis=-1) / np.linalg.norm(dt, axis=-1)
        angles.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    angles = np.array(angles)
    drift = []
    flags = transfer.source_contacts(source, frames) or {}
    for side in flags:
        ank_t = pos_t[:, ix[f"foot.{side}"]]
        for a, b in retarget.runs(flags[side], retarget.shortest_contact(fps)):
            drift.append(float(np.linalg.norm(ank_t[a:b] - ank_t[a], axis=1).max()))
    return {"limb_angle_deg_median": round(float(np.median(angles)), 2),
            "limb_angle_deg_max": round(float(angles.max()), 2), "contacts": len(drift),
            "planted_drift_mm_max": round(1000 * max(drift), 2) if drift else None}  # fmt: skip


def run_transfer_benchmark(result: str | None, clip: str, frames: int, repeats: int, cache_dir: str | None) -> dict:
    os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="hr_blender_user_"))
    import bpy

    from tests.addon_import import bonemaps, exporting, result_io, retarget, rig, transfer
    from tests.rigs import build

    if result is None and not Path(clip).exists():
        from inference.errors import ReconError

        raise ReconError("not_found", f"{clip} not found; run scripts/fetch_test_data.sh or pass --result.")

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = Path(result) if result else _ping_pong_result(clip, frames, Path(tmp), cache_dir)
        recon_s = time.perf_counter() - t0
        bpy.ops.wm.read_factory_settings(use_empty=True)
        res = result_io.load_result(path)
        source = rig.build_scene(res, bpy.context)["people"][0]["armature"]
        report = {"result": str(path) if result else f"{clip} ping-pong", "frames": res.frames,
                  "reconstruction_s": round(recon_s, 1), "targets": {}, "export": {}}  # fmt: skip
        scene = bpy.context.scene
        fps = scene.render.fps / scene.render.fps_base
        src_roles = bonemaps.detect([b.name for b in source.data.bones])[1]
        # Export first, from a scene that holds only the clip's rig (as `inference export` has it).
        for fmt in ("fbx", "bvh", "glb"):
            t0 = time.perf_counter()
            out = Path(tmp) / f"out.{fmt}"
            exporting.export_rig(bpy.context, [source], out, fmt)
            report["export"][fmt] = {"seconds": round(time.perf_counter() - t0, 2),
                                     "megabytes": round(out.stat().st_size / 1e6, 1)}  # fmt: skip
        import addon_utils

        addon_utils.enable("rigify", default_set=True)
        for preset, shape in TARGETS + [("RIGIFY_GENERATED", {})]:
            if preset == "RIGIFY_GENERATED":  # a real rig, as Rigify (bundled with Blender) makes it
                bpy.ops.object.armature_human_metarig_add()
                bpy.ops.pose.rigify_generate()
                bpy.ops.object.mode_set(mode="OBJECT")
                target = bpy.data.objects["rig"]
            else:
                target = build(preset, preset.title(), **shape)
            row = {}
            for plant in (False, True):
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    transfer.transfer_motion(bpy.context, source.name, target.name, plant_feet=plant)
                    times.append(time.perf_counter() - t0)
                key = "plant_feet" if plant else "plain"
                fidelity = _fidelity(bpy, source, target, src_roles, res.frames, fps, transfer, retarget)
                row[key] = {"seconds_min": round(min(times), 3), "seconds_median": round(float(np.median(times)), 3),
                            **fidelity}  # fmt: skip
            report["targets"][preset] = row
    return report
