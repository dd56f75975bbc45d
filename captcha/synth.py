"""The project's own labelled CAPTCHA generator (Pillow), for the demo, the tests and the bench.

It returns the true box of every glyph as well as the image, so that the segmenter can be
tested against known positions. It needs no system font: when none is found it uses Pillow's
built-in scalable font, so it behaves the same on a bare CI machine.

Each named style (:data:`STYLES`) imitates a kind of real CAPTCHA the reader must cope with:
noise darker than the text, arcs and dots, thick curved lines over a dotted background,
per-glyph colours, transparent backgrounds, touching warped glyphs. Any style takes a fixed
length or a range of lengths.
"""

from __future__ import annotations

import colorsys
import glob
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from recognisers.errors import UserError

DEFAULT_CHARSET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no O/0, I/1: ambiguous even to people
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "C:/Windows/Fonts")
# font families in order of preference; only the first one found is used, so that installing
# another family (a browser brings Liberation) does not change what a seed generates
FONT_FAMILIES = (
    ("DejaVuSans-Bold", "DejaVuSerif-Bold", "DejaVuSansMono-Bold", "DejaVuSans"),
    ("LiberationSans-Bold", "LiberationSerif-Bold"),
    ("Arial", "Verdana"),
)
Colour = tuple[int, ...]
Box = tuple[int, int, int, int]


@dataclass
class Captcha:
    """One generated CAPTCHA: RGB (or RGBA) pixels, its text and the (x0, y0, x1, y1) box of each glyph."""

    image: np.ndarray
    text: str
    boxes: list[Box]


@dataclass(frozen=True)
class Style:
    """How one style draws: glyph placement and distortion, colours, and the clutter on top."""

    angle: float = 0.0  # glyphs rotate by up to this many degrees either way
    gaps: tuple[int, int] = (4, 8)  # pixels between glyphs (negative: touching, overlapping)
    jitter: bool = False  # glyphs sit at random heights (else centred)
    warp: float = 0.0  # sine warp amplitude of each glyph, in pixels
    palette: str = "plain"  # see :func:`colours`
    per_glyph_colour: bool = False  # every glyph its own colour
    noise: tuple[str, ...] = ()  # names in NOISE, drawn in this order
    margin: int = 12  # blank pixels before the first glyph and after the last


STYLE_TABLE: dict[str, Style] = {
    "simple": Style(),
    "noisy": Style(angle=25, gaps=(-3, 1), jitter=True, palette="light-dark", noise=("dots", "lines")),
    # light grey letters, many thin lines darker than the letters (a university login page)
    "dark-lines": Style(angle=10, gaps=(1, 5), palette="grey-text", noise=("dark-lines",)),
    # overlapping warped glyphs under an arc and dots darker than the letters
    "arcs-dots": Style(
        angle=15, gaps=(-4, -1), jitter=True, warp=2.0, palette="mid-text", noise=("dark-arc", "dark-dots")
    ),
    # dotted background, several thick and thin curved lines through the text
    "curved-lines": Style(
        angle=15, gaps=(0, 3), jitter=True, palette="light-dark", noise=("background-dots", "curves")
    ),
    # every glyph its own colour on a pastel background
    "pastel": Style(
        angle=15, gaps=(1, 5), jitter=True, palette="pastel", per_glyph_colour=True, noise=("colour-lines",)
    ),
    # colourful glyphs, widely spaced, on a transparent background, struck through
    "transparent": Style(
        angle=10, gaps=(6, 14), jitter=True, palette="transparent", per_glyph_colour=True, noise=("strike",)
    ),
    # touching warped glyphs, a curved line through them, dots (like cc-digits)
    "touching": Style(
        angle=10, gaps=(-4, -1), jitter=True, warp=2.0, palette="light-dark", noise=("curve", "dots")
    ),
}
STYLES = tuple(STYLE_TABLE)


@lru_cache(maxsize=1)
def system_fonts() -> tuple[str, ...]:
    """The bold, readable TrueType fonts of the first family found here (empty when none is)."""
    found: dict[str, str] = {}
    for folder in FONT_DIRS:
        for path in glob.glob(os.path.join(folder, "**", "*.ttf"), recursive=True):
            found.setdefault(Path(path).stem, path)
    for family in FONT_FAMILIES:
        if any(name in found for name in family):
            return tuple(found[name] for name in family if name in found)
    return ()


