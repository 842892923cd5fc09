"""Reading the inference result file and the camera math (numpy only, no bpy).

See docs/result-contract.md. OpenCV camera axes (x right, y down, z forward)
differ from Blender's camera (x right, y up, looking down -z) by a flip of y
and z; the first person's model space becomes Blender's world space, so that
person stands upright at the origin, the others stand where the camera saw
them, and the camera is placed where the photo was taken from.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .retarget import quaternion_to_matrix
from .runner import SCHEMA_VERSION, RunnerError

CV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])
REQUIRED = (
    "schema_version", "person_count", "image_path", "image_size", "camera_K", "faces", "rest_vertices",
    "vertices_cam", "bone_names", "bone_parents", "bone_rest_heads", "bone_rest_tails", "bone_rest_matrices",
    "skin_indices", "skin_weights", "bone_rotations", "global_rotation", "root_translation",
)  # fmt: skip


@dataclass
class Person:
    """One person of a result: their rest skeleton and mesh, and their motion."""

    rest_vertices: np.ndarray
    heads: np.ndarray
    tails: np.ndarray
    rest_matrices: np.ndarray
    rotations: np.ndarray  # (N, J, 4) w x y z
    global_rotation: np.ndarray  # (N, 3, 3)
    root_translation: np.ndarray  # (N, 3)
    present: np.ndarray  # (N,) bool: the person is in the clip at that frame
    betas: np.ndarray | None = None  # SMPL: (10,)
    foot_contact: np.ndarray | None = None  # (N, 2) bool: left, right foot planted (clips)
    hands_fitted: np.ndarray | None = None  # (N, 2) bool: left, right hand's fingers fitted (else relaxed)

    def model_to_camera(self, frame: int = 0) -> np.ndarray:
        """4x4 model space -> OpenCV camera space."""
        m = np.eye(4)
        m[:3, :3] = self.global_rotation[frame]
        m[:3, 3] = self.root_translation[frame]
        return m

    def pose_feature(self, frame: int) -> np.ndarray:
        """SMPL's pose-corrective weights: (R - I) of joints 1..23, flattened (207,)."""
        return (quaternion_to_matrix(self.rotations[frame, 1:]) - np.eye(3)).ravel()


