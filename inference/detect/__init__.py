"""Detection: every person's box, 2D keypoints with confidences, mask and 3D landmarks, and
following one person through a clip."""

from __future__ import annotations

from .detection import Detection, body_shown, box_iou, mirrored, prominence, to_body_convention
from .mediapipe_pose import MAX_PEOPLE, MODELS, PoseDetector, VideoPoseDetector
from .track import Tracker, find_people

__all__ = ["MAX_PEOPLE", "MODELS", "Detection", "PoseDetector", "Tracker", "VideoPoseDetector", "body_shown", "box_iou",
           "find_people", "mirrored", "prominence", "to_body_convention"]  # fmt: skip
