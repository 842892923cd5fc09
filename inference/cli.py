"""Command line: ``python -m inference reconstruct|sequence|convert|export|serve|version``.

With ``--json-progress`` stdout carries only JSON lines (the protocol the
Blender add-on reads)::

    {"event": "start", "version": "0.1.0", "schema_version": 1, "total": 1}
    {"event": "progress", "stage": "fit", "fraction": 0.4, "index": 0, "total": 1, "image": "..."}
    {"event": "result", "path": "out.npz", "image": "...", "silhouette_iou": 0.77, ...}
    {"event": "error", "code": "no_person", "message": "...", "image": "..."}
    {"event": "done", "ok": 1, "failed": 0}

Every failure also prints one plain line on stderr and sets a non-zero exit
status; tracebacks are shown only with HUMAN_RECON_DEBUG=1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, TextIO

from .errors import EXIT_INTERNAL, EXIT_OK, ReconError, exit_code_for
from .io.result import DEFAULT_HEIGHT_M, HEIGHT_RANGE_M
from .lens import EQUIVALENT_MM

DEBUG = bool(os.environ.get("HUMAN_RECON_DEBUG"))


class Output:
    """Where events go: JSON lines on the real stdout, or short human lines."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self._out: TextIO = sys.stdout
        self._err: TextIO = sys.stderr
        if not DEBUG:
            # Native libraries (TFLite, Warp) print banners on fds 1 and 2. Keep our own
            # streams on duplicates of the real ones and send the fds themselves elsewhere.
            self._out = os.fdopen(os.dup(1), "w", buffering=1)
            self._err = os.fdopen(os.dup(2), "w", buffering=1)
            sys.stdout.flush()
            sys.stderr.flush()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            os.close(devnull)
            # Python-level chatter (library banners, warnings) is dropped too.
            sys.stdout = sys.stderr = open(os.devnull, "w")
            warnings.simplefilter("ignore")

    def event(self, kind: str, **fields: Any) -> None:
        if kind == "progress":
            raise_if_cancelled()
        if self.json_mode:
            self._out.write(json.dumps({"event": kind, **fields}) + "\n")
            self._out.flush()

    def say(self, line: str) -> None:
        if not self.json_mode:
            self._out.write(line + "\n")
            self._out.flush()

    def progress_bar(self, total: int):
        """A one-line bar on a terminal (stderr); nothing otherwise."""
        if self.json_mode or not self._err.isatty():
            return lambda done, note="": None

        def show(done: int, note: str = "") -> None:
            width = 30
            fill = int(width * done / max(total, 1))
            self._err.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} frames")
            if done >= total:
                self._err.write("\n")
            self._err.flush()

        return show

    def error(self, err: ReconError, **fields: Any) -> None:
        self.event("error", code=err.code, message=err.message, **fields)
        self._err.write(f"error: {err.message}\n")
        self._err.flush()


class Models:
    """The models a command works with. A command line makes them afresh; a warm worker
    (``serve``) keeps the last ones while the options they were made with stay the same."""

    def __init__(self) -> None:
        self.keep = False
        self._key: tuple | None = None
        self._rec = None

    def reconstructor(self, args: argparse.Namespace, loading: Callable[[], None]):
        """The models for ``args``' options; ``loading`` is called first where they are to be loaded."""
        from .pipeline import Reconstructor

        options = dict(body_model=args.body_model, quality=args.quality, cache_dir=args.cache_dir,
                       smpl_model=args.smpl_model, gender=args.gender, init=args.init, detector=args.detector,
                       hands=args.hands == "on")  # fmt: skip
        key = tuple(sorted(options.items()))
        if self.keep and self._rec is not None and key == self._key:
            return self._rec
        self.close()
        loading()
        rec = Reconstructor(**options)
        if self.keep:
            self._key, self._rec = key, rec
        return rec

    def close(self) -> None:
        if self._rec is not None:
            self._rec.close()
        self._key = self._rec = None


MODELS = Models()
_cancelled = False


