"""Image loading: any file Pillow reads, any mode, any size, to an RGB array of one size.

Odd modes (grayscale, RGBA, palette, 16-bit) are converted and huge images shrunk on the way
in (``draft`` lets JPEG decode at a fraction of full size); what cannot be read becomes a
:class:`UserError` naming the file.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from recognisers.errors import UserError

MAX_PIXELS = 40_000 * 40_000


def load_image(source: str | os.PathLike | Image.Image | np.ndarray, size: int) -> np.ndarray:
    """One image as ``uint8`` RGB of shape ``(size, size, 3)``."""
    if isinstance(source, np.ndarray):
        source = _from_array(source)
    if isinstance(source, Image.Image):
        return _to_rgb_array(source, size)
    path = Path(source)
    if not path.is_file():
        raise UserError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_PIXELS
            try:
                with Image.open(path) as img:
                    img.draft("RGB", (size, size))
                    return _to_rgb_array(img, size)
            finally:
                Image.MAX_IMAGE_PIXELS = old_limit
    except UnidentifiedImageError:
        raise UserError(f"not an image (or an unsupported format): {path}") from None
    except Image.DecompressionBombError:
        raise UserError(f"image too large (over {MAX_PIXELS:,} pixels): {path}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"cannot read image {path}: {exc}") from None


def _from_array(array: np.ndarray) -> Image.Image:
    """An array (H, W), (H, W, 1|3|4) as a Pillow image; floats are taken as 0..1 or 0..255."""
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        scale = 255.0 if arr.size and float(np.nanmax(arr)) <= 1.0 else 1.0
        arr = np.clip(np.nan_to_num(arr.astype(np.float32) * scale), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise UserError(f"image array has shape {arr.shape}; expected (H, W[, 1|3|4])")
    return Image.fromarray(arr)


def _to_rgb_array(img: Image.Image, size: int) -> np.ndarray:
    """Convert any mode to RGB (alpha composited on white) and resize to ``size`` square."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        top = float(arr.max()) or 1.0
        img = Image.fromarray((arr * (255.0 / top)).astype(np.uint8))
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8)


def load_images(sources: Sequence[str | os.PathLike | np.ndarray], size: int) -> np.ndarray:
    """Many images (paths or arrays) as one ``(n, size, size, 3)`` uint8 array."""
    out = np.empty((len(sources), size, size, 3), np.uint8)
    for i, source in enumerate(sources):
        out[i] = load_image(source, size)
    return out
