"""The person detector: MediaPipe BlazePose, one person per call, with a crop search.

MediaPipe BlazePose (Apache-2.0), the *full* landmark model shipped inside the
``mediapipe==0.10.21`` wheel, so nothing is downloaded. BlazePose finds one
person per call and misses people who are small in the frame, so when the
whole image gives nothing we search upscaled overlapping crops and keep the
largest person found.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from ..errors import ReconError
from .detection import Detection

log = logging.getLogger(__name__)

# MediaPipe landmark indices of our keypoint layout (``inference.keypoints``): COCO-17, then
# the big toes (MediaPipe's "foot index") and the heels.
MP_FOR_KEYPOINTS = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28, 31, 32, 29, 30]

MIN_VISIBLE_KEYPOINTS = 6
CROP_SCALES = (0.5, 0.3)
MIN_CONFIDENCE = 0.5


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


class PoseDetector:
    """BlazePose full model through MediaPipe's legacy ``solutions.pose`` (single person)."""

    def __init__(self, model_complexity: int = 1) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging
        import mediapipe as mp

        self._pose = mp.solutions.pose.Pose(
            static_image_mode=True,
            model_complexity=model_complexity,
            enable_segmentation=True,
            min_detection_confidence=0.5,
        )

    def close(self) -> None:
        self._pose.close()

    def _run(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        res = self._pose.process(rgb)
        if res.pose_landmarks is None or res.segmentation_mask is None:
            return None
        h, w = rgb.shape[:2]
        lm = np.array([(p.x * w, p.y * h, p.visibility) for p in res.pose_landmarks.landmark])
        world = np.array([(p.x, p.y, p.z) for p in res.pose_world_landmarks.landmark])
        return lm, world, np.asarray(res.segmentation_mask, dtype=np.float32)

    def detect(self, rgb: np.ndarray) -> Detection:
        """Detect the person in an RGB uint8 image; raises ``no_person`` if none."""
        det = self.detect_whole(rgb)
        if det is not None:
            return det
        h, w = rgb.shape[:2]
        # Small people: try overlapping crops, larger ones first, and keep the largest person
        # found at the first scale that finds anyone.
        best: Detection | None = None
        for frac in CROP_SCALES:
            for crop in _crops(w, h, frac):
                det = self.detect_in_crop(rgb, crop)
                if det is not None and (best is None or det.height > best.height):
                    best = det
            if best is not None:
                break
        if best is None:
            raise ReconError(
                "no_person",
                "No person found in the image; use a photo where one person is clearly visible.",
            )
        return best

    def detect_whole(self, rgb: np.ndarray) -> Detection | None:
        """One pass over the whole image (no crop search); None if nobody is found."""
        h, w = rgb.shape[:2]
        found = self._run(rgb)
        return self._make(*found, w, h) if found is not None else None

    def detect_in_crop(self, rgb: np.ndarray, crop: tuple[int, int, int, int]) -> Detection | None:
        """One pass over ``crop`` (x0, y0, x1, y1) of the image, upscaled if small; None if nobody."""
        import cv2

        x0, y0, x1, y1 = crop
        h, w = rgb.shape[:2]
        part = rgb[y0:y1, x0:x1]
        scale = max(1.0, 512.0 / max(part.shape[:2]))
        if scale > 1.0:
            part = cv2.resize(part, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        found = self._run(np.ascontiguousarray(part))
        if found is None:
            return None
        lm, world, mask_part = found
        lm[:, 0] = lm[:, 0] / scale + x0
        lm[:, 1] = lm[:, 1] / scale + y0
        mask = np.zeros((h, w), np.float32)
        mask[y0:y1, x0:x1] = cv2.resize(mask_part, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        return self._make(lm, world, mask, w, h)

    @staticmethod
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
        return Detection(
            box=box,
            keypoints2d=kps,
            landmarks3d=world[MP_FOR_KEYPOINTS].copy(),
            mask=mask,
            score=float(kps[:, 2].mean()),
        )


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