def _on_sigterm(signum, frame):  # noqa: ARG001
    # Turn SIGTERM (the add-on's Cancel) into an exception so temporary files are removed. Python
    # drops an exception raised while a finalizer (``__del__``, a weakref callback) happens to run,
    # so the cancel is also remembered and raised again at the next progress report or save.
    global _cancelled
    _cancelled = True
    raise KeyboardInterrupt


def raise_if_cancelled() -> None:
    """A SIGTERM that came, raised again (``_on_sigterm``)."""
    if _cancelled:
        raise KeyboardInterrupt


def _output_paths(images: list[str], output: str | None, output_dir: str | None) -> list[Path]:
    if output is not None:
        if len(images) != 1:
            raise ReconError("bad_argument", "--output takes one image; use --output-dir for several.")
        out = Path(output)
        if out.suffix.lower() != ".npz":
            raise ReconError("bad_argument", f"--output must end in .npz (got {out.name}).")
        return [out]
    folder = Path(output_dir or ".")
    if not folder.is_dir():
        raise ReconError("output_not_writable", f"Output folder {folder} does not exist; create it first.")
    if not os.access(folder, os.W_OK):
        raise ReconError("output_not_writable", f"Output folder {folder} is not writable; choose another.")
    paths, seen = [], set()
    for img in images:
        stem, n = Path(img).stem, 1
        name = f"{stem}.npz"
        while name in seen:  # two photos with one name from different folders
            n += 1
            name = f"{stem}-{n}.npz"
        seen.add(name)
        paths.append(folder / name)
    return paths


