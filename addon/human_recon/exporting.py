"""Export rigs with Blender's own exporters (FBX, BVH, glTF), with settings that import
cleanly into Unity and Unreal: metres written as the engines expect, Y up, no leaf bones,
the animation baked on every frame. The file appears whole or not at all."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import bpy

from .rig import evaluating_only

FORMATS = {"fbx": ".fbx", "bvh": ".bvh", "glb": ".glb"}


class ExportError(ValueError):
    """An export that cannot be made; the message says what to do."""


def _frame_range(scene, armatures) -> tuple[int, int]:
    ranges = [o.animation_data.action.frame_range for o in armatures
              if o.animation_data is not None and o.animation_data.action is not None]  # fmt: skip
    if not ranges:
        return scene.frame_current, scene.frame_current
    return int(min(r[0] for r in ranges)), int(max(r[1] for r in ranges))


# Blender's world (Z up, facing -Y) to BVH's usual axes (Y up, facing +Z): (x, y, z) -> (x, z, -y).
_Y_UP = ((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0), (0.0, -1.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))


def _export_bvh(context, arm, path: Path, start: int, end: int) -> None:
    """Blender's BVH exporter writes armature space and ignores the object's placement; a
    temporary copy whose bones carry that placement, turned Y up, gives a BVH where the person
    stands where they stand in the scene, in BVH's usual axes (scale stays on the object)."""
    from mathutils import Matrix

    loc, rot, _ = arm.matrix_world.decompose()
    to_bvh = Matrix(_Y_UP) @ Matrix.Translation(loc) @ rot.to_matrix().to_4x4()
    data = arm.data.copy()
    tmp = arm.copy()
    tmp.data = data
    context.scene.collection.objects.link(tmp)
    view_layer = context.view_layer
    try:
        data.transform(to_bvh)  # rigid: each bone's own frame turns with it, so its keys still hold
        for o in view_layer.objects:
            o.select_set(o == tmp)
        view_layer.objects.active = tmp
        bpy.ops.export_anim.bvh(filepath=str(path), frame_start=start, frame_end=end, global_scale=1.0,
                                rotate_mode="NATIVE", root_transform_only=False)  # fmt: skip
    finally:
        bpy.data.objects.remove(tmp)
        bpy.data.armatures.remove(data)


def export_rig(context, armatures: list, path: str | Path, fmt: str) -> Path:
    """Write ``armatures`` (with the meshes they deform) to ``path`` as ``fmt`` (fbx, bvh, glb)."""
    path = Path(path)
    if fmt not in FORMATS:
        raise ExportError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    if path.suffix.lower() != FORMATS[fmt]:
        raise ExportError(f"A {fmt.upper()} file must end in {FORMATS[fmt]} (got {path.name}).")
    if not armatures or any(o.type != "ARMATURE" for o in armatures):
        raise ExportError("Select the armatures to export: a Human Recon rig (Person 1, ...) or your character.")
    if fmt == "bvh" and len(armatures) != 1:
        raise ExportError(f"A BVH file holds one skeleton; choose one of the {len(armatures)} people.")
    if not path.parent.is_dir():
        raise ExportError(f"Folder {path.parent} does not exist; create it first.")
    scene = context.scene
    start, end = _frame_range(scene, armatures)
    view_layer = context.view_layer
    keep = (
        [o for o in view_layer.objects if o.select_get()],
        view_layer.objects.active,
        (scene.frame_start, scene.frame_end, scene.frame_current),
    )
    meshes = [c for o in armatures for c in o.children if c.type == "MESH"]
    # Written next to the destination first, then moved over it: never a half-written file.
    tmp = Path(tempfile.mkdtemp(prefix=".human_recon_", dir=path.parent))
    try:
        for o in view_layer.objects:
            o.select_set(False)
        for o in armatures + ([] if fmt == "bvh" else meshes):
            o.select_set(True)
        view_layer.objects.active = armatures[0]
        part = tmp / path.name
        # What is not exported (nor looked at by the rigs' constraints) is not evaluated meanwhile.
        with evaluating_only(view_layer, armatures + meshes):
            if fmt == "fbx":
                scene.frame_start, scene.frame_end = start, end
                bpy.ops.export_scene.fbx(
                    filepath=str(part), use_selection=True, object_types={"ARMATURE", "MESH"},
                    apply_unit_scale=True, apply_scale_options="FBX_SCALE_ALL", axis_forward="-Z", axis_up="Y",
                    add_leaf_bones=False, primary_bone_axis="Y", secondary_bone_axis="X", armature_nodetype="NULL",
                    use_armature_deform_only=False, mesh_smooth_type="FACE", bake_anim=True,
                    bake_anim_use_all_bones=True, bake_anim_use_nla_strips=False, bake_anim_use_all_actions=False,
                    bake_anim_force_startend_keying=True, bake_anim_step=1.0, bake_anim_simplify_factor=0.0,
                )  # fmt: skip
            elif fmt == "bvh":
                _export_bvh(context, armatures[0], part, start, end)
            else:
                # The assigned actions only: by default the exporter also tries every other action in
                # the file on these rigs (earlier transfers, other people's), which is slow and wrong.
                bpy.ops.export_scene.gltf(filepath=str(part), export_format="GLB", use_selection=True,
                                          export_animations=True, export_animation_mode="ACTIVE_ACTIONS",
                                          export_force_sampling=True)  # fmt: skip
        if not part.is_file():
            raise ExportError(f"Blender's {fmt.upper()} exporter wrote nothing; see the system console.")
        os.replace(part, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for o in view_layer.objects:
            o.select_set(o in keep[0])
        view_layer.objects.active = keep[1]
        scene.frame_start, scene.frame_end = keep[2][:2]
        scene.frame_set(keep[2][2])
    return path
