"""Output paths checked before any work: one clear error line instead of a late traceback.

A report, picture or model written at the end of a long run must not fail then because its
path is a folder, lies under a file, or is in a place the user cannot write.
"""

from __future__ import annotations

import os
from pathlib import Path

from recognisers.errors import UserError


def nearest_existing(path: Path) -> Path:
    """``path`` itself or its closest ancestor that exists (what a mkdir -p would build on)."""
    path = Path(os.path.abspath(path))
    while not os.path.lexists(path) and path != path.parent:
        path = path.parent
    return path


def check_creatable(path: Path, option: str) -> None:
    """``path``'s folder exists or can be made, and the user may write in it."""
    base = nearest_existing(path.parent)
    if not base.is_dir():
        raise UserError(f"{option} {path}: {base} is not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: no permission to write in {base}")


def check_output_file(path: str | os.PathLike, option: str) -> None:
    """A file the command will write (a report, a picture): refused now if it cannot be."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{option} {path} is a folder; give a file name")
    if os.path.lexists(path) and not path.exists():
        raise UserError(f"{option} {path} is a broken or looping symbolic link")
    check_creatable(path, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"{option} {path}: no permission to overwrite it")


def check_output_dir(path: str | os.PathLike, option: str) -> None:
    """A folder the command will create or fill: refused now if it cannot be."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise UserError(f"{option} {path} exists and is not a folder")
    if not path.is_dir():
        check_creatable(path, option)
    elif not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: no permission to write in it")
