"""Safe loading of user-supplied photos.

Everything a user can throw at the tool (missing paths, folders, empty or
truncated files, text named .jpg, decompression bombs, odd pixel formats,
EXIF-rotated phone photos) is turned into an RGB uint8 array or a
``ReconError`` that says what to do.
"""

from __future__ import annotations

import functools
import io
import math
import os
import warnings
from pathlib import Path
from struct import error as struct_error

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ReconError
from ..lens import EQUIVALENT_MM, FocalLength

# Larger images are refused before decoding (a 60 MP photo is ~180 MB of RGB).
MAX_PIXELS = 60_000_000
MIN_SIDE = 32
# Pictures are worked on at most this large (longer side, pixels), and results given in the
# picture's own pixels: MediaPipe sees a person through a 256-px crop and gives their mask at
# 256 px, so more pixels cost time and memory and add nothing. A 12-megapixel phone photo
# (3024 x 4032) took 1.18 s warm whole against 0.65 s so (docs/research-log.md).
WORK_SIDE = 1920
# A JPEG is decoded straight to the smallest of its 1/2, 1/4 and 1/8 sizes that keeps this share of
# WORK_SIDE, and worked on at that size if it is smaller: a 10.7-megapixel photo (3024 x 3550) took
# 88 ms to decode whole and 24 more to resample, against 25 ms halved (1512 x 1775).
DRAFT_SHARE = 0.75
SAME_ASPECT = 0.01  # the recorded and the actual picture's aspect ratios agree this closely unless it was cropped
_EXIF_IFD, _FOCAL_35MM, _PIXEL_X, _PIXEL_Y = 0x8769, 0xA405, 0xA002, 0xA003
_FOCAL_MM, _PLANE_X_RES, _PLANE_UNIT = 0x920A, 0xA20E, 0xA210
_PLANE_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # FocalPlaneResolutionUnit: inch, cm, mm, micrometre


