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


def check_not_around_cwd(path: str | os.PathLike, option: str) -> None:
    """A folder that is replaced whole may not be, or hold, the current folder.

    The replacement is a rename; the shell would be left in the old, deleted folder, seeing
    nothing, and a rename onto ``.`` fails only after all the work.
    """
    here, where = Path.cwd(), Path(os.path.abspath(path))
    if where == here or where in here.parents:
        raise UserError(f"{option} {path} is or holds the current folder; name a folder beside it")


def check_output_dir(path: str | os.PathLike, option: str) -> None:
    """A folder the command will create or fill: refused now if it cannot be."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise UserError(f"{option} {path} exists and is not a folder")
    if not path.is_dir():
        check_creatable(path, option)
    elif not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: no permission to write in it")


def check_apart(
    outputs: dict[str, str | os.PathLike],
    inputs: tuple[str | os.PathLike | None, ...] = (),
    model_dir: str | os.PathLike | None = None,
    own: tuple[str, ...] = (),
) -> None:
    """Refuse outputs that would destroy what the command reads or writes.

    ``outputs`` maps each option to its file. No two may be the same file; none may be an input
    file or lie directly in an input folder (a picture written into a data folder becomes a
    sample the next run reads; its sub-folders are not read); none may replace an existing
    file of ``model_dir`` other than the names in ``own``, which the command writes there
    itself (``meta.json`` replaced by a report leaves no model).
    """
    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        where = Path(os.path.realpath(path))
        if where in seen:
            raise UserError(f"{option} and {seen[where]} name the same file, {path}; give two")
        seen[where] = option
        for item in (Path(os.path.realpath(i)) for i in inputs if i is not None):
            if where == item or where.parent == item:
                raise UserError(f"{option} {path} would overwrite or join the input {item}; write elsewhere")
        model = Path(os.path.realpath(model_dir)) if model_dir is not None else None
        if model is not None and where.parent == model and where.exists() and where.name not in own:
            raise UserError(f"{option} {path} is one of the model's own files; write elsewhere")
