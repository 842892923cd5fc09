"""Operators: "Reconstruct from image" (modal with progress and Esc, or blocking execute())."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import bpy

from . import runner
from .preferences import prefs, resolve_python
from .result_io import load_result
from .rig import build_scene

QUALITY_ITEMS = [
    ("fast", "Fast", "Fewer fit iterations"),
    ("balanced", "Balanced", "Default"),
    ("best", "Best", "More fit iterations, slower"),
]
BODY_MODEL_ITEMS = [("anny", "Anny", "Open body model (Apache-2.0 / CC0), no registration")]
TIMEOUT_S = 600.0


def _start(context, op) -> tuple[runner.InferenceRun, str]:
    """Validate the inputs and start the child process; raise RunnerError with a clear message."""
    path = bpy.path.abspath(op.filepath) if op.filepath else ""
    if not path:
        raise runner.RunnerError("no_image", "Choose a photo first.")
    if not os.path.isfile(path):
        raise runner.RunnerError("not_found", f"Photo not found: {path}")
    python = resolve_python(context)
    keep = bpy.path.abspath(op.result_dir) if op.result_dir else ""
    if keep and not os.path.isdir(keep):
        raise runner.RunnerError("output_not_writable", f"Result folder {keep} does not exist; create it first.")
    tmpdir = "" if keep else tempfile.mkdtemp(prefix="human_recon_")
    out = os.path.join(keep or tmpdir, Path(path).stem + ".npz")
    p = prefs(context)
    args = runner.reconstruct_args(path, out, op.quality, op.body_model, p.cache_dir if p else "")
    return runner.InferenceRun(python, args), tmpdir


def _finish(op, context, run: runner.InferenceRun) -> set[str]:
    run.poll()
    if run.error is not None or run.result_path is None:
        err = run.error or runner.RunnerError("crashed", "The inference process ended without a result.")
        op.report({"ERROR"} if err.code != "cancelled" else {"WARNING"}, err.message)
        return {"CANCELLED"}
    try:
        result = load_result(run.result_path)
        built = build_scene(result, context)
    except runner.RunnerError as err:
        op.report({"ERROR"}, err.message)
        return {"CANCELLED"}
    except Exception as exc:  # never leave the user with a half-built scene or a traceback
        op.report({"ERROR"}, f"Could not build the rig ({type(exc).__name__}: {exc}).")
        return {"CANCELLED"}
    op.report({"INFO"}, f"Reconstructed {built['armature'].name} ({len(result.bone_names)} bones)")
    return {"FINISHED"}


class HUMAN_RECON_OT_reconstruct_image(bpy.types.Operator):
    """Reconstruct a rigged, posed body and a matching camera from the photo"""

    bl_idname = "human_recon.reconstruct_image"
    bl_label = "Reconstruct from image"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH", default="")
    quality: bpy.props.EnumProperty(name="Quality", items=QUALITY_ITEMS, default="balanced")
    body_model: bpy.props.EnumProperty(name="Body model", items=BODY_MODEL_ITEMS, default="anny")
    result_dir: bpy.props.StringProperty(
        name="Keep result in", description="Folder to keep the result .npz in (empty: discard it)",
        subtype="DIR_PATH", default="",
    )  # fmt: skip

    _run: runner.InferenceRun | None = None
    _timer = None
    _tmpdir: str = ""

    def execute(self, context):
        """Blocking path (headless Blender, scripts)."""
        try:
            run, self._tmpdir = _start(context, self)
        except runner.RunnerError as err:
            self.report({"ERROR"}, err.message)
            return {"CANCELLED"}
        if bpy.app.background:  # a terminal is watching: say what happens
            _print_progress(run)
        run.wait(TIMEOUT_S)
        try:
            return _finish(self, context, run)
        finally:
            _cleanup(self._tmpdir)

    def invoke(self, context, event):
        scene_props = context.scene.human_recon
        if not self.filepath:
            self.filepath = scene_props.image_path
        self.quality = scene_props.quality
        self.body_model = scene_props.body_model
        try:
            self._run, self._tmpdir = _start(context, self)
        except runner.RunnerError as err:
            self.report({"ERROR"}, err.message)
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.progress_begin(0, 100)
        wm.modal_handler_add(self)
        scene_props.running = True
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        run = self._run
        if event.type == "ESC":
            run.cancel()
            self._end(context)
            self.report({"WARNING"}, "Cancelled; the scene was left as it was.")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        run.poll()
        context.window_manager.progress_update(int(run.fraction * 100))
        context.workspace.status_text_set(f"Human Recon: {run.stage} {int(run.fraction * 100)}%  (Esc to cancel)")
        context.scene.human_recon.progress = run.fraction
        if not run.finished and run.error is None:
            return {"RUNNING_MODAL"}
        if run.error is not None:
            run.cancel()
        self._end(context)
        try:
            return _finish(self, context, run)
        finally:
            _cleanup(self._tmpdir)

    def _end(self, context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        context.workspace.status_text_set(None)
        context.scene.human_recon.running = False
        context.scene.human_recon.progress = 0.0


def _print_progress(run: runner.InferenceRun) -> None:
    import time

    last = ""
    while not run.finished:
        run.poll()
        if run.stage != last:
            last = run.stage
            note = " (the first run builds the body model once, about 2 minutes)" if last == "load_models" else ""
            print(f"Human Recon: {last}{note}", flush=True)
        time.sleep(0.1)


def _cleanup(tmpdir: str) -> None:
    import shutil

    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)


classes = (HUMAN_RECON_OT_reconstruct_image,)