def load_font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A font at ``size`` pixels; ``None`` means Pillow's built-in font (no system font needed)."""
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size)


def glyph_mask(char: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, angle: float) -> Image.Image:
    """The glyph as an 8-bit coverage mask, rotated, cropped to its ink."""
    left, top, right, bottom = font.getbbox(char)
    mask = Image.new("L", (int(right - left) + 8, int(bottom - top) + 8), 0)
    ImageDraw.Draw(mask).text((4 - left, 4 - top), char, fill=255, font=font)
    if angle:
        mask = mask.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    return mask.crop(mask.getbbox())


def warp_mask(mask: Image.Image, amplitude: float, rng: np.random.Generator) -> Image.Image:
    """Bend a glyph with a sine displacement in x and y (padded so nothing is cut off)."""
    pad = int(np.ceil(amplitude)) + 1
    src = np.pad(np.asarray(mask), pad)
    h, w = src.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    px, py, phase_x, phase_y = rng.uniform(1.0, 2.0), rng.uniform(1.0, 2.0), *rng.uniform(0, 2 * np.pi, 2)
    map_x = xs + amplitude * np.sin(2 * np.pi * ys / (px * h) + phase_x)
    map_y = ys + amplitude * np.sin(2 * np.pi * xs / (py * w) + phase_y)
    out = Image.fromarray(
        cv2.remap(src, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR)
    )
    return out.crop(out.getbbox()) if out.getbbox() else mask


def fit_height(mask: Image.Image, height: int) -> Image.Image:
    """Shrink a glyph that would not fit the image's height (rotation and warp make glyphs taller)."""
    if mask.height <= height - 2:
        return mask
    scale = (height - 2) / mask.height
    return mask.resize((max(1, round(mask.width * scale)), height - 2), Image.Resampling.BILINEAR)


