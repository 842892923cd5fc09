"""The start's benchmark: ``python -m benchmarks regressor``.

On a held-out synthetic set (seeds from ``training.synth.TEST_SEED0``, never trained on)
it compares (a) the network alone (and, as an ablation, without its ResNet
branch: the keypoint lifter alone), (b) the fit from MediaPipe-style 3D
landmarks (the true keypoints plus noise: 3 cm across, 6 cm in depth), (c) the
fit from the network, all seeing the same detector-like 2D keypoints and the
body's silhouette, by MPJPE and PA-MPJPE on the 21 keypoints and per-vertex
error (pelvis-aligned, mm) and phenotype error (mean absolute, 0..1 units).
(b) runs the full fit; (c) runs the fit the pipeline gives a network start
(``FitOptions.for_trained_start``: shorter rigid and pose stages), and
``c_full`` the same with all of (b)'s iterations; (d) runs (c)'s fit from the true
body, the floor a perfect start would reach with this fit and these noisy 2D
keypoints (it tells the start's share of (c)'s error from the fit's).
Iterations to converge: the first iteration whose keypoint loss is within 5% of
that fit's final value.
On real photos (the bundled one, those given, and with ``--clip`` every 25th
frame of a video) it reports silhouette IoU and keypoint error of (b) and (c),
their means and on how many photos (c) beats (b).
With ``--renders DIR`` (bodies from ``python -m training.render_bodies``: held-out synthetic bodies
rendered as photos, with their truth) it runs (b) and (c) through the whole photo pipeline,
the real detector included, and reports the 3D errors there too: the simulated keypoints
and landmarks of the synthetic set are cleaner than MediaPipe's.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import statistics
import time
from pathlib import Path

import numpy as np
import roma
import torch

from inference import keypoints as kpl
from inference.bodymodels.base import BodyParams
from training.render_bodies import WELL_DETECTED_PCT
from training.synth import LANDMARK_NOISE_M, TEST_SEED0

CONVERGED = 1.05


def procrustes(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred`` (N, 3) aligned to ``gt`` by the best similarity transform."""
    mp_, mg = pred.mean(0), gt.mean(0)
    p, g = pred - mp_, gt - mg
    U, S, Vt = np.linalg.svd(p.T @ g)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.diag([1.0, 1.0, d])
    R = U @ D @ Vt
    scale = (S * np.diag(D)).sum() / (p**2).sum()
    return scale * p @ R + mg


def body_errors(
    kp: np.ndarray, verts: np.ndarray, shape: np.ndarray, kp_t: np.ndarray, verts_t: np.ndarray, shape_t: np.ndarray
) -> dict:
    pel, pel_t = kp[kpl.HIPS].mean(0), kp_t[kpl.HIPS].mean(0)
    return {
        "mpjpe_mm": float(np.linalg.norm((kp - pel) - (kp_t - pel_t), axis=1).mean() * 1000),
        "pa_mpjpe_mm": float(np.linalg.norm(procrustes(kp, kp_t) - kp_t, axis=1).mean() * 1000),
        "pve_mm": float(np.linalg.norm((verts - pel) - (verts_t - pel_t), axis=1).mean() * 1000),
        "phenotype_mae": float(np.abs(shape - shape_t).mean()),
    }


def converged_at(trace: list[float]) -> int:
    final = trace[-1]
    for i, v in enumerate(trace):
        if v <= CONVERGED * final + 1e-4:
            return i + 1
    return len(trace)


def _with_steps_of(options, other):
    """``options`` with the step counts of ``other``: (c) at (b)'s iteration budget."""
    from dataclasses import replace

    return replace(options, rigid_steps=other.rigid_steps, pose_steps=other.pose_steps, full_steps=other.full_steps)


