"""Model directories: written atomically, never overwritten by accident, checked on load.

A model directory holds the ``.keras`` file(s), a ``meta.json`` and the training history.
Training writes into a hidden temporary sibling and renames it into place only when
everything is written, so a crash or Ctrl-C never leaves half a model, and an existing
model survives a failed retraining even with ``force``.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recognisers import __version__
from recognisers.backend import import_keras
from recognisers.errors import UserError, note
from recognisers.paths import check_creatable, check_not_around_cwd

META_FILE = "meta.json"


def versions() -> dict[str, str]:
    """Library versions recorded in every ``meta.json`` (what made this model)."""
    keras = import_keras()  # first: it imports TensorFlow with the start-up lines hidden
    import numpy
    import tensorflow

    return {
        "project": __version__,
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }


def model_kind(model_dir: Path) -> str | None:
    """The kind of project model ``model_dir`` holds, or None when it holds none.

    Only a ``meta.json`` written by :func:`write_meta` counts: a JSON object with a string
    ``kind``, an integer ``format_version`` and the project's ``versions`` record. A folder
    that merely holds some ``meta.json`` is a user's folder, never a model.
    """
    try:
        meta = json.loads((model_dir / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if (
        isinstance(meta, dict)
        and isinstance(meta.get("kind"), str)
        and type(meta.get("format_version")) is int
        and isinstance(meta.get("versions"), dict)
        and "project" in meta["versions"]
    ):
        return meta["kind"]
    return None


def check_writable_target(out: Path, force: bool, kind: str) -> tuple[int, int] | None:
    """Refuse before any work is done: a bad place, a model without ``force``, anything else.

    Replaceable (with ``force``) is only a directory holding a ``kind`` model of this
    project; an empty directory is used as if absent; everything else is refused. Returns
    the identity (device, inode) of the model to replace, None when there is none.
    """
    check_creatable(out, "--out")  # renames happen in its parent
    check_not_around_cwd(out, "--out")
    if not out.exists() or (out.is_dir() and not out.is_symlink() and not any(out.iterdir())):
        return None
    found = model_kind(out) if out.is_dir() and not out.is_symlink() else None
    if found is None:
        raise UserError(f"{out} exists and is not a model directory; choose another --out")
    if found != kind:
        raise UserError(
            f"{out} holds a {found} model, not a {kind} model; --force replaces only "
            f"{kind} models (delete it yourself or choose another --out)"
        )
    if not force:
        raise UserError(f"{out} already holds a model; pass --force to replace it")
    return identity(out)


def identity(path: Path) -> tuple[int, int]:
    """(device, inode): which directory a path names, whatever is written inside it."""
    info = os.stat(path, follow_symlinks=False)
    return info.st_dev, info.st_ino


def stage_dir(out: Path, suffix: str) -> tuple[Path, int]:
    """A new, uniquely named hidden sibling of ``out``, locked while this process lives."""
    path = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=suffix, dir=out.parent))
    return path, lock_dir(path)


def lock_dir(path: Path) -> int:
    """Take an exclusive ``flock`` on a directory; returns the fd that holds it.

    The kernel releases the lock when the process dies, however it dies (kill -9 too), and
    the lock follows the directory through renames: a later run tells a stale staging folder
    from one in use by trying to take its lock.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def clean_stale(out: Path, log: Callable[[str], None]) -> None:
    """Remove the staging folders an earlier run killed by kill -9 left beside ``out``.

    A backup (``.old``) found while ``out`` is missing is the model a killed replace had
    moved aside: it is put back instead. Folders another live run holds are left alone.
    """
    pattern = re.compile(rf"\.{re.escape(out.name)}\.[a-z0-9_]{{8}}(\.tmp|\.old)$")
    for path in sorted(out.parent.iterdir()) if out.parent.is_dir() else []:
        match = pattern.match(path.name)
        if not match or path.is_symlink() or not path.is_dir():
            continue
        try:
            os.close(lock_dir(path))
        except OSError:
            continue  # a live run is using it (or it is not ours to open)
        if match.group(1) == ".old" and not out.exists() and model_kind(path):
            os.rename(path, out)
            log(f"restored {out} from {path.name}, left by an interrupted replace")
        else:
            shutil.rmtree(path, ignore_errors=True)
            log(f"removed {path}, left by an interrupted run")


