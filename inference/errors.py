"""The one exception type the pipeline raises for problems a user can fix.

Every failure the user can act on becomes a ``ReconError`` with a stable
machine-readable ``code`` (used in JSON progress events and by the Blender
add-on) and a one-line ``message`` that says what to do.
"""

from __future__ import annotations


class ReconError(Exception):
    """A user-facing failure: ``code`` for programs, ``message`` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


# Exit codes of the CLI, by error family.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_NO_PERSON = 4
EXIT_OUTPUT = 5

_EXIT_BY_CODE = {
    "no_person": EXIT_NO_PERSON,
    "output_exists": EXIT_OUTPUT,
    "output_not_writable": EXIT_OUTPUT,
    "bad_argument": EXIT_USAGE,
    "internal": EXIT_INTERNAL,
}


def exit_code_for(code: str) -> int:
    """Map an error code to the CLI's exit status (input problems by default)."""
    return _EXIT_BY_CODE.get(code, EXIT_INPUT)
