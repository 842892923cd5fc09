"""Operators: "Reconstruct from image" (modal with progress and Esc, or blocking execute())."""


import os
import tempfile
from pathlib import Path

import bpy

from . import runner
from .modal import TimerModal
from .preferences import prefs, resolve_python
from .result_io import hands_posed, load_result
from .rig import build_scene

QUALITY_ITEMS = [
    ("fast", "Fast", "Fewer fit iterations"),
    ("balanced", "Balanced", "Default"),
    ("best", "Best", "More fit iterations, slower"),
]
BODY_MODEL_ITEMS = [
    ("anny", "Anny", "Open body model (Apache-2.0 / CC0), no registration"),
    ("smpl", "SMPL", "Your SMPL model file (set it in the preferences); SMPL rig conventions"),
]
PEOPLE_ITEMS = [
    ("all", "Everyone", "Everyone found (people cut off or mostly hidden are skipped, and the report says so)"),
    ("largest", "Largest", "Only the most prominent person"),
    ("count", "Most prominent", "The most prominent people, up to a number"),
]
TRACK_MODEL_ITEMS = [
    ("heavy", "Accurate", "Follow people with the heavy pose model: the most accurate (default)"),
    ("full", "Fast", "Follow people with the full pose model: about 1.5x as fast (10-11 frames a second for two "
              "people); keeps more frames of acrobatics"),
]
TIMEOUT_S = 600.0


def height_prop():
    """The people's standing height: one picture does not tell a body's size from its distance."""
    return bpy.props.FloatProperty(
        name="Height", description="Every person's standing height (one picture does not tell size from distance; "
        "the default is an average adult's). SMPL bodies keep their own", default=runner.DEFAULT_HEIGHT_M,
        min=0.5, max=2.5, subtype="DISTANCE", unit="LENGTH",
    )  # fmt: skip


def lens_auto_prop():
    """Whether the camera's focal length is the photo's own (EXIF) or a guess, or given."""
    return bpy.props.BoolProperty(
        name="Focal length from the photo", description="Take the camera's focal length from the photo's EXIF "
        "(phones and cameras record it; a folder of frames: the first one's; a video: its metadata, as iPhones "
        "record it), else read it from the scene's lines (rooms, streets, buildings), else guess it (a 43 mm "
        "full-frame equivalent). Off: give it", default=True,
    )  # fmt: skip


def focal_mm_prop():
    """The lens's focal length as a 35 mm (full-frame) equivalent, where the user gives it."""
    return bpy.props.FloatProperty(
        name="Focal length", description="The lens's focal length as a 35 mm (full-frame) equivalent, as a camera's "
        "specifications give it (a phone's main camera: 24-28 mm; its video: about 28)", default=26.0,
        min=runner.FOCAL_MM_RANGE[0], max=runner.FOCAL_MM_RANGE[1], subtype="DISTANCE_CAMERA", unit="CAMERA",
    )  # fmt: skip


def hands_prop(**update):
    """Whether the fingers are fitted to the hands found (``update``: the panel's callback)."""
    return bpy.props.BoolProperty(
        name="Fingers", description="Fit the fingers to the hands found in the picture (hands not found are "
        "relaxed; SMPL has no finger bones)", default=True, **update,
    )  # fmt: skip


def people_arg(choice: str, count: int) -> str:
    """The ``--people`` value of the panel's choice."""
    return str(max(1, count)) if choice == "count" else choice


def _start(context, op) -> tuple[runner.InferenceRun, str]:
    """Validate the inputs and start the child process; raise RunnerError with a clear message."""
    path = bpy.path.abspath(op.filepath) if op.filepath else ""
    if not path:
        raise runner.RunnerError("no_input", f"Choose a {op.input_kind} first.")
    exists = os.path.isfile(path) or (op.input_kind == "clip" and os.path.isdir(path))
    if not exists:
        raise runner.RunnerError("not_found", f"{op.input_kind.capitalize()} not found: {path}")
    python = resolve_python(context)
    keep = bpy.path.abspath(op.result_dir) if op.result_dir else ""
    if keep and not os.path.isdir(keep):
        raise runner.RunnerError("output_not_writable", f"Result folder {keep} does not exist; create it first.")
    tmpdir = "" if keep else tempfile.mkdtemp(prefix="human_recon_")
    out = os.path.join(keep or tmpdir, Path(path.rstrip("/\\")).stem + ".npz")
    p = prefs(context)
    args = op.runner_args(path, out, p.cache_dir if p else "") + _smpl_args(p, op.body_model)
    return runner.InferenceRun(python, args, warm=p.keep_loaded if p else True), tmpdir


