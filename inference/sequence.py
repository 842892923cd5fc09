"""Clips: one tracked person, fitted frame by frame, smoothed, as one result.

The first frame gets the full photo pipeline (with the left/right guard); the
body shape found there is kept for the whole clip. Each later frame starts
from the previous frame's fit and only refines pose and placement, which is
what makes a frame cheap. Frames without the person are filled in from their
neighbours and counted. Bone rotations (as quaternions, sign-aligned) and the
root motion are smoothed with a centred Gaussian, which adds no lag.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import roma
import torch

from .bodymodels.base import BodyParams
from .camera import Camera
from .detect import to_body_convention
from .errors import ReconError
from .fit import FitOptions, Fitter
from .frames import FrameSource
from .pipeline import N_COCO, Reconstructor, mirrored
from .result import ReconResult
from .track import Tracker

FrameProgress = Callable[[int, int, str], None]  # (done, total, note)


@dataclass
class SequenceOptions:
    smooth_sigma: float = 1.5  # frames; 0 disables smoothing
    foot_lock: bool = True
    contact_speed: float = 0.006  # image motion per frame, fraction of the person's height
    release: float = 0.9  # per airborne frame, the share of the last correction kept
    warm_fit: FitOptions = field(
        default_factory=lambda: FitOptions(
            rigid_steps=3, pose_steps=8, full_steps=0, lr=0.03, init_prior=0.2, mirror_guard=False
        )
    )


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Centred Gaussian along axis 0: zero lag. The ends are extended by point reflection
    (2 x[0] - x[k]), so motion that is steady at a clip's ends is not bent there."""
    if sigma <= 0 or len(x) < 3:
        return x.copy()
    r = min(int(np.ceil(3 * sigma)), len(x) - 1)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    head = 2 * x[:1] - x[1 : r + 1][::-1]
    tail = 2 * x[-1:] - x[-r - 1 : -1][::-1]
    pad = np.concatenate([head, x, tail]).astype(np.float64)
    out = np.zeros(x.shape, dtype=np.float64)
    for i, w in enumerate(k):
        out += w * pad[i : i + len(x)]
    return out


