"""The animator's hand-off: "Transfer motion" onto another armature (with its bone map, which
can be filled from a preset, edited, saved and loaded), and "Export" as FBX, BVH or glTF."""

from __future__ import annotations

from pathlib import Path

import bpy

from . import bonemaps, exporting
from .transfer import TransferError, transfer_motion

PRESET_ITEMS = [("AUTO", "Auto", "Recognise the target's bone names (Mixamo, Rigify, UE5, SMPL, Anny)")] + [
    (key, label, f"{label} bone names") for key, label in bonemaps.PRESET_LABELS.items()
] + [("CUSTOM", "Panel's map", "The bone map edited in the panel (fill it from a preset, or load one)")]  # fmt: skip
FORMAT_ITEMS = [
    ("fbx", "FBX", "Unity, Unreal, Maya, MotionBuilder: Y up, no leaf bones, animation baked on every frame"),
    ("bvh", "BVH", "One skeleton's motion: Y up, where the person stands"),
    ("glb", "glTF (.glb)", "Web and game engines: skinned mesh and animation"),
]


class HumanReconBoneMapEntry(bpy.types.PropertyGroup):
    role: bpy.props.StringProperty(name="Role")
    bone: bpy.props.StringProperty(name="Bone", description="The target's bone for this role (empty: left out)")


def _props(context):
    return context.scene.human_recon


def panel_map(context) -> dict[str, str]:
    return {e.role: e.bone for e in _props(context).bone_map if e.bone}


def _set_panel_map(context, mapping: dict[str, str]) -> None:
    entries = _props(context).bone_map
    entries.clear()
    for role in bonemaps.ROLES:
        e = entries.add()
        e.role, e.bone = role, mapping.get(role, "")
    _props(context).transfer_preset = "CUSTOM"


