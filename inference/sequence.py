"""The clip pipeline: everyone followed, each fitted frame by frame and smoothed, as one result.

One detector pass per frame serves everyone (``detect.Tracker``). A person's first frame gets
the photo pipeline's fit (``Reconstructor.fit_person``, with the left/right guard); the body
shape found there is kept for the whole clip. Each later frame starts from that person's
previous frame and only refines pose and placement, which is what makes a frame cheap. Frames
where a person is missing are filled in from their neighbours, counted and listed per person.
Bone rotations (as quaternions, sign-aligned) and the root motion are smoothed with a centred
Gaussian, which adds no lag (``smoothing``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, NamedTuple

import numpy as np
import roma
import torch

from . import keypoints as kpl
from .assemble import ClipFrames, Motion, assemble_person, assemble_result, keypoints_over_frames
from .bodymodels.base import BodyParams
from .camera import Camera
from .detect import Detection, PoseDetector, Tracker, VideoPoseDetector, mirrored, to_body_convention
from .errors import ReconError
from .fit import FitOptions, Fitter
from .hands import (
    MIN_WRIST_CONF,
    SIDES,
    HandFitOptions,
    PersonHands,
    fit_people_hands,
    hand_bones,
    no_fingers,
    supports,
)
from .io.frames import FrameSource
from .io.images import WORK_SIDE, working_copy
from .io.result import DEFAULT_HEIGHT_M, ReconResult
from .lens import FocalLength
from .pipeline import Reconstructor, choose_people, people_wanted, why_skipped
from .smoothing import fill_missing, foot_contacts, foot_lock_offsets, gaussian_smooth, smooth_quaternions
from .vanishing import find_lines, focal_from_lines

FrameProgress = Callable[[int, int, str], None]  # (done, total, note)


@dataclass
class SequenceOptions:
    # The smoothing Gaussian's sigma: this many seconds, and at least ``smooth_frames`` frames
    # (3 frames at 60 fps, 1.5 at 30 and below). At 60, 3 frames halved the kit's jitter against
    # 1.5 and scored 0.3 mm better; at 12 fps, under 1.5 frames (0.6) doubled it for nothing
    # (docs/research-log.md). Both 0: no smoothing.
    smooth_seconds: float = 0.05
    smooth_frames: float = 1.5
    foot_lock: bool = True
    # A foot is planted while its ankle moves slower than this in the image (the person's height a
    # second; ``smoothing.foot_contacts``); set on the sports2d clip at 30 frames a second as 0.006
    # a frame, and now the same speed at any rate.
    contact_speed: float = 0.18
    release: float = 0.9**30  # per airborne second, the share of the last correction kept (0.9 a frame at 30)
    # The pose model that follows the person from frame to frame (the first frame uses the photo
    # detector's), with ``video`` in the Tasks VIDEO mode, which follows every person's landmarks
    # from frame to frame (a crop around the last box is searched when it loses ours); without,
    # each frame is searched in that crop. Chosen on the real multi-view kit's clips: the heavy
    # model in VIDEO mode keeps up with large, quick movements that the full model lags behind
    # (PA-MPJPE 77.4 against 84.5 mm, no identity switch, no mirrored body) at about half the
    # frames per second; the full model ("Fast") keeps more frames of a back flip
    # (docs/research-log.md).
    detector: str = "heavy"
    video: bool = True
    people: str | int = "all"  # whom to follow: "all", "largest" or the N most prominent (``--people``)
    height: float | None = DEFAULT_HEIGHT_M  # each body's standing height, metres (None: the fit's own size)
    # The lens's 35 mm equivalent (None: the one the frames' EXIF or the video's metadata records,
    # else the image diagonal).
    focal_mm: float | None = None
    # Each later frame's fit, from the frame before. Its Adam moves a parameter whose gradient is
    # under 0.01 in proportion to it (``FitOptions.adam_eps``): at torch's 1e-8 a joint the
    # picture hardly constrains moved a full step on a gradient of noise, and the kit's clips
    # scored anywhere in 66-69 mm PA-MPJPE with the 2D keypoints moved by 1e-3 px; with it,
    # 62-63, and less jitter (docs/research-log.md, "Adam's epsilon"). Its pull towards the
    # frame before's pose (``init_prior``) is for a clip at 60 frames a second and scales with
    # the square of the clip's rate (``warm_prior``).
    warm_fit: FitOptions = field(
        default_factory=lambda: FitOptions(
            rigid_steps=3, pose_steps=8, full_steps=0, lr=0.03, init_prior=0.1, mirror_guard=False, adam_eps=1e-2,
            bone_depth_weight=0.0,  # the frame before holds the depth; with the term: +0.3 mm (SE 0.3) on the kit
        )
    )
    hand_fit: HandFitOptions = field(default_factory=HandFitOptions)
    # Hands are searched at most this many times a second (each person's, every frame of a clip
    # of 30 frames a second or fewer, every 2nd of one at 60); the frames between are filled in
    # from those either side. The hand landmarker is the clip's largest cost after the pose pass
    # (four wrist crops a frame for two people), and fingers sampled 30 times a second lose
    # little (docs/research-log.md). 0: every frame.
    hand_rate: float = 30.0
    # A hand missing for at most this long (seconds) between two frames where it was fitted is
    # filled in from them; a longer gap keeps the relaxed hand (15 frames at 30 a second).
    hand_gap: float = 0.5


@dataclass(eq=False)
class _Track:
    """One person's per-frame fits as they come in (None: not found in that frame)."""

    pose: list[np.ndarray | None] = field(default_factory=list)  # (J, 3) axis-angle
    global_rot: list[np.ndarray | None] = field(default_factory=list)  # (3,) axis-angle
    transl: list[np.ndarray | None] = field(default_factory=list)
    keypoints2d: list[np.ndarray] = field(default_factory=list)  # (21, 3), zeros where missing
    landmarks3d: list[np.ndarray] = field(default_factory=list)  # (21, 3), NaN where missing
    hand_keypoints2d: list[np.ndarray] = field(default_factory=list)  # (2, 21, 3), zeros where not found
    hands_fitted: list[np.ndarray] = field(default_factory=list)  # (2,) bool
    hands: PersonHands | None = None  # the hands last searched for (None: the person was not found then)
    hands_searched: int = -1_000_000  # the frame (position in the clip) they were last searched in
    why: list[str | None] = field(default_factory=list)  # per frame: why the person is missing (None: found)
    first: Detection | None = None  # the first fitted frame's detection, as the fit labelled it
    shape: torch.Tensor | None = None  # the person's body shape (1, S), from their first frame
    prev: BodyParams | None = None  # the last frame's fit
    missed: int = 0  # frames since last found

    def add(self, params: BodyParams, det: Detection, hands: PersonHands | None = None,
            start: BodyParams | None = None, searched: bool = True) -> None:
        """A found frame: its fit ``params``, its detection and hands; ``start``: where the next
        frame's body fit starts (default ``params``); ``searched``: whether the hands were
        searched for in it (if not, the last search's hands stay where the next one starts)."""
        if searched:
            self.hands = hands
        hands = hands or PersonHands.none()
        self.hand_keypoints2d.append(hands.keypoints2d)
        self.hands_fitted.append(hands.fitted.copy())
        self.pose.append(params.pose[0].numpy())
        self.global_rot.append(params.global_rot[0].numpy())
        self.transl.append(params.transl[0].numpy())
        self.keypoints2d.append(det.keypoints2d.astype(np.float32))
        self.landmarks3d.append(det.landmarks3d.astype(np.float32))
        self.why.append(None)
        self.prev, self.missed = (params if start is None else start), 0

    def last_keypoints(self) -> np.ndarray | None:
        """The last found frame's keypoints, as the fit labelled them."""
        found = [k for k, p in zip(self.keypoints2d, self.pose) if p is not None]
        return found[-1] if found else None

    def skip(self, why: str | None) -> None:
        """A frame without the person (``why`` None: before they came into the clip)."""
        self.pose.append(None), self.global_rot.append(None), self.transl.append(None)
        self.keypoints2d.append(np.zeros((kpl.NUM, 3), np.float32))
        self.landmarks3d.append(np.full((kpl.NUM, 3), np.nan, np.float32))
        self.hand_keypoints2d.append(PersonHands.none().keypoints2d)
        self.hands_fitted.append(np.zeros(2, bool))
        self.hands = None
        self.why.append(why)
        self.missed += 1

    def found_frames(self) -> int:
        return sum(p is not None for p in self.pose)

    def notes(self) -> list[str]:
        """Why each frame filled in (within the frames the person is in) was missing."""
        return [w for w, here in zip(self.why, self.present()) if here and w is not None]

    def present(self) -> np.ndarray:
        """(N,) bool: from the first to the last frame the person was found in."""
        known = np.flatnonzero([p is not None for p in self.pose])
        out = np.zeros(len(self.pose), bool)
        out[known[0] : known[-1] + 1] = True
        return out


