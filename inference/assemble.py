"""Fitted bodies to results: the one function (``assemble_result``) that both the photo and
the clip pipeline build their result with. A photo is a one-frame clip."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import roma
import torch

from . import __version__
from . import keypoints as kpl
from .bodymodels.base import BodyModel, BodyParams
from .camera import Camera, project_np
from .detect import Detection
from .hands import PersonHands, hand_keypoints_over_frames
from .io.result import PERSON_EXTRA, PersonResult, ReconResult
from .metrics import iou, keypoint_error, render_silhouette


def standing_height(body: BodyModel, rest_vertices: torch.Tensor) -> float:
    """The rest mesh's extent along the model's up axis (metres): its standing height."""
    up = rest_vertices[0].double().numpy() @ np.asarray(body.model_axes, np.float64)[:, 2]
    return float(up.max() - up.min())


@dataclass
class Motion:
    """One body over N frames: one shape, and per frame its bones' rotations and its placement.
    Quaternions keep the sign they were given (a clip's are sign-aligned frame to frame, which
    keyframe interpolation needs)."""

    shape: torch.Tensor  # (1, S)
    bone_quats: np.ndarray  # (N, J, 4) x, y, z, w: local rotations in the bones' rest frames
    global_quats: np.ndarray  # (N, 4) x, y, z, w: model space -> camera space
    transl: np.ndarray  # (N, 3) camera space, metres
    scale: float = 1.0  # the body model's rest mesh and skeleton are scaled by this

    @classmethod
    def from_params(cls, p: BodyParams) -> "Motion":
        """The frames of a batch of fitted parameters (one frame per batch item)."""
        with torch.no_grad():
            bones = roma.rotmat_to_unitquat(roma.rotvec_to_rotmat(p.pose))
            glob = roma.rotmat_to_unitquat(roma.rotvec_to_rotmat(p.global_rot))
        return cls(shape=p.shape[:1], bone_quats=bones.numpy(), global_quats=glob.numpy(), transl=p.transl.numpy())

    def __len__(self) -> int:
        return len(self.bone_quats)

    def scaled(self, factor: float) -> "Motion":
        """The same motion of the body scaled by ``factor`` about the camera (its placements
        scaled; rotations unchanged): it looks the same in the picture."""
        return replace(self, transl=np.asarray(self.transl) * factor, scale=self.scale * factor)

    def global_rotations(self) -> np.ndarray:
        """(N, 3, 3) float64."""
        return roma.unitquat_to_rotmat(torch.tensor(self.global_quats, dtype=torch.float64)).numpy()

    def frame(self, t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frame ``t``'s (1, J, 3, 3) bone rotations, (1, 3, 3) global rotation and (1, 3)
        translation, float32."""
        f32 = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)[None]  # noqa: E731
        return (roma.unitquat_to_rotmat(f32(self.bone_quats[t])), roma.unitquat_to_rotmat(f32(self.global_quats[t])),
                f32(self.transl[t]))  # fmt: skip


@torch.no_grad()
def keypoints_over_frames(body: BodyModel, motion: Motion) -> np.ndarray:
    """(N, 21, 3) keypoints in camera space for every frame (only the keypoints' vertices are posed)."""
    ids = body.keypoint_vertex_ids
    rest = body.rest(motion.shape, ids).scaled(motion.scale)
    out = []
    for s in range(0, len(motion), 64):
        qb = torch.tensor(motion.bone_quats[s : s + 64], dtype=torch.float32)
        v, _ = body.pose(rest.expand(qb.shape[0]), roma.unitquat_to_rotmat(qb), ids)
        R = roma.unitquat_to_rotmat(torch.tensor(motion.global_quats[s : s + 64], dtype=torch.float32))
        v = torch.einsum("bij,bvj->bvi", R, v) + torch.tensor(motion.transl[s : s + 64], dtype=torch.float32)[:, None]
        out.append(body.keypoints(v, ids).numpy())
    return np.concatenate(out)


