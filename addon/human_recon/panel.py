"""The "Human Recon" sidebar panel in the 3D Viewport."""

import bpy

from .handoff import (
    FORMAT_ITEMS,
    PRESET_ITEMS,
    HUMAN_RECON_OT_export_motion,
    HUMAN_RECON_OT_fill_bone_map,
    HUMAN_RECON_OT_load_bone_map,
    HUMAN_RECON_OT_save_bone_map,
    HUMAN_RECON_OT_transfer_motion,
    HumanReconBoneMapEntry,
)
from .operators import (
    BODY_MODEL_ITEMS,
    PEOPLE_ITEMS,
    QUALITY_ITEMS,
    TRACK_MODEL_ITEMS,
    HUMAN_RECON_OT_import_result,
    HUMAN_RECON_OT_import_sequence,
    HUMAN_RECON_OT_reconstruct_image,
    focal_mm_prop,
    hands_prop,
    height_prop,
    lens_auto_prop,
    warm_up,
)
from .posefix import HUMAN_RECON_OT_flip_depth, over_range_prop


def _is_armature(_self, obj) -> bool:
    return obj.type == "ARMATURE"


class HumanReconSceneProps(bpy.types.PropertyGroup):
    image_path: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH", default="", update=warm_up)
    clip_path: bpy.props.StringProperty(
        name="Clip", description="Video file or folder of frames", subtype="FILE_PATH", default="", update=warm_up
    )
    body_model: bpy.props.EnumProperty(name="Body model", items=BODY_MODEL_ITEMS, default="anny", update=warm_up)
    quality: bpy.props.EnumProperty(name="Quality", items=QUALITY_ITEMS, default="balanced", update=warm_up)
    people: bpy.props.EnumProperty(name="People", items=PEOPLE_ITEMS, default="all")
    people_count: bpy.props.IntProperty(name="Up to", description="How many people", default=2, min=1, max=8)
    track_model: bpy.props.EnumProperty(name="Follow", items=TRACK_MODEL_ITEMS, default="heavy")
    height: height_prop()
    lens_auto: lens_auto_prop()
    focal_mm: focal_mm_prop()
    hands: hands_prop(update=warm_up)
    transfer_source: bpy.props.PointerProperty(
        name="Source", type=bpy.types.Object, poll=_is_armature, description="The Human Recon rig (Person 1, ...)"
    )
    transfer_target: bpy.props.PointerProperty(
        name="Target", type=bpy.types.Object, poll=_is_armature, description="Your character's armature"
    )
    transfer_preset: bpy.props.EnumProperty(name="Bone map", items=PRESET_ITEMS, default="AUTO")
    plant_feet: bpy.props.BoolProperty(name="Plant feet", description="Keep planted feet planted (IK)", default=True)
    bone_map: bpy.props.CollectionProperty(type=HumanReconBoneMapEntry)
    show_map: bpy.props.BoolProperty(name="Edit bone map", default=False)
    export_format: bpy.props.EnumProperty(name="Format", items=FORMAT_ITEMS, default="fbx")
    flip_range: over_range_prop()
    running: bpy.props.BoolProperty(default=False, options={"SKIP_SAVE"})
    progress: bpy.props.FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR", options={"SKIP_SAVE"})


class VIEW3D_PT_human_recon(bpy.types.Panel):
    bl_label = "Human Recon"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Human Recon"

    def draw(self, context):
        props = context.scene.human_recon
        layout = self.layout
        layout.prop(props, "image_path")
        layout.prop(props, "body_model")
        layout.prop(props, "quality")
        row = layout.row()
        row.prop(props, "people")
        if props.people == "count":
            row.prop(props, "people_count")
        layout.prop(props, "height")
        row = layout.row()
        row.prop(props, "lens_auto")
        if not props.lens_auto:
            row.prop(props, "focal_mm")
        layout.prop(props, "hands")
        if props.running:
            layout.progress(factor=props.progress, text="Reconstructing... (Esc cancels)")
        else:
            op = layout.operator(HUMAN_RECON_OT_reconstruct_image.bl_idname, icon="ARMATURE_DATA")
            op.filepath = props.image_path
            layout.separator()
            layout.prop(props, "clip_path")
            layout.prop(props, "track_model", expand=True)
            op = layout.operator(HUMAN_RECON_OT_import_sequence.bl_idname, icon="ANIM")
            op.filepath = props.clip_path
            layout.separator()
            layout.operator(HUMAN_RECON_OT_import_result.bl_idname, icon="IMPORT")


