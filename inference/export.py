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


def addon_modules() -> tuple[ModuleType, ...]:
    """The add-on's ``result_io``, ``rig``, ``exporting`` and ``transfer``: beside this package in
    the source tree (addon/human_recon), or around it in the installed extension
    (human_recon/inference_pkg)."""
    for folder in (HERE.parent / "addon", HERE.parent.parent.parent):
        if (folder / "human_recon" / "rig.py").is_file():
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            return tuple(importlib.import_module(f"human_recon.{m}")
                         for m in ("result_io", "rig", "exporting", "transfer"))  # fmt: skip
    raise ReconError("internal", "The add-on's code was not found beside the inference package; reinstall it.")


def export(result_path: Path, dest: Path, fmt: str, rig_name: str | None, person: int | None,
           smpl_model: str | None = None, gender: str | None = None) -> dict:  # fmt: skip
    """Build the result's rigs in an empty Blender scene and write them; returns what was written.
    ``rig_name`` "smpl" on an Anny result: each person's motion is transferred onto an SMPL rig
    (the user's model file, mean shape) and that rig is written."""
    try:
        import bpy
    except ImportError:
        raise ReconError("missing_dependency", "export runs Blender as a Python module: pip install bpy==5.0.1 "
                         "(Python 3.11), or export from the add-on's panel in Blender.") from None  # fmt: skip
    result_io, rig, exporting, transfer = addon_modules()
    from human_recon.runner import RunnerError

    try:
        result = result_io.load_result(result_path)
    except RunnerError as exc:
        raise ReconError(exc.code, str(exc)) from None
    to_smpl = rig_name == "smpl" and result.body_model == "anny"
    if rig_name and rig_name != result.body_model and not to_smpl:
        raise ReconError("bad_argument", f"{result_path.name} holds {result.body_model} rigs; export them with "
                         f"--rig {result.body_model}, or reconstruct again with --body-model {rig_name}.")  # fmt: skip
    if to_smpl and not smpl_model:
        raise ReconError("bad_argument", "--rig smpl on an Anny result needs your SMPL model file: --smpl-model PATH.")
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
    arms = [p["armature"] for p in people]
    if to_smpl:
        arms = _onto_smpl(bpy, result_io, rig, transfer, result, arms, smpl_model, gender)
    try:
        exporting.export_rig(bpy.context, arms, dest, fmt)
    except exporting.ExportError as exc:
        raise ReconError("bad_argument", str(exc)) from None
    rig_written = "smpl" if to_smpl else result.body_model
    return {"people": len(arms), "frames": result.frames, "bones": len(arms[0].data.bones), "rig": rig_written}


def _onto_smpl(bpy, result_io, rig, transfer, result, anny_arms: list, smpl_model: str, gender: str | None) -> list:
    """One SMPL rig (mean shape, skinned mesh) per Anny armature, standing where that person
    stands, with the person's motion transferred onto it (feet planted); returns the SMPL rigs."""
    import numpy as np
    from mathutils import Matrix

    from .bodymodels.smpl import SMPLBody

    smpl = SMPLBody(model_file=smpl_model, gender=gender)
    rest = smpl.rest(smpl.default_shape())
    f64 = lambda t: t[0].numpy().astype(np.float64)  # noqa: E731
    n_bones = len(smpl.bone_names)
    person = result_io.Person(
        rest_vertices=f64(rest.vertices), heads=f64(rest.bone_heads), tails=f64(rest.bone_tails),
        rest_matrices=f64(rest.bone_poses), rotations=np.tile([1.0, 0, 0, 0], (1, n_bones, 1)),
        global_rotation=np.eye(3)[None], root_translation=np.zeros((1, 3)), present=np.ones(1, bool),
    )  # fmt: skip
    skin_idx, skin_w = smpl.skin()
    rest_result = result_io.Result(
        path=Path("smpl"), image_path="", width=result.width, height=result.height, K=result.K,
        faces=smpl.faces, bone_names=list(smpl.bone_names), bone_parents=smpl.bone_parents.astype(np.int64),
        skin_indices=skin_idx.astype(np.int64), skin_weights=skin_w.astype(np.float64), body_model="smpl",
        people=[person] * len(anny_arms), up_axis="Y",
    )  # fmt: skip
    for arm in anny_arms:  # the SMPL rigs take the names Person 1, 2, ...
        arm.name = f"Anny {arm.name}"
    smpl_arms = [p["armature"] for p in rig.build_scene(rest_result, bpy.context, name="SMPL")["people"]]
    y_up = Matrix(rest_result.model_to_world().tolist())
    pelvis = y_up @ Matrix.Translation(person.heads[0].tolist())
    for anny, target in zip(anny_arms, smpl_arms):
        # SMPL's pelvis on Anny's root joint, in that person's own placement and heading.
        root = anny.data.bones[0].head_local
        target.matrix_world = anny.matrix_world @ Matrix.Translation(root - pelvis.translation) @ y_up
        bpy.context.view_layer.update()
        transfer.transfer_motion(bpy.context, anny.name, target.name, preset="SMPL", plant_feet=True)
    return smpl_arms