def _smpl_args(p, body_model: str) -> list[str]:
    """``--smpl-model`` with the preferences' file where SMPL is chosen; raises RunnerError if none is set."""
    if body_model != "smpl":
        return []
    if not (p and p.smpl_model):
        raise runner.RunnerError(
            "smpl_model_missing",
            "SMPL needs your SMPL model file: download it from smpl.is.tue.mpg.de and set "
            "'SMPL model file' in Human Recon's preferences.",
        )
    return ["--smpl-model", bpy.path.abspath(p.smpl_model)]


def warm_up(props, context) -> None:
    """The panel's photo or clip was just chosen, or a setting the models depend on changed: the
    warm worker loads the models the run will use while the user reaches for the button (with
    "Keep models loaded"; quietly nothing when there is no environment yet: the run itself says
    what to do)."""
    p = prefs(context)
    if p is None or not p.keep_loaded or not (props.image_path or props.clip_path):
        return
    try:
        args = runner.reconstruct_args("chosen", "chosen.npz", props.quality, props.body_model, p.cache_dir,
                                       hands=props.hands) + _smpl_args(p, props.body_model)  # fmt: skip
        runner.preload(resolve_python(context), args)
    except runner.RunnerError:
        pass


def _finish(op, context, run: runner.InferenceRun) -> set[str]:
    run.poll()
    if run.error is not None or run.result_path is None:
        err = run.error or runner.RunnerError("crashed", "The inference process ended without a result.")
        op.report({"ERROR"} if err.code != "cancelled" else {"WARNING"}, err.message)
        return {"CANCELLED"}
    try:
        result = load_result(run.result_path)
        built = build_scene(result, context, pose_correctives=getattr(op, "pose_correctives", True))
    except runner.RunnerError as err:
        op.report({"ERROR"}, err.message)
        return {"CANCELLED"}
    except Exception as exc:  # never leave the user with a half-built scene or a traceback
        op.report({"ERROR"}, f"Could not build the rig ({type(exc).__name__}: {exc}).")
        return {"CANCELLED"}
    _report_built(op, "Reconstructed", result, built)
    return {"FINISHED"}


def _report_built(op, verb: str, result, built: dict) -> None:
    """The result's notes into the Info log (and a terminal's output), then the summary line,
    which the status bar shows."""
    for note in result.notes:
        op.report({"INFO"}, f"Human Recon: {note}")
    op.report({"INFO"}, _summary(verb, result, built))


def _summary(verb: str, result, built: dict) -> str:
    """One line for the status bar: who was built, over how many frames, and what was skipped."""
    names = ", ".join(rig["armature"].name for rig in built["people"])
    frames = f", {result.frames} frames" if result.frames > 1 else ""
    skipped = sum("skipped" in n or "left out" in n for n in result.notes)
    hands = [p.hands_fitted[p.present] for p in result.people if p.hands_fitted is not None]
    fingers = ""
    if hands and result.frames == 1:
        fingers = f"; fingers fitted on {int(sum(h.sum() for h in hands))} of {2 * len(hands)} hands"
    elif hands:
        posed = [hands_posed(h[:, s], result.fps or 30.0) for h in hands for s in range(h.shape[1])]
        share = sum(p.sum() for p in posed) / max(1, sum(p.size for p in posed))
        fingers = f"; fingers from the hands found in {100 * share:.0f}% of hand-frames"
    return (f"{verb} {names} ({len(result.bone_names)} bones{frames})" + (f"; {skipped} skipped" if skipped else "")
            + fingers)  # fmt: skip


class _InferenceOperator(TimerModal):
    """Shared run logic: blocking ``execute()`` (headless), modal ``invoke()`` with progress and Esc."""

    input_kind = "photo"
    _run: runner.InferenceRun | None = None
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
        self.take_panel_settings(context.scene.human_recon)
        try:
            self._run, self._tmpdir = _start(context, self)
        except runner.RunnerError as err:
            self.report({"ERROR"}, err.message)
            return {"CANCELLED"}
        self.begin_modal(context, 0.1)
        context.scene.human_recon.running = True
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
        self.end_modal(context)
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


