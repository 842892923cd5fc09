"""Body models behind one small protocol (see ``base.BodyModel``)."""

from __future__ import annotations

from .base import BodyModel, RestState

__all__ = ["BodyModel", "RestState", "load_body_model"]


def load_body_model(name: str = "anny", **options) -> BodyModel:
    """Create the named body model ("anny" or "smpl"). Imports its code only when chosen."""
    if name == "anny":
        from .anny import AnnyBody

        return AnnyBody(cache_dir=options.get("cache_dir"))
    if name == "smpl":
        from .smpl import SMPLBody  # imports smplx only now (non-commercial licence)

        return SMPLBody(model_file=options.get("smpl_model"), gender=options.get("gender"))
    from ..errors import ReconError

    raise ReconError("bad_argument", f"Unknown body model {name!r}; choose 'anny' or 'smpl'.")
