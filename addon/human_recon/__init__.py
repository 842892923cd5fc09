"""Human Recon: photo of a person to a rigged, posed 3D body (Blender 4.2+ extension).

The add-on is pure Python: inference runs in a separate interpreter (see runner.py).
"""

from __future__ import annotations

import bpy

from . import handoff, operators, panel, posefix, preferences, runner

_classes = preferences.classes + operators.classes + handoff.classes + posefix.classes + panel.classes


def register() -> None:
    for cls in _classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.human_recon = bpy.props.PointerProperty(type=panel.HumanReconSceneProps)


def unregister() -> None:
    runner.stop_worker()  # its models' memory goes with the add-on
    del bpy.types.Scene.human_recon
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
