"""Human Recon inference: photo -> detect -> regress -> fit -> rigged body result.

Python API::

    import inference
    result = inference.reconstruct_image("photo.jpg")
    result.save("photo.npz")

The Blender add-on runs this package in a separate interpreter
(``python -m inference ...``); it never imports bpy.
"""

from __future__ import annotations

__version__ = "0.4.15"

from .errors import ReconError
from .io.result import DEFAULT_HEIGHT_M, SCHEMA_VERSION, PersonResult, ReconResult

__all__ = ["PersonResult", "ReconError", "ReconResult", "SCHEMA_VERSION", "reconstruct_image", "__version__"]

_reconstructors: dict = {}


def reconstruct_image(path, *, body_model: str = "anny", quality: str = "balanced", focal_px=None,
                      cache_dir=None, smpl_model=None, gender=None, progress=None, people="all",
                      height=DEFAULT_HEIGHT_M, focal_mm=None) -> ReconResult:
    """Reconstruct the people in the photo at ``path`` (``people``: "all", "largest" or a count;
    ``height``: their standing height in metres, None for the fit's own size; the focal length:
    ``focal_px`` pixels or ``focal_mm`` as a 35 mm equivalent, by default the photo's EXIF one,
    else a guess); models stay warm between calls.

    ``body_model="smpl"`` needs ``smpl_model``, the path of your SMPL model file."""
    from .pipeline import Reconstructor

    key = (body_model, quality, str(cache_dir), str(smpl_model), gender)
    if key not in _reconstructors:
        _reconstructors[key] = Reconstructor(
            body_model=body_model, quality=quality, cache_dir=cache_dir, smpl_model=smpl_model, gender=gender
        )
    return _reconstructors[key].reconstruct(path, focal_px=focal_px, progress=progress, people=people, height=height,
                                            focal_mm=focal_mm)  # fmt: skip