def smooth_quaternions(q: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth (N, ..., 4) unit quaternions over time: align signs, average, renormalise."""
    q = q.copy()
    for t in range(1, len(q)):  # q and -q are one rotation: keep the path continuous
        flip = (q[t] * q[t - 1]).sum(-1) < 0
        q[t][flip] *= -1
    s = gaussian_smooth(q, sigma)
    return s / np.linalg.norm(s, axis=-1, keepdims=True)


def foot_lock_offsets(feet: np.ndarray, ankles2d: np.ndarray, box_height: float, options: SequenceOptions) -> np.ndarray:
    """Root offsets (N, 3) that hold a planted foot still.

    ``feet``: (N, 4, 3) big toes and heels (left, right, left, right) in camera space;
    ``ankles2d``: (N, 2, 3) detected left/right ankles (pixels, confidence). Monocular depth
    is too noisy to tell a planted foot, the image is not: a foot is planted while its
    detected ankle barely moves in the image. During each planted stretch the root is
    shifted so the foot stays where the stretch began (depth included, which also steadies
    the body's distance). Each new anchor continues the previous offset and airborne
    frames ease it back, so the root never jumps.
    """
    n = len(feet)
    foot = np.stack([feet[:, [0, 2]].mean(1), feet[:, [1, 3]].mean(1)], 1)  # (N, 2, 3) left, right
    speed = np.full((n, 2), np.inf)
    speed[1:] = np.linalg.norm(np.diff(ankles2d[..., :2], axis=0), axis=-1) / box_height
    speed[0] = speed[1] if n > 1 else np.inf
    seen = ankles2d[..., 2] > 0.5
    planted = seen & (speed < options.contact_speed)
    offsets = np.zeros((n, 3))
    anchor: np.ndarray | None = None
    side = -1
    for t in range(n):
        if not (side >= 0 and planted[t, side]):
            if planted[t].any():  # plant the lower foot in the image (larger y)
                side = int(np.argmax(np.where(planted[t], ankles2d[t, :, 1], -np.inf)))
                anchor = foot[t, side] + (offsets[t - 1] if t > 0 else 0.0)
            else:
                side, anchor = -1, None
        if anchor is not None:
            offsets[t] = anchor - foot[t, side]
        elif t > 0:
            offsets[t] = offsets[t - 1] * options.release  # ease back towards the fit while airborne
    return offsets


def fill_missing(values: list[np.ndarray | None]) -> tuple[np.ndarray, int]:
    """Linear interpolation over gaps, held at the ends. Returns (array, number filled)."""
    known = [i for i, v in enumerate(values) if v is not None]
    if not known:
        raise ReconError("no_person", "The person was not found in any frame.")
    arr = np.stack([values[known[0]] if v is None else v for v in values]).astype(np.float64)
    filled = len(values) - len(known)
    for a, b in zip(known, known[1:]):
        for t in range(a + 1, b):
            w = (t - a) / (b - a)
            arr[t] = (1 - w) * arr[a] + w * arr[b]
    arr[: known[0]] = arr[known[0]]
    arr[known[-1] + 1 :] = arr[known[-1]]
    return arr, filled


class SequenceReconstructor:
    def __init__(self, rec: Reconstructor, options: SequenceOptions | None = None) -> None:
        self.rec = rec
        self.options = options or SequenceOptions()
        self.warm = Fitter(rec.body, self.options.warm_fit)

    def run(self, source: FrameSource, progress: FrameProgress | None = None, out_fps: float | None = None) -> ReconResult:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one core fits while MediaPipe tracks on the other
        try:
            return self._run(source, progress or (lambda done, total, note: None), out_fps)
        finally:
            torch.set_num_threads(threads)

    def _run(self, source: FrameSource, report: FrameProgress, out_fps: float | None) -> ReconResult:
        n = len(source)
        tracker = Tracker(self.rec.detector)
        per_pose: list[np.ndarray | None] = []  # (J, 3) axis-angle per frame
        per_grot: list[np.ndarray | None] = []
        per_trans: list[np.ndarray | None] = []
        per_kp2d: list[np.ndarray] = []
        per_lm3d: list[np.ndarray] = []
        notes: list[str] = []
        camera: Camera | None = None
        first_det = None
        shape = None
        prev: BodyParams | None = None
        timings = {"detect": 0.0, "fit": 0.0}
        t_start = time.perf_counter()
        # Reading and tracking run one frame ahead on a thread while the main thread fits:
        # MediaPipe and torch both release the GIL, so the two cores work together.
        for done, (index, det, why, size) in enumerate(_prefetch(self._detections(source, tracker, timings))):
            if det is not None:
                det = to_body_convention(det, self.rec.body.detector_offsets)
                if camera is None:
                    camera = Camera.for_image(*size)
                elif size != (camera.width, camera.height):
                    det, why = None, f"frame {index} has a different size ({size[0]}x{size[1]})"
            if det is None:
                per_pose.append(None), per_grot.append(None), per_trans.append(None)
                per_kp2d.append(np.zeros((N_COCO, 3), np.float32))
                per_lm3d.append(np.full((N_COCO, 3), np.nan, np.float32))
                notes.append(why or f"frame {index} unreadable")
                report(done + 1, n, notes[-1])
                continue
            assert camera is not None
            t = time.perf_counter()
            if prev is None:
                hyps = [det, mirrored(det)]
                fit = self.rec.fitter.fit(hyps, camera, self.rec.regressor(hyps, camera))
                det = hyps[fit.hypothesis]
                first_det = det
                shape = fit.params.shape
            else:
                init = BodyParams(prev.global_rot, prev.transl, prev.pose, shape)
                fit = self.warm.fit([det], camera, init)
            timings["fit"] += time.perf_counter() - t
            prev = fit.params
            per_pose.append(fit.params.pose[0].numpy())
            per_grot.append(fit.params.global_rot[0].numpy())
            per_trans.append(fit.params.transl[0].numpy())
            per_kp2d.append(det.keypoints2d[:N_COCO].astype(np.float32))
            per_lm3d.append(det.landmarks3d[:N_COCO].astype(np.float32))
            report(done + 1, n, "")
        if first_det is None or camera is None or shape is None:
            raise ReconError("no_person", "The person was not found in any frame; check the clip and frame range.")
        elapsed = time.perf_counter() - t_start

        detected = np.array([p is not None for p in per_pose])
        pose, filled = fill_missing(per_pose)
        trans, _ = fill_missing(per_trans)
        grot, _ = fill_missing(per_grot)
        # Rotations as quaternions (x, y, z, w), smoothed on the sphere.
        q_bones = roma.rotvec_to_unitquat(torch.tensor(pose, dtype=torch.float64)).numpy()  # (N, J, 4)
        q_glob = roma.rotvec_to_unitquat(torch.tensor(grot, dtype=torch.float64)).numpy()  # (N, 4)
        sigma = self.options.smooth_sigma
        raw = (q_bones.copy(), q_glob.copy(), trans.copy())
        q_bones = smooth_quaternions(q_bones, sigma)
        q_glob = smooth_quaternions(q_glob, sigma)
        trans = gaussian_smooth(trans, sigma)

        if self.options.foot_lock:
            feet = self._keypoints(shape, q_bones, q_glob, trans)[:, N_COCO:]
            ankles = np.stack(per_kp2d)[:, [15, 16]]
            trans = trans + foot_lock_offsets(feet, ankles, first_det.height, self.options)
        kp3d = self._keypoints(shape, q_bones, q_glob, trans)[:, :N_COCO]
        kp3d_raw = self._keypoints(shape, *raw)[:, :N_COCO]
        result = self.rec._make_result(
            str(source.path), first_det, camera, _FirstFrame(shape, q_bones[0], q_glob[0], trans[0]), {}
        )
        R = roma.unitquat_to_rotmat(torch.tensor(q_glob)).numpy()
        result.bone_rotations = q_bones[:, :, [3, 0, 1, 2]].astype(np.float32)
        result.global_rotation = R.astype(np.float64)
        result.root_translation = trans.astype(np.float64)
        result.frame_indices = np.asarray(source.indices, np.int32)
        result.frame_detected = detected
        result.frame_keypoints3d_cam = kp3d.astype(np.float32)
        result.frame_keypoints3d_raw = kp3d_raw.astype(np.float32)
        result.frame_keypoints2d = np.stack(per_kp2d).astype(np.float32)
        result.frame_landmarks3d = np.stack(per_lm3d)
        result.frames_filled = int(filled)
        result.fps = float(out_fps or source.fps)
        result.timings = {
            "total": elapsed,
            "per_frame": elapsed / max(1, n),
            "detect_per_frame": timings["detect"] / max(1, n),
            "fit_per_frame": timings["fit"] / max(1, n),
        }
        result.notes = np.array(notes, dtype=str)
        result.people_found = tracker.people_at_start
        pose_aa = roma.unitquat_to_rotvec(torch.tensor(q_bones)).numpy()
        result.extra = self.rec._extras(shape, R.astype(np.float64), trans.astype(np.float64), pose_aa, result.fps)
        return result

    @staticmethod
    def _detections(source: FrameSource, tracker: Tracker, timings: dict):
        for index, rgb, why in source:
            det = None
            size = (0, 0)
            if rgb is not None:
                size = (rgb.shape[1], rgb.shape[0])
                t = time.perf_counter()
                try:
                    det = tracker.start(rgb) if tracker.box is None else tracker.next(rgb)
                except ReconError:
                    det = None
                timings["detect"] += time.perf_counter() - t
                if det is None:
                    why = why or f"person not found in frame {index}"
            yield index, det, why, size

    @torch.no_grad()
    def _keypoints(self, shape, q_bones, q_glob, trans) -> np.ndarray:
        """Keypoints (COCO-17, big toes, heels) in camera space for every frame."""
        body = self.rec.body
        ids = body.keypoint_vertex_ids
        rest = body.rest(shape, ids)
        out = []
        for s in range(0, len(q_bones), 64):
            qb = torch.tensor(q_bones[s : s + 64], dtype=torch.float32)
            b = qb.shape[0]
            rest_b = rest.expand(b)
            v, _ = body.pose(rest_b, roma.unitquat_to_rotmat(qb), ids)
            R = roma.unitquat_to_rotmat(torch.tensor(q_glob[s : s + 64], dtype=torch.float32))
            v = torch.einsum("bij,bvj->bvi", R, v) + torch.tensor(trans[s : s + 64], dtype=torch.float32)[:, None]
            out.append(body.keypoints(v, ids).numpy())
        return np.concatenate(out)


def _prefetch(items, depth: int = 2):
    """Iterate ``items`` on a background thread, at most ``depth`` ahead (memory stays flat)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", done))
        except BaseException as exc:  # hand the failure to the consumer
            q.put(("error", exc))

    th = threading.Thread(target=work, daemon=True)
    th.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


@dataclass
class _FirstFrame:
    """Adapter: the first smoothed frame, shaped like a fit result for ``_make_result``."""

    shape: torch.Tensor
    q_bones: np.ndarray
    q_glob: np.ndarray
    trans: np.ndarray
    hypothesis: int = 0

    @property
    def params(self) -> BodyParams:
        return BodyParams(
            global_rot=roma.unitquat_to_rotvec(torch.tensor(self.q_glob, dtype=torch.float32))[None],
            transl=torch.tensor(self.trans, dtype=torch.float32)[None],
            pose=roma.unitquat_to_rotvec(torch.tensor(self.q_bones, dtype=torch.float32))[None],
            shape=self.shape,
        )

