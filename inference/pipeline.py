"""The photo pipeline: detect -> start -> fit -> result, with the models kept warm."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import keypoints as kpl
from .assemble import Motion, assemble_person, assemble_result
from .bodymodels import load_body_model
from .camera import Camera
from .detect import MAX_PEOPLE, Detection, PoseDetector, body_shown, find_people, mirrored, to_body_convention
from .detect.detection import joints_shown
from .detect.mediapipe_hands import HandDetector
from .errors import ReconError
from .fit import FitOptions, FitResult, Fitter
from .hands import MIN_WRIST_CONF, PersonHands, fit_people_hands
from .io.images import (
    HEIF_SUFFIXES,
    WORK_SIDE,
    exif_focal,
    jpeg_bytes,
    load_picture,
    working_copy,
)
from .io.result import DEFAULT_HEIGHT_M, ReconResult
from .lens import FocalLength
from .regress import NetworkRegressor, make_regressor
from .vanishing import find_lines, focal_from_lines

Progress = Callable[[str, float], None]  # (stage, fraction done)

QUALITY = {
    "fast": FitOptions(rigid_steps=15, pose_steps=20, full_steps=15),
    "balanced": FitOptions(),
    "best": FitOptions(rigid_steps=30, pose_steps=60, full_steps=80, lr=0.03),
}
# The network's start already has a pose and a camera, so the fit's pose stage runs half
# of its steps (``FitOptions.for_trained_start``).
NETWORK_STEP_FACTOR = 0.5


@dataclass
class PersonFit:
    """One person's detection fitted: the labelling the fit chose and what it found."""

    detection: Detection  # as labelled by the fit (left and right swapped back if the detector mirrored them)
    fit: FitResult
    seconds: dict[str, float]  # "regress", "fit" (of the batch the person was fitted in)
    hands: PersonHands | None = None  # None: hands not searched for

    @property
    def mirrored(self) -> bool:
        return self.fit.hypothesis == 1


# A person besides the most prominent one is reconstructed only where enough of them shows: this
# many of the 13 body joints seen, a shoulder and a hip among them. The bar for "seen" is low
# (``detect.detection.SHOWN_CONF``, 0.2):
# BlazePose's visibility drops on people fully in view against the light (the sports2d clip's man
# at frame 100 has elbows and knees at 0.1-0.5), while joints outside the frame score below 0.1.
MIN_BODY_JOINTS = 8
EDGE_PX = 3  # a box this close to the border: the person is cut by the frame edge


def people_wanted(people: str | int) -> int | None:
    """``--people``: "all" (None: everyone found), "largest" (1) or a positive count."""
    if people == "all":
        return None
    if people == "largest":
        return 1
    try:
        n = int(people)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ReconError("bad_argument", f"--people takes all, largest or a positive number (got {people!r}).")
    return n


def why_skipped(det: Detection, width: int, height: int) -> str | None:
    """Why this person cannot be reconstructed well (too little of them shows), or None."""
    seen = joints_shown(det)
    if body_shown(seen, MIN_BODY_JOINTS):
        return None
    x0, y0, x1, y1 = det.box
    cut = x0 <= EDGE_PX or y0 <= EDGE_PX or x1 >= width - EDGE_PX or y1 >= height - EDGE_PX
    return (f"only {int(seen.sum())} of {len(seen)} body joints visible"
            f"{' (cut by the frame edge)' if cut else ' (mostly hidden)'}")  # fmt: skip


