"""The clip pipeline: one tracked person, fitted frame by frame, smoothed, as one result.

The first frame gets the photo pipeline's fit (``Reconstructor.fit_person``, with the
left/right guard); the body shape found there is kept for the whole clip. Each later
frame starts from the previous frame's fit and only refines pose and placement, which is
what makes a frame cheap. Frames without the person are filled in from their
neighbours and counted. Bone rotations (as quaternions, sign-aligned) and the
root motion are smoothed with a centred Gaussian, which adds no lag (``smoothing``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import roma
import torch

from . import keypoints as kpl
from .assemble import ClipFrames, Motion, assemble_result, keypoints_over_frames
from .bodymodels.base import BodyParams
from .camera import Camera
from .detect import Detection, PoseDetector, Tracker, VideoPoseDetector, mirrored, to_body_convention
from .errors import ReconError
from .fit import FitOptions, Fitter
from .io.frames import FrameSource
from .io.result import ReconResult
from .pipeline import Reconstructor
from .smoothing import fill_missing, foot_lock_offsets, gaussian_smooth, smooth_quaternions

FrameProgress = Callable[[int, int, str], None]  # (done, total, note)


@dataclass
class SequenceOptions:
    smooth_sigma: float = 1.5  # frames; 0 disables smoothing
    foot_lock: bool = True
    contact_speed: float = 0.006  # image motion per frame, fraction of the person's height
    release: float = 0.9  # per airborne frame, the share of the last correction kept
    # The pose model that follows the person from frame to frame (the first frame uses the photo
    # detector's), with ``video`` in the Tasks VIDEO mode, which follows every person's landmarks
    # from frame to frame (a crop around the last box is searched when it loses ours); without,
    # each frame is searched in that crop. Chosen on the real multi-view kit's clips, where the
    # full model in VIDEO mode was the most accurate (it keeps overlapping people apart); on the
    # sports2d clip (fast jumps) it shakes more than the crop search (docs/research-log.md).
    detector: str = "full"
    video: bool = True
    warm_fit: FitOptions = field(
        default_factory=lambda: FitOptions(
            rigid_steps=3, pose_steps=8, full_steps=0, lr=0.03, init_prior=0.2, mirror_guard=False
        )
    )


@dataclass
class _Track:
    """Per-frame fits as they come in (None: the person was not found in that frame)."""

    pose: list[np.ndarray | None] = field(default_factory=list)  # (J, 3) axis-angle
    global_rot: list[np.ndarray | None] = field(default_factory=list)  # (3,) axis-angle
    transl: list[np.ndarray | None] = field(default_factory=list)
    keypoints2d: list[np.ndarray] = field(default_factory=list)  # (21, 3), zeros where missing
    landmarks3d: list[np.ndarray] = field(default_factory=list)  # (21, 3), NaN where missing
    notes: list[str] = field(default_factory=list)
    camera: Camera | None = None
    first: Detection | None = None  # the first fitted frame's detection, as the fit labelled it
    shape: torch.Tensor | None = None  # the clip's body shape (1, S), from the first fitted frame
    seconds: dict[str, float] = field(default_factory=lambda: {"detect": 0.0, "fit": 0.0})

    def add(self, params: BodyParams, det: Detection) -> None:
        self.pose.append(params.pose[0].numpy())
        self.global_rot.append(params.global_rot[0].numpy())
        self.transl.append(params.transl[0].numpy())
        self.keypoints2d.append(det.keypoints2d.astype(np.float32))
        self.landmarks3d.append(det.landmarks3d.astype(np.float32))

    def last_keypoints(self) -> np.ndarray | None:
        """The last found frame's keypoints, as the fit labelled them."""
        found = [k for k, p in zip(self.keypoints2d, self.pose) if p is not None]
        return found[-1] if found else None

    def skip(self, why: str) -> None:
        self.pose.append(None), self.global_rot.append(None), self.transl.append(None)
        self.keypoints2d.append(np.zeros((kpl.NUM, 3), np.float32))
        self.landmarks3d.append(np.full((kpl.NUM, 3), np.nan, np.float32))
        self.notes.append(why)


# The detector's left/right labels are kept unless the swapped ones lie this much closer to the
# last frame's: at video rates a person does not turn round between two frames.
RELABEL_MARGIN = 0.7


def same_labelling(det: Detection, last: np.ndarray | None) -> Detection:
    """``det`` labelled like the last frame (``last``: its (K, 3) keypoints): the detector
    sometimes swaps left and right for a whole body from one frame to the next."""
    if last is None:
        return det
    flipped = mirrored(det)
    w = np.minimum(det.keypoints2d[:, 2], last[:, 2])
    dist = lambda d: float((w * np.linalg.norm(d.keypoints2d[:, :2] - last[:, :2], axis=1)).sum())  # noqa: E731
    return flipped if dist(flipped) < RELABEL_MARGIN * dist(det) else det


