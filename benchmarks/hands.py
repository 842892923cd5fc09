"""Hands: ``python -m benchmarks hands``.

Real pictures (the bundled photo, any photos given, the real multi-view kit's 80 photos when it
is there, and every 10th frame of the test clip): of the hands searched for, how many were
found, and for each one fitted the keypoint error after the fit, as a share of the hand's size
(its keypoints' box diagonal). Two errors: with the hand's wrist put on the detected wrist (the
fingers' and palm's shape: what the hand fit does) and as it lies in the picture (the wrist
where the body fit put it as well). Time of the hand stage per hand searched.

Rendered hands: Anny's forearm and hand posed with random finger angles within the limits and
a random wrist, rendered with Cycles from a random side over a background photo, MediaPipe Hands
run on the picture and the fit started from a straight wrist: the error of each finger bone's
rotation and of each flexion angle, in degrees (detector and fit together).

The test clip as a clip (its first frames followed, each hand started from its fit in the frame
before, then smoothed like the body): the keypoint error of the smoothed fingers (wrist-aligned,
as above) and their shake, the second difference of each keypoint relative to the hand's wrist
between three frames in a row where the hand was fitted (mm/frame²), with the frame rate.

Synthetic hands: the same kind of poses, but their own 21 keypoints given to the fit as the
detection (2D, and 3D up to a shift): the fit alone, without MediaPipe's errors.
"""

from __future__ import annotations

import glob
import math
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from inference.hands import HandFitOptions

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KIT = ROOT.parent / "shared" / "realbench"
CLIP = ROOT / "tests" / "data" / "demo.mp4"


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return {"n": len(values), "median": round(statistics.median(values), 2), "mean": round(statistics.mean(values), 2),
            "se": round(se, 2)}  # fmt: skip


def _shape_error_pct(fit: np.ndarray, det: np.ndarray) -> float:
    """Median distance of the fitted keypoints (21, 2) from the detected ones (21, 3) with the
    wrists put together, over the 20 besides the wrist, in % of the hand's size."""
    from inference.hands import hand_size

    off = np.linalg.norm((fit - fit[0]) - (det[:, :2] - det[0, :2]), axis=1)[1:]
    return 100 * float(np.median(off)) / hand_size(det)


def _pictures(images: list[str], kit: str | None, clip_frames: int):
    from inference.io.frames import open_frames
    from inference.io.images import load_image

    for path in [ROOT / "examples" / "person.jpg", *map(Path, images)]:
        yield "photo", path.name, load_image(path)
    kit_dir = Path(kit) if kit else DEFAULT_KIT
    for path in sorted(glob.glob(str(kit_dir / "frames" / "cam*_f*.jpg"))):
        yield "kit", Path(path).name, load_image(path)
    if clip_frames and CLIP.exists():
        for index, rgb, _ in open_frames(str(CLIP), end=clip_frames):
            if index % 10 == 0:
                yield "clip", f"demo.mp4#{index}", rgb