class TruthStart:
    """A start that answers the synthetic sample's true body, for every hypothesis."""

    def __init__(self, params: BodyParams) -> None:
        self.params = params

    def __call__(self, detections, camera) -> BodyParams:
        n = len(detections)
        return BodyParams(*(t.expand(n, *t.shape[1:]).clone() for t in (self.params.global_rot, self.params.transl,
                                                                       self.params.pose, self.params.shape)))


class SyntheticBench:
    """The held-out synthetic bodies with every start and fit the benchmark compares (the models
    of one worker process)."""

    def __init__(self, cache_dir: str | None, weights: str) -> None:
        from inference.bodymodels.anny import AnnyBody
        from inference.fit import FitOptions, Fitter
        from inference.pipeline import NETWORK_STEP_FACTOR
        from inference.regress import LandmarkRegressor, NetworkRegressor
        from training.synth import SyntheticData

        self.body = AnnyBody(cache_dir)
        self.data = SyntheticData(self.body)
        self.landmarks = LandmarkRegressor(self.body)
        self.network = NetworkRegressor(self.body, weights)
        self.lifter = NetworkRegressor(self.body, weights, use_image=False)
        full = FitOptions()
        self.fit_full = Fitter(self.body, full)
        self.fit_trained = Fitter(self.body, full.for_trained_start(NETWORK_STEP_FACTOR))
        self.fit_trained_full = Fitter(self.body, _with_steps_of(self.fit_trained.options, full))

    def mesh(self, params) -> tuple[np.ndarray, np.ndarray]:
        b = self.body
        with torch.no_grad():
            rest = b.rest(params.shape)
            v, _ = b.pose(rest, roma.rotvec_to_rotmat(params.pose))
            v = torch.einsum("bij,bvj->bvi", roma.rotvec_to_rotmat(params.global_rot), v) + params.transl[:, None]
            kp = b.keypoints(v)
        return kp[0].numpy().astype(np.float64), v[0].numpy().astype(np.float64)

    def truth(self, s) -> TruthStart:
        """The sample's body as fit parameters (the bones it does not pose stay at rest)."""
        pose = self.fit_trained.limits.full_pose(roma.rotmat_to_rotvec(s.pose))
        return TruthStart(BodyParams(roma.rotmat_to_rotvec(s.global_rot), s.transl.clone(), pose, s.shape.clone()))

    def sample(self, seed: int, with_full_c: bool) -> dict:
        s, camera, hyps = self.data.detector_view(seed)
        det = hyps[0]
        kp_t = s.keypoints3d[0].numpy().astype(np.float64)
        verts_t = s.vertices[0].numpy().astype(np.float64)
        shape_t = s.shape[0].numpy()
        out: dict = {}

        t = time.perf_counter()
        a = self.network([det], camera)
        out["a"] = body_errors(*self.mesh(a), a.shape[0].numpy(), kp_t, verts_t, shape_t)
        out["a"]["seconds"] = time.perf_counter() - t
        a = self.lifter([det], camera)  # ablation: the same network without its ResNet branch
        out["a_lifter"] = body_errors(*self.mesh(a), a.shape[0].numpy(), kp_t, verts_t, shape_t)

        runs = [("b", self.landmarks, self.fit_full), ("c", self.network, self.fit_trained),
                ("d", self.truth(s), self.fit_trained)]
        if with_full_c:
            runs.append(("c_full", self.network, self.fit_trained_full))
        for name, reg, fitter in runs:
            t = time.perf_counter()
            fit = fitter.fit(hyps, camera, reg(hyps, camera))
            secs = time.perf_counter() - t
            e = body_errors(*self.mesh(fit.params), fit.params.shape[0].numpy(), kp_t, verts_t, shape_t)
            e.update(seconds=secs, iterations=fit.iterations, converged_at=converged_at(fit.keypoint_trace))
            out[name] = e
        return out


_worker: SyntheticBench | None = None


def _init(cache_dir: str | None, weights: str) -> None:
    global _worker
    torch.set_num_threads(1)
    _worker = SyntheticBench(cache_dir, weights)


