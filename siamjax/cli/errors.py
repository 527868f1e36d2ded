"""How the command-line tools report bad input: one line on stderr and exit status 1, not a traceback.

Errors that describe the user's input or settings (a missing path, a corrupt file, a wrong config
value, a diverged loss, an unwritable workdir) are these types; anything else is a bug and keeps its
traceback. ``--traceback`` shows the traceback of the former too.
"""
from __future__ import annotations

import sys
from typing import Callable

__all__ = ["USER_ERRORS", "exit_on_user_error", "status_on_user_error"]

USER_ERRORS = (ValueError, OSError, FloatingPointError)  # OSError covers FileNotFoundError, PermissionError


def exit_on_user_error(fn: Callable[[], object], traceback: bool = False, note: str = "") -> object:
    """``fn()``; a :data:`USER_ERRORS` exception becomes ``error: Type: message`` on stderr and exit 1."""
    try:
        return fn()
    except USER_ERRORS as e:
        if traceback:
            raise
        sys.exit(f"error: {type(e).__name__}: {e}" + (f"\n({note})" if note else ""))


def status_on_user_error(fn: Callable[[], int], traceback: bool = False) -> int:
    """``fn()``'s exit status; a :data:`USER_ERRORS` exception becomes ``error: Type: message`` on
    stderr and status 1 (for ``main(argv) -> int`` entry points that tests call in-process)."""
    try:
        return fn()
    except USER_ERRORS as e:
        if traceback:
            raise
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
