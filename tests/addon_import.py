"""The add-on's modules imported from the source tree as ``human_recon`` (bpy must import first),
for tests that call them directly rather than through the installed extension's operators."""

import sys

from .conftest import ROOT

if str(ROOT / "addon") not in sys.path:
    sys.path.insert(0, str(ROOT / "addon"))

from human_recon import bonemaps, exporting, posefix, result_io, retarget, rig, transfer  # noqa: E402

__all__ = ["bonemaps", "exporting", "posefix", "result_io", "retarget", "rig", "transfer"]