def _run(job: tuple[int, bool]) -> dict:
    assert _worker is not None
    return _worker.sample(*job)


def _summary(rows: list[dict], key: str) -> dict:
    vals = [r[key] for r in rows if key in r]
    keys = vals[0].keys()
    return {k: round(statistics.mean(v[k] for v in vals), 4) for k in keys} | {
        f"{k}_median": round(statistics.median(v[k] for v in vals), 4)
        for k in ("pa_mpjpe_mm", "converged_at")
        if k in keys
    }


def _regressor_speed(cache_dir: str | None, weights: str, repeats: int = 20) -> dict:
    """Per-crop latency of the network (input drawing + forward) on the bundled photo's detection."""
    from inference.bodymodels.anny import AnnyBody
    from inference.camera import Camera
    from inference.detect import PoseDetector, find_people, prominence
    from inference.io.images import load_image
    from inference.regress import NetworkRegressor

    from .photos import BUNDLED_PHOTO

    body = AnnyBody(cache_dir)
    reg = NetworkRegressor(body, weights)
    rgb = load_image(BUNDLED_PHOTO)
    det_model = PoseDetector()
    try:
        det = max(find_people(det_model, rgb), key=prominence)
    finally:
        det_model.close()
    camera = Camera.for_image(rgb.shape[1], rgb.shape[0])
    reg.predict([det], camera)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        reg.predict([det], camera)
        times.append(time.perf_counter() - t)
    return {"regressor_ms_per_crop": round(statistics.median(times) * 1000, 1), "threads": torch.get_num_threads()}


def _real_images(images: list[str], frames=None):
    """(name, photo path or RGB frame): the bundled photo, the given photos, the frames
    of ``frames`` (a ``FrameSource``)."""
    from .photos import BUNDLED_PHOTO

    for p in [BUNDLED_PHOTO] + [Path(x) for x in images]:
        yield p.name, p
    for i, rgb, _ in frames or []:
        if rgb is not None:
            yield f"{frames.path.name}#{i}", rgb


def _photos(images: list[str], cache_dir: str | None, weights: str, frames=None) -> list[dict]:
    from inference.errors import ReconError
    from inference.fit import FitOptions
    from inference.pipeline import NETWORK_STEP_FACTOR, Reconstructor

    rows = []
    trained = FitOptions().for_trained_start(NETWORK_STEP_FACTOR)
    recs = {
        "b": Reconstructor(cache_dir=cache_dir, init="landmarks"),
        "c": Reconstructor(cache_dir=cache_dir, init="network", regressor_weights=weights),  # the pipeline's options
        "c_full": Reconstructor(cache_dir=cache_dir, init="network", fit_options=_with_steps_of(trained, FitOptions()),
                                regressor_weights=weights),
    }
    for name, image in _real_images(images, frames):
        row: dict = {"image": name}
        try:
            for key, rec in recs.items():
                result = rec.reconstruct(image, name=name, people="largest")  # the most prominent, as before
                r = result.people[0]
                row[key] = {
                    "silhouette_iou": round(r.silhouette_iou, 4),
                    "keypoint_error_pct": round(r.keypoint_error_pct, 3),
                    "fit_iterations": rec.fitter.options.total_steps,
                    "regress_s": round(result.timings["regress"], 3),
                    "fit_s": round(result.timings["fit"], 3),
                }
        except ReconError as err:  # a clip frame with nobody in it
            row = {"image": name, "skipped": err.message}
        rows.append(row)
    for rec in recs.values():
        rec.close()
    return rows