class HUMAN_RECON_OT_transfer_motion(bpy.types.Operator):
    """Bake a Human Recon rig's pose or motion onto another armature (Mixamo, Rigify, UE5, SMPL, Anny or mapped)"""

    bl_idname = "human_recon.transfer_motion"
    bl_label = "Transfer motion"
    bl_options = {"REGISTER", "UNDO"}

    source: bpy.props.StringProperty(name="Source", description="The Human Recon armature (Person 1, ...)")
    target: bpy.props.StringProperty(name="Target", description="The armature that gets the motion")
    preset: bpy.props.EnumProperty(name="Bone map", items=PRESET_ITEMS, default="AUTO")
    map_file: bpy.props.StringProperty(name="Bone map file", description="A bone map saved as JSON (overrides "
                                       "the preset)", subtype="FILE_PATH", default="")  # fmt: skip
    plant_feet: bpy.props.BoolProperty(
        name="Plant feet",
        description="Keep feet that stand still in the source planted on the target (IK)",
        default=False,
    )

    def execute(self, context):
        try:
            custom = None
            if self.map_file:
                custom = bonemaps.load(bpy.path.abspath(self.map_file))
            elif self.preset == "CUSTOM":
                custom = panel_map(context)
                if not custom:
                    raise TransferError("The panel's bone map is empty; fill it from a preset or load a map.")
            report = transfer_motion(context, self.source, self.target, self.preset, custom, self.plant_feet)
        except (TransferError, bonemaps.BoneMapError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except Exception as exc:  # never a traceback; the target keeps the action it had
            self.report({"ERROR"}, f"Could not transfer the motion ({type(exc).__name__}: {exc}).")
            return {"CANCELLED"}
        self.report({"INFO"}, report.line(self.source, self.target))
        return {"FINISHED"}


class HUMAN_RECON_OT_fill_bone_map(bpy.types.Operator):
    """Fill the panel's bone map from the chosen preset (or the one that fits the target), to edit"""

    bl_idname = "human_recon.fill_bone_map"
    bl_label = "Fill from preset"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        p = _props(context)
        target = p.transfer_target
        if target is None or target.type != "ARMATURE":
            self.report({"ERROR"}, "Pick the target armature first.")
            return {"CANCELLED"}
        names = [b.name for b in target.data.bones]
        preset = p.transfer_preset
        if preset in ("AUTO", "CUSTOM"):
            preset, found = bonemaps.detect(names)
            if not preset:  # nothing fits: the best partial match, for the user to finish
                found = max((bonemaps.resolve(k, names) for k in bonemaps.PRESETS), key=len)
        else:
            found = bonemaps.resolve(preset, names)
        _set_panel_map(context, found)
        self.report({"INFO"}, f"{len(found)} of {len(bonemaps.ROLES)} roles mapped on {target.name}; "
                              "check the rest in the list.")  # fmt: skip
        return {"FINISHED"}


class HUMAN_RECON_OT_save_bone_map(bpy.types.Operator):
    """Save the panel's bone map as JSON"""

    bl_idname = "human_recon.save_bone_map"
    bl_label = "Save bone map"

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", default="bone_map.json")
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        mapping = panel_map(context)
        if not mapping:
            self.report({"ERROR"}, "The panel's bone map is empty; fill it from a preset first.")
            return {"CANCELLED"}
        path = Path(bpy.path.abspath(self.filepath)).with_suffix(".json")
        try:
            bonemaps.save(mapping, path)
        except OSError as exc:
            self.report({"ERROR"}, f"Could not write {path} ({exc.strerror}); choose another folder.")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Saved {len(mapping)} bones to {path}")
        return {"FINISHED"}


class HUMAN_RECON_OT_load_bone_map(bpy.types.Operator):
    """Load a bone map (JSON) into the panel"""

    bl_idname = "human_recon.load_bone_map"
    bl_label = "Load bone map"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", default="")
    filter_glob: bpy.props.StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            mapping = bonemaps.load(bpy.path.abspath(self.filepath))
        except bonemaps.BoneMapError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        _set_panel_map(context, mapping)
        self.report({"INFO"}, f"Loaded {len(mapping)} bones from {Path(self.filepath).name}")
        return {"FINISHED"}


class HUMAN_RECON_OT_export_motion(bpy.types.Operator):
    """Export the selected armatures (with their skinned meshes and motion) as FBX, BVH or glTF"""

    bl_idname = "human_recon.export_motion"
    bl_label = "Export"

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", default="")
    format: bpy.props.EnumProperty(name="Format", items=FORMAT_ITEMS, default="fbx")

    def _armatures(self, context) -> list:
        chosen = [o for o in context.selected_objects if o.type == "ARMATURE"]
        if not chosen and context.active_object is not None and context.active_object.type == "ARMATURE":
            chosen = [context.active_object]
        return chosen

    def invoke(self, context, event):
        self.format = _props(context).export_format
        arms = self._armatures(context)
        stem = arms[0].name if arms else "motion"
        self.filepath = str(Path(bpy.path.abspath("//") or Path.home()) / f"{stem}{exporting.FORMATS[self.format]}")
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def check(self, context):
        fixed = str(Path(self.filepath).with_suffix(exporting.FORMATS[self.format]))
        changed = fixed != self.filepath
        self.filepath = fixed
        return changed

    def execute(self, context):
        arms = self._armatures(context)
        try:
            path = exporting.export_rig(context, arms, bpy.path.abspath(self.filepath), self.format)
        except exporting.ExportError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except (OSError, RuntimeError) as exc:  # the exporter's own failure, or the folder's
            self.report({"ERROR"}, f"Could not export to {self.filepath} ({exc}).")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {', '.join(o.name for o in arms)} to {path}")
        return {"FINISHED"}


classes = (HumanReconBoneMapEntry, HUMAN_RECON_OT_transfer_motion, HUMAN_RECON_OT_fill_bone_map,
           HUMAN_RECON_OT_save_bone_map, HUMAN_RECON_OT_load_bone_map, HUMAN_RECON_OT_export_motion)  # fmt: skip
