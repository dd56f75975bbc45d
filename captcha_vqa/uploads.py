"""Request bodies -> image arrays, with every limit checked before the work it protects.

The body is read with a byte cap (413 past it, nothing more read); each image's size comes
from its header (Pillow opens lazily) and is refused over the side or pixel limit before a
pixel is decoded. Whatever is not an image is a 415. Errors are :class:`ApiError`, which the
app turns into a status code and a JSON body.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from captcha_vqa.config import ServeConfig
from recognisers.images import on_white


class ApiError(Exception):
    """A request the server refuses: an HTTP status and one line saying what was wrong."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Fields:
    """A request body as named values: image bytes under ``images``, text fields as strings."""

    images: list[bytes] = field(default_factory=list)
    text: dict[str, list[str]] = field(default_factory=dict)
    json: dict[str, Any] | None = None  # the parsed body when it was JSON


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {int(declared):,} bytes is over the limit of {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_fields(request: Request, config: ServeConfig, image_field: str) -> Fields:
    """Parse a multipart or JSON body; any other content type is a 415."""
    body = await read_body(request, config.max_body_bytes)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the body is not valid JSON: {exc}") from None
        except RecursionError:
            raise ApiError(400, "the body is not valid JSON here: nested too deeply") from None
        if not isinstance(data, dict):
            raise ApiError(400, "the JSON body must be an object")
        return Fields(json=data)
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await form_fields(request, body, config, image_field)
    raise ApiError(
        415,
        "send multipart/form-data (image files) or application/json "
        f"(base64 images), not {kind or 'a body without a content type'}",
    )


async def form_fields(request: Request, body: bytes, config: ServeConfig, image_field: str) -> Fields:
    """Files under ``image_field`` as bytes, every other field as text (a form without files
    is parsed too, so that a forgotten file gets a clear message)."""

    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    limit = max(config.max_images, config.max_questions) + 8
    try:
        form = await Request(request.scope, replay).form(max_files=limit, max_fields=limit)
    except Exception as exc:  # noqa: BLE001  Starlette raises several types for a broken body
        raise ApiError(400, f"cannot parse the multipart body: {exc}") from None
    fields = Fields()
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != image_field:
                raise ApiError(422, f"unexpected file field {name!r}; send files as {image_field!r}")
            fields.images.append(await value.read())
        elif name == image_field:
            raise ApiError(422, f"{image_field!r} must be a file, not a text field")
        else:
            fields.text.setdefault(name, []).append(value)
    await form.close()
    return fields


def from_base64(text: Any, where: str) -> bytes:
    """Bytes of a base64 string or a ``data:...;base64,`` URI; anything else is a 400."""
    if not isinstance(text, str):
        raise ApiError(422, f"{where} must be a base64 string or a data URI")
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if not head.endswith(";base64"):
            raise ApiError(400, f"{where}: only base64 data URIs are accepted")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{where} is not valid base64") from None


def decode_image(data: bytes, config: ServeConfig, name: str = "image", mode: str = "RGB") -> np.ndarray:
    """A ``uint8`` array (``mode`` "RGB" or grey "L") from image bytes; transparent pixels
    composited onto white. The CAPTCHA reader works on grey levels, so it asks for "L"."""
    if not data:
        raise ApiError(415, f"{name} is an empty file, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:  # reads the header only
                check_size(img.width, img.height, config, name)
                img.load()
                return np.asarray(on_white(img).convert(mode))
    except ApiError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ApiError(
            413, f"{name} is too large to decode safely (Pillow's decompression-bomb guard); {limits(config)}"
        ) from None
    except UnidentifiedImageError:
        raise ApiError(415, f"{name} is not an image (or not a format this server reads)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ApiError(415, f"{name} is a damaged image: {exc}") from None


def check_size(width: int, height: int, config: ServeConfig, name: str) -> None:
    """413 over the side or pixel limit, 415 for a degenerate size."""
    if max(width, height) > config.max_side or width * height > config.max_pixels:
        raise ApiError(413, f"{name} is {width} x {height} pixels; {limits(config)}")
    if min(width, height) < 4:
        raise ApiError(415, f"{name} is {width} x {height} pixels: too small to be read")


def limits(config: ServeConfig) -> str:
    return f"the limit is {config.max_side} pixels a side and {config.max_pixels:,} in all"