@contextmanager
def staged_model_dir(
    out: str | os.PathLike, *, kind: str, force: bool = False, log: Callable[[str], None] = note
) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``out`` in (almost) one rename.

    On any exception the temporary directory is removed and ``out`` is left as it was. The
    final step re-checks ``out``: see :func:`publish`.
    """
    out = Path(out)
    clean_stale(out, log)
    checked = check_writable_target(out, force, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = stage_dir(out, ".tmp")
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; a model is not
        yield tmp
        publish(tmp, out, checked, kind)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(fd)


def publish(tmp: Path, out: Path, checked: tuple[int, int] | None, kind: str) -> None:
    """Rename the finished ``tmp`` to ``out``, replacing only the model checked at the start.

    ``rename`` onto a missing or empty directory is atomic and fails on anything else, so a
    folder made at ``out`` during training (or another run's model) is never lost. The model
    to replace (``checked``: its identity) is first moved to a unique, locked backup name and
    checked *there*, where nothing else can swap it. When ``out`` is taken, the new model is
    kept under a visible unique name and the error says where.
    """
    backup, lock = None, None
    if checked is not None and out.is_dir() and identity(out) == checked:
        lock = lock_dir(out)  # so that no other run takes the backup for a stale one
        backup, empty = stage_dir(out, ".old")
        os.close(empty)
        os.rename(out, backup)  # onto the empty backup directory: atomic
        if identity(backup) != checked or model_kind(backup) != kind:  # changed meanwhile
            os.rename(backup, out)
            backup = None
    try:
        os.rename(tmp, out)
    except OSError:
        kept = [f"the new model is in {keep_aside(tmp, out, 'new')}"]
        if backup is not None:
            if out.exists():
                kept.append(f"the old one in {keep_aside(backup, out, 'old')}")
            else:
                os.rename(backup, out)
            backup = None
        raise UserError(
            f"{out} was changed by something else while training, so it was left alone; {' and '.join(kept)}"
        ) from None
    finally:
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
        if lock is not None:
            os.close(lock)


def keep_aside(path: Path, out: Path, what: str) -> Path:
    """Move ``path`` to a visible, unique sibling of ``out`` (``NAME.new-XXXX``) and return it."""
    keep = Path(tempfile.mkdtemp(prefix=f"{out.name}.{what}-", dir=out.parent))
    os.rename(path, keep)  # onto the empty directory just made: atomic
    return keep


def current_umask() -> int:
    """The process umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_meta(model_dir: Path, kind: str, format_version: int, meta: dict[str, Any]) -> None:
    """Write ``meta.json`` with the model kind, format version and library versions."""
    payload = {"kind": kind, "format_version": format_version, "versions": versions(), **meta}
    write_json(model_dir / META_FILE, payload)


def read_meta(model_dir: str | os.PathLike, kind: str, format_version: int) -> dict[str, Any]:
    """Read and check ``meta.json``: a clear :class:`UserError` for every way it can be wrong."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise UserError(f"model directory not found: {model_dir}")
    path = model_dir / META_FILE
    if not path.is_file():
        raise UserError(f"{model_dir} is not a model directory (no {META_FILE})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path} is unreadable: {exc}") from None
    if not isinstance(meta, dict) or meta.get("kind") != kind:
        found = meta.get("kind") if isinstance(meta, dict) else None
        raise UserError(f"{model_dir} holds a {found or 'unknown'} model, not a {kind} model")
    if meta.get("format_version") != format_version:
        raise UserError(
            f"{model_dir} was saved in format {meta.get('format_version')}, this version reads "
            f"format {format_version}; retrain the model with this version"
        )
    return meta


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (temporary file + rename), so a report is whole or absent."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes it private; a report is not
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