def check_input_file(path: str | os.PathLike) -> Path:
    """Validate that ``path`` names a non-empty regular file we can read."""
    p = Path(path)
    if not p.exists():
        raise ReconError("not_found", f"File not found: {p}. Check the path and try again.")
    if p.is_dir():
        raise ReconError("not_a_file", f"{p} is a folder; pass an image file.")
    if not p.is_file():
        raise ReconError("not_a_file", f"{p} is not a regular file; pass an image file.")
    if p.stat().st_size == 0:
        raise ReconError("empty_file", f"{p} is empty (0 bytes); pass a valid image file.")
    if not os.access(p, os.R_OK):
        raise ReconError("not_readable", f"{p} cannot be read; check its permissions.")
    return p


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Convert any PIL mode to an RGB uint8 array (16-bit scaled, alpha dropped)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(img, dtype=np.float64)
        hi = a.max() if a.size else 0.0
        scale = 255.0 / (65535.0 if hi > 255 else 255.0)
        a = np.clip(a * scale, 0, 255).astype(np.uint8)
        return np.repeat(a[:, :, None], 3, axis=2)
    if img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        return np.repeat(a.astype(np.uint8)[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on mid-grey: a transparent background should read as "not the person".
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        return np.asarray(Image.alpha_composite(bg, rgba).convert("RGB"))
    return np.asarray(img.convert("RGB"))


HEIF_SUFFIXES = {".heic", ".heif", ".hif"}  # iPhones' (and many Android phones') photo format
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".gif"}


@functools.cache
def reads_heif() -> bool:
    """Whether Pillow reads HEIC/HEIF photos here: pillow-heif (in the requirements) teaches it,
    once per process; an environment made before it was added cannot."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Load a photo as an HxWx3 uint8 RGB array, honouring EXIF orientation (JPEG, PNG, HEIC, ...)."""
    return load_picture(path)[0]


def load_picture(path: str | os.PathLike, max_side: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """``load_image``, and the photo's own size (width, height, upright). ``max_side``: a JPEG
    larger than this on its longer side may come smaller, at least ``DRAFT_SHARE`` of it (decoded
    at 1/2, 1/4 or 1/8 of its size, several times faster than whole)."""
    p = check_input_file(path)
    if not reads_heif() and p.suffix.lower() in HEIF_SUFFIXES:
        raise ReconError(
            "not_an_image",
            f"{p.name} is a HEIC photo, which this environment cannot read; update it (the add-on's Update "
            "environment; pip install -r requirements.txt) or export the photo as JPEG.",
        )
    try:
        with warnings.catch_warnings():
            # PIL warns (not raises) between MAX_IMAGE_PIXELS and 2x that: make it an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ReconError(
                        "image_too_large",
                        f"{p.name} is {w}x{h} pixels, more than the {MAX_PIXELS // 1_000_000} MP "
                        "limit; downscale it and try again.",
                    )
                if max_side and img.format == "JPEG" and max(w, h) > max_side:
                    scale = max_side / max(w, h)
                    img.draft(None, (math.ceil(w * scale * DRAFT_SHARE), math.ceil(h * scale * DRAFT_SHARE)))
                img.load()
                stored = img.size
                img = ImageOps.exif_transpose(img)
                rgb = _to_rgb_array(img)
                own = (h, w) if img.size != stored else (w, h)  # turned a quarter: the sides swap
    except ReconError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ReconError(
            "image_too_large",
            f"{p.name} declares a size too large to decode safely; downscale it and try again.",
        ) from None
    except UnidentifiedImageError:
        if p.suffix.lower() in VIDEO_SUFFIXES:
            raise ReconError(
                "not_an_image",
                f"{p.name} is a video: use Import sequence (command line: sequence).",
            ) from None
        raise ReconError(
            "not_an_image",
            f"{p.name} is not an image file Pillow can read; pass a JPEG, PNG or HEIC photo.",
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ReconError(
            "corrupt_image",
            f"{p.name} could not be decoded ({exc}); the file may be truncated. Re-export it.",
        ) from None
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ReconError(
            "image_too_small",
            f"{p.name} is only {w}x{h} pixels; use a photo at least {MIN_SIDE} pixels on each side.",
        )
    return np.ascontiguousarray(rgb), own


def working_size(width: int, height: int, side: int = WORK_SIDE) -> tuple[int, int]:
    """The size a ``width`` x ``height`` picture is worked on at: at most ``side`` on its longer side."""
    scale = side / max(width, height)
    if scale >= 1.0:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def working_copy(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb``, a ``width`` x ``height`` picture (perhaps decoded smaller already: ``load_picture``),
    at the size it is worked on: ``working_size``, or as it came if smaller."""
    size = working_size(width, height)
    if rgb.shape[1] < size[0]:
        size = (rgb.shape[1], rgb.shape[0])
    return resampled(rgb, size)


def resampled(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` at ``size`` (width, height), area-averaged (no aliasing); itself if it is that size."""
    if (rgb.shape[1], rgb.shape[0]) == tuple(size):
        return rgb
    import cv2

    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> np.ndarray:
    """An RGB uint8 picture as the bytes of a JPEG file (uint8 array)."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return np.frombuffer(buf.getvalue(), np.uint8).copy()


def exif_focal(path: str | os.PathLike, width: int, height: int) -> FocalLength | None:
    """The focal length the photo's EXIF records, for its ``width`` x ``height`` picture as
    loaded: its 35 mm equivalent (most phones and cameras write it), else the lens's focal length
    over the sensor's pixel pitch (``FocalPlaneXResolution``: Canon's cameras, among others, write
    only these). None when it records neither, an implausible value, or the picture was cropped
    since (its aspect ratio is not the recorded one's: the equivalent then describes a larger
    frame). Resizing keeps it true. A photo without EXIF, or one Pillow cannot parse, gives
    None: the caller's default stands."""
    reads_heif()
    try:
        with Image.open(path) as img:
            exif = img.getexif().get_ifd(_EXIF_IFD)
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, struct_error):
        return None
    recorded = exif.get(_PIXEL_X), exif.get(_PIXEL_Y)
    known_size = all(isinstance(v, int) and v > 0 for v in recorded)
    if known_size:
        # The recorded size is the stored pixels'; an EXIF-rotated photo is loaded turned.
        aspect = max(recorded) / min(recorded)
        if abs(aspect / (max(width, height) / min(width, height)) - 1) > SAME_ASPECT:
            return None
    mm = exif.get(_FOCAL_35MM)
    if not (isinstance(mm, int) and mm > 0) and known_size:
        mm = _equivalent_from_sensor(exif, max(width, height) / max(recorded), width, height)
    if not isinstance(mm, (int, float)) or not EQUIVALENT_MM[0] <= mm <= EQUIVALENT_MM[1]:
        return None
    return FocalLength(float(mm), "from the photo's EXIF")


def _equivalent_from_sensor(exif, scale: float, width: int, height: int) -> float | None:
    """The 35 mm equivalent of the lens's focal length (mm) on a sensor of the recorded pixel
    pitch (pixels per unit at the recorded size), in a picture ``scale`` x that size; None where
    EXIF lacks any of them."""
    try:
        focal_mm = float(exif.get(_FOCAL_MM, 0))
        per_mm = float(exif.get(_PLANE_X_RES, 0)) / _PLANE_UNIT_MM[int(exif.get(_PLANE_UNIT, 2))]
    except (TypeError, ValueError, ZeroDivisionError, KeyError):
        return None
    if not (focal_mm > 0 and per_mm > 0):
        return None
    return round(FocalLength.from_px(focal_mm * per_mm * scale, width, height).equivalent_mm, 1)