@dataclass
class ClipFrames:
    """What a clip knows per frame about one person beside their motion (a photo has none of it)."""

    detected: np.ndarray  # (N,) bool; False: filled in from the neighbours (or not in the clip)
    keypoints2d: np.ndarray  # (N, 21, 3) detected, in the body's convention (zeros where missing)
    landmarks3d: np.ndarray  # (N, 21, 3) the detector's world landmarks (NaN where missing)
    raw: Motion  # the motion before smoothing and foot locking
    fps: float
    present: np.ndarray | None = None  # (N,) bool: the person is in the clip (None: every frame)
    foot_contact: np.ndarray | None = None  # (N, 2) bool: left, right foot planted
    hand_keypoints2d: np.ndarray | None = None  # (N, 2, 21, 3) hands detected (zeros where not)
    hands_fitted: np.ndarray | None = None  # (N, 2) bool: the fingers were fitted


def assemble_person(body: BodyModel, motion: Motion, camera: Camera, detection: Detection, *,
                    mirrored: bool = False, clip: ClipFrames | None = None, height: float | None = None,
                    hands: PersonHands | None = None) -> PersonResult:  # fmt: skip
    """One person's part of a result: ``motion`` seen through ``camera``, the first frame's posed
    mesh and its fit quality against ``detection`` (that frame's), per-frame keypoints and
    rotations, and the body model's own per-person arrays (SMPL: the AMASS layout).
    ``height``: the standing height (m) the body is scaled to about the camera (None: the fit's
    own size; body models whose parameters must describe the geometry, SMPL, keep theirs).
    ``hands``: a photo's hands as found (a clip's are in ``clip``)."""
    n = kpl.NUM_COCO
    with torch.no_grad():
        rest = body.rest(motion.shape)
        scale = height / standing_height(body, rest.vertices) if height and body.scalable else 1.0
        if scale != 1.0:
            motion = motion.scaled(scale)
            rest = rest.scaled(scale)
        first = 0 if clip is None or clip.present is None or not clip.present.any() else int(np.argmax(clip.present))
        rot, R0, t0 = motion.frame(first)
        v_model, _ = body.pose(rest, rot)
        v_cam = torch.einsum("bij,bvj->bvi", R0, v_model) + t0[:, None]
        kp = body.keypoints(v_cam[:, body.keypoint_vertex_ids], body.keypoint_vertex_ids)[0, :n]
        if clip is not None and scale != 1.0:
            clip = replace(clip, raw=clip.raw.scaled(scale))
    v_cam_np = v_cam[0].numpy().astype(np.float32)
    kp_np = kp.numpy().astype(np.float64)
    uv_fit = project_np(kp_np, camera.K)
    sil = render_silhouette(v_cam_np, body.faces, camera.K, camera.width, camera.height)
    kp_err, _ = keypoint_error(uv_fit, detection.keypoints2d[:n], detection.height)
    R = motion.global_rotations()
    transl = np.asarray(motion.transl, np.float64)
    amass = getattr(body, "amass", None)
    extra = {}
    if amass:
        pose_aa = roma.unitquat_to_rotvec(torch.tensor(motion.bone_quats, dtype=torch.float64)).numpy()
        extra = amass(motion.shape, R, transl, pose_aa, clip.fps if clip is not None else 0.0)
    return PersonResult(
        vertices_cam=v_cam_np,
        rest_vertices=rest.vertices[0].numpy().astype(np.float32),
        keypoints3d_cam=kp_np.astype(np.float32),
        keypoints2d=detection.keypoints2d[:n].astype(np.float32),
        keypoints2d_fit=uv_fit.astype(np.float32),
        bone_rest_heads=rest.bone_heads[0].numpy().astype(np.float32),
        bone_rest_tails=rest.bone_tails[0].numpy().astype(np.float32),
        bone_rest_matrices=rest.bone_poses[0].numpy().astype(np.float32),
        bone_rotations=np.asarray(motion.bone_quats)[..., [3, 0, 1, 2]].astype(np.float32),
        global_rotation=R,
        root_translation=transl,
        shape_params=motion.shape[0].numpy().astype(np.float32),
        person_box=detection.box.astype(np.float32),
        mirrored=mirrored,
        silhouette_iou=iou(sil, detection.mask > 0.5),
        keypoint_error_pct=kp_err,
        body_scale=scale,
        extra=extra,
        **_per_frame(body, motion, detection, clip, kp_np),
        **_hands(body, motion, clip, hands),
    )


