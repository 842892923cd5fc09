"""The result contract: one ``.npz`` file that the Blender add-on reads.

See ``docs/result-contract.md`` for the meaning of every array. The file is
written atomically (temporary file in the same folder, then rename), so a
failed or cancelled run leaves no file behind. Readers check
``schema_version`` and refuse files of any other version.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from ..errors import ReconError

SCHEMA_VERSION = 2  # 2: several people, per-person arrays with a leading person axis


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def write_npz_atomic(path: Path, arrays: dict) -> None:
    """Write ``arrays`` to ``path`` via a temporary file in the same folder and a rename:
    a failure or a kill leaves either the whole file or nothing."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as exc:
        raise ReconError(
            "output_not_writable", f"Cannot write to {path.parent} ({exc.strerror}); choose a writable folder."
        ) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private; the result is an ordinary file
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ReconError(
                "output_not_writable", f"Cannot write {path} ({exc.strerror}); choose a writable folder."
            ) from None
        raise


# One photo fixes a body only up to a scale: a body twice as large, twice as far away, looks the
# same. The fit's own size is therefore arbitrary (on the multi-view kit its adults came out
# 1.35-1.53 m tall), so each body is scaled about the camera, which changes nothing in the
# picture, to a standing height: the user's, or this average adult's (``body_scale``).
DEFAULT_HEIGHT_M = 1.70
HEIGHT_RANGE_M = (0.5, 2.5)

# Body-model arrays (``extra``) that belong to each person (a leading person axis in the file);
# the others (the user's SMPL model data, gender, frame rate) are shared.
PERSON_EXTRA = ("poses", "betas", "trans")


@dataclass
class PersonResult:
    """One reconstructed person. In the file each field gains a leading person axis."""

    vertices_cam: np.ndarray  # (V, 3) posed mesh at the first frame, camera space (OpenCV axes, metres)
    rest_vertices: np.ndarray  # (V, 3) rest mesh with the fitted shape, model space
    keypoints3d_cam: np.ndarray  # (17, 3) COCO-17, camera space
    keypoints2d: np.ndarray  # (17, 3) detected: pixel x, y, confidence
    keypoints2d_fit: np.ndarray  # (17, 2) fitted keypoints projected, pixels
    bone_rest_heads: np.ndarray  # (J, 3) model space
    bone_rest_tails: np.ndarray  # (J, 3) model space
    bone_rest_matrices: np.ndarray  # (J, 4, 4) rest bone frames, model space (Blender bone.matrix_local)
    bone_rotations: np.ndarray  # (N, J, 4) quaternion w, x, y, z per frame: pose_bone.rotation_quaternion
    global_rotation: np.ndarray  # (N, 3, 3) model space -> camera space
    root_translation: np.ndarray  # (N, 3) camera space: v_cam = global_rotation @ v_model + root_translation
    shape_params: np.ndarray  # (S,) float32
    person_box: np.ndarray  # (4,) x0, y0, x1, y1 pixels (a clip: the first frame the person is in)
    mirrored: bool = False  # the detector's left/right labels were swapped back
    silhouette_iou: float = float("nan")
    keypoint_error_pct: float = float("nan")  # mean, visible keypoints, % of box height
    body_scale: float = 1.0  # rest mesh and skeleton = the body model's (shape_params) times this
    # Per frame (a photo is a one-frame clip).
    frame_present: np.ndarray = field(default_factory=lambda: np.ones(1, bool))  # (N,) in the clip at all
    frame_detected: np.ndarray = field(default_factory=lambda: np.ones(1, bool))  # (N,) False: filled in
    frame_keypoints3d_cam: np.ndarray = field(default_factory=lambda: np.zeros((1, 17, 3), np.float32))
    frame_keypoints3d_raw: np.ndarray = field(default_factory=lambda: np.zeros((1, 17, 3), np.float32))  # unsmoothed
    frame_keypoints2d: np.ndarray = field(default_factory=lambda: np.zeros((1, 17, 3), np.float32))  # detected
    # MediaPipe's raw world landmarks (COCO-17 order, hip-centred metres; NaN where not detected).
    frame_landmarks3d: np.ndarray = field(default_factory=lambda: np.zeros((1, 17, 3), np.float32))
    # (N, 2) left, right foot planted: the detected ankle stood still in the image (photos: False).
    frame_foot_contact: np.ndarray = field(default_factory=lambda: np.zeros((1, 2), bool))
    # Hands, the person's left then right, in MediaPipe's 21-keypoint layout (wrist, then each
    # digit's four joints from thumb to little finger): detected (pixels and score, zeros where
    # not), the fitted skeleton's (camera space), and whether the fingers were fitted (else relaxed).
    frame_hand_keypoints2d: np.ndarray = field(default_factory=lambda: np.zeros((1, 2, 21, 3), np.float32))
    frame_hand_keypoints3d_cam: np.ndarray = field(default_factory=lambda: np.zeros((1, 2, 21, 3), np.float32))
    frame_hands_fitted: np.ndarray = field(default_factory=lambda: np.zeros((1, 2), bool))
    frames_filled: int = 0
    extra: dict = field(default_factory=dict)  # SMPL: this person's AMASS arrays (PERSON_EXTRA)


