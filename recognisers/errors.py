"""Errors a user can cause, and the CLI wrapper that turns them into one clear line."""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence


class UserError(Exception):
    """A problem with the user's input (path, file, question, model directory).

    The CLI prints its message as one line on stderr and exits non-zero; the Python API
    raises it so that callers can catch one type.
    """


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ start-up chatter; must run before TensorFlow is imported."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def run_cli(prog: str, main: Callable[[Sequence[str] | None], int],
            argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; print a :class:`UserError` (or Ctrl-C) as one line, never a traceback."""
    try:
        return main(argv)
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
