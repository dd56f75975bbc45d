"""Image loading: any file Pillow reads, any mode, any size, to an RGB array of one size.

Odd modes (grayscale, RGBA, palette, 16-bit) are converted and huge images shrunk on the way
in (``draft`` lets JPEG decode at a fraction of full size); what cannot be read becomes a
:class:`UserError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from recognisers.errors import UserError
from recognisers.images import on_white, open_image, read_header


def load_image(source: str | os.PathLike | Image.Image | np.ndarray, size: int) -> np.ndarray:
    """One image as ``uint8`` RGB of shape ``(size, size, 3)``."""
    if isinstance(source, np.ndarray):
        source = _from_array(source)
    if isinstance(source, Image.Image):
        return _to_rgb_array(source, size)
    read_header(source)  # exists, is an image, within the pixel limit: before decoding
    with open_image(source) as img:
        img.draft("RGB", (size, size))
        return _to_rgb_array(img, size)


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
    img = on_white(img).convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(img, dtype=np.uint8)


def load_images(sources: Sequence[str | os.PathLike | np.ndarray], size: int) -> np.ndarray:
    """Many images (paths or arrays) as one ``(n, size, size, 3)`` uint8 array."""
    out = np.empty((len(sources), size, size, 3), np.uint8)
    for i, source in enumerate(sources):
        out[i] = load_image(source, size)
    return out