def real_hands(images: list[str], kit: str | None, clip_frames: int, cache_dir: str | None) -> dict:
    from inference.camera import project_np
    from inference.hands import hand_size
    from inference.pipeline import Reconstructor

    rec = Reconstructor(cache_dir=cache_dir)
    rows = []
    try:
        for source, name, rgb in _pictures(images, kit, clip_frames):
            if not rows:  # warm the models
                rec.reconstruct(rgb, name=name)
            t = time.perf_counter()
            result = rec.reconstruct(rgb, name=name)
            seconds = time.perf_counter() - t
            searched = 0
            for p in result.people:
                for s in range(2):
                    det = p.frame_hand_keypoints2d[0, s]
                    searched += 1
                    if not p.frame_hands_fitted[0, s]:
                        rows.append({"source": source, "image": name, "side": "LR"[s], "fitted": False})
                        continue
                    fit = project_np(p.frame_hand_keypoints3d_cam[0, s].astype(np.float64), result.camera_K)
                    size = hand_size(det)
                    placed = np.linalg.norm(fit - det[:, :2], axis=1) / size
                    rows.append({"source": source, "image": name, "side": "LR"[s], "fitted": True,
                                 "size_px": round(size, 1), "error_pct": round(_shape_error_pct(fit, det), 2),
                                 "error_placed_pct": round(100 * float(np.median(placed)), 2)})  # fmt: skip
            rows[-1]["hands_seconds"] = round(result.timings.get("hands", 0.0), 4)
            rows[-1]["picture_seconds"] = round(seconds, 3)
            rows[-1]["people"] = len(result.people)
            rows[-1]["hands_searched"] = searched
    finally:
        rec.close()
    out: dict = {}
    for source in ("photo", "kit", "clip", "all"):
        mine = [r for r in rows if source == "all" or r["source"] == source]
        if not mine:
            continue
        fitted = [r for r in mine if r["fitted"]]
        per_picture = [r for r in mine if "hands_seconds" in r]
        out[source] = {
            "hands_searched": len(mine),
            "hands_fitted": len(fitted),
            "error_pct": _summary([r["error_pct"] for r in fitted]),
            "error_placed_pct": _summary([r["error_placed_pct"] for r in fitted]),
            "ms_per_hand_searched": round(1000 * sum(r["hands_seconds"] for r in per_picture)
                                          / max(1, sum(r["hands_searched"] for r in per_picture)), 1),  # fmt: skip
        }
    one_person_two_hands = [r["picture_seconds"] for r in rows if r.get("people") == 1
                            and sum(x["fitted"] for x in rows if x["image"] == r["image"]) == 2]  # fmt: skip
    out["one_person_two_hands_seconds"] = _summary(one_person_two_hands)
    out["hands"] = rows
    return out


def clip_hands(frames: int, cache_dir: str | None, hand_fit: HandFitOptions | None = None) -> dict:
    from inference.camera import project_np
    from inference.hands import HandFitOptions
    from inference.io.frames import open_frames
    from inference.pipeline import Reconstructor
    from inference.sequence import SequenceOptions, SequenceReconstructor

    rec = Reconstructor(cache_dir=cache_dir)
    try:
        source = open_frames(str(CLIP), end=frames)
        t = time.perf_counter()
        options = SequenceOptions(hand_fit=hand_fit or HandFitOptions())
        result = SequenceReconstructor(rec, options).run(source)
        seconds = time.perf_counter() - t
    finally:
        rec.close()
    errors, shake = [], []
    for p in result.people:
        for s in range(2):
            fitted = p.frame_hands_fitted[:, s]
            kp3 = p.frame_hand_keypoints3d_cam[:, s].astype(np.float64)
            for i in np.flatnonzero(fitted):
                det = p.frame_hand_keypoints2d[i, s]
                errors.append(_shape_error_pct(project_np(kp3[i], result.camera_K), det))
            rel = kp3 - kp3[:, :1]
            run = fitted[:-2] & fitted[1:-1] & fitted[2:]
            accel = np.linalg.norm(rel[2:] - 2 * rel[1:-1] + rel[:-2], axis=-1)[run]  # (frames, 21)
            shake.extend(1000 * accel[:, 1:].mean(1))
    return {"clip": CLIP.name, "frames": len(source), "people": len(result.people), "hands_fitted": len(errors),
            "frames_per_second": round(len(source) / seconds, 2), "error_pct": _summary(errors),
            "shake_mm_per_frame2": _summary([float(v) for v in shake])}  # fmt: skip


