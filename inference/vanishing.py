"""The focal length read from a picture's straight lines, for photos and clips that record none.

Rooms, streets and buildings are full of edges along three perpendicular directions. A pinhole
camera sees each direction's edges meet at a vanishing point, and two perpendicular directions'
vanishing points v1, v2 (in pixels from the picture's centre, homogeneous) fix the focal length:
x1 x2 + y1 y2 + f^2 w1 w2 = 0 (Caprile and Torre, 1990). The three strongest vanishing points are
found by RANSAC over the line segments OpenCV's LSD finds off the people; their focal lengths
are pooled, and kept only where the three directions are perpendicular at it. Pictures without
such a frame (nature, a flat poster, people alone) give None and the caller's guess stands.
On the real multi-view kit's 80 photos it is made for 65, all within 3% of the calibrated
focal length (docs/research-log.md, 0.4.14).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from .lens import EQUIVALENT_MM, FocalLength

SOURCE = "from the scene's vanishing lines"
MAX_SIDE = 1024  # lines are looked for in the picture at most this large
MIN_SEGMENT = 0.025  # of the picture's diagonal
# A segment along the picture's edge, within this share of its longer side, is the frame's (an
# edge, a dark border a video's encoder left), not the scene's.
BORDER = 0.01
PERSON_GROW_PX = 5  # a segment this near a person's mask is theirs (limbs, clothes)
VANISHING_POINTS = 3
HYPOTHESES = 600  # RANSAC pairs per vanishing point
AGREE_DEG = 1.5  # a segment points at a vanishing point within this angle
MIN_SEGMENTS = 8  # per vanishing point
PERPENDICULAR_DEG = 2.0  # the three directions are perpendicular within this at the focal length found
FOCAL_RANGE = (0.2, 5.0)  # plausible focal lengths, in picture diagonals


@dataclass
class VanishingPoint:
    point: np.ndarray  # (3,) homogeneous, pixels from the picture's centre, unit length
    segments: int  # how many segments meet there


@dataclass
class Lines:
    """A picture's line segments, found at most MAX_SIDE large."""

    segments: np.ndarray  # (N, 4) x1, y1, x2, y2 in the pixels of a picture of ``size``
    size: tuple[int, int]  # (width, height) they were found at


def find_lines(rgb: np.ndarray) -> Lines:
    """The straight edges of ``rgb`` (H, W, 3 uint8): long enough, not along its border. OpenCV
    lets go of the GIL here, so a caller can find them while the people are detected."""
    h, w = rgb.shape[:2]
    scale = min(1.0, MAX_SIDE / max(h, w))
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return Lines(segments(gray), (gray.shape[1], gray.shape[0]))


