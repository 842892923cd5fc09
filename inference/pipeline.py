"""Photo in, fitted body out: detect -> regress -> fit -> result."""

from __future__ import annotations

import os
import time
from typing import Callable

import numpy as np
import roma
import torch

from .bodymodels import load_body_model
from .camera import Camera, project_np
from .detect import MIRROR_KEYPOINTS, Detection, PoseDetector, to_body_convention
from .fit import FitOptions, Fitter
from .images import load_image
from .metrics import iou, keypoint_error, render_silhouette
from .regress import WEIGHTS, LandmarkRegressor, NetworkRegressor
from .result import ReconResult
from .track import find_people, prominence

Progress = Callable[[str, float], None]  # (stage, fraction done)
N_COCO = 17

QUALITY = {
    "fast": FitOptions(rigid_steps=15, pose_steps=20, full_steps=15),
    "balanced": FitOptions(),
    "best": FitOptions(rigid_steps=30, pose_steps=60, full_steps=80, lr=0.03),
}
INITS = ("auto", "network", "landmarks")
# The network's start already has a pose and a camera, so the fit's rigid and pose
# stages run a quarter and a half of their steps (``FitOptions.for_trained_start``).
NETWORK_STEP_FACTOR = 0.5
# What "auto" picks for Anny when the weights are installed: the network's start,
# since it beats the landmark start on the synthetic bodies and on the photos and
# clip frames of the regressor benchmark (README, "Regressor benchmark").
NETWORK_BY_DEFAULT = True


def make_regressor(body, init: str = "auto", weights: str | os.PathLike | None = None):
    """The fit's starting point: MediaPipe's landmarks, or the trained network (Anny only;
    ``weights``: another weights file than the bundled one)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}")
    if init == "auto":
        init = "network" if NETWORK_BY_DEFAULT and body.name == "anny" and WEIGHTS.exists() else "landmarks"
    return NetworkRegressor(body, weights or WEIGHTS) if init == "network" else LandmarkRegressor(body)


def mirrored(det: Detection) -> Detection:
    """The same detection with left and right labels swapped (2D and 3D alike)."""
    lm = det.landmarks3d[MIRROR_KEYPOINTS].copy()
    return Detection(
        box=det.box,
        keypoints2d=det.keypoints2d[MIRROR_KEYPOINTS].copy(),
        landmarks3d=lm,
        mask=det.mask,
        score=det.score,
    )


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
    ) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.body = load_body_model(body_model, cache_dir=cache_dir, smpl_model=smpl_model, gender=gender)
        self.regressor = make_regressor(self.body, init, regressor_weights)
        options = fit_options or QUALITY[quality]
        if fit_options is None and isinstance(self.regressor, NetworkRegressor):
            options = options.for_trained_start(NETWORK_STEP_FACTOR)
        self.fitter = Fitter(self.body, options)
        self.detector = PoseDetector()

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
        people = find_people(self.detector, rgb)  # raises no_person
        det = max(people, key=prominence)  # several people: the largest clearly visible one
        det = to_body_convention(det, self.body.detector_offsets)
        timings["detect"] = time.perf_counter() - t

        t = time.perf_counter()
        report("regress", 0.25)
        hypotheses = [det, mirrored(det)] if self.fitter.options.mirror_guard else [det]
        init = self.regressor(hypotheses, camera)
        timings["regress"] = time.perf_counter() - t

        t = time.perf_counter()
        report("fit", 0.4)
        fit = self.fitter.fit(hypotheses, camera, init)
        timings["fit"] = time.perf_counter() - t
        timings.update({f"fit_{k}": v for k, v in fit.stage_seconds.items()})

        t = time.perf_counter()
        report("result", 0.9)
        result = self._make_result(name, hypotheses[fit.hypothesis], camera, fit, timings)
        result.people_found = len(people)
        result.timings["result"] = time.perf_counter() - t
        report("done", 1.0)
        return result

    def _make_result(self, image_path, det: Detection, camera: Camera, fit, timings) -> ReconResult:
        from . import __version__

        body, p = self.body, fit.params
        with torch.no_grad():
            rest = body.rest(p.shape)
            rot = roma.rotvec_to_rotmat(p.pose)
            v_model, _ = body.pose(rest, rot)
            R = roma.rotvec_to_rotmat(p.global_rot)
            v_cam = torch.einsum("bij,bvj->bvi", R, v_model) + p.transl[:, None]
            kp = body.keypoints(v_cam[:, body.keypoint_vertex_ids], body.keypoint_vertex_ids)[0, :N_COCO]
            quat_xyzw = roma.rotmat_to_unitquat(rot[0])
        v_cam_np = v_cam[0].numpy().astype(np.float32)
        kp_np = kp.numpy().astype(np.float64)
        uv_fit = project_np(kp_np, camera.K)
        sil = render_silhouette(v_cam_np, body.faces, camera.K, camera.width, camera.height)
        mask_iou = iou(sil, det.mask > 0.5)
        kp_err, _ = keypoint_error(uv_fit, det.keypoints2d[:N_COCO], det.height)
        skin_idx, skin_w = body.skin()
        return ReconResult(
            body_model=body.name,
            image_path=image_path,
            image_size=np.array([camera.width, camera.height], np.int32),
            camera_K=camera.K.astype(np.float64),
            faces=body.faces,
            vertices_cam=v_cam_np,
            rest_vertices=rest.vertices[0].numpy().astype(np.float32),
            keypoints3d_cam=kp_np.astype(np.float32),
            keypoints2d=det.keypoints2d[:N_COCO].astype(np.float32),
            keypoints2d_fit=uv_fit.astype(np.float32),
            bone_names=np.array(body.bone_names),
            bone_parents=body.bone_parents,
            bone_rest_heads=rest.bone_heads[0].numpy().astype(np.float32),
            bone_rest_tails=rest.bone_tails[0].numpy().astype(np.float32),
            bone_rest_matrices=rest.bone_poses[0].numpy().astype(np.float32),
            skin_indices=skin_idx,
            skin_weights=skin_w,
            bone_rotations=quat_xyzw[:, [3, 0, 1, 2]].numpy()[None].astype(np.float32),
            global_rotation=R.numpy().astype(np.float64),
            root_translation=p.transl.numpy().astype(np.float64),
            shape_labels=np.array(body.shape_labels),
            shape_params=p.shape[0].numpy().astype(np.float32),
            person_box=det.box.astype(np.float32),
            mirrored=bool(fit.hypothesis == 1),
            silhouette_iou=mask_iou,
            keypoint_error_pct=kp_err,
            timings=dict(timings),
            inference_version=__version__,
            frame_keypoints3d_cam=kp_np[None].astype(np.float32),
            frame_keypoints3d_raw=kp_np[None].astype(np.float32),
            frame_keypoints2d=det.keypoints2d[None, :N_COCO].astype(np.float32),
            model_up_axis=body.up_axis,
            extra=self._extras(p.shape, R.numpy().astype(np.float64), p.transl.numpy().astype(np.float64),
                               p.pose.numpy().astype(np.float64), 0.0),
        )

    def _extras(self, shape, global_rot, transl, pose, fps) -> dict:
        """Body-model specific arrays (SMPL: the AMASS layout)."""
        amass = getattr(self.body, "amass", None)
        return amass(shape, global_rot, transl, pose, fps) if amass else {}

    def close(self) -> None:
        self.detector.close()