def hand_rate(clip: str, frames: int, cache_dir: str | None) -> dict:
    """What searching a clip's hands at most ``SequenceOptions.hand_rate`` times a second costs the
    fingers: the clip (60 frames a second: every 2nd frame searched) run with hands searched
    in every frame and at the default rate; on every frame where the first fitted a hand, both
    results' hand keypoints against that frame's detection (``_shape_error_pct``), split into
    the frames both searched and the frames the default run filled in."""
    from inference.camera import project_np
    from inference.io.frames import open_frames
    from inference.pipeline import Reconstructor
    from inference.sequence import SequenceOptions, SequenceReconstructor

    rec = Reconstructor(cache_dir=cache_dir)
    runs, fps = {}, {}
    try:
        for name, rate in (("every_frame", 0.0), ("default", SequenceOptions().hand_rate)):
            source = open_frames(clip, end=frames)
            t = time.perf_counter()
            runs[name] = SequenceReconstructor(rec, SequenceOptions(hand_rate=rate)).run(source)
            fps[name] = round(len(source) / (time.perf_counter() - t), 2)
    finally:
        rec.close()
    every, default = runs["every_frame"], runs["default"]
    errors: dict[str, list[float]] = {f"{run}_{kind}": [] for run in runs for kind in ("searched", "filled")}
    for p_all, p_def in zip(every.people, default.people):  # left to right in both
        for s in range(2):
            for i in np.flatnonzero(p_all.frame_hands_fitted[:, s]):
                det = p_all.frame_hand_keypoints2d[i, s]
                kind = "searched" if p_def.frame_hands_fitted[i, s] else "filled"
                for run, person in (("every_frame", p_all), ("default", p_def)):
                    fit = project_np(person.frame_hand_keypoints3d_cam[i, s].astype(np.float64), every.camera_K)
                    errors[f"{run}_{kind}"].append(_shape_error_pct(fit, det))
    return {"clip": Path(clip).name, "frames": len(every.frame_indices), "people": [len(every.people),
            len(default.people)], "frames_per_second": fps,
            "error_pct": {k: _summary(v) for k, v in errors.items()}}  # fmt: skip


def synthetic_hands(count: int, cache_dir: str | None, seed: int = 0) -> dict:
    import roma
    import torch

    from inference import hands as H
    from inference.bodymodels import load_body_model
    from inference.camera import Camera, project

    body = load_body_model("anny", cache_dir=cache_dir)
    gen = torch.Generator().manual_seed(seed)
    camera = Camera.for_image(800, 800)
    K = torch.tensor(camera.K, dtype=torch.float32)
    rest = body.rest(body.default_shape(), body.keypoint_vertex_ids)
    _, frames = body.pose(rest, torch.eye(3).expand(1, len(body.bone_names), 3, 3), body.keypoint_vertex_ids)
    lo, hi = H.digit_limits()
    targets, truths = [], []
    for i in range(count):
        rig = H.HandRig.build(body, rest.bone_poses[0], rest.bone_tails[0], H.SIDES[i % 2])
        forearm = frames[0, rig.wrist_parent[0]]
        wrist = (torch.rand(1, 3, generator=gen) - 0.5) * torch.tensor([2.0, 0.8, 1.2])
        angles = lo + (hi - lo) * torch.rand(1, H.NUM_DIGITS, 4, generator=gen)
        rotation = roma.random_rotmat(generator=gen)
        truth = rig.local_rotations(wrist, angles)[0]
        kp = rig.keypoints(forearm[None], truth[None])[0] @ rotation.T
        translation = torch.tensor([0.0, 0.0, 0.6]) - kp[0]
        kp = kp + translation
        uv = project(kp, K).numpy()
        det = np.concatenate([uv, np.ones((H.NUM_KEYPOINTS, 1))], 1)
        targets.append(H.HandTarget(rig, forearm, rotation, translation, torch.zeros(3), det,
                                    (kp - kp.mean(0)).numpy()))  # fmt: skip
        truths.append(truth)
    t = time.perf_counter()
    fitted = H.fit_hands(targets, camera)
    seconds = time.perf_counter() - t
    slots = targets[0].rig.phalanx_slots
    errors = []
    for f, truth in zip(fitted, truths):
        d = roma.rotmat_geodesic_distance(torch.tensor(f.rotations)[slots], truth[slots])
        errors += np.degrees(d.numpy()).tolist()
    return {"hands": count, "finger_bone_angle_error_deg": _summary(errors),
            "fit_ms_per_hand_batched": round(1000 * seconds / count, 1)}  # fmt: skip


RENDER_PX = 320
RENDER_FOCAL = 1.4 * RENDER_PX
HAND_SHARE = 0.5  # the hand spans about this share of the rendered picture


def natural_angles(gen):
    """(1, 5, 4) random digit angles as hands hold them: each digit curled by its own amount
    (0: straight, 1: as far as its limits allow), every joint of it a little more or less, and
    spread a little (independent angles across the whole range make knotted hands)."""
    import torch

    from inference import hands as H

    lo, hi = H.digit_limits()
    curl = torch.rand(1, H.NUM_DIGITS, 1, generator=gen)
    flex = curl * hi * (0.6 + 0.4 * torch.rand(1, H.NUM_DIGITS, 4, generator=gen))
    spread = (torch.rand(1, H.NUM_DIGITS, generator=gen) - 0.5) * hi[:, 1] * 0.8
    flex[:, :, 1] = spread
    return torch.maximum(torch.minimum(flex, hi), lo)


