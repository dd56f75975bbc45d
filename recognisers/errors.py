"""Errors a user can cause, and the CLI plumbing that turns them into one clear line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, NoReturn


class UserError(Exception):
    """A problem with the user's input (path, file, question, model directory).

    The CLI prints its message as one line on stderr and exits non-zero; the Python API
    raises it so that callers can catch one type.
    """


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, except where there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        nothing = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if nothing or "default" in (action.help or ""):  # `is`: a default of 0 is shown
            return action.help
        if isinstance(action.default, (tuple, list)):  # shown as it is typed: 64,32
            return f"{action.help} (default: {','.join(map(str, action.default))})"
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the error first: ``prog: error: ...``, then the usage; exit status 2.

    Subcommand parsers are made by the same class, so they follow it too, and all of them
    show each option's default in ``--help``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

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


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (Keras's run to many): for one error line."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
