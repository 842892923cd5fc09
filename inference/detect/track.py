"""Finding everyone in a photo, and following one person through a clip.

BlazePose sees one person per call. At the start we look for everyone (the
found person is blanked out and the frame searched again) and lock on the
largest. Each later frame is searched in a crop around the last box, so the
detector mostly sees our person; a detection whose box jumps away from the
last one is refused, so the lock holds when someone else crosses.
"""

from __future__ import annotations

import numpy as np

from .detection import Detection
from .mediapipe_pose import PoseDetector

MAX_PEOPLE = 3
TRACK_MARGIN = 0.6  # the search crop: the last box grown by this fraction of its size on each side


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area = lambda r: max(0.0, r[2] - r[0]) * max(0.0, r[3] - r[1])  # noqa: E731
    union = area(a) + area(b) - inter
    return float(inter / union) if union > 0 else 0.0


def find_people(detector: PoseDetector, rgb: np.ndarray) -> list[Detection]:
    """Up to MAX_PEOPLE people, each found after blanking out the ones before.

    The first search may use crops (small people) and raises ``no_person`` if it finds
    nobody; the later ones look at the whole image only, which keeps a one-person photo fast."""
    people = [detector.detect(rgb)]
    img = rgb.copy()
    for _ in range(MAX_PEOPLE - 1):
        x0, y0, x1, y1 = people[-1].box.astype(int)
        img[y0:y1, x0:x1] = 114
        img[people[-1].mask > 0.5] = 114
        det = detector.detect_whole(img)
        if det is None or any(box_iou(det.box, p.box) > 0.3 for p in people):
            break
        people.append(det)
    return people


def prominence(det: Detection) -> float:
    """How large and clearly visible a person is: box height times mean keypoint confidence
    (a person cut off by the frame edge has low-confidence keypoints and counts less)."""
    return det.height * float(det.keypoints2d[:, 2].mean())


class Tracker:
    """Locks on the most prominent person at the start and follows that one person."""

    def __init__(self, detector: PoseDetector) -> None:
        self.detector = detector
        self.box: np.ndarray | None = None
        self.people_at_start = 0

    def start(self, rgb: np.ndarray) -> Detection:
        people = find_people(self.detector, rgb)  # raises no_person
        self.people_at_start = len(people)
        det = max(people, key=prominence)
        self.box = det.box.copy()
        return det

    def next(self, rgb: np.ndarray) -> Detection | None:
        """The tracked person in this frame, or None (lost or someone else)."""
        assert self.box is not None
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = self.box
        bw, bh = x1 - x0, y1 - y0
        side = max(bw, bh) * (1 + 2 * TRACK_MARGIN)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        crop = (
            int(max(0, cx - side / 2)),
            int(max(0, cy - side / 2)),
            int(min(w, cx + side / 2)),
            int(min(h, cy + side / 2)),
        )
        det = self.detector.detect_in_crop(rgb, crop)
        if det is None or not self._same_person(det):
            return None
        self.box = det.box.copy()
        return det

    def _same_person(self, det: Detection) -> bool:
        assert self.box is not None
        if box_iou(det.box, self.box) > 0.3:
            return True
        # Fast motion: accept a nearby box of similar size.
        c_old = (self.box[:2] + self.box[2:]) / 2
        c_new = (det.box[:2] + det.box[2:]) / 2
        h_old = self.box[3] - self.box[1]
        return bool(np.linalg.norm(c_new - c_old) < 0.35 * h_old and 0.6 < det.height / max(h_old, 1) < 1.6)