def _check_output(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise ReconError("output_exists", f"{path} already exists; pass --overwrite or choose another name.")
    if path.is_dir():
        raise ReconError("output_not_writable", f"{path} is a folder; name an .npz file.")
    if not path.parent.is_dir():
        raise ReconError("output_not_writable", f"Output folder {path.parent} does not exist; create it first.")
    if not os.access(path.parent, os.W_OK):
        raise ReconError("output_not_writable", f"Output folder {path.parent} is not writable; choose another.")


def cmd_reconstruct(args: argparse.Namespace, out: Output) -> int:
    if args.focal_px and args.focal_mm:
        raise ReconError("bad_argument", "Give the focal length once: --focal-px (pixels) or --focal-mm (35 mm).")
    outputs = _output_paths(args.images, args.output, args.output_dir)
    total = len(args.images)
    out.event("start", version=package_version(), schema_version=result_schema(), total=total)
    # Cheap checks first, so a typo fails in milliseconds, not after loading models.
    if total == 1:
        from .io.images import load_image

        _check_output(outputs[0], args.overwrite)
        load_image(args.images[0])

    rec = MODELS.reconstructor(args, lambda: out.event("progress", stage="load_models", fraction=0.0, index=0,
                                                       total=total))  # fmt: skip
    ok = failed = 0
    last_code = ""
    for i, (img, dest) in enumerate(zip(args.images, outputs)):

        def progress(stage: str, frac: float, i=i, img=img) -> None:
            out.event("progress", stage=stage, fraction=round(frac, 3), index=i, total=total, image=img)

        t = time.perf_counter()
        try:
            _check_output(dest, args.overwrite)
            result = rec.reconstruct(img, focal_px=args.focal_px, progress=progress, people=args.people,
                                     height=args.height, focal_mm=args.focal_mm)  # fmt: skip
            raise_if_cancelled()
            result.save(dest, overwrite=args.overwrite)
        except ReconError as err:
            failed += 1
            last_code = err.code
            out.error(err, image=img, index=i)
            continue
        ok += 1
        secs = time.perf_counter() - t
        people = result.people
        out.event(
            "result",
            path=str(dest),
            image=img,
            index=i,
            people=len(people),
            people_found=result.people_found,
            silhouette_iou=[round(p.silhouette_iou, 4) for p in people],
            keypoint_error_pct=[round(p.keypoint_error_pct, 3) for p in people],
            mirrored=[bool(p.mirrored) for p in people],
            notes=[str(n) for n in result.notes],
            seconds=round(secs, 3),
        )
        ious = ", ".join(f"{p.silhouette_iou:.2f}" for p in people)
        errs = ", ".join(f"{p.keypoint_error_pct:.1f}" for p in people)
        who = f"{len(people)} of {result.people_found} people" if result.people_found > 1 else "1 person"
        out.say(f"{img} -> {dest}  ({who}; silhouette IoU {ious}; keypoint error {errs}% of height; {secs:.2f} s)")
        for note in result.notes:
            out.say(f"  note: {note}")
    out.event("done", ok=ok, failed=failed)
    if failed and total > 1:
        out.say(f"{ok} reconstructed, {failed} failed")
    return EXIT_OK if not failed else exit_code_for(last_code)


def cmd_sequence(args: argparse.Namespace, out: Output) -> int:
    from .io.frames import open_frames

    dest = Path(args.output)
    if dest.suffix.lower() != ".npz":
        raise ReconError("bad_argument", f"--output must end in .npz (got {dest.name}).")
    _check_output(dest, args.overwrite)
    source = open_frames(args.input, start=args.start, end=args.end, step=args.step, fps=args.fps)
    out_fps = (args.fps or source.fps) / (1 if args.fps else args.step)
    total = len(source)
    out.event("start", version=package_version(), schema_version=result_schema(), total=total)
    for name in source.skipped_files or []:
        out.event("skipped", file=name, reason="not an image file")
    from .sequence import SequenceOptions, SequenceReconstructor

    rec = MODELS.reconstructor(args, lambda: out.event("progress", stage="load_models", fraction=0.0, frame=0,
                                                       total=total))  # fmt: skip
    bar = out.progress_bar(total)

    def progress(done: int, n: int, note: str) -> None:
        out.event(
            "progress",
            stage="frames",
            fraction=round(done / n, 4),
            frame=done,
            total=n,
            **({"note": note} if note else {}),
        )
        bar(done, note)

    t = time.perf_counter()
    options = SequenceOptions(detector=args.track_model, video=args.track_mode == "video", people=args.people,
                              height=args.height, hand_rate=args.hand_rate, focal_mm=args.focal_mm)
    result = SequenceReconstructor(rec, options).run(source, progress, out_fps=out_fps)
    raise_if_cancelled()
    result.save(dest, overwrite=args.overwrite)
    secs = time.perf_counter() - t
    people = result.people
    filled = [int(p.frames_filled) for p in people]
    out.event(
        "result", path=str(dest), frames=total, people=len(people), filled=filled,
        frames_present=[int(p.frame_present.sum()) for p in people], fps=result.fps,
        seconds=round(secs, 3), frames_per_second=round(total / secs, 2),
    )  # fmt: skip
    tracked = "; ".join(f"Person {k + 1}: {int(p.frame_present.sum())} frames, {f} filled in"
                        for k, (p, f) in enumerate(zip(people, filled)))  # fmt: skip
    out.say(f"{args.input} -> {dest}  ({total} frames; {tracked}; {total / secs:.1f} frames/s)")
    out.event("done", ok=1, failed=0)
    return EXIT_OK


def cmd_convert(args: argparse.Namespace, out: Output) -> int:
    import numpy as np

    from .io.result import ReconResult, write_npz_atomic

    dest = Path(args.output)
    if dest.suffix.lower() != ".npz":
        raise ReconError("bad_argument", f"--output must end in .npz (got {dest.name}).")
    _check_output(dest, args.overwrite)
    from .io.images import check_input_file

    result = ReconResult.load(check_input_file(args.result))
    if result.body_model != "anny":
        raise ReconError("bad_argument", f"{args.result} is a {result.body_model} result; convert takes Anny results.")
    out.event("start", version=package_version(), schema_version=result_schema(), total=1)
    from .bodymodels.anny import AnnyBody
    from .bodymodels.smpl import SMPLBody
    from .convert import anny_to_smpl

    smpl = SMPLBody(model_file=args.smpl_model, gender=args.gender)
    out.event("progress", stage="fit", fraction=0.1)
    if not 1 <= args.person <= len(result.people):
        raise ReconError("bad_argument", f"--person {args.person}: {args.result} holds {len(result.people)} people.")
    person = result.people[args.person - 1]
    conv = anny_to_smpl(result, person, AnnyBody(cache_dir=args.cache_dir), smpl, steps=args.steps)
    arrays = dict(conv.amass)
    arrays["conversion_keypoint_error_mm"] = np.array(conv.keypoint_error_mm)
    arrays["conversion_surface_error_mm"] = np.array(conv.surface_error_mm)
    write_npz_atomic(dest, arrays)
    out.event("result", path=str(dest), keypoint_error_mm=round(conv.keypoint_error_mm, 2),
              surface_error_mm=round(conv.surface_error_mm, 2))  # fmt: skip
    out.say(f"{args.result} -> {dest}  (SMPL fit: keypoints {conv.keypoint_error_mm:.1f} mm, "
            f"surface {conv.surface_error_mm:.1f} mm)")  # fmt: skip
    out.event("done", ok=1, failed=0)
    return EXIT_OK


def cmd_export(args: argparse.Namespace, out: Output) -> int:
    from .export import export
    from .io.images import check_input_file

    dest = Path(args.output)
    suffix = f".{args.format}"  # the formats are named by their file endings
    if dest.suffix.lower() != suffix:
        raise ReconError("bad_argument", f"--output must end in {suffix} for --format {args.format} (got {dest.name}).")
    _check_output(dest, args.overwrite)
    src = check_input_file(args.result)
    out.event("start", version=package_version(), schema_version=result_schema(), total=1)
    t0 = time.perf_counter()
    info = export(src, dest, args.format, args.rig, args.person, args.smpl_model, args.gender)
    secs = time.perf_counter() - t0
    out.event("result", path=str(dest), format=args.format, seconds=round(secs, 3), **info)
    out.say(f"{args.result} -> {dest}  ({info['people']} {info['rig']} rig(s), {info['frames']} frames, {secs:.1f} s)")
    out.event("done", ok=1, failed=0)
    return EXIT_OK


def package_version() -> str:
    from . import __version__

    return __version__


def result_schema() -> int:
    from .io.result import SCHEMA_VERSION

    return SCHEMA_VERSION


def _people_arg(text: str) -> str | int:
    """``--people``: all, largest or a positive number."""
    if text in ("all", "largest"):
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"takes all, largest or a positive number, not {text!r}")


