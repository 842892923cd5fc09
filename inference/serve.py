"""A warm worker: ``python -m inference serve`` runs jobs with its models kept loaded.

A new process spends 4-5 s importing torch and MediaPipe and loading the models before a
photo's second of work; the Blender add-on starts one worker and sends it each job instead.

The protocol is JSON lines. The worker first writes ``{"event": "ready", "version": ...,
"schema_version": ...}``. Each line on its stdin is one job, a command line of ``reconstruct``
or ``sequence`` as a list of words::

    {"argv": ["reconstruct", "photo.jpg", "--output", "photo.npz", "--people", "all"]}

for which it writes that command's usual events (``start``, ``progress``, ``result`` or
``error``, ``done``) and then ``{"event": "finished", "exit_code": N}``, N being the exit status
the command line would have given. A bad job line gets an ``error`` event and its ``finished``;
the worker goes on. ``{"load": [...]}`` (the same words) loads the models that command line
would use, ahead of its job, and answers ``{"event": "loaded", "ok": ...}``.

It quits when its stdin ends (the add-on, or Blender, is gone), after ``--idle-exit`` seconds
without a job, and on SIGTERM, the add-on's Cancel: the job under way ends as the command
line's would (a ``cancelled`` error, no result written) and the worker with it.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import queue
import sys
import threading

from .cli import DEBUG, MODELS, Output, internal_error, package_version, raise_if_cancelled, result_schema, run_command
from .errors import EXIT_INTERNAL, EXIT_OK, ReconError, exit_code_for

JOBS = ("reconstruct", "sequence")  # the commands a worker runs: the ones that load the models


def serve(parser: argparse.ArgumentParser, out: Output, idle_exit: float) -> int:
    """Run jobs from stdin until it ends, ``idle_exit`` seconds pass without one, or a cancel."""
    out.json_mode = True
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(sys.stdin, lines), daemon=True).start()
    MODELS.keep = True
    try:
        try:
            from . import pipeline  # noqa: F401  (torch and MediaPipe: most of a new process's wait)
        except Exception as exc:  # an environment without them: no job could run, say so once
            if DEBUG:
                raise
            out.error(internal_error(exc))
            return EXIT_INTERNAL
        out.event("ready", version=package_version(), schema_version=result_schema())
        while True:
            try:
                line = lines.get(timeout=idle_exit)
            except queue.Empty:
                return EXIT_OK
            if line is None:
                return EXIT_OK
            if not line.strip():
                continue
            code = _job(parser, out, line)
            release_memory()
            if code is None:  # models loaded ahead of a job
                raise_if_cancelled()
                continue
            out.event("finished", exit_code=code)
            if code == 130:  # cancelled: the worker ends with its job
                return code
            raise_if_cancelled()  # a cancel that came between the job's end and its report
    except KeyboardInterrupt:  # a cancel while waiting for a job
        return 130
    except OSError:  # stdout is gone with whoever read it: nobody is left to tell
        return EXIT_INTERNAL
    finally:
        MODELS.close()


def release_memory() -> bool:
    """Hand the memory a job freed back to the system (glibc's ``malloc_trim``; elsewhere
    nothing, and False). glibc keeps freed memory for reuse, and a clip's threads leave it spread
    over several arenas: a worker that had read 8 clips held 2.5 GB against 1.7 GB when trimmed
    after each job (docs/research-log.md)."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        return False
    trim(0)
    return True


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _job(parser: argparse.ArgumentParser, out: Output, line: str) -> int | None:
    """One job line run as its command (its exit status); a line that is not a job gets one error
    event; a ``load`` line loads the models its command line would use (None), and one that
    cannot is answered ``ok: false`` and nothing else."""
    load, refusal = False, None
    try:
        msg = json.loads(line)
        load = isinstance(msg, dict) and "argv" not in msg and "load" in msg
        argv = msg["load" if load else "argv"]
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        refusal = f"A job is a JSON line {{\"argv\": [...]}}, not {line.strip()[:80]!r}."
    else:
        if argv[0] not in JOBS:
            refusal = f"A worker runs {' and '.join(JOBS)} jobs, not {argv[0]!r}."
        else:
            try:
                args = parser.parse_args(argv)
            except SystemExit:  # argparse's usage error (its message goes to stderr)
                refusal = f"The job's arguments are not a valid {argv[0]} command line: {' '.join(argv)[:200]}"
    if refusal is not None:
        return _loaded(out, False) if load else _refuse(out, refusal)
    if load:
        return _loaded(out, _load(args))
    return run_command(args, out)


def _load(args: argparse.Namespace) -> bool:
    """The models for ``args`` loaded ahead of the job (the add-on asks as soon as a photo or clip
    is chosen); a failure is left for the job itself to report."""
    try:
        MODELS.reconstructor(args, lambda: None)
    except KeyboardInterrupt:
        raise
    except Exception:  # noqa: BLE001  (the job that follows meets and reports the same failure)
        return False
    return True


def _loaded(out: Output, ok: bool) -> None:
    """A ``load`` line's only answer: no error and no ``finished``, which would end the next job."""
    out.event("loaded", ok=ok)


def _refuse(out: Output, message: str) -> int:
    err = ReconError("bad_argument", message)
    out.error(err)
    return exit_code_for(err.code)