class _SubPanel:
    """What the main panel's folded sub-panels share."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Human Recon"
    bl_parent_id = "VIEW3D_PT_human_recon"
    bl_options = {"DEFAULT_CLOSED"}


class VIEW3D_PT_human_recon_fix(_SubPanel, bpy.types.Panel):
    bl_label = "Fix pose"

    def draw(self, context):
        obj = context.object
        bone = obj.data.bones.active if obj is not None and obj.type == "ARMATURE" else None
        col = self.layout.column()
        col.label(text=f"Bone: {bone.name}" if bone is not None else "Select an arm or leg bone (Pose Mode)")
        animated = bone is not None and obj.animation_data is not None and obj.animation_data.action is not None
        if animated:
            col.prop(context.scene.human_recon, "flip_range")
        row = col.row()
        row.enabled = bone is not None
        op = row.operator(HUMAN_RECON_OT_flip_depth.bl_idname, icon="MOD_MIRROR")
        op.over_range = animated and context.scene.human_recon.flip_range


class VIEW3D_PT_human_recon_transfer(_SubPanel, bpy.types.Panel):
    bl_label = "Transfer motion"

    def draw(self, context):
        props = context.scene.human_recon
        layout = self.layout
        layout.prop(props, "transfer_source")
        layout.prop(props, "transfer_target")
        layout.prop(props, "transfer_preset")
        layout.prop(props, "plant_feet")
        row = layout.row()
        row.enabled = props.transfer_source is not None and props.transfer_target is not None
        op = row.operator(HUMAN_RECON_OT_transfer_motion.bl_idname, icon="ARMATURE_DATA")
        op.source = props.transfer_source.name if props.transfer_source else ""
        op.target = props.transfer_target.name if props.transfer_target else ""
        op.preset, op.plant_feet = props.transfer_preset, props.plant_feet
        layout.prop(props, "show_map", icon="TRIA_DOWN" if props.show_map else "TRIA_RIGHT", emboss=False)
        if not props.show_map:
            return
        row = layout.row(align=True)
        row.operator(HUMAN_RECON_OT_fill_bone_map.bl_idname, icon="FILE_REFRESH")
        row.operator(HUMAN_RECON_OT_load_bone_map.bl_idname, text="", icon="FILEBROWSER")
        row.operator(HUMAN_RECON_OT_save_bone_map.bl_idname, text="", icon="FILE_TICK")
        target = props.transfer_target
        col = layout.column(align=True)
        for entry in props.bone_map:
            if target is not None and target.type == "ARMATURE":
                col.prop_search(entry, "bone", target.data, "bones", text=entry.role)
            else:
                col.prop(entry, "bone", text=entry.role)


class VIEW3D_PT_human_recon_export(_SubPanel, bpy.types.Panel):
    bl_label = "Export"

    def draw(self, context):
        props = context.scene.human_recon
        self.layout.prop(props, "export_format")
        op = self.layout.operator(HUMAN_RECON_OT_export_motion.bl_idname, text="Export selected rig", icon="EXPORT")
        op.format = props.export_format


classes = (HumanReconSceneProps, VIEW3D_PT_human_recon, VIEW3D_PT_human_recon_fix, VIEW3D_PT_human_recon_transfer,
           VIEW3D_PT_human_recon_export)  # fmt: skip
