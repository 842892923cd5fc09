"""Finding everyone in a photo, and following one person through a clip.

Photos: the detector's whole-image passes (``PoseDetector.detect_all``), or, when they find
nobody, its search of upscaled crops for people small in the frame. Clips: the most prominent
person at the start is locked on. In each later frame the video landmarker's people
(``VideoPoseDetector``, which follows landmarks from frame to frame) are checked against the
last frames; when none of them is ours, a crop around the last box is searched. A detection is
ours when its joints are where ours were, so the lock holds when someone else passes close by.
"""

from __future__ import annotations

import numpy as np

from .. import keypoints as kpl
from ..errors import ReconError
from .detection import Detection, box_iou
from .mediapipe_pose import PoseDetector, VideoPoseDetector

# The search crop: the last box grown on each side by this fraction of its longer side (a
# tight crop keeps other people out, and each person in it costs the landmark model a pass).
TRACK_MARGIN = 0.25
# Who is our person: the detection whose body joints lie nearest those of one of the last few
# frames, on average, within SAME_PLACE of the body's size (more for each frame the person was
# missing). A box alone is not enough: a second person passing close by has a box like ours.
# On the real multi-view kit's clips 0.3 held every identity but one frame and lost the fewest
# frames (docs/research-log.md).
SAME_PLACE = 0.3
SAME_PLACE_PER_MISSED_FRAME = 0.1
MIN_JOINT_CONF = 0.5
MIN_SHARED_JOINTS = 4
REMEMBERED = 3  # frames whose joints a detection is compared with


def _body_size(keypoints: np.ndarray) -> float:
    """The longer side of the confident body joints' box, pixels."""
    k = keypoints[kpl.BODY]
    k = k[k[:, 2] > MIN_JOINT_CONF, :2]
    return float(np.ptp(k, axis=0).max()) if len(k) >= 2 else 1.0


def find_people(detector: PoseDetector, rgb: np.ndarray) -> list[Detection]:
    """Everyone in the image, most prominent first; raises ``no_person`` if nobody is found."""
    people = detector.detect_all(rgb) or detector.search_crops(rgb)
    if not people:
        raise ReconError("no_person", "No person found in the image; use a photo where a person is clearly visible.")
    return people


class Tracker:
    """Locks on the most prominent person at the start and follows that one person."""

    def __init__(self, detector: PoseDetector, video: VideoPoseDetector | None = None,
                 crops: PoseDetector | None = None) -> None:  # fmt: skip
        """``detector`` finds the person at the start; ``video`` follows them; ``crops`` (default:
        ``detector``) searches around the last box when there is no ``video`` or it loses them."""
        self.detector = detector
        self.video = video
        self.crops = crops or detector
        self.box: np.ndarray | None = None
        self.keypoints: list[np.ndarray] = []  # (K, 3) of the last few frames the person was found in
        self.missed = 0  # frames since the person was last found
        self.people_at_start = 0

    def start(self, rgb: np.ndarray, time_s: float = 0.0) -> Detection:
        people = find_people(self.detector, rgb)  # raises no_person
        self.people_at_start = len(people)
        self._found(people[0])
        if self.video is not None:
            self.video.detect_all(rgb, time_s)  # the video landmarker starts following from here
        return people[0]

    def next(self, rgb: np.ndarray, time_s: float = 0.0) -> Detection | None:
        """The tracked person in this frame, or None (lost, or someone else)."""
        assert self.box is not None
        det = self._ours(self.video.detect_all(rgb, time_s)) if self.video is not None else None
        if det is None:  # one pass over the crop, and a second with the others painted over if need be
            crop = self._search_crop(rgb)
            det = self._ours(self.crops.detect_all_in_crop(rgb, crop, second_pass=False))
            det = det or self._ours(self.crops.detect_all_in_crop(rgb, crop))
        if det is None:
            self.missed += 1
        else:
            self._found(det)
        return det

    def _found(self, det: Detection) -> None:
        self.box, self.missed = det.box.copy(), 0
        self.keypoints = [det.keypoints2d.copy()] + self.keypoints[: REMEMBERED - 1]

    def _ours(self, people: list[Detection]) -> Detection | None:
        """Of the people found, the one that is our person, or None."""
        best, best_cost = None, SAME_PLACE + SAME_PLACE_PER_MISSED_FRAME * self.missed
        for det in people:
            place = self._place_cost(det, self.keypoints)
            if place is None:  # too few joints to compare: the boxes must agree
                if best is None and box_iou(det.box, self.box) > 0.5:
                    best = det
            elif place < best_cost:
                best, best_cost = det, place
        return best

    @staticmethod
    def _place_cost(det: Detection, history: list[np.ndarray]) -> float | None:
        """Mean distance of the body joints from those of one of ``history``'s frames (the
        nearest, either labelling: one frame's skeleton may be off), as a fraction of the body's
        size; None when too few joints are seen in both."""
        costs = []
        for last in history:
            both = (det.keypoints2d[kpl.BODY, 2] > MIN_JOINT_CONF) & (last[kpl.BODY, 2] > MIN_JOINT_CONF)
            if both.sum() < MIN_SHARED_JOINTS:
                continue
            ref = last[kpl.BODY][both, :2]
            dist = min(float(np.linalg.norm(k[kpl.BODY][both, :2] - ref, axis=1).mean())
                       for k in (det.keypoints2d, det.keypoints2d[kpl.MIRROR]))  # fmt: skip
            costs.append(dist / max(_body_size(last), 1.0))
        return min(costs) if costs else None

    def _search_crop(self, rgb: np.ndarray) -> tuple[int, int, int, int]:
        assert self.box is not None
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = self.box
        grow = max(x1 - x0, y1 - y0) * TRACK_MARGIN
        return (int(max(0, x0 - grow)), int(max(0, y0 - grow)), int(min(w, x1 + grow)), int(min(h, y1 + grow)))