def focal_from_lines(lines: Lines, masks: list[np.ndarray] | None = None) -> FocalLength | None:
    """The focal length of the lens that took the picture ``lines`` were found in, read from the
    lines of the scene off the people's ``masks`` (each (H, W) in the picture's pixels, > 0.5 on
    the person: limbs and clothes have edges too); None where the picture shows no three
    perpendicular directions clearly."""
    seg = lines.segments
    w, h = lines.size
    if masks and len(seg):
        people = np.any([cv2.resize((m > 0.5).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
                         for m in masks], axis=0).astype(np.uint8)  # fmt: skip
        people = cv2.dilate(people, np.ones((2 * PERSON_GROW_PX + 1,) * 2, np.uint8)) > 0
        mid = np.clip(((seg[:, :2] + seg[:, 2:]) / 2).round().astype(int), 0, [w - 1, h - 1])
        seg = seg[~people[mid[:, 1], mid[:, 0]]]
    f = perpendicular_focal(vanishing_points(seg, w, h), math.hypot(w, h))
    if f is None:
        return None
    mm = round(FocalLength.from_px(f, w, h).equivalent_mm, 1)  # as precise as it is (about 1%), as notes give it
    return FocalLength(mm, SOURCE) if EQUIVALENT_MM[0] <= mm <= EQUIVALENT_MM[1] else None


def segments(gray: np.ndarray) -> np.ndarray:
    """(N, 4) line segments x1, y1, x2, y2 of a greyscale picture (OpenCV's LSD): long enough,
    not along its edge."""
    h, w = gray.shape
    found = cv2.createLineSegmentDetector().detect(gray)[0]
    if found is None:
        return np.zeros((0, 4))
    s = found[:, 0, :].astype(np.float64)
    keep = np.hypot(s[:, 2] - s[:, 0], s[:, 3] - s[:, 1]) > MIN_SEGMENT * math.hypot(w, h)
    margin = BORDER * max(w, h)
    for c, last in ((0, w - 1), (1, h - 1)):
        a, b = s[:, c], s[:, c + 2]
        keep &= ~(((a < margin) & (b < margin)) | ((a > last - margin) & (b > last - margin)))
    return s[keep]


def vanishing_points(seg: np.ndarray, width: int, height: int, seed: int = 0) -> list[VanishingPoint]:
    """The strongest vanishing points of ``seg``, strongest (longest segments in all) first, one
    after the other: each the best of HYPOTHESES segment pairs' crossings, refined by least
    squares over the segments that point at it, which are then taken out."""
    direction = seg[:, 2:] - seg[:, :2]
    length = np.linalg.norm(direction, axis=1)
    real = length > 1e-6  # a segment of no length points nowhere
    seg, direction, length = seg[real], direction[real] / length[real, None], length[real]
    if len(seg) < 2:
        return []
    centre = np.array([width / 2.0, height / 2.0])
    ones = np.ones((len(seg), 1))
    a, b = np.hstack([seg[:, :2] - centre, ones]), np.hstack([seg[:, 2:] - centre, ones])
    lines = np.cross(a, b)
    mid = (a[:, :2] + b[:, :2]) / 2
    cos_agree = math.cos(math.radians(AGREE_DEG))

    def agree(v: np.ndarray) -> np.ndarray:  # (H, 3) points -> (H, N): segment n points at point h
        # |cos| of the angle between the segment and the way from its middle to the point, squared.
        tx, ty = v[:, :1] - mid[None, :, 0] * v[:, 2:], v[:, 1:2] - mid[None, :, 1] * v[:, 2:]
        along = tx * direction[None, :, 0] + ty * direction[None, :, 1]
        return along * along > cos_agree**2 * (tx * tx + ty * ty)

    rng = np.random.default_rng(seed)
    free = np.ones(len(seg), bool)
    found: list[VanishingPoint] = []
    for _ in range(VANISHING_POINTS):
        idx = np.flatnonzero(free)
        if len(idx) < MIN_SEGMENTS:
            break
        p = length[idx] / length[idx].sum()
        i, j = rng.choice(idx, HYPOTHESES, p=p), rng.choice(idx, HYPOTHESES, p=p)
        i, j = i[i != j], j[i != j]
        v = np.cross(lines[i], lines[j])
        v /= np.linalg.norm(v, axis=1, keepdims=True) + 1e-12
        inliers = agree(v) & free[None]
        best = inliers[int((inliers * length[None]).sum(1).argmax())]
        # The point nearest all its segments' lines (each weighed by its length), and its segments again.
        rows = lines[best] / np.linalg.norm(lines[best][:, :2], axis=1, keepdims=True) * np.sqrt(length[best])[:, None]
        point = np.linalg.svd(rows)[2][-1]
        mine = agree(point[None])[0] & free
        found.append(VanishingPoint(point, int(mine.sum())))
        free &= ~mine
    return found


def _direction(v: np.ndarray, f: float) -> np.ndarray:
    d = np.array([v[0], v[1], f * v[2]])
    return d / np.linalg.norm(d)


def _off_perpendicular(v1: np.ndarray, v2: np.ndarray, f: float) -> float:
    """How far (degrees, signed) the directions of two vanishing points are from perpendicular at focal length ``f``."""
    return math.degrees(math.asin(float(np.clip(_direction(v1, f) @ _direction(v2, f), -1.0, 1.0))))


def perpendicular_focal(points: list[VanishingPoint], diagonal: float) -> float | None:
    """The focal length (pixels) at which the three strongest vanishing points are perpendicular
    directions, or None. Each pair fixes one where both points are finite enough; they are pooled
    in log f, each weighed by how sharply its angle turns with f (a pair far out at the sides says
    little), and the result is kept only if every pair is then within PERPENDICULAR_DEG of it."""
    if len(points) < 3 or any(p.segments < MIN_SEGMENTS for p in points[:3]):
        return None
    three = [p.point for p in points[:3]]
    logs, weights = [], []
    for v1, v2 in itertools.combinations(three, 2):
        den = v1[2] * v2[2]
        f2 = -(v1[0] * v2[0] + v1[1] * v2[1]) / den if abs(den) >= 1e-15 else 0.0
        if f2 <= 0:
            continue
        f = math.sqrt(f2)
        if not FOCAL_RANGE[0] * diagonal < f < FOCAL_RANGE[1] * diagonal:
            continue
        e = 1e-3  # degrees per unit of log f, by central difference
        slope = abs(_off_perpendicular(v1, v2, f * math.exp(e)) - _off_perpendicular(v1, v2, f / math.exp(e))) / (2 * e)
        logs.append(math.log(f))
        weights.append(slope**2)
    if not logs or sum(weights) <= 0:
        return None
    f = math.exp(float(np.average(logs, weights=weights)))
    if max(abs(_off_perpendicular(v1, v2, f)) for v1, v2 in itertools.combinations(three, 2)) > PERPENDICULAR_DEG:
        return None
    return f
