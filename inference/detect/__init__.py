"""Detection: every person's box, 2D keypoints with confidences, mask and 3D landmarks, and
following one person through a clip."""

from __future__ import annotations

from .detection import Detection, mirrored, to_body_convention
from .mediapipe_pose import PoseDetector
from .track import Tracker, find_people, prominence

__all__ = ["Detection", "PoseDetector", "Tracker", "find_people", "mirrored", "prominence", "to_body_convention"]
