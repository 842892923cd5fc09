"""The person detector: MediaPipe BlazePose through the Tasks ``PoseLandmarker``, everyone in one pass.

The models are ``.task`` bundles in ``weights/`` (heavy, the default, and full), built from
Apache-2.0 files by ``scripts/build_mediapipe_bundles.py``; nothing is downloaded. Photos run in
IMAGE mode (each image on its own); clips in VIDEO mode (``VideoPoseDetector``: every person's
landmarks are followed from frame to frame, which keeps overlapping people apart and skips the
person detector while a track holds). BlazePose misses people who are small in the frame, so
when the whole image gives nobody we search upscaled overlapping crops.
"""

from __future__ import annotations

import atexit
import os
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import keypoints as kpl
from ..errors import ReconError
from .detection import Detection, grown_box, prominence

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
MODELS = {"heavy": "pose_landmarker_heavy.task", "full": "pose_landmarker_full.task"}
BUNDLE_FILES = {"pose_detector.tflite", "pose_landmarks_detector.tflite"}
REBUILD = "python scripts/build_mediapipe_bundles.py"

# MediaPipe landmark indices of our keypoint layout (``inference.keypoints``): COCO-17, then
# the big toes (MediaPipe's "foot index") and the heels.
MP_FOR_KEYPOINTS = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28, 31, 32, 29, 30]

MAX_PEOPLE = 4  # poses per pass
# The landmarker's person detection and presence confidence: with the second pass, 0.4 found
# 154 of the 160 people in the real multi-view kit's 80 photos with one false detection
# (docs/research-log.md).
MIN_DETECTION = 0.4
MIN_TRACKING = 0.5  # VIDEO mode: below this the person detector runs again
GREY = 114  # what a found person is painted over with before the second pass
GREY_DILATE_PX = 15
APART_MARGIN = 0.25  # detect_apart's crop: the person's box grown by this share of its longer side
SKELETON_CONF = 0.3  # detect_apart: a skeleton is drawn through the joints seen this surely
# detect_split's crops: the left and the right part of a person's box (grown by APART_MARGIN),
# each this share of its width. Two people standing close are one box to the landmarker's
# person detector; in a part that holds more of one than of the other, it sees them apart.
SPLIT_SHARE = 0.55
DUPLICATE = 0.2  # two skeletons whose joints lie this close (fraction of the box) are one person
MIN_VISIBLE_KEYPOINTS = 6
CROP_SCALES = (0.5, 0.3)
CROP_MIN_VISIBLE = 10  # of 21 keypoints, for a person found by the crop search
CROP_MIN_SCORE = 0.5
MIN_CONFIDENCE = 0.5


def bundle_path(model: str) -> Path:
    """Where the named model's bundle lies ("heavy" or "full")."""
    if model not in MODELS:
        raise ReconError("bad_argument", f"Unknown detector model {model!r}; choose {' or '.join(MODELS)}.")
    return WEIGHTS_DIR / MODELS[model]


def load_bundle(model: str) -> bytes:
    """The pose model's ``.task`` bundle's bytes (``read_bundle``)."""
    return read_bundle(bundle_path(model), BUNDLE_FILES)


def read_bundle(path: Path, files: set[str]) -> bytes:
    """A ``.task`` bundle's bytes, checked to be a bundle holding ``files``: a missing or damaged
    file gets one line naming it and the command that rebuilds it."""
    try:
        data = path.read_bytes()
    except OSError:
        raise ReconError("detector_model_missing",
                         f"The detector model {path} is missing; rebuild it with {REBUILD}.") from None  # fmt: skip
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            ok = files <= names and z.testzip() is None
    except (zipfile.BadZipFile, OSError):
        ok = False
    if not ok:
        raise ReconError("detector_model_bad", f"The detector model {path} is damaged; rebuild it with {REBUILD}.")
    return data


# Every landmarker we open, until it is closed. MediaPipe's own finaliser closes a landmarker
# through a worker thread and can hang when the garbage collector runs it at an odd moment, so
# none is left to it: a reference is kept here until ``close`` and whatever is still open at
# exit is closed then.
_OPEN: list = []


def kept_open(landmarker):
    """``landmarker``, registered to be closed by ``close_landmarker`` or at exit."""
    _OPEN.append(landmarker)
    return landmarker


