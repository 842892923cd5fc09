"""A clip's motion cleaned up: gaps filled, rotations and root motion smoothed without lag,
planted feet held still."""

from __future__ import annotations

import numpy as np

from .errors import ReconError


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Centred Gaussian along axis 0: zero lag. The ends are extended by point reflection
    (2 x[0] - x[k]), so motion that is steady at a clip's ends is not bent there."""
    if sigma <= 0 or len(x) < 3:
        return x.copy()
    r = min(int(np.ceil(3 * sigma)), len(x) - 1)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    head = 2 * x[:1] - x[1 : r + 1][::-1]
    tail = 2 * x[-1:] - x[-r - 1 : -1][::-1]
    pad = np.concatenate([head, x, tail]).astype(np.float64)
    out = np.zeros(x.shape, dtype=np.float64)
    for i, w in enumerate(k):
        out += w * pad[i : i + len(x)]
    return out


def smooth_quaternions(q: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth (N, ..., 4) unit quaternions over time: align signs, average, renormalise."""
    q = q.copy()
    for t in range(1, len(q)):  # q and -q are one rotation: keep the path continuous
        flip = (q[t] * q[t - 1]).sum(-1) < 0
        q[t][flip] *= -1
    s = gaussian_smooth(q, sigma)
    return s / np.linalg.norm(s, axis=-1, keepdims=True)


# A foot's image speed is measured over the frames nearest this long (at least one): at 60
# frames a second one frame's motion is mostly the detector's jitter, and a speed threshold set
# per frame planted the kit's feet in 35-77% of their frames at 60 against 27-72% of the same
# frames at 30 (with this window: the same frames, whatever the rate).
CONTACT_WINDOW_S = 1 / 30


def foot_contacts(ankles2d: np.ndarray, box_height: float, contact_speed: float, fps: float) -> np.ndarray:
    """(N, 2) left and right foot planted: the detected ankle (N, 2, 3: pixels, confidence) is
    seen and moves slower than ``contact_speed`` x ``box_height`` pixels a second in the image,
    over ``CONTACT_WINDOW_S`` (``fps``: the clip's frames a second)."""
    n = len(ankles2d)
    k = max(1, round(fps * CONTACT_WINDOW_S))
    speed = np.full((n, 2), np.inf)
    speed[k:] = np.linalg.norm(ankles2d[k:, :, :2] - ankles2d[:-k, :, :2], axis=-1) / box_height * (fps / k)
    speed[:k] = speed[k] if n > k else np.inf
    return (ankles2d[..., 2] > 0.5) & (speed < contact_speed)


def foot_lock_offsets(
    feet: np.ndarray, ankles2d: np.ndarray, box_height: float, contact_speed: float, release: float, fps: float
) -> np.ndarray:
    """Root offsets (N, 3) that hold a planted foot still.

    ``feet``: (N, 4, 3) big toes and heels (left, right, left, right) in camera space;
    ``ankles2d``: (N, 2, 3) detected left/right ankles (pixels, confidence). Monocular depth
    is too noisy to tell a planted foot, the image is not: a foot is planted while its
    detected ankle barely moves in the image. During each planted stretch the root is
    shifted so the foot stays where the stretch began (depth included, which also steadies
    the body's distance). Each new anchor continues the previous offset and airborne
    frames ease it back (keeping ``release`` of the offset per second), so the root never jumps.
    ``contact_speed``: the ankle's image motion per second, as a fraction of ``box_height``, under
    which a foot counts as planted (``foot_contacts``); ``fps``: the clip's frames a second.
    """
    n = len(feet)
    foot = np.stack([feet[:, [0, 2]].mean(1), feet[:, [1, 3]].mean(1)], 1)  # (N, 2, 3) left, right
    planted = foot_contacts(ankles2d, box_height, contact_speed, fps)
    release = release ** (1.0 / fps)  # per frame
    offsets = np.zeros((n, 3))
    anchor: np.ndarray | None = None
    side = -1
    for t in range(n):
        if not (side >= 0 and planted[t, side]):
            if planted[t].any():  # plant the lower foot in the image (larger y)
                side = int(np.argmax(np.where(planted[t], ankles2d[t, :, 1], -np.inf)))
                anchor = foot[t, side] + (offsets[t - 1] if t > 0 else 0.0)
            else:
                side, anchor = -1, None
        if anchor is not None:
            offsets[t] = anchor - foot[t, side]
        elif t > 0:
            offsets[t] = offsets[t - 1] * release  # ease back towards the fit while airborne
    return offsets


def fill_missing(values: list[np.ndarray | None]) -> tuple[np.ndarray, int]:
    """Linear interpolation over gaps, held at the ends. Returns (array, number filled)."""
    known = [i for i, v in enumerate(values) if v is not None]
    if not known:
        raise ReconError("no_person", "The person was not found in any frame.")
    arr = np.stack([values[known[0]] if v is None else v for v in values]).astype(np.float64)
    filled = len(values) - len(known)
    for a, b in zip(known, known[1:]):
        for t in range(a + 1, b):
            w = (t - a) / (b - a)
            arr[t] = (1 - w) * arr[a] + w * arr[b]
    arr[: known[0]] = arr[known[0]]
    arr[known[-1] + 1 :] = arr[known[-1]]
    return arr, filled