MIN_TRACK_FRAMES = 10  # a person found in fewer frames is left out of the result (a passing false find)
LONG_ABSENCE = 15  # frames: a person taken back after this long gets the full fit again (their pose changed)

# The detector's left/right labels are kept where they lie this much closer to the last frame's
# than the swapped ones, and swapped where those do: at video rates a person does not turn round
# between two frames. In between (a person turning, limbs moving fast, at 30 frames a second
# more than at 60), both are fitted and the body decides (``labellings``).
RELABEL_MARGIN = 0.7
# ... and the second labelling is taken where its fit's loss is under this share of the first's
# (1.0 took it at any gain: the kit's heavy clips +1.3 mm, SE 0.8, against +0.2, SE 0.1).
RELABEL_FIT_MARGIN = 0.7


def labellings(det: Detection, last: np.ndarray | None) -> list[Detection]:
    """``det`` labelled like the last frame (``last``: its (K, 3) keypoints), first; then, where
    the keypoints cannot tell, the other labelling: the detector sometimes swaps left and right
    for a whole body from one frame to the next."""
    if last is None:
        return [det]
    flipped = mirrored(det)
    w = np.minimum(det.keypoints2d[:, 2], last[:, 2])
    dist = lambda d: float((w * np.linalg.norm(d.keypoints2d[:, :2] - last[:, :2], axis=1)).sum())  # noqa: E731
    kept, swapped = dist(det), dist(flipped)
    if swapped < RELABEL_MARGIN * kept:
        return [flipped]
    return [det] if kept < RELABEL_MARGIN * swapped else [det, flipped]