def _number(text: str) -> float:
    """``text`` as a finite number, else -1 (which every option below refuses)."""
    try:
        value = float(text)
    except ValueError:
        return -1.0
    return value if math.isfinite(value) else -1.0


def _rate_arg(text: str) -> float:
    """``--hand-rate``: searches a second, 0 or more (0: every frame)."""
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"takes searches a second, 0 (every frame) or more, not {text!r}")
    return value


def _seconds_arg(text: str) -> float:
    """``--idle-exit``: seconds, more than 0."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"takes seconds, more than 0, not {text!r}")
    return value


def _height_arg(text: str) -> float | None:
    """``--height``: metres within HEIGHT_RANGE_M, or 0 for the fit's own size (None)."""
    value = _number(text)
    if value == 0:
        return None
    lo, hi = HEIGHT_RANGE_M
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"takes a height in metres from {lo} to {hi}, or 0, not {text!r}")
    return value


def _focal_mm_arg(text: str) -> float:
    """``--focal-mm``: a 35 mm equivalent within EQUIVALENT_MM."""
    value = _number(text)
    lo, hi = EQUIVALENT_MM
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"takes a 35 mm equivalent focal length, {lo:g} to {hi:g} mm, not {text!r}")
    return value


def _focal_px_arg(text: str) -> float:
    """``--focal-px``: pixels, more than 0."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"takes a focal length in pixels, more than 0, not {text!r}")
    return value


def _body_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--body-model", default="anny", choices=["anny", "smpl"],
                   help="anny (default, open) or smpl (needs your SMPL model file)")
    p.add_argument("--smpl-model", default=None, help="your SMPL model file (.pkl or .npz), for --body-model smpl")
    p.add_argument("--gender", default=None, choices=["neutral", "female", "male"],
                   help="SMPL model gender (default: from the file)")
    p.add_argument("--people", default="all", type=_people_arg, metavar="all|largest|N",
                   help="whom to reconstruct: everyone found (default; people cut off or mostly hidden are "
                        "skipped and the result says so), the largest, or the N most prominent")
    p.add_argument("--height", default=DEFAULT_HEIGHT_M, type=_height_arg, metavar="METRES",
                   help=f"every person's standing height (default {DEFAULT_HEIGHT_M}, an average adult: one picture "
                        "does not tell size from distance); 0 keeps the fit's own size; SMPL bodies keep their betas'")
    p.add_argument("--focal-mm", default=None, type=_focal_mm_arg, metavar="MM",
                   help="the lens's focal length as a 35 mm (full-frame) equivalent, as a camera records it "
                        "(a phone's main camera: 24-28); default: the photo's EXIF one, else the one the scene's "
                        "lines show (rooms, streets), else the image diagonal's 43")
    p.add_argument("--hands", default="on", choices=["on", "off"],
                   help="fit the fingers to the hands found (default on; hands not found are relaxed and the "
                        "result says so; SMPL has no finger bones)")
    p.add_argument("--detector", default="heavy", choices=["heavy", "full"],
                   help="the pose model: heavy (default, the most accurate) or full (about twice as fast)")
    p.add_argument("--init", default="auto", choices=["auto", "network", "landmarks"],
                   help="the fit's start: the trained regressor (network, Anny only) or MediaPipe's 3D landmarks "
                        "(landmarks); auto: the network for Anny, the landmarks for SMPL")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m inference", description="Human Recon: photo to rigged 3D body.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("reconstruct", help="reconstruct the person in one or more photos")
    r.add_argument("images", nargs="+", help="photo file(s): JPEG, PNG, ...")
    g = r.add_mutually_exclusive_group()
    g.add_argument("--output", "-o", help="result .npz (one photo)")
    g.add_argument("--output-dir", help="folder for one <photo name>.npz per photo (default: current folder)")
    r.add_argument("--overwrite", action="store_true", help="replace existing result files")
    r.add_argument("--quality", choices=["fast", "balanced", "best"], default="balanced")
    _body_model_args(r)
    r.add_argument("--focal-px", type=_focal_px_arg, default=None, help="focal length in pixels if known")
    r.add_argument("--cache-dir", default=None, help="body-model cache folder (default ~/.cache/human_recon)")
    r.add_argument("--json-progress", action="store_true", help="JSON lines on stdout (for programs)")

    q = sub.add_parser("sequence", help="reconstruct a clip (folder of frames or video) as one keyframed result")
    q.add_argument("input", help="folder of frames (natural order: frame2 before frame10) or a video file")
    q.add_argument("--output", "-o", required=True, help="result .npz")
    q.add_argument("--start", type=int, default=0, help="first frame (0-based)")
    q.add_argument("--end", type=int, default=None, help="stop before this frame")
    q.add_argument("--step", type=int, default=1, help="use every n-th frame")
    q.add_argument("--fps", type=float, default=None, help="frame rate of the result (default: the video's / step)")
    q.add_argument("--overwrite", action="store_true")
    q.add_argument("--quality", choices=["fast", "balanced", "best"], default="balanced", help="first-frame fit")
    q.add_argument("--track-model", default="heavy", choices=["full", "heavy"],
                   help="the pose model that follows people from frame to frame: heavy (default, the most accurate) "
                        "or full (about 1.5x as fast); --detector: the first frame's")
    q.add_argument("--hand-rate", type=_rate_arg, default=30.0,
                   help="search each person's hands at most this many times a second (default 30: every 2nd "
                        "frame of a 60 fps clip, filled in between; 0: every frame)")
    q.add_argument("--track-mode", default="video", choices=["video", "crop"],
                   help="follow the person with MediaPipe's VIDEO mode (default) or search a crop around the last box")
    _body_model_args(q)
    q.add_argument("--cache-dir", default=None)
    q.add_argument("--json-progress", action="store_true")

    c = sub.add_parser("convert", help="fit SMPL to an Anny result (AMASS-style .npz, errors in mm)")
    c.add_argument("result", help="an Anny result .npz (photo or clip)")
    c.add_argument("--smpl-model", required=True, help="your SMPL model file (.pkl or .npz)")
    c.add_argument("--gender", default=None, choices=["neutral", "female", "male"])
    c.add_argument("--output", "-o", required=True, help="SMPL/AMASS .npz to write")
    c.add_argument("--person", type=int, default=1, help="which person of the result (1: the leftmost)")
    c.add_argument("--steps", type=int, default=200)
    c.add_argument("--overwrite", action="store_true")
    c.add_argument("--cache-dir", default=None)
    c.add_argument("--json-progress", action="store_true")

    e = sub.add_parser("export", help="write a result's rigs as FBX, BVH or glTF (needs bpy, Blender as a module)")
    e.add_argument("result", help="a result .npz (photo or clip)")
    e.add_argument("--format", required=True, choices=["fbx", "bvh", "glb"])
    e.add_argument("--output", "-o", required=True, help="file to write (.fbx, .bvh or .glb)")
    e.add_argument("--rig", default=None, choices=["anny", "smpl"],
                   help="the rig to write (default: the result's own); smpl on an Anny result: the motion "
                        "transferred onto an SMPL rig of --smpl-model's mean shape")
    e.add_argument("--smpl-model", default=None, help="your SMPL model file, for --rig smpl on an Anny result")
    e.add_argument("--gender", default=None, choices=["neutral", "female", "male"])
    e.add_argument("--person", type=int, default=None, help="one person (1: the leftmost); default: everyone")
    e.add_argument("--overwrite", action="store_true")
    e.add_argument("--json-progress", action="store_true")

    w = sub.add_parser("serve", help="a warm worker for programs (the Blender add-on): reconstruct and sequence "
                       "jobs read from stdin, one JSON line each, with the models kept loaded between them")
    w.add_argument("--idle-exit", type=_seconds_arg, default=600.0,
                   help="quit after this many seconds without a job (default 600)")
    w.add_argument("--json-progress", action="store_true", help="accepted; the worker always writes JSON lines")

    sub.add_parser("version", help="print the package and result-schema versions")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints one line and exits 2
    if args.command == "version":
        print(json.dumps({"version": package_version(), "schema_version": result_schema()}))
        return EXIT_OK
    json_mode = bool(getattr(args, "json_progress", False))
    out = Output(json_mode)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if args.command == "serve":
        from .serve import serve

        return serve(parser, out, args.idle_exit)
    return run_command(args, out)


def run_command(args: argparse.Namespace, out: Output) -> int:
    """One command's work, every failure reported as one event and line; the exit status."""
    try:
        if args.command == "reconstruct":
            return cmd_reconstruct(args, out)
        if args.command == "sequence":
            return cmd_sequence(args, out)
        if args.command == "convert":
            return cmd_convert(args, out)
        if args.command == "export":
            return cmd_export(args, out)
        raise AssertionError(args.command)  # argparse allows only the commands above
    except ReconError as err:
        out.error(err)
        return exit_code_for(err.code)
    except KeyboardInterrupt:
        out.error(ReconError("cancelled", "Cancelled; no result was written."))
        return 130
    except MemoryError:
        out.error(ReconError("out_of_memory", "Ran out of memory; use a smaller image or close other programs."))
        return EXIT_INTERNAL
    except Exception as exc:  # the last line of defence: no traceback in the user's face
        if DEBUG:
            raise
        out.error(internal_error(exc))
        return EXIT_INTERNAL


def internal_error(exc: Exception) -> ReconError:
    """What the user is told of an error nothing else caught."""
    return ReconError(
        "internal", f"Internal error ({type(exc).__name__}: {exc}); re-run with HUMAN_RECON_DEBUG=1 and report it."
    )
