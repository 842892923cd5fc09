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
the worker goes on. It quits when its stdin ends (the add-on, or Blender, is gone), after
``--idle-exit`` seconds without a job, and on SIGTERM, the add-on's Cancel: the job under way
ends as the command line's would (a ``cancelled`` error, no result written) and the worker with it.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading

from .cli import MODELS, Output, _schema, _version, raise_if_cancelled, run_command
from .errors import EXIT_INTERNAL, EXIT_OK, ReconError, exit_code_for

JOBS = ("reconstruct", "sequence")  # the commands a worker runs: the ones that load the models


def serve(parser: argparse.ArgumentParser, out: Output, idle_exit: float) -> int:
    """Run jobs from stdin until it ends, ``idle_exit`` seconds pass without one, or a cancel."""
    out.json_mode = True
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_read_lines, args=(sys.stdin, lines), daemon=True).start()
    MODELS.keep = True
    out.event("ready", version=_version(), schema_version=_schema())
    try:
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


def _read_lines(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _job(parser: argparse.ArgumentParser, out: Output, line: str) -> int:
    """One job line run as its command; a line that is not a job gets one error event."""
    try:
        argv = json.loads(line)["argv"]
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        return _refuse(out, f"A job is a JSON line {{\"argv\": [...]}}, not {line.strip()[:80]!r}.")
    if argv[0] not in JOBS:
        return _refuse(out, f"A worker runs {' and '.join(JOBS)} jobs, not {argv[0]!r}.")
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # argparse's usage error (its message goes to stderr)
        return _refuse(out, f"The job's arguments are not a valid {argv[0]} command line: {' '.join(argv)[:200]}")
    return run_command(args, out)


def _refuse(out: Output, message: str) -> int:
    err = ReconError("bad_argument", message)
    out.error(err)
    return exit_code_for(err.code)
