"""``python -m inference export``: a result's rigs to FBX, BVH or glTF through Blender.

Blender runs in this process as a Python module (``bpy``); the add-on's own code builds the
rigs exactly as "Import result" does and writes them with Blender's exporters, so the file
matches what an artist gets in Blender.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from .errors import ReconError

HERE = Path(__file__).resolve().parent


def addon_modules() -> tuple[ModuleType, ModuleType, ModuleType]:
    """The add-on's ``result_io``, ``rig`` and ``exporting``: beside this package in the source
    tree (addon/human_recon), or around it in the installed extension (human_recon/inference_pkg)."""
    for folder in (HERE.parent / "addon", HERE.parent.parent.parent):
        if (folder / "human_recon" / "rig.py").is_file():
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            mods = [importlib.import_module(f"human_recon.{m}") for m in ("result_io", "rig", "exporting")]
            return mods[0], mods[1], mods[2]
    raise ReconError("internal", "The add-on's code was not found beside the inference package; reinstall it.")


def export(result_path: Path, dest: Path, fmt: str, rig_name: str | None, person: int | None) -> dict:
    """Build the result's rigs in an empty Blender scene and write them; returns what was written."""
    try:
        import bpy
    except ImportError:
        raise ReconError("missing_dependency", "export runs Blender as a Python module: pip install bpy==5.0.1 "
                         "(Python 3.11), or export from the add-on's panel in Blender.") from None  # fmt: skip
    result_io, rig, exporting = addon_modules()
    from human_recon.runner import RunnerError

    try:
        result = result_io.load_result(result_path)
    except RunnerError as exc:
        raise ReconError(exc.code, str(exc)) from None
    if rig_name and rig_name != result.body_model:
        raise ReconError("bad_argument", f"{result_path.name} holds {result.body_model} rigs; export them with "
                         f"--rig {result.body_model}, or reconstruct again with --body-model {rig_name}.")  # fmt: skip
    count = len(result.people)
    if person is not None and not 1 <= person <= count:
        held = f"{count} person" if count == 1 else f"{count} people"
        raise ReconError("bad_argument", f"--person {person}: {result_path.name} holds {held}.")
    if fmt == "bvh" and person is None and count > 1:
        raise ReconError("bad_argument", f"A BVH file holds one skeleton and {result_path.name} holds {count} "
                         "people; choose one with --person N.")  # fmt: skip
    bpy.ops.wm.read_factory_settings(use_empty=True)
    built = rig.build_scene(result, bpy.context, pose_correctives=False)
    people = built["people"] if person is None else [built["people"][person - 1]]
    try:
        exporting.export_rig(bpy.context, [p["armature"] for p in people], dest, fmt)
    except exporting.ExportError as exc:
        raise ReconError("bad_argument", str(exc)) from None
    return {"people": len(people), "frames": result.frames, "bones": len(result.bone_names)}
