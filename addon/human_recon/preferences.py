"""Add-on preferences: which Python runs inference, and setting that environment up."""


from pathlib import Path

import bpy

from . import runner

ADDON_ID = __package__


def prefs(context=None):
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon else None


def venv_dir() -> str:
    """Where 'Set up environment' puts the inference environment (the extension's user folder)."""
    try:
        return bpy.utils.extension_path_user(ADDON_ID, path="venv", create=False)
    except (ValueError, AttributeError):  # not installed as an extension (legacy add-on path)
        return str(Path(bpy.utils.user_resource("DATAFILES", path="human_recon")) / "venv")


def resolve_python(context=None) -> str:
    p = prefs(context)
    return runner.find_python(p.python_path if p else "", venv_dir())


class HUMAN_RECON_OT_setup_environment(bpy.types.Operator):
    """Create a Python environment with the packages inference needs (about 8 GB, a few minutes)"""

    bl_idname = "human_recon.setup_environment"
    bl_label = "Set up environment"

    def execute(self, context):
        req = runner.PACKAGE_DIR / "requirements.txt"
        if not req.is_file():
            self.report({"ERROR"}, f"{req} is missing; reinstall the add-on.")
            return {"CANCELLED"}
        try:
            py = runner.setup_environment(venv_dir(), req)
        except runner.RunnerError as err:
            self.report({"ERROR"}, err.message)
            return {"CANCELLED"}
        p = prefs(context)
        if p is not None:
            p.python_path = py
        self.report({"INFO"}, f"Inference environment ready: {py}")
        return {"FINISHED"}


class HumanReconPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    python_path: bpy.props.StringProperty(
        name="Python interpreter",
        description="Python 3.11 with torch, mediapipe and anny; empty: the environment set up below",
        subtype="FILE_PATH",
        default="",
    )
    cache_dir: bpy.props.StringProperty(
        name="Model cache",
        description="Folder for the body-model cache (empty: ~/.cache/human_recon)",
        subtype="DIR_PATH",
        default="",
    )

    smpl_model: bpy.props.StringProperty(
        name="SMPL model file",
        description="Your SMPL model (.pkl or .npz from smpl.is.tue.mpg.de); needed only for the SMPL body model",
        subtype="FILE_PATH",
        default="",
    )

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "python_path")
        layout.prop(self, "cache_dir")
        layout.prop(self, "smpl_model")
        if not self.smpl_model:
            layout.label(text="SMPL is optional: register at smpl.is.tue.mpg.de to download the model file.")
        try:
            layout.label(text=f"Using: {resolve_python(context)}", icon="CHECKMARK")
        except runner.RunnerError as err:
            layout.label(text=err.message, icon="ERROR")
        layout.operator(HUMAN_RECON_OT_setup_environment.bl_idname, icon="CONSOLE")


classes = (HUMAN_RECON_OT_setup_environment, HumanReconPreferences)