def assemble_result(
    body: BodyModel,
    camera: Camera,
    source: str,
    people: list[PersonResult],
    *,
    people_found: int = 1,
    timings: dict[str, float] | None = None,
    fps: float = 0.0,
    frame_indices: np.ndarray | None = None,
    notes: list[str] | None = None,
) -> ReconResult:
    """The result of ``people`` (at least one; in the order given, left to right by convention)
    seen through ``camera``. ``notes``: what the result should say (who was skipped, filled frames)."""
    shared = {k: v for k, v in people[0].extra.items() if k not in PERSON_EXTRA}
    for p in people:
        p.extra = {k: v for k, v in p.extra.items() if k in PERSON_EXTRA}
    skin_idx, skin_w = body.skin()
    return ReconResult(
        body_model=body.name,
        image_path=source,
        image_size=np.array([camera.width, camera.height], np.int32),
        camera_K=camera.K.astype(np.float64),
        faces=body.faces,
        bone_names=np.array(body.bone_names),
        bone_parents=body.bone_parents,
        skin_indices=skin_idx,
        skin_weights=skin_w,
        shape_labels=np.array(body.shape_labels),
        people=people,
        people_found=people_found,
        timings=dict(timings or {}),
        fps=fps,
        frame_indices=np.zeros(1, np.int32) if frame_indices is None else np.asarray(frame_indices, np.int32),
        notes=np.array(list(notes or []), dtype=str),
        model_up_axis=body.up_axis,
        extra=shared,
        inference_version=__version__,
    )


def _per_frame(body: BodyModel, motion: Motion, detection: Detection, clip: ClipFrames | None,
               kp0: np.ndarray) -> dict:  # fmt: skip
    """A person's per-frame fields: a photo's one detected frame (its keypoints ``kp0``), or a
    clip's every frame, smoothed and raw."""
    n = kpl.NUM_COCO
    if clip is None:  # a photo: one frame, detected
        return dict(frame_keypoints3d_cam=kp0[None].astype(np.float32),
                    frame_keypoints3d_raw=kp0[None].astype(np.float32),
                    frame_keypoints2d=detection.keypoints2d[None, :n].astype(np.float32))  # fmt: skip
    detected = np.asarray(clip.detected, bool)
    present = np.ones(len(detected), bool) if clip.present is None else np.asarray(clip.present, bool)
    return dict(
        frame_present=present,
        frame_detected=detected,
        frame_keypoints3d_cam=keypoints_over_frames(body, motion)[:, :n].astype(np.float32),
        frame_keypoints3d_raw=keypoints_over_frames(body, clip.raw)[:, :n].astype(np.float32),
        frame_keypoints2d=np.asarray(clip.keypoints2d)[:, :n].astype(np.float32),
        frame_landmarks3d=np.asarray(clip.landmarks3d)[:, :n].astype(np.float32),
        frame_foot_contact=np.zeros((len(detected), 2), bool) if clip.foot_contact is None
        else np.asarray(clip.foot_contact, bool) & present[:, None],
        frames_filled=int((present & ~detected).sum()),
    )


def _hands(body: BodyModel, motion: Motion, clip: ClipFrames | None, hands: PersonHands | None) -> dict:
    """A person's per-frame hand fields: what was detected and the fitted skeleton's keypoints."""
    n = len(motion)
    if clip is not None and clip.hand_keypoints2d is not None:
        detected, fitted = np.asarray(clip.hand_keypoints2d), np.asarray(clip.hands_fitted, bool)
    elif hands is not None:
        detected, fitted = hands.keypoints2d[None], hands.fitted[None]
    else:
        detected, fitted = PersonHands.none().keypoints2d[None].repeat(n, 0), np.zeros((n, 2), bool)
    f32 = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    rotations = roma.unitquat_to_rotmat(f32(motion.bone_quats))
    turns = roma.unitquat_to_rotmat(f32(motion.global_quats))
    kp3d = hand_keypoints_over_frames(body, motion.shape, motion.scale, rotations, turns, f32(motion.transl))
    return dict(frame_hand_keypoints2d=detected.astype(np.float32), frame_hand_keypoints3d_cam=kp3d,
                frame_hands_fitted=fitted)  # fmt: skip