def _look_at(target: np.ndarray, eye: np.ndarray, up: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Model space -> OpenCV camera space (R, t) of a camera at ``eye`` looking at ``target``."""
    z = (target - eye) / np.linalg.norm(target - eye)
    y = -up - np.dot(-up, z) * z
    y /= np.linalg.norm(y)
    R = np.stack([np.cross(y, z), y, z])
    return R, -R @ eye


def rendered_hands(count: int, cache_dir: str | None, seed: int = 0, samples: int = 16, keep: str | None = None
                   ) -> dict:  # fmt: skip
    import bpy
    import roma
    import torch
    from PIL import Image

    from inference import hands as H
    from inference.bodymodels import load_body_model
    from inference.camera import Camera
    from inference.detect.mediapipe_hands import HandDetector
    from training.render_bodies import BACKGROUND_NAMES, BACKGROUNDS, SKIN, cycles_scene, material, replace_mesh

    body = load_body_model("anny", cache_dir=cache_dir)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    rest = body.rest(body.default_shape())
    faces = np.asarray(body.faces)
    skin_idx, skin_w = body.skin()
    main_bone = skin_idx[np.arange(len(skin_idx)), skin_w.argmax(1)]
    backgrounds = [BACKGROUNDS / n for n in BACKGROUND_NAMES if (BACKGROUNDS / n).is_file()]
    if not backgrounds:
        raise SystemExit(f"no background photos in {BACKGROUNDS}: apt-get install opencv-doc")
    camera = Camera(np.array([[RENDER_FOCAL, 0, RENDER_PX / 2], [0, RENDER_FOCAL, RENDER_PX / 2], [0, 0, 1.0]]),
                    RENDER_PX, RENDER_PX)  # fmt: skip
    scene = cycles_scene(bpy, samples)
    scene.cycles.use_denoising = True
    cam = scene.camera.data
    cam.sensor_fit, cam.sensor_width = "HORIZONTAL", 36.0
    cam.lens = RENDER_FOCAL * 36.0 / RENDER_PX
    cam.clip_start, cam.clip_end = 0.01, 100.0
    scene.render.resolution_x = scene.render.resolution_y = RENDER_PX
    detector = HandDetector()
    lo, hi = H.digit_limits()
    bone_errors, flex_errors, detect_errors, found, seconds = [], [], [], 0, []
    keep_dir = Path(keep) if keep else None
    if keep_dir:
        keep_dir.mkdir(parents=True, exist_ok=True)
    import tempfile

    try:
        with tempfile.TemporaryDirectory() as tmp:
            scene.render.filepath = str(Path(tmp) / "hand.png")
            for i in range(count):
                side = H.SIDES[i % 2]
                rig = H.HandRig.build(body, rest.bone_poses[0], rest.bone_tails[0], side)
                wrist = (torch.rand(1, 3, generator=gen) - 0.5) * torch.tensor([1.6, 0.6, 1.0])
                angles = natural_angles(gen)
                truth = rig.local_rotations(wrist, angles)[0]
                rotations = torch.eye(3).repeat(1, len(body.bone_names), 1, 1)
                rotations[0, rig.bones[0]] = truth
                with torch.no_grad():
                    verts, frames = body.pose(rest, rotations)
                forearm = frames[0, rig.wrist_parent[0]]
                kp = rig.keypoints(forearm[None], truth[None])[0].numpy().astype(np.float64)
                centre = kp.mean(0)
                along = kp[9] - kp[0]
                along /= np.linalg.norm(along)
                while True:  # a view from anywhere but straight along the hand
                    view = rng.normal(size=3)
                    view /= np.linalg.norm(view)
                    if abs(np.dot(view, along)) < 0.8:
                        break
                distance = RENDER_FOCAL * 0.19 / (HAND_SHARE * RENDER_PX)
                up = rng.normal(size=3)
                R, t = _look_at(centre, centre + distance * view, up / np.linalg.norm(up))
                # The forearm and hand only (faces with a vertex that mostly follows those bones).
                names = [body.bone_names[b] for b in main_bone]
                arm = np.array([n.endswith(f".{side}") and n.startswith(("lowerarm", "wrist", "finger", "metacarpal"))
                                for n in names])  # fmt: skip
                v_cam = verts[0].numpy().astype(np.float64) @ R.T + t
                me = replace_mesh(bpy, scene, "Hand", v_cam, faces[arm[faces].any(1)])
                me.materials.append(material(bpy, "skin", SKIN[int(rng.integers(len(SKIN)))]))
                bpy.ops.render.render(write_still=True)
                fg = np.asarray(Image.open(scene.render.filepath).convert("RGBA"), np.float32)
                bg = Image.open(backgrounds[int(rng.integers(len(backgrounds)))]).convert("RGB")
                bg = np.asarray(bg.resize((RENDER_PX, RENDER_PX)), np.float32)
                alpha = fg[..., 3:4] / 255.0
                rgb = (fg[..., :3] * alpha + bg * (1 - alpha)).astype(np.uint8)
                if keep_dir:
                    Image.fromarray(rgb).save(keep_dir / f"hand{i:03d}.png")
                wrist_px = camera.K @ (R @ kp[0] + t)
                wrist_px = wrist_px[:2] / wrist_px[2]
                t0 = time.perf_counter()
                hand = detector.detect(rgb, (RENDER_PX / 2, RENDER_PX / 2, float(RENDER_PX)), wrist_px)
                if hand is None:
                    continue
                found += 1
                truth_px = (kp @ R.T + t) @ camera.K.T
                truth_px = truth_px[:, :2] / truth_px[:, 2:]
                size = H.hand_size(truth_px)
                off = np.linalg.norm(hand.keypoints2d[:, :2] - truth_px, axis=1)
                detect_errors.append(100 * float(np.median(off)) / size)
                target = H.HandTarget(rig, forearm, torch.tensor(R, dtype=torch.float32),
                                      torch.tensor(t, dtype=torch.float32), torch.zeros(3), hand.keypoints2d,
                                      hand.landmarks3d)  # fmt: skip
                (fitted,) = H.fit_hands([target], camera)
                seconds.append(time.perf_counter() - t0)
                slots = rig.phalanx_slots
                d = roma.rotmat_geodesic_distance(torch.tensor(fitted.rotations)[slots], truth[slots])
                bone_errors += np.degrees(d.numpy()).tolist()
                flex_errors += np.degrees(np.abs(fitted.angles[:, [0, 2, 3]] - angles[0, :, [0, 2, 3]].numpy())
                                          ).ravel().tolist()  # fmt: skip
    finally:
        detector.close()
    return {"hands": count, "found": found, "finger_bone_angle_error_deg": _summary(bone_errors),
            "flexion_error_deg": _summary(flex_errors),
            "detected_keypoint_error_pct": _summary(detect_errors),
            "ms_per_hand_detect_and_fit": round(1000 * statistics.median(seconds), 1) if seconds else None}  # fmt: skip


def run_hands_benchmark(images: list[str] | None = None, kit: str | None = None, clip_frames: int = 230,
                        synthetic: int = 64, rendered: int = 48, cache_dir: str | None = None,
                        keep_renders: str | None = None, real: bool = True, seed: int = 0,
                        sequence_frames: int = 120, rate_clip: str | None = None, rate_frames: int = 100
                        ) -> dict:  # fmt: skip
    from inference import __version__

    return {"benchmark": "hands", "inference_version": __version__, "seed": seed,
            "rendered": rendered_hands(rendered, cache_dir, seed, keep=keep_renders) if rendered else None,
            "synthetic": synthetic_hands(synthetic, cache_dir, seed) if synthetic else None,
            "real": real_hands(images or [], kit, clip_frames, cache_dir) if real else None,
            "clip": clip_hands(sequence_frames, cache_dir) if sequence_frames and CLIP.exists() else None,
            "rate": hand_rate(rate_clip, rate_frames, cache_dir) if rate_clip else None}  # fmt: skip