@dataclass
class ReconResult:
    """A photo's or a clip's people, seen through one camera. ``people`` are ordered left to
    right (by the first frame's box centre) and share the mesh topology and the skeleton."""

    body_model: str
    image_path: str
    image_size: np.ndarray  # (2,) width, height in pixels
    camera_K: np.ndarray  # (3, 3)
    faces: np.ndarray  # (F, 3) int32
    bone_names: np.ndarray  # (J,) str
    bone_parents: np.ndarray  # (J,) int32, -1 for the root
    skin_indices: np.ndarray  # (V, K) int32 bone index per influence
    skin_weights: np.ndarray  # (V, K) float32, rows sum to 1
    shape_labels: np.ndarray  # (S,) str
    people: list[PersonResult]
    people_found: int = 1  # people the detector saw (at a clip's start)
    timings: dict[str, float] = field(default_factory=dict)
    fps: float = 0.0  # frames per second of the result (0 for a photo)
    frame_indices: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int32))  # (N,) source frame numbers
    notes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))  # who or what was skipped, and why
    model_up_axis: str = "Z"  # model space's up: "Z" (Anny) or "Y" (SMPL)
    # The photo as JPEG bytes where Blender cannot read its file (HEIC), for the camera's
    # background; empty otherwise.
    background_jpeg: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    # SMPL only: the user's model data the Blender rig needs for shape keys (smpl_shapedirs, ...),
    # gender and frame rate; each person's AMASS arrays are in ``PersonResult.extra``.
    extra: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    inference_version: str = ""

    def in_picture(self, width: int, height: int, K: np.ndarray) -> "ReconResult":
        """This result, worked out on its picture resampled, for the picture itself
        (``width`` x ``height``, camera ``K``): its pixel quantities scaled (in place). The 3D ones
        stay: the camera sees the same rays."""
        sx, sy = width / float(self.image_size[0]), height / float(self.image_size[1])
        if (sx, sy) == (1.0, 1.0):
            return self
        xy = np.array([sx, sy])
        for p in self.people:
            for a in (p.keypoints2d, p.keypoints2d_fit, p.frame_keypoints2d, p.frame_hand_keypoints2d):
                a[..., :2] *= xy.astype(a.dtype)
            p.person_box[:] = p.person_box * np.tile(xy, 2)
        self.image_size = np.array([width, height], np.int32)
        self.camera_K = np.asarray(K, np.float64).copy()
        return self

    def save(self, path: str | os.PathLike, overwrite: bool = True) -> Path:
        """Write atomically to ``path`` (a failed write leaves nothing behind)."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise ReconError("output_exists", f"{path} already exists; pass --overwrite or choose another name.")
        if not path.parent.is_dir():
            raise ReconError("output_not_writable", f"Output folder {path.parent} does not exist; create it first.")
        if not self.people:
            raise ValueError("a result holds at least one person")
        arrays = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "timings":
                arrays["timing_names"] = np.array(list(value), dtype=str)
                arrays["timing_seconds"] = np.array(list(value.values()), dtype=np.float64)
            elif f.name == "extra":
                arrays.update({k: np.asarray(v) for k, v in value.items()})
            elif f.name == "people":
                arrays["person_count"] = np.asarray(len(value))
                for pf in fields(PersonResult):
                    if pf.name == "extra":
                        for k in value[0].extra:
                            arrays[k] = np.stack([np.asarray(p.extra[k]) for p in value])
                    else:
                        arrays[pf.name] = np.stack([np.asarray(getattr(p, pf.name)) for p in value])
            else:
                arrays[f.name] = np.asarray(value)
        write_npz_atomic(path, arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ReconResult":
        """Read a result file, checking its schema version."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise ReconError("bad_result", f"{path} is not a readable result file ({exc}).") from None
        version = int(data.get("schema_version", -1))
        if version != SCHEMA_VERSION:
            raise ReconError(
                "schema_mismatch",
                f"{path} has result schema {version}, this version reads {SCHEMA_VERSION}; re-run the reconstruction.",
            )
        count = int(data.pop("person_count"))
        person_data = {f.name: data.pop(f.name) for f in fields(PersonResult) if f.name in data}
        person_extra = {k: data.pop(k) for k in PERSON_EXTRA if k in data}
        people = []
        for i in range(count):
            kw = {k: (v[i].item() if v[i].ndim == 0 else v[i]) for k, v in person_data.items()}
            people.append(PersonResult(**kw, extra={k: v[i] for k, v in person_extra.items()}))
        names = data.pop("timing_names", np.array([], dtype=str))
        secs = data.pop("timing_seconds", np.array([]))
        kwargs: dict = {"people": people, "timings": {str(n): float(s) for n, s in zip(names, secs)}}
        known = {f.name for f in fields(cls)}
        kwargs["extra"] = {k: v for k, v in data.items() if k not in known}
        for f in fields(cls):
            if f.name not in kwargs and f.name in data:
                v = data[f.name]
                kwargs[f.name] = v.item() if v.ndim == 0 else v
        return cls(**kwargs)
