"""The project's own labelled CAPTCHA generator (Pillow), for the demo, the tests and the bench.

It returns the true box of every glyph as well as the image, so that the segmenter can be
tested against known positions. It needs no system font: when none is found it uses Pillow's
built-in scalable font, so it behaves the same on a bare CI machine.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DEFAULT_CHARSET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no O/0, I/1: ambiguous even to people
STYLES = ("simple", "noisy")
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "C:/Windows/Fonts")
PREFERRED = ("DejaVuSans-Bold", "DejaVuSerif-Bold", "DejaVuSansMono-Bold", "DejaVuSans",
             "LiberationSans-Bold", "LiberationSerif-Bold", "Arial", "Verdana")


@dataclass
class Captcha:
    """One generated CAPTCHA: RGB pixels, its text and the (x0, y0, x1, y1) box of each glyph."""

    image: np.ndarray
    text: str
    boxes: list[tuple[int, int, int, int]]


@lru_cache(maxsize=1)
def system_fonts() -> tuple[str, ...]:
    """A few bold, readable TrueType fonts found on this machine (empty when there are none)."""
    found = {}
    for folder in FONT_DIRS:
        for path in glob.glob(os.path.join(folder, "**", "*.ttf"), recursive=True):
            found.setdefault(Path(path).stem, path)
    return tuple(found[name] for name in PREFERRED if name in found)


def load_font(path: str | None, size: int) -> ImageFont.FreeTypeFont:
    """A font at ``size`` pixels; ``None`` means Pillow's built-in font (no system font needed)."""
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size)


def glyph_mask(char: str, font: ImageFont.FreeTypeFont, angle: float) -> Image.Image:
    """The glyph as an 8-bit coverage mask, rotated, cropped to its ink."""
    left, top, right, bottom = font.getbbox(char)
    mask = Image.new("L", (right - left + 8, bottom - top + 8), 0)
    ImageDraw.Draw(mask).text((4 - left, 4 - top), char, fill=255, font=font)
    if angle:
        mask = mask.rotate(angle, resample=Image.BILINEAR, expand=True)
    return mask.crop(mask.getbbox())


def colours(style: str, rng: np.random.Generator) -> tuple[tuple, tuple[int, int, int]]:
    """Background and text colour: plain black on white, or light colour vs. darker colour.

    The noisy style keeps a luminance gap of at least ~90 levels so that grey-level
    segmentation still works on coloured text over a coloured background.
    """
    if style == "simple":
        return (255, 255, 255), (0, 0, 0)
    background = tuple(int(v) for v in rng.integers(185, 256, 3))
    text = tuple(int(v) for v in rng.integers(0, 100, 3))
    return background, text


def render(text: str, style: str = "simple", rng: np.random.Generator | None = None,
           fonts: tuple[str | None, ...] | None = None, height: int = 40,
           gaps: tuple[int, int] | None = None) -> Captcha:
    """Draw ``text`` as a CAPTCHA; ``noisy`` rotates glyphs, makes them touch, adds dots and lines.

    ``gaps`` (pixels between glyphs, low and high) overrides the style's spacing; negative
    gaps make glyphs touch or overlap, which the tests use.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    rng = rng or np.random.default_rng()
    fonts = fonts if fonts is not None else (system_fonts() or (None,))
    noisy = style == "noisy"
    background, ink = colours(style, rng)
    font = load_font(fonts[int(rng.integers(len(fonts)))], int(height * 0.7))
    masks = [glyph_mask(c, font, float(rng.uniform(-25, 25)) if noisy else 0.0) for c in text]
    low, high = gaps or ((-3, 1) if noisy else (4, 8))
    spacing = rng.integers(low, high + 1, len(text))
    width = sum(m.width for m in masks) + int(spacing.sum()) + 24
    image = Image.new("RGB", (width, height), background)
    boxes, x = [], 12
    for mask, gap in zip(masks, spacing):
        y = int(rng.integers(0, max(1, height - mask.height))) if noisy else (height - mask.height) // 2
        image.paste(ink, (x, y), mask)
        boxes.append((x, y, x + mask.width, y + mask.height))
        x += mask.width + int(gap)
    if noisy:
        add_noise(image, rng, ink)
    return Captcha(np.asarray(image), text, boxes)


def add_noise(image: Image.Image, rng: np.random.Generator, ink: tuple) -> None:
    """Dots and thin lines in the text colour: the clutter the segmenter must clean up."""
    draw = ImageDraw.Draw(image)
    w, h = image.size
    for _ in range(int(rng.integers(20, 40))):
        x, y = int(rng.integers(w)), int(rng.integers(h))
        draw.point((x, y), fill=ink)
    for _ in range(int(rng.integers(1, 3))):
        points = [(int(rng.integers(w)), int(rng.integers(h))) for _ in range(2)]
        draw.line(points, fill=ink, width=1)


def random_text(length: int, charset: str, rng: np.random.Generator) -> str:
    """``length`` characters drawn uniformly from ``charset``."""
    return "".join(charset[i] for i in rng.integers(len(charset), size=length))


GENERATED_NAME = re.compile(r"[^_/\\.:\s]+_\d{5,}\.png")  # what generate() names its files


def generate(out: Path, count: int, length: int, charset: str = DEFAULT_CHARSET,
             style: str = "simple", seed: int = 0) -> list[Path]:
    """Write ``count`` labelled PNGs named ``TEXT_NNNNN.png`` into ``out``; same seed, same files."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        captcha = render(random_text(length, charset, rng), style, rng)
        path = out / f"{captcha.text}_{i:05d}.png"
        Image.fromarray(captcha.image).save(path, optimize=True)
        paths.append(path)
    return paths
