"""Opening image files safely, the same way in both tools.

Every file is sized from its header before anything is decoded, and refused above one pixel
limit (:data:`MAX_PIXELS`), so a decompression bomb costs nothing. What cannot be read (a
missing, empty, truncated or foreign file) becomes a :class:`UserError` naming the file.
Transparent pixels are composited onto white: a CAPTCHA or photo with a transparent
background shows dark ink on light paper, as a viewer would display it.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from recognisers.errors import UserError

MAX_PIXELS = 50_000_000  # 50 megapixels (e.g. 8660 x 5773): far above any CAPTCHA or VQA photo
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class UnreadableImage(UserError):
    """An image file that cannot be read: missing, empty, foreign, damaged or over the limit."""


@dataclass(frozen=True)
class Header:
    """What a file's header says: format, size, and whether a plain grey/colour decode is exact.

    ``plain`` is true for an opaque PNG and for a JPEG that ends with its end marker (a
    truncated JPEG does not, and OpenCV would decode it silently into garbage).
    """

    format: str
    width: int
    height: int
    plain: bool


def read_header(path: str | os.PathLike) -> Header:
    """The checked header of an image file; a UserError if it is missing, empty, foreign or too large."""
    path = Path(path)
    if not path.is_file():
        if os.path.lexists(path) and not path.exists():
            raise UnreadableImage(f"image not found (broken or looping symbolic link): {path}")
        if path.is_dir():
            raise UnreadableImage(f"{path} is a folder, not an image file")
        raise UnreadableImage(f"image not found: {path}")
    try:
        with open(path, "rb") as fh:
            header = png_header(fh) or jpeg_header(fh)
    except OSError as exc:
        raise UnreadableImage(f"cannot read image {path}: {exc.strerror or exc}") from None
    if header is None:
        if path.stat().st_size == 0:
            raise UnreadableImage(f"empty file: {path}")
        with open_image(path) as img:  # other formats: Pillow reads the header lazily
            header = Header(img.format or "?", img.width, img.height, False)
    check_pixels(header.width, header.height, path)
    return header


def check_pixels(width: int, height: int, source: object) -> None:
    """Refuse an image over :data:`MAX_PIXELS`, with the numbers in the message."""
    if width * height > MAX_PIXELS:
        raise UnreadableImage(
            f"image too large: {source} is {width} x {height} = {width * height:,} "
            f"pixels; the limit is {MAX_PIXELS:,}"
        )


def png_header(fh: BinaryIO) -> Header | None:
    """Size and colour type from a PNG's IHDR chunk; None if the file is not a PNG."""
    head = fh.read(26)
    if len(head) < 26 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return Header("PNG", width, height, plain=head[25] in (0, 2))  # grey or RGB: no alpha, no palette


def jpeg_header(fh: BinaryIO) -> Header | None:
    """Size from a JPEG's frame header (walking the marker segments); None if not a JPEG."""
    fh.seek(0)
    if fh.read(2) != b"\xff\xd8":
        return None
    while True:
        marker = fh.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None  # damaged: Pillow will say how
        if marker[1] in (0xD9, 0xDA):
            return None  # end of image or start of scan before any frame header
        length = fh.read(2)
        if len(length) < 2:
            return None
        if marker[1] in JPEG_SOF:
            frame = fh.read(5)
            if len(frame) < 5:
                return None
            height, width = struct.unpack(">HH", frame[1:5])
            return Header("JPEG", width, height, plain=ends_with_eoi(fh))
        fh.seek(struct.unpack(">H", length)[0] - 2, os.SEEK_CUR)


def ends_with_eoi(fh: BinaryIO) -> bool:
    """Does the JPEG end with its end-of-image marker (padding zeros aside)?"""
    fh.seek(max(0, fh.seek(0, os.SEEK_END) - 64))
    return fh.read().rstrip(b"\0").endswith(b"\xff\xd9")


@contextmanager
def open_image(path: str | os.PathLike) -> Iterator[Image.Image]:
    """A lazily opened Pillow image; decoding errors inside the block become UserErrors.

    Call :func:`read_header` first for the pixel limit; Pillow's own decompression-bomb
    check remains as a second guard.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                yield img
    except UnidentifiedImageError:
        raise UnreadableImage(
            f"not a readable image (not an image, or an unsupported format): {path}"
        ) from None
    except Image.DecompressionBombError:
        raise UnreadableImage(f"image too large: {path} is over {MAX_PIXELS:,} pixels") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UnreadableImage(f"cannot read image {path}: {exc}") from None


def on_white(img: Image.Image) -> Image.Image:
    """Upright as viewers show it, alpha composited onto white, deeper levels scaled to 8 bits: L or RGB.

    A phone photo is often stored sideways with an EXIF orientation tag; read as stored, "at
    the top" would mean the left. 16- and 32-bit integer levels are scaled by their type's range
    (65535 is white), not by the image's own maximum, which would brighten a dark image; float
    levels are taken as 0 to 1 where they stay within it, else as 0 to 255.
    """
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img.convert("RGBA"))
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        arr = np.nan_to_num(np.asarray(img, dtype=np.float32))
        if img.mode == "F":
            scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
        else:
            scale = 255.0 / 65535.0
        img = Image.fromarray(np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8))
    return img if img.mode in ("L", "RGB") else img.convert("RGB")
