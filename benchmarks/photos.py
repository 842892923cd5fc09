"""Speed and accuracy of the photo pipeline: ``python -m benchmarks photos``.

Reports warm per-stage latency (median over repeats) on the bundled photo,
the same on it enlarged to a phone photo's width (3024 px), the time for a new
process to write a result (models cached) and for a job in a warm worker (the
add-on's way: ``python -m inference serve``), peak memory,
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

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_PHOTO = ROOT / "examples" / "person.jpg"


def _cold_start(image: Path, cache_dir: str | None) -> tuple[float, float]:
    """Seconds for ``python -m inference reconstruct`` in a new process, and its peak RSS (MB)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "inference",
            "reconstruct",
            str(image),
            "--output",
            f"{tmp}/r.npz",
            "--json-progress",
        ]
        if cache_dir:
            cmd += ["--cache-dir", cache_dir]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        secs = time.perf_counter() - t
    return secs, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def _worker_jobs(image: Path, cache_dir: str | None, repeats: int) -> dict:
    """Seconds from a job's line to its end in a warm worker (``python -m inference serve``, as
    the add-on runs photos): the first job (models loaded in it) and the later ones (median)."""
    import json

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "inference", "serve"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)  # fmt: skip
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(max(1, repeats) + 1):
            argv = ["reconstruct", str(image), "--output", f"{tmp}/r{i}.npz"] + (["--cache-dir", cache_dir] if cache_dir
                                                                                else [])  # fmt: skip
            t = time.perf_counter()
            proc.stdin.write(json.dumps({"argv": argv}) + "\n")
            proc.stdin.flush()
            for line in proc.stdout:
                if json.loads(line)["event"] == "finished":
                    break
            seconds.append(time.perf_counter() - t)
    proc.stdin.close()
    proc.wait(60)
    return {"first_job": round(seconds[0], 2), "later_jobs": round(statistics.median(seconds[1:]), 3)}


def run_benchmark(
    images: list[str] | None = None, repeats: int = 5, quality: str = "balanced", cache_dir: str | None = None
) -> dict:
    from inference import __version__
    from inference.pipeline import Reconstructor

    photos = [BUNDLED_PHOTO] + [Path(p) for p in images or []]
    if not BUNDLED_PHOTO.exists():
        photos = photos[1:]
    if not photos:
        raise SystemExit("no photo to benchmark: pass one")
    rec = Reconstructor(quality=quality, cache_dir=cache_dir)
    main = photos[0]
    rec.reconstruct(main, people="largest")  # warm-up: first calls allocate and initialise kernels
    stages: dict[str, list[float]] = {}
    totals = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        res = rec.reconstruct(main, people="largest")
        totals.append(time.perf_counter() - t)
        for k, v in res.timings.items():
            stages.setdefault(k, []).append(v)
    per_image = []
    for p in photos:
        r = rec.reconstruct(p, people="largest").people[0]  # the most prominent person, as before
        per_image.append(
            {
                "image": p.name,
                "silhouette_iou": round(r.silhouette_iou, 4),
                "keypoint_error_pct": round(r.keypoint_error_pct, 3),
                "mirrored": r.mirrored,
            }
        )
    phone = _phone_sized(rec, main, repeats)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    cold_s, cold_peak_mb = _cold_start(main, cache_dir)
    worker = _worker_jobs(main, cache_dir, repeats)
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
        "warm_worker_job_s": worker,
        "silhouette_iou_mean": round(statistics.mean(x["silhouette_iou"] for x in per_image), 4),
        "keypoint_error_pct_mean": round(statistics.mean(x["keypoint_error_pct"] for x in per_image), 3),
        "per_image": per_image,
        "phone_sized": phone,
    }


def _phone_sized(rec, photo: Path, repeats: int) -> dict:
    """Warm per-stage latency (median) on ``photo`` enlarged to a phone photo's width (3024 px,
    JPEG): what a user's 10-12 megapixel photo costs (the pipeline works on it at most
    ``WORK_SIDE`` large)."""
    from PIL import Image

    with Image.open(photo) as img:
        big = img.convert("RGB").resize((3024, round(3024 * img.height / img.width)), Image.Resampling.BICUBIC)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "phone.jpg"
        big.save(path, quality=92)
        rec.reconstruct(path, people="largest")
        runs = []
        for _ in range(max(1, repeats)):
            t = time.perf_counter()
            timings = rec.reconstruct(path, people="largest").timings
            runs.append(timings | {"total": time.perf_counter() - t})
    stages = ("load", "detect", "regress", "fit", "hands", "result", "total")
    return {"size": list(big.size)} | {k: round(statistics.median(r[k] for r in runs), 4) for k in stages}
