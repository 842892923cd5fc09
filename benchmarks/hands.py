"""Hands: ``python -m benchmarks hands``.

Real pictures (the bundled photo, any photos given, the real multi-view kit's 80 photos when it
is there, and every 10th frame of the test clip): of the hands searched for, how many were
found, and for each one fitted the keypoint error after the fit, as a share of the hand's size
(its keypoints' box diagonal). Two errors: with the hand's wrist put on the detected wrist (the
fingers' and palm's shape: what the hand fit does) and as it lies in the picture (the wrist
where the body fit put it as well). Time of the hand stage per hand searched.

Synthetic hands: Anny hands posed with random finger angles within the limits, their 21
keypoints given to the fit as the detection (2D, and 3D up to a shift): the error of each
finger bone's rotation after the fit, in degrees. This measures the fit alone, not MediaPipe.
"""

from __future__ import annotations

import glob
import math
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KIT = ROOT.parent / "shared" / "realbench"
CLIP = ROOT / "tests" / "data" / "demo.mp4"


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return {"n": len(values), "median": round(statistics.median(values), 2), "mean": round(statistics.mean(values), 2),
            "se": round(se, 2)}  # fmt: skip


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
                    shape = np.linalg.norm((fit - fit[0]) - (det[:, :2] - det[0, :2]), axis=1)[1:] / size
                    placed = np.linalg.norm(fit - det[:, :2], axis=1) / size
                    rows.append({"source": source, "image": name, "side": "LR"[s], "fitted": True,
                                 "size_px": round(size, 1), "error_pct": round(100 * float(np.median(shape)), 2),
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


def run_hands_benchmark(images: list[str] | None = None, kit: str | None = None, clip_frames: int = 230,
                        synthetic: int = 64, cache_dir: str | None = None) -> dict:  # fmt: skip
    from inference import __version__

    return {"benchmark": "hands", "inference_version": __version__,
            "synthetic": synthetic_hands(synthetic, cache_dir) if synthetic else None,
            "real": real_hands(images or [], kit, clip_frames, cache_dir)}  # fmt: skip
