"""Labelled CAPTCHA folders -> (path, label) samples; image reading with clear errors; splits.

A folder's labels are its file names (the stem, or the part of it before the first ``_``:
``2A2X.png``, ``2A2X_0007.png``, ``002p_<md5>.jpg``) unless a ``labels.csv``
(``filename,label``) overrides them.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from recognisers.errors import UserError, note
from recognisers.images import on_white, open_image, read_header

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
CASES = ("upper", "lower", "keep")
LABELS_CSV = "labels.csv"
MAX_SIDE = 1024  # CAPTCHAs are small: a longer side beyond this is shrunk before segmentation


@dataclass(frozen=True)
class Sample:
    """One labelled image file."""

    path: Path
    label: str


def apply_case(text: str, case: str) -> str:
    """Normalise a label or a prediction the way the dataset option asks."""
    if case == "upper":
        return text.upper()
    if case == "lower":
        return text.lower()
    return text


def label_from_name(path: Path) -> str:
    """``2A2X_0007.png`` -> ``2A2X``: the stem up to the first underscore."""
    return path.stem.split("_", 1)[0]


def read_labels_csv(path: Path) -> dict[str, str]:
    """``filename,label`` rows (a header row is allowed) -> {file name: label}.

    Read as ``utf-8-sig``: spreadsheet programs start the file with a byte-order mark, which
    would otherwise stick to the first file name and lose that row's label.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if row]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["filename", "label"]:
        rows = rows[1:]
    if any(len(row) < 2 for row in rows):
        raise UserError(f"{path}: every row must be 'filename,label'")
    return {row[0].strip(): row[1].strip() for row in rows}


def load_folder(folder: str | os.PathLike, case: str = "keep") -> list[Sample]:
    """Every labelled image in ``folder`` (sorted by name); errors a user can fix are UserErrors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"data folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    overrides = read_labels_csv(folder / LABELS_CSV) if (folder / LABELS_CSV).is_file() else {}
    stray = sorted(set(overrides) - {p.name for p in files})
    if stray:
        note(
            f"{len(stray)} row(s) of {LABELS_CSV} name no image in {folder} (first: {stray[0]!r}); "
            "rows are 'filename,label' with the bare file name"
        )
    samples, unlabelled = [], []
    for path in files:
        label = apply_case(overrides.get(path.name, label_from_name(path)).strip(), case)
        if any(c.isspace() for c in label):
            raise UserError(
                f"{folder / path.name}: the label {label!r} holds a space; a glyph "
                f"cannot be one (fix the name or {LABELS_CSV})"
            )
        if label:
            samples.append(Sample(path, label))
        else:
            unlabelled.append(path.name)
    if unlabelled and samples:
        note(f"skipped {len(unlabelled)} image(s) with an empty label in {folder} (first: {unlabelled[0]})")
    if not samples:
        raise UserError(f"no usable labels in {folder} (name files LABEL.png or add {LABELS_CSV})")
    return samples


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A grey-level uint8 image from a file, shrunk to at most ``MAX_SIDE``; bad files are UserErrors."""
    return grey(read_pixels(path))


def read_pixels(path: str | os.PathLike) -> np.ndarray:
    """The file's pixels as uint8 grey (H x W) or RGB (H x W x 3), shrunk to at most ``MAX_SIDE``.

    The header is checked first (pixel limit, see :mod:`recognisers.images`). Opaque PNGs and
    whole JPEGs are decoded by OpenCV (fast); everything else (transparency, other formats,
    a JPEG that may be truncated) by Pillow, which composites onto white (transparent pixels
    often hold black: read as they are, they would be black ink) and refuses truncated data.
    """
    header = read_header(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if header.plain else None
    if image is None:
        with open_image(path) as img:
            return to_pixels(np.asarray(on_white(img)))
    if image.dtype == np.uint16:
        image = (image // 256).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return to_pixels(image)


def shrink_scale(shape: tuple[int, ...]) -> float:
    """How much :func:`shrink` scales an image of this shape: 1 up to ``MAX_SIDE`` a side, less above."""
    return min(1.0, MAX_SIDE / max(shape[:2]))


def shrink(image: np.ndarray) -> np.ndarray:
    """Scale an image whose longer side exceeds ``MAX_SIDE`` down to it (bounded segmentation work)."""
    scale = shrink_scale(image.shape)
    if scale == 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def to_pixels(image: np.ndarray) -> np.ndarray:
    """uint8 grey or RGB pixels from an array the user passes (H x W, x 1, x 3 RGB, x 4 RGBA)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if (
        image.ndim not in (2, 3)
        or (image.ndim == 3 and image.shape[2] not in (3, 4))
        or min(image.shape[:2]) < 4
    ):
        raise UserError(f"expected a grey or RGB image, got an array of shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(np.nan_to_num(image * levels_scale(image)), 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        image = np.asarray(on_white(Image.fromarray(image, "RGBA")))
    return shrink(np.ascontiguousarray(image))


def levels_scale(image: np.ndarray) -> float:
    """What takes an array's levels to 0-255: uint16 as a 16-bit file reads (65535 is white),
    booleans and floats within 0 to 1 times 255, any other number as it is (0-255)."""
    if image.dtype == np.uint16:
        return 255.0 / 65535.0
    if image.dtype == np.bool_ or (image.dtype.kind == "f" and image.size and float(np.nanmax(image)) <= 1.0):
        return 255.0
    return 1.0


def grey(pixels: np.ndarray) -> np.ndarray:
    """Luminance of grey or RGB uint8 pixels."""
    return pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)


def to_gray(image: np.ndarray) -> np.ndarray:
    """Grey levels from an array the user passes (H x W, H x W x 3 RGB or x 4 RGBA)."""
    return grey(to_pixels(image))


def split(samples: list[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Shuffle by file with ``seed``; return (rest, held-out ``fraction``)."""
    order = np.random.default_rng(seed).permutation(len(samples))
    n_out = int(round(len(samples) * fraction))
    held = sorted(order[:n_out])
    rest = sorted(order[n_out:])
    return [samples[i] for i in rest], [samples[i] for i in held]