def close_landmarker(landmarker) -> None:
    if landmarker in _OPEN:
        _OPEN.remove(landmarker)
        landmarker.close()


@atexit.register
def _close_all() -> None:
    while _OPEN:
        close_landmarker(_OPEN[-1])


def _landmarker(model: str, video: bool, max_people: int, bundle: bytes | None = None):
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.PoseLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=bundle or load_bundle(model)),
        running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
        num_poses=max_people,
        min_pose_detection_confidence=MIN_DETECTION,
        min_pose_presence_confidence=MIN_DETECTION,
        min_tracking_confidence=MIN_TRACKING,
        output_segmentation_masks=True,
    )
    return kept_open(vision.PoseLandmarker.create_from_options(options))


def _people(result, w: int, h: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(33, 3) pixel landmarks with visibility, (33, 3) world landmarks and the (H, W) mask of
    each person in a landmarker result (the masks are copied: their memory dies with it)."""
    out = []
    masks = result.segmentation_masks or []
    for i, lms in enumerate(result.pose_landmarks):
        lm = np.array([(p.x * w, p.y * h, p.visibility) for p in lms], np.float64)
        world = np.array([(p.x, p.y, p.z) for p in result.pose_world_landmarks[i]], np.float64)
        mask = np.zeros((h, w), np.float32)
        if i < len(masks):
            mask = np.array(masks[i].numpy_view(), np.float32).reshape(h, w)
        out.append((lm, world, mask))
    return out


def mp_image(rgb: np.ndarray):
    import mediapipe as mp

    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))


class PoseDetector:
    """Everyone in a photo (IMAGE mode), with a crop search for small people."""

    def __init__(self, model: str = "heavy", max_people: int = MAX_PEOPLE) -> None:
        self.model = model
        self._landmarker = _landmarker(model, False, max_people)

    def close(self) -> None:
        close_landmarker(self._landmarker)

    def _run(self, rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        h, w = rgb.shape[:2]
        return _people(self._landmarker.detect(mp_image(rgb)), w, h)

    def _passes(self, rgb: np.ndarray, second_pass: bool = True) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Everyone in ``rgb``, as raw landmarks, world landmarks and masks. The landmarker finds
        only some of several people in one pass, so the people it found are painted over and
        the image searched again; skeletons standing on the paint are dropped."""
        first = self._run(rgb)
        if not first or not second_pass:
            return first
        return first + self._second_pass(rgb, first)

    def _second_pass(self, rgb: np.ndarray, first: list) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The people ``first`` did not find: the image searched again with theirs painted over."""
        painted = _painted([mask for _, _, mask in first])
        second = rgb.copy()
        second[painted] = GREY
        return [p for p in self._run(second) if _share_on(p[0], painted) < 0.5]

    def detect_all(self, rgb: np.ndarray, second_pass: bool = True) -> list[Detection]:
        """Everyone in the whole image (no crop search), most prominent first, without repeats
        (``second_pass``: also search the image with the people found painted over)."""
        h, w = rgb.shape[:2]
        return _detections(self._passes(rgb, second_pass), w, h)

    def detect_whole(self, rgb: np.ndarray) -> Detection | None:
        """The most prominent person in the whole image; None if nobody is found."""
        people = self.detect_all(rgb)
        return people[0] if people else None

    def search_crops(self, rgb: np.ndarray) -> list[Detection]:
        """People too small for the whole-image pass: overlapping crops, larger ones first; the
        people found at the first scale that finds anyone. Upscaled crops of textures (fruit,
        foliage) give the landmarker half-confident skeletons, so a person found here must show
        most of their body clearly (CROP_MIN_VISIBLE keypoints, mean confidence CROP_MIN_SCORE)."""
        h, w = rgb.shape[:2]
        for frac in CROP_SCALES:
            found = [d for crop in _crops(w, h, frac) for d in self.detect_all_in_crop(rgb, crop, second_pass=False)
                     if _clear(d)]
            if found:
                return _distinct(found)
        return []

    def detect(self, rgb: np.ndarray) -> Detection:
        """The most prominent person in an RGB uint8 image, small people included; raises ``no_person``."""
        people = self.detect_all(rgb) or self.search_crops(rgb)
        if not people:
            raise ReconError("no_person", "No person found in the image; use a photo where a person is clearly seen.")
        return people[0]

    def detect_apart(self, rgb: np.ndarray, person: Detection, others: list[Detection], in_front: bool = False
                     ) -> list[Detection]:  # fmt: skip
        """The people in a crop around ``person``'s box with ``others`` painted over (their masks,
        grown, except where the mask is ``person``'s own): where two people overlap, the
        landmarker mixes their joints, and alone in the picture it does not. ``in_front``: the
        person stands in front of the others, and MediaPipe's mask of them covers whoever shows
        behind them, so their own mask is painted too where it lies nearer another's skeleton
        than their own (the real multi-view kit's cam03: the woman behind the man)."""
        h, w = rgb.shape[:2]
        image = rgb.copy()
        theirs = _painted([o.mask for o in others])
        paint = theirs & (person.mask <= 0.5)
        if in_front:
            nearest_other = np.min([_skeleton_distance(o, h, w) for o in others], axis=0)
            paint |= theirs & (nearest_other < _skeleton_distance(person, h, w))
        image[paint] = GREY
        return self.detect_all_in_crop(image, grown_box(person.box, APART_MARGIN, w, h), second_pass=False)

    def detect_split(self, rgb: np.ndarray, box: np.ndarray) -> list[Detection]:
        """People found in the left and the right part of ``box`` grown (one pass each, clear
        finds only, as ``search_crops``): where two people overlap, the landmarker's person
        detector may see one."""
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = grown_box(box, APART_MARGIN, w, h)
        part = int(round(SPLIT_SHARE * (x1 - x0)))
        found = []
        for crop in ((x0, y0, x0 + part, y1), (x1 - part, y0, x1, y1)):
            found += [d for d in self.detect_all_in_crop(rgb, crop, second_pass=False) if _clear(d)]
        return found

    def detect_in_crop(self, rgb: np.ndarray, crop: tuple[int, int, int, int]) -> Detection | None:
        """The most prominent person in ``crop`` (x0, y0, x1, y1) of the image; None if nobody."""
        people = self.detect_all_in_crop(rgb, crop)
        return people[0] if people else None

    def detect_all_in_crop(self, rgb: np.ndarray, crop: tuple[int, int, int, int], second_pass: bool = True,
                           enough: Callable[[list[Detection]], bool] | None = None) -> list[Detection]:  # fmt: skip
        """Everyone in ``crop`` (x0, y0, x1, y1) of the image, upscaled if small, in full-image
        pixels, most prominent first (``second_pass``: as ``detect_all``; False: one pass). The
        second pass is skipped when ``enough`` says the first pass's people will do."""
        import cv2

        x0, y0, x1, y1 = crop
        h, w = rgb.shape[:2]
        part = np.ascontiguousarray(rgb[y0:y1, x0:x1])
        scale = max(1.0, 512.0 / max(part.shape[:2]))
        if scale > 1.0:
            part = cv2.resize(part, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)

        def in_image(found: list) -> list[Detection]:
            people = []
            for lm, world, mask_part in found:
                lm[:, 0] = lm[:, 0] / scale + x0
                lm[:, 1] = lm[:, 1] / scale + y0
                mask = np.zeros((h, w), np.float32)
                mask[y0:y1, x0:x1] = cv2.resize(mask_part, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
                people.append(_make(lm, world, mask, w, h))
            return [d for d in people if d is not None]

        raw = self._run(part)
        first = in_image(raw)
        if not raw or not second_pass or (enough is not None and enough(_distinct(first))):
            return _distinct(first)
        return _distinct(first + in_image(self._second_pass(part, raw)))


class VideoPoseDetector:
    """Everyone in each frame of one clip (VIDEO mode: landmarks followed from frame to frame).

    The next frame can be read ahead on a worker thread (``read_ahead``) while the caller
    finishes the frame before: MediaPipe lets go of the GIL, so a crop search for someone
    the landmarker lost and the next frame's pass share the two cores."""

    def __init__(self, model: str = "heavy", max_people: int = MAX_PEOPLE) -> None:
        self.model = model
        self._bundle = load_bundle(model)  # a missing or damaged model is refused here, not at the first frame
        self.max_people = max_people
        self._landmarker = None  # opened at the first frame, for the number of people then wanted
        self._last_ms = -1
        self._worker: ThreadPoolExecutor | None = None
        self._ahead: _Ahead | None = None  # the frame being read ahead

    def close(self) -> None:
        self._drop_ahead()
        if self._worker is not None:
            self._worker.shutdown()
            self._worker = None
        if self._landmarker is not None:
            close_landmarker(self._landmarker)
            self._landmarker = None

    def follow_at_most(self, people: int) -> None:
        """Follow at most ``people`` (1 to MAX_PEOPLE) from the next frame on. The landmarker runs
        its person detector in every frame where it follows fewer than that, and a detection
        can take the place of a followed skeleton: with room for 4, the real multi-view kit's
        two people were both followed in 12-85 of each clip's 100 frames, with room for 2 in
        79-100 (cam03's hidden man aside; docs/research-log.md). The landmarker starts afresh
        when the number changes."""
        people = max(1, min(people, MAX_PEOPLE))
        if people != self.max_people:
            self.close()
            self.max_people = people

    def detect_all(self, rgb: np.ndarray, time_s: float) -> list[Detection]:
        """Everyone in the frame at ``time_s`` seconds into the clip (times must increase), most
        prominent first."""
        h, w = rgb.shape[:2]
        ahead = self._ahead
        if ahead is not None and ahead.time_s == time_s and ahead.landmarker is self._landmarker:
            self._ahead = None
            return _detections(_people(ahead.answer.result(), w, h), w, h)
        self._drop_ahead()  # none, or not this frame's: read it as if it had not been read ahead
        found = self._landmarker_now().detect_for_video(mp_image(rgb), self._stamp(time_s))
        return _detections(_people(found, w, h), w, h)

    @property
    def reading_ahead(self) -> bool:
        """Whether a frame read ahead waits for ``detect_all``."""
        return self._ahead is not None

    def read_ahead(self, rgb: np.ndarray, time_s: float) -> None:
        """Start reading the frame at ``time_s`` on the worker thread; ``detect_all(rgb, time_s)``
        takes the answer. The answer is the one ``detect_all`` alone would give: if the
        landmarker starts afresh in between (``follow_at_most``), the frame is read again on the
        new one, at the same time stamp. ``rgb`` must not change until then."""
        self._drop_ahead()
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="video-pose")
        landmarker, before = self._landmarker_now(), self._last_ms
        answer = self._worker.submit(landmarker.detect_for_video, mp_image(rgb), self._stamp(time_s))
        self._ahead = _Ahead(time_s, landmarker, before, answer)

    def _drop_ahead(self) -> None:
        """Forget the frame read ahead (once its pass is over: the landmarker may be closed next),
        and its time stamp with it."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            wait([ahead.answer])  # its error, if any, is raised when the frame is read again
            self._last_ms = ahead.last_ms

    def _landmarker_now(self):
        if self._landmarker is None:
            self._landmarker = _landmarker(self.model, True, self.max_people, self._bundle)
        return self._landmarker

    def _stamp(self, time_s: float) -> int:
        """The frame's time stamp in ms: increasing, as the landmarker requires."""
        ms = max(int(round(time_s * 1000)), self._last_ms + 1)
        self._last_ms = ms
        return ms


@dataclass
class _Ahead:
    time_s: float
    landmarker: object  # the one it is read on
    last_ms: int  # the time stamp before it
    answer: Future


def _detections(people: list[tuple[np.ndarray, np.ndarray, np.ndarray]], w: int, h: int) -> list[Detection]:
    """Detections of raw (landmarks, world landmarks, mask) people, without repeats."""
    return _distinct([d for d in (_make(*p, w, h) for p in people) if d is not None])


def _box_from(mask: np.ndarray, kps: np.ndarray, w: int, h: int) -> np.ndarray:
    """Tight box around the mask and the confident keypoints, clipped to the image."""
    ys, xs = np.nonzero(mask > 0.5)
    pts = [kps[kps[:, 2] > MIN_CONFIDENCE, :2]]
    if len(xs):
        pts.append(np.stack([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]]).astype(np.float64))
    p = np.concatenate(pts)
    x0, y0 = np.clip(p.min(0), 0, [w, h])
    x1, y1 = np.clip(p.max(0), 0, [w, h])
    return np.array([x0, y0, x1, y1], dtype=np.float64)


def _make(lm: np.ndarray, world: np.ndarray, mask: np.ndarray, w: int, h: int) -> Detection | None:
    kps = lm[MP_FOR_KEYPOINTS].copy()
    # Keypoints outside the frame are guesses: keep them, but with little weight.
    outside = (kps[:, 0] < 0) | (kps[:, 0] >= w) | (kps[:, 1] < 0) | (kps[:, 1] >= h)
    kps[outside, 2] *= 0.1
    kps[:, 2] = np.clip(kps[:, 2], 0.0, 1.0)
    if int((kps[:, 2] > MIN_CONFIDENCE).sum()) < MIN_VISIBLE_KEYPOINTS or (mask > 0.5).sum() < 50:
        return None
    box = _box_from(mask, kps, w, h)
    if box[2] - box[0] < 4 or box[3] - box[1] < 4:
        return None
    return Detection(box=box, keypoints2d=kps, landmarks3d=world[MP_FOR_KEYPOINTS].copy(), mask=mask,
                     score=float(kps[:, 2].mean()))  # fmt: skip


def _clear(det: Detection) -> bool:
    """Whether a person found in a crop shows most of their body clearly: upscaled crops of
    textures (fruit, foliage) give the landmarker half-confident skeletons."""
    return det.score >= CROP_MIN_SCORE and int((det.keypoints2d[:, 2] > MIN_CONFIDENCE).sum()) >= CROP_MIN_VISIBLE


def _painted(masks: list[np.ndarray]) -> np.ndarray:
    """(H, W) bool: the masks, grown by GREY_DILATE_PX."""
    import cv2

    painted = np.zeros(masks[0].shape, np.uint8)
    for m in masks:
        painted |= (m > 0.5).astype(np.uint8)
    k = 2 * GREY_DILATE_PX + 1
    return cv2.dilate(painted, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0


def _skeleton_distance(det: Detection, h: int, w: int) -> np.ndarray:
    """(H, W): each pixel's distance from the person's skeleton (the limbs between joints seen
    at SKELETON_CONF or more)."""
    import cv2

    canvas = np.full((h, w), 255, np.uint8)
    k = det.keypoints2d
    for a, b in kpl.LIMBS:
        if k[a, 2] >= SKELETON_CONF and k[b, 2] >= SKELETON_CONF:
            cv2.line(canvas, (int(k[a, 0]), int(k[a, 1])), (int(k[b, 0]), int(k[b, 1])), 0, 2)
    return cv2.distanceTransform(canvas, cv2.DIST_L2, 3)


def _share_on(landmarks: np.ndarray, painted: np.ndarray) -> float:
    """The share of a skeleton's body joints ((33, 3) MediaPipe landmarks, pixels) on ``painted``."""
    h, w = painted.shape
    xy = np.round(landmarks[MP_FOR_KEYPOINTS][kpl.BODY, :2]).astype(int)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    return float(painted[xy[inside, 1], xy[inside, 0]].sum() / len(kpl.BODY))


def _distinct(people: list[Detection]) -> list[Detection]:
    """The people, most prominent first, without repeats: a skeleton whose body joints lie within
    DUPLICATE x its box's longer side of a kept one's (either labelling) is the same person."""
    kept: list[Detection] = []
    for d in sorted(people, key=prominence, reverse=True):
        u = d.keypoints2d[kpl.BODY, :2]
        side = max(d.box[2] - d.box[0], d.box[3] - d.box[1], 1.0)
        same = lambda k: min(np.linalg.norm(u - k.keypoints2d[kpl.BODY, :2], axis=1).mean(),  # noqa: E731
                             np.linalg.norm(u - k.keypoints2d[kpl.MIRROR][kpl.BODY, :2], axis=1).mean())  # fmt: skip
        if not any(same(k) < DUPLICATE * side for k in kept):
            kept.append(d)
    return kept


def _crops(w: int, h: int, frac: float) -> list[tuple[int, int, int, int]]:
    """Crops of ``frac`` of the image size, overlapping by half."""
    cw, ch = max(32, int(w * frac)), max(32, int(h * frac))
    n = int(np.ceil((1 - frac) / (frac / 2))) + 1
    crops = []
    for fy in np.linspace(0.0, 1.0, n):
        for fx in np.linspace(0.0, 1.0, n):
            x0, y0 = int((w - cw) * fx), int((h - ch) * fy)
            crops.append((x0, y0, x0 + cw, y0 + ch))
    return crops
