"""Frames of a clip: a folder of images (natural order) or a video file (OpenCV).

Frames are read one at a time, so memory does not grow with the clip's length.
A frame that cannot be read yields ``None`` (the sequence fills it in and
counts it) instead of stopping the clip.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ReconError
from ..lens import EQUIVALENT_MM, FocalLength
from .images import HEIF_SUFFIXES, VIDEO_SUFFIXES, exif_focal, jpeg_bytes, load_image, load_picture
from .quicktime import recorded_focal_mm

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"} | HEIF_SUFFIXES


def natural_key(name: str) -> list:
    """'frame2' sorts before 'frame10'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


@dataclass
class FrameSource:
    path: Path
    fps: float
    indices: list[int]  # source frame numbers that will be read
    files: list[Path] | None = None  # folder input
    skipped_files: list[str] | None = None  # non-image files in the folder
    # A HEIC folder's first frame as JPEG, kept when it is read (``background_jpeg``).
    _first_jpeg: np.ndarray | None = field(default=None, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.indices)

    def recorded_focal(self, width: int, height: int) -> FocalLength | None:
        """The focal length the clip records: a folder's first frame's EXIF (photos from one
        camera), a video's QuickTime metadata (iPhones'); None where there is none."""
        if self.files is not None:
            return exif_focal(self.files[self.indices[0]], width, height) if self.indices else None
        mm = recorded_focal_mm(self.path)
        if mm is None or not EQUIVALENT_MM[0] <= mm <= EQUIVALENT_MM[1]:
            return None
        return FocalLength(mm, "from the video's metadata")

    def background_jpeg(self) -> np.ndarray | None:
        """The first frame as JPEG bytes where Blender cannot show the frames themselves (a folder
        of HEIC photos), for the camera's background; None otherwise or if it cannot be read."""
        if not self._heic_first():
            return None
        if self._first_jpeg is not None:  # kept when the frames were read: not decoded twice
            return self._first_jpeg
        try:
            return jpeg_bytes(load_image(self.files[self.indices[0]]))
        except ReconError:
            return None

    def _heic_first(self) -> bool:
        return bool(self.files and self.indices and self.files[self.indices[0]].suffix.lower() in HEIF_SUFFIXES)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray | None, str]]:
        """(source index, RGB frame or None if unreadable, why it was unreadable)."""
        return ((i, rgb, why) for i, rgb, _, why in self.frames())

    def frames(self, max_side: int | None = None) -> Iterator[tuple[int, np.ndarray | None, tuple[int, int], str]]:
        """As ``__iter__``, with each frame's own size (width, height). ``max_side``: a large JPEG
        frame may come decoded smaller (``load_picture``), as a frame is worked on at
        ``io.images.WORK_SIDE`` anyway."""
        if self.files is not None:
            for i in self.indices:
                try:
                    rgb, size = load_picture(self.files[i], max_side)
                    if i == self.indices[0] and self._heic_first() and rgb.shape[:2] == size[::-1]:
                        self._first_jpeg = jpeg_bytes(rgb)
                    yield i, rgb, size, ""
                except ReconError as err:
                    yield i, None, (0, 0), err.message
            return
        import cv2

        cap = _open_video(self.path)
        try:
            wanted = set(self.indices)
            last = max(self.indices) if self.indices else -1
            pos = 0
            if self.indices and self.indices[0] > 0:
                cap.set(cv2.CAP_PROP_POS_FRAMES, self.indices[0])
                pos = self.indices[0]
            while pos <= last:
                ok, bgr = cap.read()
                if pos in wanted:
                    if ok and bgr is not None:
                        yield pos, np.ascontiguousarray(bgr[:, :, ::-1]), (bgr.shape[1], bgr.shape[0]), ""
                    else:
                        yield pos, None, (0, 0), f"frame {pos} of {self.path.name} could not be decoded"
                pos += 1
        finally:
            cap.release()


def _open_video(path: Path):
    """An OpenCV capture that turns frames upright as the video's rotation says: phones store a
    portrait video's frames sideways with a rotation to apply, which OpenCV's wheels ignore
    unless told (the person would lie on their side)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return cap


def open_frames(
    path: str | os.PathLike, start: int = 0, end: int | None = None, step: int = 1, fps: float | None = None
) -> FrameSource:
    """Open a folder of frames or a video; ``start``/``end`` (exclusive)/``step`` pick frames."""
    p = Path(path)
    if not p.exists():
        raise ReconError("not_found", f"{p} not found; pass a folder of frames or a video file.")
    if step < 1 or start < 0 or (end is not None and end <= start):
        raise ReconError("bad_argument", "Frame range must satisfy 0 <= start < end and step >= 1.")
    if p.is_dir():
        entries = sorted((e for e in p.iterdir() if e.is_file()), key=lambda e: natural_key(e.name))
        files = [e for e in entries if e.suffix.lower() in IMAGE_SUFFIXES]
        skipped = [e.name for e in entries if e.suffix.lower() not in IMAGE_SUFFIXES and not e.name.startswith(".")]
        if not files:
            raise ReconError("no_frames", f"{p} holds no image files (.jpg, .png, ...); pass a folder of frames.")
        indices = list(range(start, min(len(files), end if end is not None else len(files)), step))
        if not indices:
            raise ReconError("no_frames", f"The frame range is empty: {p} has {len(files)} frames.")
        return FrameSource(p, float(fps or 30.0), indices, files=files, skipped_files=skipped)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        raise ReconError("not_a_video", f"{p.name} is a photo: use Reconstruct from image (command line: "
                                        "reconstruct), or pass a folder of frames.")
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise ReconError("not_a_video", f"{p.name} is neither a folder of frames nor a video file (.mp4, .mov, ...).")
    if p.stat().st_size == 0:
        raise ReconError("empty_file", f"{p} is empty (0 bytes); pass a valid video file.")
    import cv2

    cap = _open_video(p)
    try:
        if not cap.isOpened():
            raise ReconError("corrupt_video", f"{p.name} could not be opened as a video; re-export it (H.264 MP4).")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        native_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        ok, _ = cap.read()
    finally:
        cap.release()
    if not ok or count <= 0:
        raise ReconError("corrupt_video", f"{p.name} has no decodable frames; re-export it (H.264 MP4).")
    indices = list(range(start, min(count, end if end is not None else count), step))
    if not indices:
        raise ReconError("no_frames", f"The frame range is empty: {p.name} has {count} frames.")
    return FrameSource(p, float(fps or native_fps or 30.0) / 1.0, indices)