class HUMAN_RECON_OT_reconstruct_image(_InferenceOperator, bpy.types.Operator):
    """Reconstruct a rigged, posed body and a matching camera from the photo"""

    bl_idname = "human_recon.reconstruct_image"
    bl_label = "Reconstruct from image"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(name="Photo", subtype="FILE_PATH", default="")
    quality: bpy.props.EnumProperty(name="Quality", items=QUALITY_ITEMS, default="balanced")
    body_model: bpy.props.EnumProperty(name="Body model", items=BODY_MODEL_ITEMS, default="anny")
    people: bpy.props.EnumProperty(name="People", items=PEOPLE_ITEMS, default="all")
    people_count: bpy.props.IntProperty(name="Up to", description="How many people", default=2, min=1, max=8)
    height: height_prop()
    lens_auto: lens_auto_prop()
    focal_mm: focal_mm_prop()
    hands: hands_prop()
    pose_correctives: bpy.props.BoolProperty(
        name="Pose correctives", description="SMPL: add the 207 pose-corrective shape keys", default=True
    )
    result_dir: bpy.props.StringProperty(
        name="Keep result in", description="Folder to keep the result .npz in (empty: discard it)",
        subtype="DIR_PATH", default="",
    )  # fmt: skip

    def take_panel_settings(self, props) -> None:
        if not self.filepath:
            self.filepath = props.image_path
        self.quality, self.body_model = props.quality, props.body_model
        self.people, self.people_count = props.people, props.people_count
        self.height, self.hands = props.height, props.hands
        self.lens_auto, self.focal_mm = props.lens_auto, props.focal_mm

    def runner_args(self, path: str, out: str, cache_dir: str) -> list[str]:
        return runner.reconstruct_args(path, out, self.quality, self.body_model, cache_dir,
                                       people_arg(self.people, self.people_count), self.height, self.hands,
                                       None if self.lens_auto else self.focal_mm)  # fmt: skip


class HUMAN_RECON_OT_import_sequence(_InferenceOperator, bpy.types.Operator):
    """Reconstruct a clip (folder of frames or a video) as one armature keyframed frame by frame"""

    bl_idname = "human_recon.import_sequence"
    bl_label = "Import sequence"
    bl_options = {"REGISTER", "UNDO"}
    input_kind = "clip"

    filepath: bpy.props.StringProperty(name="Clip", description="Video file or folder of frames", default="")
    start: bpy.props.IntProperty(name="Start", description="First frame (0-based)", default=0, min=0)
    end: bpy.props.IntProperty(name="End", description="Stop before this frame (0: the whole clip)", default=0, min=0)
    step: bpy.props.IntProperty(name="Step", description="Use every n-th frame", default=1, min=1)
    quality: bpy.props.EnumProperty(name="Quality", items=QUALITY_ITEMS, default="balanced")
    body_model: bpy.props.EnumProperty(name="Body model", items=BODY_MODEL_ITEMS, default="anny")
    people: bpy.props.EnumProperty(name="People", items=PEOPLE_ITEMS, default="all")
    people_count: bpy.props.IntProperty(name="Up to", description="How many people", default=2, min=1, max=8)
    track_model: bpy.props.EnumProperty(name="Follow", items=TRACK_MODEL_ITEMS, default="heavy")
    height: height_prop()
    lens_auto: lens_auto_prop()
    focal_mm: focal_mm_prop()
    hands: hands_prop()
    pose_correctives: bpy.props.BoolProperty(
        name="Pose correctives", description="SMPL: pose-corrective shape keys, keyed per frame", default=True
    )
    result_dir: bpy.props.StringProperty(name="Keep result in", subtype="DIR_PATH", default="")

    def take_panel_settings(self, props) -> None:
        if not self.filepath:
            self.filepath = props.clip_path
        self.quality, self.body_model = props.quality, props.body_model
        self.people, self.people_count = props.people, props.people_count
        self.height, self.hands = props.height, props.hands
        self.lens_auto, self.focal_mm = props.lens_auto, props.focal_mm
        self.track_model = props.track_model

    def runner_args(self, path: str, out: str, cache_dir: str) -> list[str]:
        return runner.sequence_args(path, out, self.start, self.end or None, self.step, self.quality,
                                    self.body_model, cache_dir, people_arg(self.people, self.people_count),
                                    self.track_model, self.height, self.hands,
                                    None if self.lens_auto else self.focal_mm)  # fmt: skip


class HUMAN_RECON_OT_import_result(bpy.types.Operator):
    """Build the rig from a result file made earlier (python -m inference reconstruct/sequence)"""

    bl_idname = "human_recon.import_result"
    bl_label = "Import result (.npz)"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(name="Result", subtype="FILE_PATH", default="")
    filter_glob: bpy.props.StringProperty(default="*.npz", options={"HIDDEN"})
    pose_correctives: bpy.props.BoolProperty(name="Pose correctives", default=True)

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        path = bpy.path.abspath(self.filepath)
        if not os.path.isfile(path):
            self.report({"ERROR"}, f"Result file not found: {path}")
            return {"CANCELLED"}
        try:
            result = load_result(path)
            built = build_scene(result, context, name=Path(path).stem, pose_correctives=self.pose_correctives)
        except runner.RunnerError as err:
            self.report({"ERROR"}, err.message)
            return {"CANCELLED"}
        except Exception as exc:  # never a half-built scene or a traceback
            self.report({"ERROR"}, f"Could not build the rig ({type(exc).__name__}: {exc}).")
            return {"CANCELLED"}
        _report_built(self, "Imported", result, built)
        return {"FINISHED"}


classes = (HUMAN_RECON_OT_reconstruct_image, HUMAN_RECON_OT_import_sequence, HUMAN_RECON_OT_import_result)
