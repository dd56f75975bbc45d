"""Model directories: written atomically, never overwritten by accident, checked on load.

A model directory holds the ``.keras`` file(s), a ``meta.json`` and the training history.
Training writes into a hidden temporary sibling and renames it into place only when
everything is written, so a crash or Ctrl-C never leaves half a model, and an existing
model survives a failed retraining even with ``force``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from recognisers import __version__
from recognisers.errors import UserError

META_FILE = "meta.json"


def versions() -> dict[str, str]:
    """Library versions recorded in every ``meta.json`` (what made this model)."""
    import keras
    import numpy
    import tensorflow

    return {
        "project": __version__,
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }


def check_writable_target(out: Path, force: bool) -> None:
    """Refuse before any work is done: an existing model without ``force``, or a non-model folder."""
    if not out.exists():
        return
    if not out.is_dir() or not (out / META_FILE).is_file():
        if out.is_dir() and not any(out.iterdir()):
            return
        raise UserError(f"{out} exists and is not a model directory; choose another --out")
    if not force:
        raise UserError(f"{out} already holds a model; pass --force to replace it")


@contextmanager
def staged_model_dir(out: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``out`` in (almost) one rename.

    On any exception the temporary directory is removed and ``out`` is left as it was.
    """
    out = Path(out)
    check_writable_target(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; a model is not
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old")
    if out.exists():
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


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
