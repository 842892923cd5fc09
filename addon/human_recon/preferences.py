"""Add-on preferences: which Python runs inference, and setting that environment up."""


from pathlib import Path

import bpy

from . import runner
from .modal import TimerModal

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


def requirements_file() -> Path:
    return runner.PACKAGE_DIR / "requirements.txt"


class HUMAN_RECON_OT_setup_environment(TimerModal, bpy.types.Operator):
    """Make a Python environment with the packages inference needs, from Blender's own Python
    (about 9 GB, a few minutes; Esc cancels)"""

    bl_idname = "human_recon.setup_environment"
    bl_label = "Set up environment"

    _run: runner.SetupRun | None = None

    def _start(self) -> runner.SetupRun | None:
        runner.stop_worker()  # it runs from the environment about to be made again
        try:
            return runner.SetupRun(venv_dir(), requirements_file())
        except runner.RunnerError as err:
            self.report({"ERROR"}, err.message)
            return None

    def _finish(self, context, run: runner.SetupRun) -> set[str]:
        p = prefs(context)
        if p is not None:
            p.setup_status = ""
        if run.error is not None:
            self.report({"WARNING"} if run.error.code == "cancelled" else {"ERROR"}, run.error.message)
            return {"CANCELLED"}
        if p is not None:
            p.python_path = ""  # the environment just made is the one used
        self.report({"INFO"}, f"Inference environment ready: {run.python}")
        return {"FINISHED"}

    def execute(self, context):
        """Blocking path (headless Blender, scripts): waits, printing progress to the terminal."""
        run = self._start()
        if run is None:
            return {"CANCELLED"}
        last = ""
        while not run.step(1.0):
            if bpy.app.background and run.status != last:
                print(f"Human Recon set-up: {run.fraction:4.0%} {run.status}", flush=True)
                last = run.status
        return self._finish(context, run)

    def invoke(self, context, event):
        self._run = self._start()
        if self._run is None:
            return {"CANCELLED"}
        self.begin_modal(context, 0.25)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        run = self._run
        if event.type == "ESC":
            run.cancel()
            self.end_modal(context)
            return self._finish(context, run)
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        context.window_manager.progress_update(int(run.fraction * 100))
        p = prefs(context)
        if p is not None:
            p.setup_status = f"{run.fraction:.0%}  {run.status}  (Esc cancels)"
        for area in context.screen.areas if context.screen else []:
            area.tag_redraw()
        if not run.finished:
            return {"RUNNING_MODAL"}
        self.end_modal(context)
        return self._finish(context, run)



class HumanReconPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    python_path: bpy.props.StringProperty(
        name="Python interpreter",
        description="A Python with torch, mediapipe and anny; empty: the environment set up below",
        subtype="FILE_PATH",
        default="",
    )
    cache_dir: bpy.props.StringProperty(
        name="Model cache",
        description="Folder for the body-model cache (empty: ~/.cache/human_recon)",
        subtype="DIR_PATH",
        default="",
    )

    keep_loaded: bpy.props.BoolProperty(
        name="Keep models loaded",
        description="Keep one inference process with its models loaded between runs (about 1.6 GB of memory): a "
        "photo after the first then takes under a second instead of 5-6. It quits after 10 idle minutes and "
        "with Blender",
        default=True,
        update=lambda self, context: None if self.keep_loaded else runner.stop_worker(),
    )

    setup_status: bpy.props.StringProperty(default="", options={"SKIP_SAVE"})

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
        layout.prop(self, "keep_loaded")
        layout.prop(self, "smpl_model")
        if not self.smpl_model:
            layout.label(text="SMPL is optional: register at smpl.is.tue.mpg.de to download the model file.")
        if self.setup_status:
            layout.label(text=f"Setting up: {self.setup_status}", icon="TIME")
            return
        try:
            layout.label(text=f"Using: {resolve_python(context)}", icon="CHECKMARK")
        except runner.RunnerError as err:
            layout.label(text=err.message, icon="ERROR")
        if not self.python_path and runner.environment_outdated(venv_dir(), requirements_file()):
            layout.label(text="The environment was made for another version of the add-on: update it.", icon="ERROR")
            layout.operator(HUMAN_RECON_OT_setup_environment.bl_idname, text="Update environment", icon="FILE_REFRESH")
        else:
            layout.operator(HUMAN_RECON_OT_setup_environment.bl_idname, icon="CONSOLE")


classes = (HUMAN_RECON_OT_setup_environment, HumanReconPreferences)