class SequenceReconstructor:
    def __init__(self, rec: Reconstructor, options: SequenceOptions | None = None) -> None:
        self.rec = rec
        self.options = options or SequenceOptions()
        self.warm = Fitter(rec.body, self.options.warm_fit)

    def run(
        self, source: FrameSource, progress: FrameProgress | None = None, out_fps: float | None = None
    ) -> ReconResult:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one core fits while MediaPipe tracks on the other
        try:
            return self._run(source, progress or (lambda done, total, note: None), out_fps)
        finally:
            torch.set_num_threads(threads)

    def _run(self, source: FrameSource, report: FrameProgress, out_fps: float | None) -> ReconResult:
        n = len(source)
        model = self.options.detector
        video = VideoPoseDetector(model) if self.options.video else None
        # Without VIDEO mode the crops are searched with the tracking model; with it, frames where
        # the person is lost are searched with the photo detector's (measured on the kit's clips,
        # docs/research-log.md).
        crops = PoseDetector(model) if not self.options.video and model != self.rec.detector.model else None
        tracker = Tracker(self.rec.detector, video, crops)
        t_start = time.perf_counter()
        try:
            track = self._fit_frames(source, tracker, report)
        finally:
            for d in (video, crops):
                if d is not None:
                    d.close()
        if track.first is None or track.camera is None or track.shape is None:
            raise ReconError("no_person", "The person was not found in any frame; check the clip and frame range.")
        elapsed = time.perf_counter() - t_start
        raw, motion = self._smooth(track)
        detected = np.array([p is not None for p in track.pose])
        clip = ClipFrames(
            indices=np.asarray(source.indices, np.int32), detected=detected, keypoints2d=np.stack(track.keypoints2d),
            landmarks3d=np.stack(track.landmarks3d), raw=raw, fps=float(out_fps or source.fps), notes=track.notes,
        )  # fmt: skip
        timings = {
            "total": elapsed,
            "per_frame": elapsed / max(1, n),
            "detect_per_frame": track.seconds["detect"] / max(1, n),
            "fit_per_frame": track.seconds["fit"] / max(1, n),
        }
        # The first frame's labelling is followed by the tracker, so the clip is not reported mirrored.
        return assemble_result(self.rec.body, motion, track.camera, track.first, str(source.path),
                               people_found=tracker.people_at_start, timings=timings, clip=clip)  # fmt: skip

    def _fit_frames(self, source: FrameSource, tracker: Tracker, report: FrameProgress) -> _Track:
        """Detect and fit every frame: the first found gets the full fit, later ones a warm start."""
        track = _Track()
        n = len(source)
        prev: BodyParams | None = None
        # Reading and tracking run one frame ahead on a thread while the main thread fits:
        # MediaPipe and torch both release the GIL, so the two cores work together.
        for done, (index, det, why, size) in enumerate(_prefetch(self._detections(source, tracker, track.seconds))):
            if det is not None:
                det = to_body_convention(det, self.rec.body.detector_offsets)
                if track.camera is None:
                    track.camera = Camera.for_image(*size)
                elif size != (track.camera.width, track.camera.height):
                    det, why = None, f"frame {index} has a different size ({size[0]}x{size[1]})"
            if det is None:
                track.skip(why or f"frame {index} unreadable")
                report(done + 1, n, track.notes[-1])
                continue
            assert track.camera is not None
            t = time.perf_counter()
            if prev is None:
                person = self.rec.fit_person(det, track.camera)
                params, det = person.fit.params, person.detection
                track.first, track.shape = det, params.shape
            else:
                params = self.warm.fit(
                    [det], track.camera, BodyParams(prev.global_rot, prev.transl, prev.pose, track.shape)
                ).params
            track.seconds["fit"] += time.perf_counter() - t
            prev = params
            track.add(params, det)
            report(done + 1, n, "")
        return track

    def _smooth(self, track: _Track) -> tuple[Motion, Motion]:
        """The raw motion (gaps filled) and the smoothed one, with planted feet held still."""
        assert track.shape is not None and track.first is not None
        pose, _ = fill_missing(track.pose)
        trans, _ = fill_missing(track.transl)
        grot, _ = fill_missing(track.global_rot)
        # Rotations as quaternions (x, y, z, w), smoothed on the sphere.
        q_bones = roma.rotvec_to_unitquat(torch.tensor(pose, dtype=torch.float64)).numpy()  # (N, J, 4)
        q_glob = roma.rotvec_to_unitquat(torch.tensor(grot, dtype=torch.float64)).numpy()  # (N, 4)
        raw = Motion(track.shape, q_bones, q_glob, trans)
        sigma = self.options.smooth_sigma
        smooth = Motion(track.shape, smooth_quaternions(q_bones, sigma), smooth_quaternions(q_glob, sigma),
                        gaussian_smooth(trans, sigma))  # fmt: skip
        if self.options.foot_lock:
            feet = keypoints_over_frames(self.rec.body, smooth)[:, kpl.NUM_COCO :]
            ankles = np.stack(track.keypoints2d)[:, kpl.ANKLES]
            o = self.options
            smooth.transl = smooth.transl + foot_lock_offsets(
                feet, ankles, track.first.height, o.contact_speed, o.release
            )
        return raw, smooth

    @staticmethod
    def _detections(source: FrameSource, tracker: Tracker, seconds: dict):
        for index, rgb, why in source:
            det = None
            size = (0, 0)
            if rgb is not None:
                size = (rgb.shape[1], rgb.shape[0])
                t = time.perf_counter()
                time_s = index / (source.fps or 30.0)
                try:
                    det = tracker.start(rgb, time_s) if tracker.box is None else tracker.next(rgb, time_s)
                except ReconError:
                    det = None
                seconds["detect"] += time.perf_counter() - t
                if det is None:
                    why = why or f"person not found in frame {index}"
            yield index, det, why, size


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
