"""``python -m inference``: the command line (``cli``), left at once when its work is done."""

import os
import sys

from .cli import main

code = main()
# Leave at once: the result is written and every event flushed. Tearing the interpreter down
# (torch's, MediaPipe's and Warp's exit handlers) took 1.4 s after a photo's last event, which
# the add-on, a script or a user at a terminal waited for. On a cancel (SIGTERM from the add-on,
# or Ctrl-C) it would be worse than slow: when the interrupt landed inside code that a C
# extension ran, CPython 3.11 still counts it as unhandled and would kill the process with
# SIGINT at exit (return code -2), which the add-on would not read as a clean cancel.
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
