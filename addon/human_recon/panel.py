"""The "Human Recon" sidebar panel in the 3D Viewport."""


import bpy

from .operators import (
    BODY_MODEL_ITEMS,
    PEOPLE_ITEMS,
    QUALITY_ITEMS,
    TRACK_MODEL_ITEMS,
    HUMAN_RECON_OT_import_result,
    HUMAN_RECON_OT_import_sequence,
    HUMAN_RECON_OT_reconstruct_image,
)


class HumanReconSceneProps(bpy.types.PropertyGroup):
    image_path: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH", default="")
    clip_path: bpy.props.StringProperty(
        name="Clip", description="Video file or folder of frames", subtype="FILE_PATH", default=""
    )
    body_model: bpy.props.EnumProperty(name="Body model", items=BODY_MODEL_ITEMS, default="anny")
    quality: bpy.props.EnumProperty(name="Quality", items=QUALITY_ITEMS, default="balanced")
    people: bpy.props.EnumProperty(name="People", items=PEOPLE_ITEMS, default="all")
    people_count: bpy.props.IntProperty(name="Up to", description="How many people", default=2, min=1, max=8)
    track_model: bpy.props.EnumProperty(name="Follow", items=TRACK_MODEL_ITEMS, default="full")
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


classes = (HumanReconSceneProps, VIEW3D_PT_human_recon)
