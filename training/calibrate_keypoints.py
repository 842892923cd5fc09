"""Where MediaPipe puts each keypoint against where Anny's keypoint lies, measured on rendered
bodies: the table ``ANNY_DETECTOR_OFFSETS`` in ``inference/bodymodels/anny.py``.

    .venv/bin/python -m training.render_bodies runs/renders_val --count 150 --first-seed 10000000
    .venv/bin/python -m training.calibrate_keypoints runs/renders_val

Calibrate on validation bodies (seeds 10,000,000+), not on the benchmark's held-out ones.
For every body the detector finds well (median keypoint within 3% of the body's extent,
better labelling of the two), each keypoint's offset from the true projection is written as
a * torso vector + b * width vector of the detection (``keypoints.body_axes_2d``); a and b are
least squares over the bodies (offsets over a quarter of the torso left out as misdetections),
then averaged over left and right so that the table is mirror-symmetric.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from inference import keypoints as kpl
    from inference.camera import project_np
    from inference.detect import PoseDetector, find_people, mirrored, prominence
    from inference.errors import ReconError
    from inference.io.images import load_image

    from .render_bodies import WELL_DETECTED_PCT

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("render_dir")
    args = ap.parse_args(argv)
    detector = PoseDetector()
    axes, offsets, torso = [], [], []
    for png in sorted(Path(args.render_dir).glob("*.png")):
        with np.load(png.with_suffix(".npz"), allow_pickle=False) as z:
            uv = project_np(z["keypoints3d"], z["K"])
        try:
            det = max(find_people(detector, load_image(png)), key=prominence)
        except ReconError:
            continue
        labellings = [det.keypoints2d, mirrored(det).keypoints2d]
        err = [float(np.median(np.linalg.norm(k[:, :2] - uv, axis=1))) for k in labellings]
        if min(err) / float(np.ptp(uv, axis=0).max()) * 100 > WELL_DETECTED_PCT:
            continue
        k = labellings[int(np.argmin(err))]
        up, width = kpl.body_axes_2d(k)
        axes.append(np.stack([np.tile(up, (len(k), 1)), np.tile(width, (len(k), 1))], -1))  # (K, 2, 2)
        offsets.append(k[:, :2] - uv)
        torso.append(np.linalg.norm(up))
    detector.close()
    if not axes:
        raise SystemExit(f"no well-detected renders in {args.render_dir}")
    A, O, L = np.array(axes), np.array(offsets), np.array(torso)
    coef = np.zeros((A.shape[1], 2))
    for i in range(A.shape[1]):
        ok = np.linalg.norm(O[:, i], axis=1) < 0.25 * L
        coef[i] = np.linalg.lstsq(A[ok, i].reshape(-1, 2), O[ok, i].reshape(-1), rcond=None)[0]
    mirror = coef[kpl.MIRROR] * np.array([1.0, -1.0])  # a left keypoint's inward is its right twin's outward
    coef = (coef + mirror) / 2
    print(f"# {len(A)} well-detected bodies of {args.render_dir}: (torso, width) fractions per keypoint")
    print("ANNY_DETECTOR_OFFSETS = np.array([")
    for row in coef:
        print(f"    [{row[0]:+.4f}, {row[1]:+.4f}],")
    print("])")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
