"""Speed and accuracy of the photo pipeline: ``python -m inference benchmark --json``.

Reports warm per-stage latency (median over repeats) on the bundled photo,
the time for a new process to write a result (models cached), peak memory,
and for every photo the silhouette IoU of the fitted body against the person
mask and the mean keypoint reprojection error in % of the person's height.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

BUNDLED_PHOTO = Path(__file__).resolve().parent.parent / "examples" / "person.jpg"


def _cold_start(image: Path, cache_dir: str | None) -> tuple[float, float]:
    """Seconds for ``python -m inference reconstruct`` in a new process, and its peak RSS (MB)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "inference", "reconstruct", str(image), "--output", f"{tmp}/r.npz", "--json-progress"]
        if cache_dir:
            cmd += ["--cache-dir", cache_dir]
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        secs = time.perf_counter() - t
    return secs, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def run_benchmark(images: list[str] | None = None, repeats: int = 5, quality: str = "balanced", cache_dir: str | None = None) -> dict:
    from . import __version__
    from .pipeline import Reconstructor

    photos = [BUNDLED_PHOTO] + [Path(p) for p in images or []]
    if not BUNDLED_PHOTO.exists():
        photos = photos[1:]
    if not photos:
        raise SystemExit("no photo to benchmark: pass one")
    rec = Reconstructor(quality=quality, cache_dir=cache_dir)
    main = photos[0]
    rec.reconstruct(main)  # warm-up: first calls allocate and initialise kernels
    stages: dict[str, list[float]] = {}
    totals = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        res = rec.reconstruct(main)
        totals.append(time.perf_counter() - t)
        for k, v in res.timings.items():
            stages.setdefault(k, []).append(v)
    per_image = []
    for p in photos:
        r = rec.reconstruct(p)
        per_image.append(
            {
                "image": p.name,
                "silhouette_iou": round(r.silhouette_iou, 4),
                "keypoint_error_pct": round(r.keypoint_error_pct, 3),
                "mirrored": r.mirrored,
            }
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    cold_s, cold_peak_mb = _cold_start(main, cache_dir)
    return {
        "benchmark": "reconstruct",
        "version": __version__,
        "quality": quality,
        "image": main.name,
        "repeats": len(totals),
        "threads": torch.get_num_threads(),
        "latency_s": {k: round(statistics.median(v), 4) for k, v in stages.items()}
        | {"total": round(statistics.median(totals), 4), "total_min": round(min(totals), 4)},
        "fit_iterations": rec.fitter.options.total_steps,
        "peak_rss_mb": round(max(peak_mb, cold_peak_mb), 1),
        "new_process_to_result_s": round(cold_s, 2),
        "silhouette_iou_mean": round(statistics.mean(x["silhouette_iou"] for x in per_image), 4),
        "keypoint_error_pct_mean": round(statistics.mean(x["keypoint_error_pct"] for x in per_image), 3),
        "per_image": per_image,
    }


def motion_metrics(result) -> dict:
    """Jitter (mean keypoint acceleration, mm/frame^2) of our smoothed, our raw and MediaPipe's
    keypoints, all root-relative; smoothing lag (frames); foot skating (mm per contact frame)."""
    import numpy as np

    def rel(k):
        return k - k[:, [11, 12]].mean(1, keepdims=True)

    def jitter(k):
        k = rel(k)
        acc = k[2:] - 2 * k[1:-1] + k[:-2]
        n = np.linalg.norm(acc, axis=-1)
        return float(np.nanmean(n) * 1000.0)

    ours = result.frame_keypoints3d_cam.astype(np.float64)
    raw = result.frame_keypoints3d_raw.astype(np.float64)
    mp = result.frame_landmarks3d.astype(np.float64)
    # Lag: the shift that best aligns smoothed with raw velocities (0 for a centred filter).
    v_s = np.diff(rel(ours), axis=0).reshape(len(ours) - 1, -1)
    v_r = np.diff(rel(raw), axis=0).reshape(len(raw) - 1, -1)
    shifts = range(-3, 4)
    score = [float((np.roll(v_s, s, axis=0)[3:-3] * v_r[3:-3]).sum()) for s in shifts]
    lag = list(shifts)[int(np.argmax(score))]
    # Foot skating: 3D travel of a foot while the image says it is planted (its detected
    # ankle barely moves), the same test the clip pipeline uses to hold feet still.
    from .sequence import SequenceOptions

    a2d = result.frame_keypoints2d[:, [15, 16]].astype(np.float64)
    box_h = float(result.person_box[3] - result.person_box[1])
    speed2d = np.linalg.norm(np.diff(a2d[..., :2], axis=0), axis=-1) / box_h
    planted = (speed2d < SequenceOptions().contact_speed) & (a2d[1:, :, 2] > 0.5) & (a2d[:-1, :, 2] > 0.5)
    travel = np.linalg.norm(np.diff(ours[:, [15, 16]], axis=0), axis=-1)
    skate = float(travel[planted].mean() * 1000.0) if planted.any() else 0.0
    contact = planted
    j_ours, j_mp = jitter(ours), jitter(mp)
    return {
        "jitter_mm_per_frame2": round(j_ours, 2),
        "jitter_unsmoothed_fit_mm_per_frame2": round(jitter(raw), 2),
        "jitter_mediapipe_mm_per_frame2": round(j_mp, 2),
        "jitter_ratio_vs_mediapipe": round(j_ours / j_mp, 3) if j_mp > 0 else None,
        "smoothing_lag_frames": lag,
        "foot_skating_mm_per_contact_frame": round(skate, 2),
        "contact_frames": int(contact.sum()),
    }


def run_sequence_benchmark(clip: str, end: int | None = 60, cache_dir: str | None = None) -> dict:
    from . import __version__
    from .frames import open_frames
    from .pipeline import Reconstructor
    from .sequence import SequenceReconstructor

    rec = Reconstructor(cache_dir=cache_dir)
    source = open_frames(clip, end=end)
    seq = SequenceReconstructor(rec)
    t = time.perf_counter()
    result = seq.run(source)
    secs = time.perf_counter() - t
    n = len(source)
    return {
        "benchmark": "sequence",
        "version": __version__,
        "clip": Path(clip).name,
        "frames": n,
        "frames_filled": int((~result.frame_detected).sum()),
        "frames_per_second": round(n / secs, 2),
        "seconds_per_frame": {k: round(v, 4) for k, v in result.timings.items() if k != "total"},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "threads": torch.get_num_threads(),
    } | motion_metrics(result)