@dataclass
class Result:
    """A result file: what its people share (camera, topology, skeleton), and the people."""

    path: Path
    image_path: str
    width: int
    height: int
    K: np.ndarray
    faces: np.ndarray
    bone_names: list[str]
    bone_parents: np.ndarray
    skin_indices: np.ndarray
    skin_weights: np.ndarray
    body_model: str
    people: list[Person]
    fps: float = 0.0
    frame_indices: np.ndarray | None = None  # (N,) the source's frame numbers (a video's, a folder's positions)
    background_jpeg: bytes = b""  # the photo as JPEG where Blender cannot read its file (HEIC)
    up_axis: str = "Z"
    notes: list[str] = field(default_factory=list)
    smpl_v_template: np.ndarray | None = None  # SMPL: (V, 3) for the shape keys' basis
    smpl_shapedirs: np.ndarray | None = None  # (V, 3, 10)
    smpl_posedirs: np.ndarray | None = None  # (V, 3, 207)

    @property
    def frames(self) -> int:
        return len(self.people[0].rotations)

    def model_to_world(self) -> np.ndarray:
        """Blender is Z-up: a Y-up model (SMPL) is turned +90 degrees about X."""
        if self.up_axis == "Y":
            return np.array([[1.0, 0, 0, 0], [0, 0, -1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])
        return np.eye(4)

    def person_matrix_world(self, k: int) -> np.ndarray:
        """Person k's armature object in Blender's world, which is the first person's model space
        at the first frame (so Person 1 stands upright at the origin and the others where the
        camera saw them)."""
        ref = self.people[0].model_to_camera(0)
        return self.model_to_world() @ np.linalg.inv(ref) @ self.people[k].model_to_camera(0)

    def camera_matrix_world(self) -> np.ndarray:
        """Blender camera object's world matrix."""
        ref = self.people[0].model_to_camera(0)
        return self.model_to_world() @ np.linalg.inv(ref) @ CV_TO_BLENDER_CAMERA

    def lens(self, sensor_width: float = 36.0) -> tuple[float, float, float]:
        """(focal length mm, shift_x, shift_y) for a horizontal sensor fit of ``sensor_width`` mm."""
        fx, cx, cy = self.K[0, 0], self.K[0, 2], self.K[1, 2]
        size = max(self.width, self.height)
        # Blender shifts in units of the larger image side; y is up in Blender.
        shift_x = (self.width / 2 - cx) / size
        shift_y = (cy - self.height / 2) / size
        return float(fx / self.width * sensor_width), float(shift_x), float(shift_y)


def load_result(path: str | Path) -> Result:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise RunnerError("bad_result", f"{path.name} is not a Human Recon result file ({exc}).") from None
    version = int(data["schema_version"]) if "schema_version" in data else -1
    if version != SCHEMA_VERSION:
        raise RunnerError(
            "schema_mismatch",
            f"{path.name} has result schema {version}; this add-on reads {SCHEMA_VERSION}. "
            "Re-run the reconstruction with this version.",
        )
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise RunnerError("bad_result", f"{path.name} lacks {', '.join(missing)}; re-run the reconstruction.")
    count = int(data["person_count"])
    f64 = lambda key, k: data[key][k].astype(np.float64)  # noqa: E731
    people = []
    for k in range(count):
        n = len(data["bone_rotations"][k])
        present = data["frame_present"][k].astype(bool) if "frame_present" in data else np.ones(n, bool)
        people.append(Person(
            rest_vertices=f64("rest_vertices", k), heads=f64("bone_rest_heads", k), tails=f64("bone_rest_tails", k),
            rest_matrices=f64("bone_rest_matrices", k), rotations=f64("bone_rotations", k),
            global_rotation=f64("global_rotation", k), root_translation=f64("root_translation", k), present=present,
            betas=data["betas"][k] if "betas" in data else None,
            foot_contact=data["frame_foot_contact"][k].astype(bool) if "frame_foot_contact" in data else None,
            hands_fitted=data["frame_hands_fitted"][k].astype(bool) if "frame_hands_fitted" in data else None,
        ))  # fmt: skip
    w, h = (int(x) for x in data["image_size"])
    return Result(
        path=path,
        image_path=str(data["image_path"]),
        width=w,
        height=h,
        K=data["camera_K"].astype(np.float64),
        faces=data["faces"].astype(np.int32),
        bone_names=[str(b) for b in data["bone_names"]],
        bone_parents=data["bone_parents"].astype(np.int64),
        skin_indices=data["skin_indices"].astype(np.int64),
        skin_weights=data["skin_weights"].astype(np.float64),
        body_model=str(data.get("body_model", "anny")),
        people=people,
        fps=float(data["fps"]) if "fps" in data else 0.0,
        frame_indices=data["frame_indices"].astype(np.int64) if "frame_indices" in data else None,
        background_jpeg=data["background_jpeg"].astype(np.uint8).tobytes() if "background_jpeg" in data else b"",
        up_axis=str(data.get("model_up_axis", "Z")),
        notes=[str(n) for n in data.get("notes", [])],
        smpl_v_template=data.get("smpl_v_template"),
        smpl_shapedirs=data.get("smpl_shapedirs"),
        smpl_posedirs=data.get("smpl_posedirs"),
    )


# A clip's hand missing for at most this long (seconds) between two frames where it was fitted
# is filled in from them (the inference's ``SequenceOptions.hand_gap``); hands are searched at
# most 30 times a second, so a 60 fps clip has a frame filled in between every two searched.
HAND_GAP = 0.5


def hands_posed(fitted: np.ndarray, fps: float) -> np.ndarray:
    """(N,) bool: the frames whose hand is posed from a detection (``fitted`` (N,): fitted in
    that frame, of a clip at ``fps``), counting those filled in between two fitted frames."""
    gap = max(1, round(HAND_GAP * fps))  # frames, as the inference's ``hand_gap_frames``
    out = np.asarray(fitted, bool).copy()
    known = np.flatnonzero(out)
    for a, b in zip(known, known[1:]):
        if b - a <= gap + 1:
            out[a:b] = True
    return out


# A clip read from a folder: its frames are the folder's images in natural order (the
# inference's ``io.frames``); these are the ones Blender can also show. HEIC frames it cannot.
BLENDER_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
CLIP_ONLY_SUFFIXES = {".heic", ".heif", ".hif"}


def frame_files(folder: str) -> list[str] | None:
    """The paths of a clip folder's frames in the inference's order ('frame2' before 'frame10');
    None when it holds frames Blender cannot show."""
    names = [e.name for e in os.scandir(folder) if e.is_file()]
    if any(os.path.splitext(n)[1].lower() in CLIP_ONLY_SUFFIXES for n in names):
        return None
    key = lambda n: [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", n)]  # noqa: E731
    frames = sorted((n for n in names if os.path.splitext(n)[1].lower() in BLENDER_IMAGE_SUFFIXES), key=key)
    return [os.path.join(folder, n) for n in frames]


def file_number(path: str) -> int | None:
    """The last number in a file's name (Blender numbers an image sequence's frames by it)."""
    found = re.findall(r"\d+", os.path.splitext(os.path.basename(path))[0])
    return int(found[-1]) if found else None
