"""The hand detector: MediaPipe Hands through the Tasks ``HandLandmarker``, run on a crop around each
wrist the body fit found.

On a whole frame the palm detector finds hands only sometimes (a hand is a few dozen pixels
wide); on a square crop around the wrist, enlarged to ``CROP_PX``, it finds most. Which hand it
is comes from the body's wrist the crop was made for, not from the hand model's own guess, and
of the hands a crop shows the one whose wrist lies nearest the body's wrist is taken (the other
hand of the same person, or someone else's, may be in the crop too). The model bundle
``weights/hand_landmarker.task`` is built from the mediapipe 0.10.21 wheel's Apache-2.0 files by
``scripts/build_mediapipe_bundles.py``.
"""

from __future__ import annotations

import os
import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .mediapipe_pose import WEIGHTS_DIR, close_landmarker, kept_open, mp_image, read_bundle

BUNDLE = "hand_landmarker.task"
BUNDLE_FILES = {"hand_detector.tflite", "hand_landmarks_detector.tflite"}
NUM_HAND_KEYPOINTS = 21  # MediaPipe's hand landmarks: wrist, then 4 per digit from thumb to little finger
CROP_PX = 256  # the crop's side once enlarged (the palm detector sees 192 px, the landmarker 224)
MIN_DETECTION = 0.4
MIN_PRESENCE = 0.5
# A hand is taken only if its wrist lies within this share of the crop's side of the body's wrist.
MAX_WRIST_SHIFT = 0.25


@dataclass
class HandDetection:
    """One hand in one image."""

    keypoints2d: np.ndarray  # (21, 3) pixel x, y (full image) and the hand's presence score
    landmarks3d: np.ndarray  # (21, 3) metric world landmarks (m, hand-centred, x right, y down, z away)
    score: float  # the hand model's confidence in its handedness (hands it doubts are there are dropped)


def wrist_crop(wrist: np.ndarray, elbow: np.ndarray, hand_px: float) -> tuple[float, float, float]:
    """The square (centre x, centre y, side) a hand of length ``hand_px`` is searched in: centred
    half a hand beyond the wrist along the forearm (where the palm is when the wrist is straight),
    three hand lengths wide so a bent wrist keeps the hand inside."""
    fore = np.asarray(wrist, float) - np.asarray(elbow, float)
    n = float(np.linalg.norm(fore))
    centre = np.asarray(wrist, float) + (0.5 * hand_px * fore / n if n > 1e-6 else 0.0)
    return float(centre[0]), float(centre[1]), 3.0 * hand_px


class HandDetector:
    """Hands in crops of a photo or frame (IMAGE mode: each crop on its own).

    ``workers`` landmarkers search several crops at once (``detect_many``): each MediaPipe graph
    keeps about one core busy, so on 2 cores a photo's two hands take about the time of one
    (75 -> 37 ms).
    """

    def __init__(self, workers: int | None = None) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_buffer=read_bundle(WEIGHTS_DIR / BUNDLE, BUNDLE_FILES)),
            running_mode=vision.RunningMode.IMAGE,
            num_hands=2,
            min_hand_detection_confidence=MIN_DETECTION,
            min_hand_presence_confidence=MIN_PRESENCE,
        )
        workers = workers or max(1, min(2, os.cpu_count() or 1))
        self._landmarkers = [kept_open(vision.HandLandmarker.create_from_options(options)) for _ in range(workers)]
        self._free: queue.SimpleQueue = queue.SimpleQueue()  # landmarkers no thread is using
        for landmarker in self._landmarkers:
            self._free.put(landmarker)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="hands") if workers > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        for landmarker in self._landmarkers:
            close_landmarker(landmarker)

    def detect_many(self, rgb: np.ndarray, searches: list[tuple[tuple[float, float, float], np.ndarray]]
                    ) -> list[HandDetection | None]:  # fmt: skip
        """``detect`` for each (crop, wrist) of ``searches``, several at once."""
        if self._pool is None or len(searches) < 2:
            return [self.detect(rgb, crop, wrist) for crop, wrist in searches]
        return list(self._pool.map(lambda search: self.detect(rgb, *search), searches))

    def detect(self, rgb: np.ndarray, crop: tuple[float, float, float], wrist: np.ndarray) -> HandDetection | None:
        """The hand whose wrist lies nearest ``wrist`` (pixels) in the square ``crop`` (centre x,
        centre y, side; parts outside the image are black), or None."""
        landmarker = self._free.get()
        try:
            return self._detect(landmarker, rgb, crop, wrist)
        finally:
            self._free.put(landmarker)

    def _detect(self, landmarker, rgb: np.ndarray, crop: tuple[float, float, float], wrist: np.ndarray
                ) -> HandDetection | None:  # fmt: skip
        cx, cy, side = crop
        if side < 8:
            return None
        x0, y0 = cx - side / 2, cy - side / 2
        scale = side / CROP_PX
        # Sampling the crop straight from the image (an affine map) pads what lies outside with black.
        affine = (scale, 0, x0, 0, scale, y0)
        patch = Image.fromarray(rgb).transform((CROP_PX, CROP_PX), Image.Transform.AFFINE, affine,
                                               resample=Image.Resampling.BILINEAR)  # fmt: skip
        result = landmarker.detect(mp_image(np.asarray(patch)))
        best, best_d = None, MAX_WRIST_SHIFT * side
        for i, lms in enumerate(result.hand_landmarks):
            uv = np.array([(p.x * CROP_PX * scale + x0, p.y * CROP_PX * scale + y0) for p in lms], np.float64)
            d = float(np.linalg.norm(uv[0] - np.asarray(wrist, float)))
            if d < best_d:
                label = result.handedness[i][0]
                world = np.array([(p.x, p.y, p.z) for p in result.hand_world_landmarks[i]], np.float64)
                kp = np.concatenate([uv, np.full((len(uv), 1), label.score)], axis=1)
                best, best_d = HandDetection(kp, world, float(label.score)), d
        return best