def vivid(rng: np.random.Generator, lightness: tuple[float, float] = (0.25, 0.5)) -> Colour:
    """A saturated colour of random hue (glyphs of several colours)."""
    r, g, b = colorsys.hls_to_rgb(rng.uniform(0, 1), rng.uniform(*lightness), rng.uniform(0.7, 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def colours(palette: str, rng: np.random.Generator) -> tuple[Colour, Colour]:
    """Background and text colour of a palette.

    ``light-dark`` keeps a luminance gap of at least ~90 levels between a light background and
    darker text; ``grey-text`` is light grey text on near-white (noise will be darker);
    ``mid-text`` is mid-dark text; ``pastel`` a pastel background; ``transparent`` a fully
    transparent background (RGBA with black, zero-alpha pixels, as many real ones are).
    """
    if palette == "plain":
        return (255, 255, 255), (0, 0, 0)
    if palette == "light-dark":
        return tuple(int(v) for v in rng.integers(185, 256, 3)), tuple(
            int(v) for v in rng.integers(0, 100, 3)
        )
    if palette == "grey-text":
        level = int(rng.integers(120, 165))
        return tuple(int(v) for v in rng.integers(235, 256, 3)), (
            level,
            level,
            level + int(rng.integers(0, 20)),
        )
    if palette == "mid-text":
        return tuple(int(v) for v in rng.integers(215, 256, 3)), tuple(
            int(v) for v in rng.integers(70, 120, 3)
        )
    if palette == "pastel":
        r, g, b = colorsys.hls_to_rgb(rng.uniform(0, 1), rng.uniform(0.85, 0.93), rng.uniform(0.4, 0.9))
        return (int(r * 255), int(g * 255), int(b * 255)), vivid(rng)
    if palette == "transparent":
        return (0, 0, 0, 0), vivid(rng)
    raise ValueError(f"unknown palette {palette!r}")


def render(
    text: str,
    style: str = "simple",
    rng: np.random.Generator | None = None,
    fonts: tuple[str | None, ...] | None = None,
    height: int = 40,
    gaps: tuple[int, int] | None = None,
) -> Captcha:
    """Draw ``text`` as a CAPTCHA of the named style (see :data:`STYLE_TABLE`).

    ``gaps`` (pixels between glyphs, low and high) overrides the style's spacing; negative
    gaps make glyphs touch or overlap, which the tests use.
    """
    if style not in STYLE_TABLE:
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    spec = STYLE_TABLE[style]
    rng = rng or np.random.default_rng()
    fonts = fonts if fonts is not None else (system_fonts() or (None,))
    background, ink = colours(spec.palette, rng)
    font = load_font(fonts[int(rng.integers(len(fonts)))], int(height * 0.7))
    masks = [
        glyph_mask(c, font, float(rng.uniform(-spec.angle, spec.angle)) if spec.angle else 0.0) for c in text
    ]
    if spec.warp:
        masks = [warp_mask(m, spec.warp, rng) for m in masks]
    masks = [fit_height(m, height) for m in masks]
    low, high = gaps or spec.gaps
    spacing = rng.integers(low, high + 1, len(text))
    width = sum(m.width for m in masks) + int(spacing.sum()) + 2 * spec.margin
    image = Image.new("RGBA" if len(background) == 4 else "RGB", (width, height), background)
    boxes, x = [], spec.margin
    for mask, gap in zip(masks, spacing):
        y = int(rng.integers(0, max(1, height - mask.height))) if spec.jitter else (height - mask.height) // 2
        colour = vivid(rng) if spec.per_glyph_colour else ink
        image.paste(colour if image.mode == "RGB" else (*colour[:3], 255), (x, y), mask)
        boxes.append((x, y, x + mask.width, y + mask.height))
        x += mask.width + int(gap)
    for name in spec.noise:
        NOISE[name](ImageDraw.Draw(image), image.size, rng, ink, boxes)
    return Captcha(np.asarray(image), text, boxes)


def darker(ink: Colour, rng: np.random.Generator) -> Colour:
    """A colour clearly darker than the text (noise that the darkest-ink rule would keep)."""
    return tuple(int(v) for v in rng.integers(0, max(1, min(ink[:3]) // 3 + 1), 3))


def text_band(boxes: list[Box]) -> tuple[int, int, int, int]:
    """The extent of the glyphs: curves and strike lines run through it."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def curve_points(
    x0: int, x1: int, y: float, amplitude: float, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """A smooth sine curve from x0 to x1 around height y."""
    xs = np.linspace(x0, x1, 24)
    period, phase = rng.uniform(0.5, 1.5) * (x1 - x0 + 1), rng.uniform(0, 2 * np.pi)
    return [(float(x), float(y + amplitude * np.sin(2 * np.pi * x / period + phase))) for x in xs]


def noise_dots(draw, size, rng, ink, boxes) -> None:
    """Single pixels in the text colour."""
    w, h = size
    for _ in range(int(rng.integers(20, 40))):
        draw.point((int(rng.integers(w)), int(rng.integers(h))), fill=ink)


def noise_lines(draw, size, rng, ink, boxes) -> None:
    """One or two thin straight lines in the text colour, anywhere."""
    w, h = size
    for _ in range(int(rng.integers(1, 3))):
        draw.line([(int(rng.integers(w)), int(rng.integers(h))) for _ in range(2)], fill=ink, width=1)


def noise_dark_lines(draw, size, rng, ink, boxes) -> None:
    """Many thin lines, darker than the text, crossing the whole image."""
    w, h = size
    for _ in range(int(rng.integers(6, 12))):
        a = (0, int(rng.integers(h))) if rng.random() < 0.5 else (int(rng.integers(w)), 0)
        b = (w - 1, int(rng.integers(h))) if rng.random() < 0.5 else (int(rng.integers(w)), h - 1)
        draw.line([a, b], fill=darker(ink, rng), width=1)


def noise_dark_arc(draw, size, rng, ink, boxes) -> None:
    """One or two arcs, darker than the text, across the glyphs."""
    x0, y0, x1, y1 = text_band(boxes)
    for _ in range(int(rng.integers(1, 3))):
        top = int(rng.integers(y0 - 10, y1 - 5))
        bbox = (
            int(x0 - rng.integers(0, 20)),
            top,
            int(x1 + rng.integers(0, 20)),
            top + int(rng.integers(20, 60)),
        )
        start = float(rng.uniform(180, 220))
        draw.arc(bbox, start, start + float(rng.uniform(100, 160)), fill=darker(ink, rng), width=2)


def noise_dark_dots(draw, size, rng, ink, boxes) -> None:
    """Dots of 1 to 3 pixels, darker than the text."""
    w, h = size
    for _ in range(int(rng.integers(30, 60))):
        x, y, r = int(rng.integers(w)), int(rng.integers(h)), int(rng.integers(0, 2))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=darker(ink, rng))


def noise_background_dots(draw, size, rng, ink, boxes) -> None:
    """A dense field of mid-grey dots over the background."""
    w, h = size
    for _ in range(w * h // 25):
        level = int(rng.integers(110, 200))
        draw.point((int(rng.integers(w)), int(rng.integers(h))), fill=(level, level, level))


def noise_curves(draw, size, rng, ink, boxes) -> None:
    """One thick and two thin curved lines through the text, in colours near the text's."""
    x0, y0, x1, y1 = text_band(boxes)
    for width in (3, 1, 1):
        y = rng.uniform(y0 + 4, y1 - 4)
        colour = tuple(int(np.clip(v + rng.integers(-30, 31), 0, 255)) for v in ink[:3])
        draw.line(curve_points(x0 - 6, x1 + 6, y, rng.uniform(3, 8), rng), fill=colour, width=width)


def noise_curve(draw, size, rng, ink, boxes) -> None:
    """One curved line of the text's colour and weight through the glyphs."""
    x0, y0, x1, y1 = text_band(boxes)
    draw.line(curve_points(x0, x1, rng.uniform(y0 + 6, y1 - 6), rng.uniform(3, 7), rng), fill=ink, width=2)


def noise_colour_lines(draw, size, rng, ink, boxes) -> None:
    """Two or three thin lines of random colours."""
    w, h = size
    for _ in range(int(rng.integers(2, 4))):
        draw.line([(int(rng.integers(w)), int(rng.integers(h))) for _ in range(2)], fill=vivid(rng), width=1)


def noise_strike(draw, size, rng, ink, boxes) -> None:
    """One or two opaque lines struck through the text, past its ends."""
    x0, y0, x1, y1 = text_band(boxes)
    w, _ = size
    for _ in range(int(rng.integers(1, 3))):
        ys = rng.uniform(y0 + 0.3 * (y1 - y0), y0 + 0.7 * (y1 - y0), 2)
        a, b = (
            (int(rng.integers(0, max(1, x0))), float(ys[0])),
            (int(rng.integers(min(x1, w - 1), w)), float(ys[1])),
        )
        draw.line([a, b], fill=(*vivid(rng), 255), width=int(rng.integers(1, 3)))


NOISE: dict[str, Callable] = {
    "dots": noise_dots,
    "lines": noise_lines,
    "dark-lines": noise_dark_lines,
    "dark-arc": noise_dark_arc,
    "dark-dots": noise_dark_dots,
    "background-dots": noise_background_dots,
    "curves": noise_curves,
    "curve": noise_curve,
    "colour-lines": noise_colour_lines,
    "strike": noise_strike,
}


def parse_lengths(text: str) -> tuple[int, int]:
    """``"4"`` -> (4, 4), ``"4-8"`` -> (4, 8): the label lengths ``--length`` asks for."""
    low, _, high = str(text).partition("-")
    try:
        lengths = (int(low), int(high or low))
    except ValueError:
        raise UserError(f"--length must be a number or a range like 4-8, not {text!r}") from None
    if not 1 <= lengths[0] <= lengths[1] <= 32:
        raise UserError(f"--length must lie between 1 and 32, low before high, not {text!r}")
    return lengths


def random_text(length: int | tuple[int, int], charset: str, rng: np.random.Generator) -> str:
    """Characters drawn uniformly from ``charset``; a (low, high) length draws the length too."""
    if not isinstance(length, int):
        length = int(rng.integers(length[0], length[1] + 1)) if length[1] > length[0] else length[0]
    return "".join(charset[i] for i in rng.integers(len(charset), size=length))


GENERATED_NAME = re.compile(r"[^_/\\.:\s]+_\d{5,}\.png")  # what generate() names its files


def generate(
    out: Path,
    count: int,
    length: int | tuple[int, int],
    charset: str = DEFAULT_CHARSET,
    style: str = "simple",
    seed: int = 0,
) -> list[Path]:
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