def choose_people(found: list[Detection], people: str | int, width: int, height: int, to_picture: float = 1.0
                  ) -> tuple[list[Detection], list[str]]:  # fmt: skip
    """Of the people found (most prominent first), those to reconstruct, and notes on who was
    left out and why (where they are, in the picture's pixels: ``to_picture`` of those worked
    on). The most prominent person is always reconstructed."""
    wanted = people_wanted(people)
    chosen, notes = found[:1], []
    for det in found[1:]:
        why = why_skipped(det, width, height)
        x = int((det.box[0] + det.box[2]) / 2 * to_picture)
        if why:
            notes.append(f"person at x={x} px skipped: {why}")
        elif wanted is not None and len(chosen) >= wanted:
            notes.append(f"person at x={x} px skipped: --people {people}")
        else:
            chosen.append(det)
    if len(found) >= MAX_PEOPLE:
        notes.append(f"{len(found)} people found; in a crowd the detector reports the most prominent people only")
    return chosen, notes


class Reconstructor:
    """Holds the warm models; ``reconstruct`` handles one photo at a time."""

    def __init__(
        self,
        body_model: str = "anny",
        quality: str = "balanced",
        cache_dir: str | os.PathLike | None = None,
        fit_options: FitOptions | None = None,
        threads: int | None = None,
        smpl_model: str | os.PathLike | None = None,
        gender: str | None = None,
        init: str = "auto",
        regressor_weights: str | os.PathLike | None = None,
        detector: str = "heavy",
        hands: bool = True,
    ) -> None:
        """``detector``: the pose model, "heavy" (the default: the most accurate on real photos) or
        "full" (twice as fast). ``hands``: fit the fingers to the hands found (body models with
        finger bones)."""
        if threads:
            torch.set_num_threads(threads)
        self.body = load_body_model(body_model, cache_dir=cache_dir, smpl_model=smpl_model, gender=gender)
        self.regressor = make_regressor(self.body, init, regressor_weights)
        options = fit_options or QUALITY[quality]
        if fit_options is None and isinstance(self.regressor, NetworkRegressor):
            options = options.for_trained_start(NETWORK_STEP_FACTOR)
        self.fitter = Fitter(self.body, options)
        self.detector = PoseDetector(detector)
        self.hand_detector = HandDetector() if hands else None

    def reconstruct(
        self,
        image: str | os.PathLike | np.ndarray,
        focal_px: float | None = None,
        progress: Progress | None = None,
        name: str | None = None,
        people: str | int = "all",
        height: float | None = DEFAULT_HEIGHT_M,
        focal_mm: float | None = None,
    ) -> ReconResult:
        """``image``: a photo file, or an RGB uint8 array (a video frame; ``name`` labels it).
        ``people``: whom to reconstruct, "all" found (enough of them showing), "largest", or
        the N most prominent. ``height``: every body's standing height, metres (None: the fit's
        own size, which one photo does not fix; ``io.result.DEFAULT_HEIGHT_M``). The camera's
        focal length: ``focal_px`` pixels, else ``focal_mm`` (its 35 mm equivalent), else the
        photo's EXIF one (``exif_focal``), else the one the scene's lines show (``vanishing``),
        else the image diagonal."""
        report = progress or (lambda stage, frac: None)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        report("load", 0.0)
        if isinstance(image, np.ndarray):
            rgb, (h, w) = image, image.shape[:2]
        else:  # a large JPEG comes decoded smaller
            rgb, (w, h) = load_picture(image, WORK_SIDE)
        if name is None:
            name = "frame" if isinstance(image, np.ndarray) else str(image)
        lens = None
        if focal_mm and not focal_px:
            lens = FocalLength(focal_mm)
        elif not focal_px and not isinstance(image, np.ndarray):
            lens = exif_focal(image, w, h)
        # Everything below works on the picture at most WORK_SIDE large, in its pixels (``work``);
        # the result is given in the photo's own.
        picture = working_copy(rgb, w, h)
        timings["load"] = time.perf_counter() - t

        t = time.perf_counter()
        report("detect", 0.1)
        with ThreadPoolExecutor(1) as pool:
            # A picture that records no lens: the scene's lines are found on the other core while
            # the people are detected (the landmarker keeps one busy), and read off the people.
            lines = pool.submit(find_lines, picture) if lens is None and not focal_px else None
            found = find_people(self.detector, picture)  # raises no_person; most prominent first
            if lines is not None:
                lens = focal_from_lines(lines.result(), [d.mask for d in found])
        camera = Camera.for_image(w, h, lens.px(w, h) if lens else focal_px)
        work = camera.resized(picture.shape[1], picture.shape[0])
        chosen, notes = choose_people(found, people, work.width, work.height, w / work.width)
        notes = ([lens.note(w, h)] if lens else []) + notes
        timings["detect"] = time.perf_counter() - t

        # Everyone's start and fit in one batch: a step for two people costs little more than for one.
        fits = self.fit_people([to_body_convention(d, self.body.detector_offsets) for d in chosen], work, report)
        timings |= fits[0].seconds | {f"fit_{k}": v for k, v in fits[0].fit.stage_seconds.items()}

        if self.hand_detector is not None:
            t = time.perf_counter()
            report("hands", 0.85)
            self.fit_hands(picture, work, fits)
            timings["hands"] = time.perf_counter() - t

        t = time.perf_counter()
        report("result", 0.9)
        fits.sort(key=lambda f: float(f.detection.box[0] + f.detection.box[2]))  # left to right: Person 1, 2, ...
        for i, f in enumerate(fits):
            if f.hands is not None:
                notes += f.hands.notes(f"Person {i + 1}")
        persons = [assemble_person(self.body, Motion.from_params(f.fit.params), work, f.detection,
                                   mirrored=f.mirrored, height=height, hands=f.hands) for f in fits]  # fmt: skip
        result = assemble_result(self.body, work, name, persons, people_found=len(found), timings=timings,
                                 notes=notes).in_picture(w, h, camera.K)  # fmt: skip
        if not isinstance(image, np.ndarray) and Path(image).suffix.lower() in HEIF_SUFFIXES:
            result.background_jpeg = jpeg_bytes(rgb)  # Blender reads no HEIC: the camera's background
        result.timings["result"] = time.perf_counter() - t
        report("done", 1.0)
        return result

    def fit_person(self, det: Detection, camera: Camera) -> PersonFit:
        """The start and the full fit for one detected person (in the body's keypoint convention),
        trying the detector's labelling and its mirror image when the mirror guard is on."""
        return self.fit_people([det], camera)[0]

    def fit_people(self, people: list[Detection], camera: Camera, progress: Progress | None = None
                   ) -> list[PersonFit]:  # fmt: skip
        """``fit_person`` for several people at once: one batch of starts, one batch of fits
        (each person's ``seconds`` are the batch's); nobody: nothing to fit."""
        if not people:
            return []
        report = progress or (lambda stage, frac: None)
        t = time.perf_counter()
        report("regress", 0.25)
        hypotheses = [[det, mirrored(det)] if self.fitter.options.mirror_guard else [det] for det in people]
        init = self.regressor([d for hyps in hypotheses for d in hyps], camera)
        seconds = {"regress": time.perf_counter() - t}
        t = time.perf_counter()
        report("fit", 0.4)
        fits = self.fitter.fit_people(hypotheses, camera, init)
        seconds["fit"] = time.perf_counter() - t
        return [PersonFit(hyps[fit.hypothesis], fit, seconds) for hyps, fit in zip(hypotheses, fits)]

    def fit_hands(self, rgb: np.ndarray, camera: Camera, fits: list[PersonFit]) -> None:
        """Every fitted person's hands found around their wrists and their fingers fitted (their
        poses updated in place); hands not found are relaxed."""
        seen = [f.detection.keypoints2d[[kpl.L_WRIST, kpl.R_WRIST], 2] >= MIN_WRIST_CONF for f in fits]
        found = fit_people_hands(self.hand_detector, rgb, self.body, camera, [f.fit.params for f in fits], seen)
        for f, hands in zip(fits, found):
            f.hands = hands

    def close(self) -> None:
        self.detector.close()
        if self.hand_detector is not None:
            self.hand_detector.close()
