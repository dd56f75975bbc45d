"""Errors a user can cause, and the CLI wrapper that turns them into one clear line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn


class UserError(Exception):
    """A problem with the user's input (path, file, question, model directory).

    The CLI prints its message as one line on stderr and exits non-zero; the Python API
    raises it so that callers can catch one type.
    """


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ log lines; must run before TensorFlow is imported.

    Level 3 also hides its E-level notes (no CUDA driver, oneDNN fallbacks), which are not
    errors for our users; real failures still arrive as Python exceptions.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def import_keras():
    """Import TensorFlow and Keras with the C++ start-up lines hidden; return ``keras``.

    Those lines (oneDNN, CUDA probing) are printed before TensorFlow's logging is set up and
    ignore TF_CPP_MIN_LOG_LEVEL; without this, a CLI error would not be the one clear line on
    stderr it should be. Later ``import keras`` statements are then free.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"]
    quiet_tensorflow()
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras
        import tensorflow

        tensorflow.constant(0)  # device start-up (CUDA probing) prints too
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return keras


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the error first: ``prog: error: ...``, then the usage; exit status 2.

    Subcommand parsers are made by the same class, so they follow it too.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n{self.format_usage()}")


def note(message: str) -> None:
    """A line on stderr about something done or skipped that the user should know of."""
    print(f"note: {message}", file=sys.stderr)


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so that staging folders are cleaned up."""


def raise_terminated(signum, frame) -> None:
    raise Terminated()


def run_cli(prog: str, main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; print a :class:`UserError`, Ctrl-C or SIGTERM as one line.

    Never a traceback. A closed output pipe (``| head``) ends the command quietly, as it
    does for Unix tools.
    """
    main_thread = threading.current_thread() is threading.main_thread()  # signals need it
    previous = signal.signal(signal.SIGTERM, raise_terminated) if main_thread else None
    try:
        code = main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        print(f"{prog}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 128 + signal.SIGPIPE
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
