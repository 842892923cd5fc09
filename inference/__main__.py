"""``python -m inference``: the command line (``cli``), with a clean exit on cancel."""

import os
import sys

from .cli import main

code = main()
if code == 130:
    # Cancelled (SIGTERM from the add-on, or Ctrl-C): the error line is out and temporary files
    # are gone. Leave with 130 at once: when the interrupt landed inside code that a C extension
    # ran, CPython 3.11 still counts it as unhandled and would kill the process with SIGINT at
    # exit (return code -2), which the add-on would not read as a clean cancel.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
