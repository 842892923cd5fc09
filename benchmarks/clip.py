"""Speed and smoothness of the clip pipeline: ``python -m benchmarks clip CLIP``.

Reports throughput, per-frame detect and fit time, jitter (mean keypoint acceleration,
root-relative) of our smoothed and raw keypoints and of MediaPipe's landmarks, smoothing
lag, and foot skating while a foot is planted.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import torch

from inference import keypoints as kpl


def motion_metrics(person, fps: float) -> dict:
    """Of one person of a clip's result (``PersonResult``) at ``fps``, over the frames they are in:
    jitter (mean keypoint acceleration, mm/frame^2) of our smoothed, our raw and MediaPipe's
    keypoints, all root-relative; smoothing lag (frames); foot skating (mm per contact frame)."""

    def rel(k):
        return k - kpl.pelvis(k)

    def jitter(k):
        k = rel(k)
        acc = k[2:] - 2 * k[1:-1] + k[:-2]
        n = np.linalg.norm(acc, axis=-1)
        return float(np.nanmean(n) * 1000.0)

    here = np.asarray(person.frame_present, bool)
    ours = person.frame_keypoints3d_cam[here].astype(np.float64)
    raw = person.frame_keypoints3d_raw[here].astype(np.float64)
    mp = person.frame_landmarks3d[here].astype(np.float64)
    # Lag: the shift that best aligns smoothed with raw velocities (0 for a centred filter).
    v_s = np.diff(rel(ours), axis=0).reshape(len(ours) - 1, -1)
    v_r = np.diff(rel(raw), axis=0).reshape(len(raw) - 1, -1)
    shifts = range(-3, 4)
    score = [float((np.roll(v_s, s, axis=0)[3:-3] * v_r[3:-3]).sum()) for s in shifts]
    lag = list(shifts)[int(np.argmax(score))]
    # Foot skating: 3D travel of a foot while the image says it is planted (its detected
    # ankle barely moves), the same test the clip pipeline uses to hold feet still.
    from inference.sequence import SequenceOptions
    from inference.smoothing import foot_contacts

    a2d = person.frame_keypoints2d[here][:, kpl.ANKLES].astype(np.float64)
    box_h = float(person.person_box[3] - person.person_box[1])
    planted = foot_contacts(a2d, box_h, SequenceOptions().contact_speed, fps)[1:] & (a2d[:-1, :, 2] > 0.5)
    travel = np.linalg.norm(np.diff(ours[:, kpl.ANKLES], axis=0), axis=-1)
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


def run_sequence_benchmark(clip: str, end: int | None = 60, cache_dir: str | None = None,
                           people: str | int = "all") -> dict:  # fmt: skip
    """The clip pipeline on ``clip``'s first ``end`` frames; motion figures per person (left to
    right), and for the first person also at the top level (as before several people were followed)."""
    from inference import __version__
    from inference.io.frames import open_frames
    from inference.pipeline import Reconstructor
    from inference.sequence import SequenceOptions, SequenceReconstructor

    rec = Reconstructor(cache_dir=cache_dir)
    source = open_frames(clip, end=end)
    seq = SequenceReconstructor(rec, SequenceOptions(people=people))
    t = time.perf_counter()
    result = seq.run(source)
    secs = time.perf_counter() - t
    n = len(source)
    return {
        "benchmark": "sequence",
        "version": __version__,
        "clip": Path(clip).name,
        "frames": n,
        "people": len(result.people),
        "frames_per_second": round(n / secs, 2),
        "seconds_per_frame": {k: round(v, 4) for k, v in result.timings.items() if k != "total"},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "threads": torch.get_num_threads(),
        "per_person": [{"frames_present": int(p.frame_present.sum()), "frames_filled": int(p.frames_filled)}
                       | motion_metrics(p, result.fps) for p in result.people],  # fmt: skip
    } | motion_metrics(result.people[0], result.fps)