def _photo_summary(rows: list[dict]) -> dict:
    """Mean IoU and keypoint error of each start over the photos, and on how many photos
    (c) beats (b) (higher IoU and no higher keypoint error)."""
    done = [r for r in rows if "b" in r]
    out: dict = {"photos": len(done)}
    if not done:
        return out
    for key in ("b", "c", "c_full"):
        out[key] = {
            m: round(statistics.mean(r[key][m] for r in done), 4) for m in ("silhouette_iou", "keypoint_error_pct")
        }
    for key in ("c", "c_full"):
        out[f"{key}_beats_b"] = sum(
            r[key]["silhouette_iou"] > r["b"]["silhouette_iou"]
            and r[key]["keypoint_error_pct"] <= r["b"]["keypoint_error_pct"]
            for r in done
        )
    return out


def _render_files(render_dir: str) -> list[Path]:
    """The renders of ``training.render_bodies`` in ``render_dir``: each ``<seed>.png`` beside its truth
    ``<seed>.npz``."""
    from inference.errors import ReconError

    pngs = sorted(p for p in Path(render_dir).glob("*.png") if p.with_suffix(".npz").is_file())
    if not pngs:
        raise ReconError(
            "no_renders",
            f"No rendered bodies in {render_dir}; make them with python -m training.render_bodies {render_dir}.",
        )
    return pngs


def _rendered(pngs: list[Path], cache_dir: str | None, weights: str) -> list[dict]:
    """(b) and (c) through the whole photo pipeline, MediaPipe included, on rendered bodies."""
    from inference.camera import project_np
    from inference.detect import find_people, mirrored, prominence
    from inference.errors import ReconError
    from inference.io.images import load_image
    from inference.pipeline import Reconstructor

    recs = {"b": Reconstructor(cache_dir=cache_dir, init="landmarks"),
            "c": Reconstructor(cache_dir=cache_dir, init="network", regressor_weights=weights)}  # fmt: skip
    body = recs["c"].body
    rows = []
    for png in pngs:
        with np.load(png.with_suffix(".npz"), allow_pickle=False) as z:
            K, kp_t, verts_t, shape_t = z["K"], z["keypoints3d"], z["vertices"].astype(np.float64), z["shape"]
        row: dict = {"image": png.name}
        rgb = load_image(png)
        try:
            det = max(find_people(recs["c"].detector, rgb), key=prominence)
        except ReconError as err:
            rows.append(row | {"skipped": err.message})
            continue
        uv_t = project_np(kp_t, K)
        extent = float(np.ptp(uv_t, axis=0).max())
        seen = det.keypoints2d[:, 2] > 0.5
        if seen.any():  # the better labelling: the fit weighs the mirrored one too
            err2d = [
                np.median(np.linalg.norm(d.keypoints2d[seen, :2] - uv_t[seen], axis=1)) for d in (det, mirrored(det))
            ]
            row["detector_kp_error_pct"] = round(float(min(err2d)) / extent * 100, 3)
        else:
            row["detector_kp_error_pct"] = 100.0
        lm = det.landmarks3d - det.landmarks3d[kpl.HIPS].mean(0) + kp_t[kpl.HIPS].mean(0)
        # The synthetic set's simulated landmarks on the same body, for comparison.
        sim = kp_t + np.random.default_rng([11, len(rows)]).normal(0, LANDMARK_NOISE_M, kp_t.shape)
        for k, pts in (("landmarks_pa_mpjpe_mm", lm), ("simulated_landmarks_pa_mpjpe_mm", sim)):
            row[k] = round(float(np.linalg.norm(procrustes(pts, kp_t) - kp_t, axis=1).mean() * 1000), 2)
        for key, rec in recs.items():
            # The true focal length: the pose is measured, not the camera.
            r = rec.reconstruct(rgb, focal_px=float(K[0, 0]), people="largest").people[0]
            v = torch.from_numpy(r.vertices_cam)[None]
            kp = body.keypoints(v[:, body.keypoint_vertex_ids], body.keypoint_vertex_ids)[0].numpy().astype(np.float64)
            e = body_errors(kp, r.vertices_cam.astype(np.float64), r.shape_params, kp_t, verts_t, shape_t)
            row[key] = {k: round(v, 3) for k, v in e.items()} | {"silhouette_iou": round(r.silhouette_iou, 4)}
        rows.append(row)
    for rec in recs.values():
        rec.close()
    return rows


