"""The photo pipeline: detect -> start -> fit -> result, with the models kept warm."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .assemble import Motion, assemble_result
from .bodymodels import load_body_model
from .camera import Camera
from .detect import MAX_PEOPLE, Detection, PoseDetector, find_people, mirrored, to_body_convention
from .fit import FitOptions, FitResult, Fitter
from .io.images import load_image
from .io.result import ReconResult
from .regress import NetworkRegressor, make_regressor

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
    seconds: dict[str, float]  # "regress", "fit"

    @property
    def mirrored(self) -> bool:
        return self.fit.hypothesis == 1


def crowd_note(people: int) -> list[str]:
    """What the result says when there was more than one person to choose from."""
    if people < 2:
        return []
    more = "; in a crowd the detector reports the most prominent people only" if people >= MAX_PEOPLE else ""
    return [f"{people} people found, the most prominent one reconstructed{more}"]


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
    ) -> None:
        """``detector``: the pose model, "heavy" (the default: the most accurate on real photos) or
        "full" (twice as fast)."""
        if threads:
            torch.set_num_threads(threads)
        self.body = load_body_model(body_model, cache_dir=cache_dir, smpl_model=smpl_model, gender=gender)
        self.regressor = make_regressor(self.body, init, regressor_weights)
        options = fit_options or QUALITY[quality]
        if fit_options is None and isinstance(self.regressor, NetworkRegressor):
            options = options.for_trained_start(NETWORK_STEP_FACTOR)
        self.fitter = Fitter(self.body, options)
        self.detector = PoseDetector(detector)

    def reconstruct(
        self,
        image: str | os.PathLike | np.ndarray,
        focal_px: float | None = None,
        progress: Progress | None = None,
        name: str | None = None,
    ) -> ReconResult:
        """``image``: a photo file, or an RGB uint8 array (a video frame; ``name`` labels it)."""
        report = progress or (lambda stage, frac: None)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        report("load", 0.0)
        rgb = image if isinstance(image, np.ndarray) else load_image(image)
        if name is None:
            name = "frame" if isinstance(image, np.ndarray) else str(image)
        h, w = rgb.shape[:2]
        camera = Camera.for_image(w, h, focal_px)
        timings["load"] = time.perf_counter() - t

        t = time.perf_counter()
        report("detect", 0.1)
        people = find_people(self.detector, rgb)  # raises no_person; most prominent first
        det = to_body_convention(people[0], self.body.detector_offsets)
        timings["detect"] = time.perf_counter() - t

        person = self.fit_person(det, camera, report)
        timings.update(person.seconds)
        timings.update({f"fit_{k}": v for k, v in person.fit.stage_seconds.items()})

        t = time.perf_counter()
        report("result", 0.9)
        result = assemble_result(
            self.body, Motion.from_params(person.fit.params), camera, person.detection, name,
            mirrored=person.mirrored, people_found=len(people), timings=timings, notes=crowd_note(len(people)),
        )  # fmt: skip
        result.timings["result"] = time.perf_counter() - t
        report("done", 1.0)
        return result

    def fit_person(self, det: Detection, camera: Camera, progress: Progress | None = None) -> PersonFit:
        """The start and the full fit for one detected person (in the body's keypoint convention),
        trying the detector's labelling and its mirror image when the mirror guard is on."""
        report = progress or (lambda stage, frac: None)
        t = time.perf_counter()
        report("regress", 0.25)
        hypotheses = [det, mirrored(det)] if self.fitter.options.mirror_guard else [det]
        init = self.regressor(hypotheses, camera)
        seconds = {"regress": time.perf_counter() - t}
        t = time.perf_counter()
        report("fit", 0.4)
        fit = self.fitter.fit(hypotheses, camera, init)
        seconds["fit"] = time.perf_counter() - t
        return PersonFit(hypotheses[fit.hypothesis], fit, seconds)

    def close(self) -> None:
        self.detector.close()