class _WorkingFrame(NamedTuple):
    index: int
    rgb: np.ndarray | None  # at the size worked on; None: unreadable
    picture: tuple[int, int]  # the frame's own size
    why: str  # why it is unreadable
    time_s: float


@dataclass
class _Frame:
    """One frame as detection hands it to the fit: the followed people found in it."""

    index: int
    found: dict[int, Detection]  # by person id
    size: tuple[int, int]  # as worked on (``io.images.working_copy``)
    why: str = ""  # why the frame has nobody (unreadable, nobody found)
    rgb: np.ndarray | None = None  # the frame (where anyone was found: their hands are searched in it)
    picture: tuple[int, int] = (0, 0)  # the frame's own size


class SequenceReconstructor:
    def __init__(self, rec: Reconstructor, options: SequenceOptions | None = None) -> None:
        self.rec = rec
        self.options = options or SequenceOptions()

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
        # a person is lost are searched with the photo detector's (measured on the kit's clips,
        # docs/research-log.md).
        crops = PoseDetector(model) if not self.options.video and model != self.rec.detector.model else None
        tracker = Tracker(self.rec.detector, video, crops)
        fps = float(out_fps or source.fps or 30.0)  # the result's frame rate, which the rates below are per
        # Each person's hands are searched in every ``_hand_step``-th frame (``hand_rate``).
        rate = self.options.hand_rate
        self._hand_step = max(1, round(fps / rate)) if rate > 0 else 1
        self.warm = Fitter(self.rec.body, replace(self.options.warm_fit, init_prior=warm_prior(self.options, fps)))
        t_start = time.perf_counter()
        self._detect_seconds = 0.0  # added to by the detection thread
        self._fit_seconds = 0.0
        self._start_notes: list[str] = []  # who was not followed from the first frame, and why
        self._camera_notes: list[str] = []  # where the camera's focal length came from, if not the default
        self._picture: Camera | None = None  # the camera in the frames' own pixels (the fit's: in those worked on)
        nobody: dict[int, str] = {}
        try:
            tracks, camera = self._fit_frames(source, tracker, report, nobody)
        finally:
            for d in (video, crops):
                if d is not None:
                    d.close()
        enough = min(MIN_TRACK_FRAMES, (n + 1) // 2)
        # A newcomer the landmarker was unsure of on the whole is a false find it followed (in the
        # sports2d clip, a skeleton lying across the trees for 22 frames).
        by_id = sorted(tracks.items())
        everyone = [t for _, t in by_id]
        kept = [t for pid, t in by_id if t.found_frames() >= enough and tracker.people[pid].surely_seen]
        kept = kept or sorted(everyone, key=_Track.found_frames)[-1:]
        # Frames nobody is in are noted once; a frame someone is in but was not found in, under
        # their name (below).
        someone = np.any([t.present() for t in kept], axis=0) if kept else np.zeros(n, bool)
        notes = self._camera_notes + self._start_notes + [why for i, why in sorted(nobody.items()) if not someone[i]]
        notes += [f"a person seen in only {t.found_frames()} frames was left out" if t.found_frames() < enough
                  else f"a person the detector was unsure of, seen in {t.found_frames()} frames, was left out "
                       "(a likely false find)"
                  for t in everyone if not any(t is k for k in kept)]  # fmt: skip
        if not kept or camera is None:
            raise ReconError("no_person", "No person was found in any frame; check the clip and frame range.")
        elapsed = time.perf_counter() - t_start
        kept.sort(key=lambda t: float(t.first.box[0] + t.first.box[2]))  # left to right: Person 1, 2, ...
        people = []
        for t in kept:
            raw, motion = self._smooth(t, fps)
            present = t.present()
            detected = np.array([p is not None for p in t.pose])
            keypoints2d = np.stack(t.keypoints2d)
            contact = foot_contacts(keypoints2d[:, kpl.ANKLES], t.first.height, self.options.contact_speed, fps)
            clip = ClipFrames(detected=detected, keypoints2d=keypoints2d, landmarks3d=np.stack(t.landmarks3d),
                              raw=raw, fps=fps, present=present, foot_contact=contact,
                              hand_keypoints2d=np.stack(t.hand_keypoints2d),
                              hands_fitted=np.stack(t.hands_fitted))  # fmt: skip
            # The first frame's labelling is followed frame to frame, so no track is reported mirrored.
            people.append(assemble_person(self.rec.body, motion, camera, t.first, clip=clip,
                                          height=self.options.height))
        whole = self._picture
        assert whole is not None  # set with ``camera``
        result = assemble_result(self.rec.body, camera, str(source.path), people,
                                 people_found=tracker.people_at_start, fps=fps,
                                 frame_indices=np.asarray(source.indices, np.int32),
                                 ).in_picture(whole.width, whole.height, whole.K)  # fmt: skip
        behind = source.background_jpeg()
        if behind is not None:
            result.background_jpeg = behind
        for k, t in enumerate(kept):  # each person's filled frames, under the name the rig gives them
            notes += [f"Person {k + 1}: {why}" for why in t.notes()]
            if self.rec.hand_detector is not None and not supports(self.rec.body):
                notes.append(f"Person {k + 1}: hands {no_fingers(self.rec.body)}")
            elif self.rec.hand_detector is not None:
                fitted = np.stack(t.hands_fitted)[t.present()].sum(0)
                every = f" (searched once every {self._hand_step} frames)" if self._hand_step > 1 else ""
                notes.append(f"Person {k + 1}: fingers fitted in {fitted[0]} (left) and {fitted[1]} (right) of "
                             f"{int(t.present().sum())} frames{every}; filled in over gaps of up to "
                             f"{hand_gap_frames(self.options.hand_gap, fps)} frames, relaxed elsewhere")  # fmt: skip
        result.notes = np.array(notes, dtype=str)
        result.timings = {
            "total": elapsed,
            "per_frame": elapsed / max(1, n),
            "detect_per_frame": self._detect_seconds / max(1, n),
            "fit_per_frame": self._fit_seconds / max(1, n),
        }
        return result

    def _fit_frames(self, source: FrameSource, tracker: Tracker, report: FrameProgress, nobody: dict[int, str]
                    ) -> tuple[dict[int, _Track], Camera | None]:  # fmt: skip
        """Detect and fit every frame: each person's first frame gets the full fit, later ones a
        warm start from their previous frame. ``nobody`` gets the frames no one was found in, and why."""
        tracks: dict[int, _Track] = {}
        camera: Camera | None = None
        n = len(source)
        # Reading and tracking run one frame ahead on a thread while the main thread fits:
        # MediaPipe and torch both release the GIL, so the two cores work together.
        frames = _prefetch(self._detections(source, tracker))
        try:
            for done, frame in enumerate(frames):
                if frame.found and camera is None:
                    # The focal length given, else a folder of photos' (the first one's EXIF) or a
                    # video's metadata's, else the one the scene's lines show in this frame, else the default.
                    given = self.options.focal_mm
                    lens = FocalLength(given) if given else source.recorded_focal(*frame.picture)
                    if lens is None and frame.rgb is not None:
                        lens = focal_from_lines(find_lines(frame.rgb), [d.mask for d in frame.found.values()])
                    self._picture = Camera.for_image(*frame.picture, lens.px(*frame.picture) if lens else None)
                    camera = self._picture.resized(*frame.size)
                    self._camera_notes = [lens.note(*frame.picture)] if lens else []
                elif frame.found and frame.picture != (self._picture.width, self._picture.height):
                    frame = _Frame(frame.index, {}, frame.size, f"frame {frame.index} has a different size")
                if not frame.found:
                    nobody[done] = frame.why or f"frame {frame.index}: nobody found"
                here = []
                for pid, det in frame.found.items():
                    if pid not in tracks:  # a person seen for the first time: frames before are not theirs
                        tracks[pid] = _Track()
                        for _ in range(done):
                            tracks[pid].skip(None)
                    here.append((tracks[pid], to_body_convention(det, self.rec.body.detector_offsets)))
                if here:
                    self._fit_frame(here, camera, frame.rgb, done)
                for pid, track in tracks.items():
                    if pid not in frame.found:
                        track.skip(frame.why or f"frame {frame.index}: not found")
                report(done + 1, n, frame.why)
        finally:
            frames.close()  # the tracking thread stopped before the caller closes the detectors it uses
        return tracks, camera

    def _fit_frame(self, people: list[tuple[_Track, Detection]], camera: Camera, rgb: np.ndarray | None,
                   position: int) -> None:  # fmt: skip
        """This frame's fits of the people in it (``position``: the frame's in the clip): the full
        fit at a person's first frame; else a warm start from their last frame (after a long
        absence, from a new full fit's pose), with their own shape; the warm fits of everyone in
        one batch; then the hands of those whose hands are due (``_hands_due``)."""
        t = time.perf_counter()
        warm: list[tuple[_Track, list[Detection], BodyParams]] = []
        done: list[tuple[_Track, BodyParams, Detection]] = []
        # The full fits (a person's first frame; taken back after a long absence, their pose
        # changed) in one batch, as a photo's people are.
        fresh = [(track, det) for track, det in people if track.shape is None or track.missed > LONG_ABSENCE]
        full = {id(track): fit for (track, _), fit in zip(fresh, self.rec.fit_people([d for _, d in fresh], camera))}
        for track, det in people:
            if track.shape is None:
                person = full[id(track)]
                track.first, track.shape = person.detection, person.fit.params.shape
                done.append((track, person.fit.params, person.detection))
                continue
            start = full[id(track)].fit.params if id(track) in full else track.prev
            start = BodyParams(start.global_rot, start.transl, start.pose, track.shape)
            warm.append((track, labellings(det, track.last_keypoints()), start))
        if warm:
            # Every labelling in one batch, each from its person's last frame; where there are
            # two, the other is kept only if the body explains it clearly better (keypoints,
            # joint limits and the pull towards the last frame's pose: turning round costs).
            rows = [(track, det, start) for track, dets, start in warm for det in dets]
            starts = BodyParams.stack([s for _, _, s in rows])
            fitted, loss = self.warm.fit_each([d for _, d, _ in rows], camera, starts)
            best: dict[int, int] = {}
            for i, (track, _, _) in enumerate(rows):
                if id(track) not in best or loss[i] < RELABEL_FIT_MARGIN * loss[best[id(track)]]:
                    best[id(track)] = i
            done += [(rows[i][0], fitted.select(i), rows[i][1]) for i in best.values()]
        hands: list[PersonHands | None] = [None] * len(done)
        # The next frame's body fit starts from the body as fitted, before the hands turned its
        # wrists and forearms (the body fit keeps no forearm twist, so a wrist turned against
        # one would start the next frame's arm wrong).
        starts = [params.detach() for _, params, _ in done]
        due = [self._hands_due(track, position) for track, _, _ in done]
        if self.rec.hand_detector is not None and rgb is not None and any(due):
            now = [k for k, d in enumerate(due) if d]
            seen = [done[k][2].keypoints2d[[kpl.L_WRIST, kpl.R_WRIST], 2] >= MIN_WRIST_CONF for k in now]
            found = fit_people_hands(self.rec.hand_detector, rgb, self.rec.body, camera,
                                     [done[k][1] for k in now], seen, self.options.hand_fit,
                                     [done[k][0].hands for k in now])  # fmt: skip
            for k, h in zip(now, found):
                hands[k] = h
                done[k][0].hands_searched = position
        for (track, params, det), found, start, searched in zip(done, hands, starts, due):
            if not searched:
                self._hold_hands(track, params)
            track.add(params, det, found, start, searched)
        self._fit_seconds += time.perf_counter() - t

    def _hands_due(self, track: _Track, position: int) -> bool:
        """Whether ``track``'s hands are searched for in the frame at ``position``: at most
        ``hand_rate`` times a second, and at once in a person's first frame and after they were
        missing."""
        return position - track.hands_searched >= self._hand_step or not track.pose or track.pose[-1] is None

    def _hold_hands(self, track: _Track, params: BodyParams) -> None:
        """A frame whose hands were not searched for (so the person was found in the frame
        before, ``_hands_due``) keeps that frame's hand bones (``_smooth`` fills it in from the
        frames either side where both were fitted)."""
        if supports(self.rec.body):
            bones = [b for side in SIDES for b in hand_bones(self.rec.body, side)]
            params.pose[0, bones] = torch.as_tensor(track.pose[-1][bones], dtype=params.pose.dtype)

    def _smooth(self, track: _Track, fps: float) -> tuple[Motion, Motion]:
        """The raw motion (gaps filled) and the smoothed one, with planted feet held still
        (``fps``: the clip's frames a second)."""
        assert track.shape is not None and track.first is not None
        pose, _ = fill_missing(track.pose)
        if supports(self.rec.body):
            fitted = np.stack(track.hands_fitted)
            gap = hand_gap_frames(self.options.hand_gap, fps)
            for s, side in enumerate(SIDES):
                bones = hand_bones(self.rec.body, side)
                pose[:, bones] = fill_hand_gaps(pose[:, bones], fitted[:, s], gap)
        trans, _ = fill_missing(track.transl)
        grot, _ = fill_missing(track.global_rot)
        # Rotations as quaternions (x, y, z, w), smoothed on the sphere.
        q_bones = roma.rotvec_to_unitquat(torch.tensor(pose, dtype=torch.float64)).numpy()  # (N, J, 4)
        q_glob = roma.rotvec_to_unitquat(torch.tensor(grot, dtype=torch.float64)).numpy()  # (N, 4)
        raw = Motion(track.shape, q_bones, q_glob, trans)
        sigma = max(self.options.smooth_frames, self.options.smooth_seconds * fps)
        smooth = Motion(track.shape, smooth_quaternions(q_bones, sigma), smooth_quaternions(q_glob, sigma),
                        gaussian_smooth(trans, sigma))  # fmt: skip
        if self.options.foot_lock:
            feet = keypoints_over_frames(self.rec.body, smooth)[:, kpl.NUM_COCO :]
            ankles = np.stack(track.keypoints2d)[:, kpl.ANKLES]
            o = self.options
            smooth.transl = smooth.transl + foot_lock_offsets(
                feet, ankles, track.first.height, o.contact_speed, o.release, fps
            )
        return raw, smooth

    @staticmethod
    def _working_frames(source: FrameSource):
        """``source``'s frames at the size they are worked on, with their time in the clip."""
        for index, rgb, picture, why in source.frames(WORK_SIDE):
            rgb = None if rgb is None else working_copy(rgb, *picture)
            yield _WorkingFrame(index, rgb, picture, why, index / (source.fps or 30.0))

    def _detections(self, source: FrameSource, tracker: Tracker):
        """Each frame's followed people (``_Frame``); the people to follow are chosen at the
        first frame anyone is found (``choose_people``), and newcomers later on as they come."""
        wanted = people_wanted(self.options.people)
        frames = self._working_frames(source)
        coming = next(frames, None)
        while coming is not None:
            # The frame after this one is read first, so that the tracker can start on it while
            # it finishes this one (``VideoPoseDetector.read_ahead``).
            (index, rgb, picture, why, time_s), coming = coming, next(frames, None)
            if rgb is None:
                yield _Frame(index, {}, (0, 0), why or f"frame {index} unreadable")
                continue
            t = time.perf_counter()
            size = (rgb.shape[1], rgb.shape[0])
            found: dict[int, Detection] = {}
            try:
                if not tracker.started:
                    chosen, skipped = choose_people(tracker.start(rgb, time_s), self.options.people, *size,
                                                    picture[0] / size[0])  # fmt: skip
                    self._start_notes = [f"frame {index}: {note}" for note in skipped]
                    found = {tracker.follow(d, rgb): d for d in chosen}
                else:
                    ahead = (coming.rgb, coming.time_s) if coming is not None and coming.rgb is not None else None
                    found, newcomers = tracker.next(rgb, time_s, ahead)
                    for d in newcomers:
                        if (wanted is None or len(tracker.people) < wanted) and why_skipped(d, *size) is None:
                            found[tracker.follow(d, rgb)] = d
            except ReconError:
                found = {}
            self._detect_seconds += time.perf_counter() - t
            yield _Frame(index, found, size, "" if found else (why or f"frame {index}: nobody found"),
                         rgb if found else None, picture)


def warm_prior(options: SequenceOptions, fps: float) -> float:
    """The warm fit's pull towards the frame before's pose at ``fps`` frames a second. A joint
    moves as far in a frame as its speed over the rate, and the pull costs the square of that:
    a pull that holds the same motion at any rate grows with the rate's square. Set at 60 on the
    kit's clips (0.1; 0.2 and 0.05: 63.2 and 61.8 against 61.7 mm PA-MPJPE) and read at 30 there
    (0.025; 0.1 and 0.05: 65.3 and 64.7 against 64.1)."""
    return options.warm_fit.init_prior * (fps / 60.0) ** 2


def hand_gap_frames(seconds: float, fps: float) -> int:
    """The longest hand gap filled in, in frames of a clip at ``fps``."""
    return max(1, round(seconds * fps))


def fill_hand_gaps(rotvecs: np.ndarray, fitted: np.ndarray, max_gap: int) -> np.ndarray:
    """A hand's bones' rotations (N, B, 3) with each run of at most ``max_gap`` frames where it
    was not ``fitted`` (N,) between two where it was filled in from those two (the rest keep
    what they have: the relaxed hand)."""
    out = rotvecs.copy()
    known = np.flatnonzero(fitted)
    for a, b in zip(known, known[1:]):
        if 1 < b - a <= max_gap + 1:
            filled, _ = fill_missing([rotvecs[a]] + [None] * (b - a - 1) + [rotvecs[b]])
            out[a + 1 : b] = filled[1:-1]
    return out


def _prefetch(items, depth: int = 2):
    """Iterate ``items`` on a background thread, at most ``depth`` ahead (memory stays flat)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        """Hand ``entry`` to the consumer; False once it has stopped (a full queue never blocks)."""
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("end", done))
        except BaseException as exc:  # hand the failure to the consumer
            put(("error", exc))

    th = threading.Thread(target=work, name="clip-tracking", daemon=True)
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
        # The thread ends after the item it is on: the detectors it uses may be closed next.
        stop.set()
        th.join()