def _rendered_summary(rows: list[dict]) -> dict:
    """Means of (b) and (c) over the detected bodies and over the well-detected ones, and how
    far MediaPipe's 3D landmarks are from the truth against the synthetic set's simulated ones."""
    found = [r for r in rows if "c" in r]
    well = [r for r in found if r["detector_kp_error_pct"] < WELL_DETECTED_PCT]
    out: dict = {"rendered": len(rows), "detected": len(found), "well_detected": len(well)}
    if not found:
        return out
    out["detector_kp_error_pct_median"] = round(statistics.median(r["detector_kp_error_pct"] for r in found), 3)
    for k in ("landmarks_pa_mpjpe_mm", "simulated_landmarks_pa_mpjpe_mm"):
        out[k] = round(statistics.mean(r[k] for r in found), 1)
    metrics = ("mpjpe_mm", "pa_mpjpe_mm", "pve_mm", "silhouette_iou")
    for name, group in (("detected", found), ("well_detected", well)):
        for key in ("b", "c"):
            if group:
                out[f"{key}_{name}"] = {m: round(statistics.mean(r[key][m] for r in group), 4) for m in metrics} | {
                    "pa_mpjpe_mm_median": round(statistics.median(r[key]["pa_mpjpe_mm"] for r in group), 2)
                }
    return out


def run_regressor_benchmark(
    samples: int = 500,
    images: list[str] | None = None,
    workers: int = 2,
    full_c: bool = True,
    cache_dir: str | None = None,
    weights: str | Path | None = None,
    clip: str | None = None,
    clip_step: int = 25,
    renders: str | None = None,
) -> dict:
    from safetensors import safe_open

    from inference import __version__
    from inference.io.frames import open_frames
    from inference.regress import WEIGHTS

    t0 = time.perf_counter()

    # Opened first, so that a bad clip fails now, not after the synthetic set.
    frames = open_frames(clip, step=clip_step) if clip else None
    pngs = _render_files(renders) if renders else []
    weights = Path(weights or WEIGHTS)
    speed = _regressor_speed(cache_dir, str(weights))
    jobs = [(TEST_SEED0 + i, full_c) for i in range(samples)]
    if not jobs:
        rows = []
    elif workers > 1:
        with mp.get_context("spawn").Pool(workers, initializer=_init, initargs=(cache_dir, str(weights))) as pool:
            rows = pool.map(_run, jobs, chunksize=8)
    else:
        _init(cache_dir, str(weights))
        rows = [_run(j) for j in jobs]
    photos = _photos(images or [], cache_dir, str(weights), frames)
    rendered = _rendered(pngs, cache_dir, str(weights)) if renders else []

    with safe_open(str(weights), framework="pt") as f:
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items() if k != "format"}
    return {
        "benchmark": "regressor",
        "version": __version__,
        "weights": str(weights),
        "weights_mb": round(weights.stat().st_size / 1e6, 1),
        "trained_steps": meta.get("step"),
        "train_minutes": meta.get("train_minutes"),
        "synthetic_samples": samples,
        "synthetic": (
            {
                "a_regressor": _summary(rows, "a"),
                "a_without_image_branch": _summary(rows, "a_lifter"),
                "b_landmarks_fit": _summary(rows, "b"),
                "c_regressor_fit": _summary(rows, "c"),
            }
            | ({"c_regressor_fit_full": _summary(rows, "c_full")} if full_c else {})
            | {"d_fit_from_truth": _summary(rows, "d")}
            if rows else {}
        ),
        "photos": photos,
        "photos_summary": _photo_summary(photos),
    } | ({"rendered": rendered, "rendered_summary": _rendered_summary(rendered)} if renders else {}) | {
        "seconds": round(time.perf_counter() - t0, 1),
    } | speed
