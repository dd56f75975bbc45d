"""CAPTCHA styles no default was chosen on: a probe of how the reader copes with the unfamiliar.

Every generated style of the bench (``captcha.synth.STYLES``) was in view while the reader's
defaults were chosen. These five are not, on purpose: each is drawn by one of the generator's
styles and then changed in a way it never draws, and they stay out of ``captcha.synth`` so
that no future default is chosen on them either:

- ``inverted-jpeg``: light glyphs on a black background, Gaussian pixel noise, saved as JPEG
  of quality 35 (block artefacts);
- ``grid-blur``: a grid of lines in the image's darkest colour (the plain style's text colour)
  over the whole image, then blurred;
- ``outline``: hollow glyphs (only their one-pixel outline) in dark blue, scattered dots;
- ``noisy-grid`` and ``touching-outline``: the grid and the outline over the generator's
  ``noisy`` (rotated, touching glyphs under lines and dots) and ``touching`` (warped touching
  glyphs, a curve, dots) styles: the same changes on hard ground.

Each style becomes one labelled folder of ``--count`` images; the CAPTCHA bench reads it as it
reads a real set (80/20 split by file, default flags):

    .venv/bin/python bench/captcha_novel_styles.py --out runs/novel-styles
    .venv/bin/python bench/captcha_bench.py --datasets runs/novel-styles \\
        --sets inverted-jpeg,grid-blur,outline,noisy-grid,touching-outline --work runs/bench-novel
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from captcha.synth import DEFAULT_CHARSET, random_text, render  # noqa: E402

INK = (30, 30, 90)  # the outline style's glyphs and dots (RGB)


def inverted_jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light on dark, with pixel noise (the JPEG artefacts come when the file is written)."""
    noisy = 255 - image[..., :3].astype(np.int16) + rng.normal(0, 18, image[..., :3].shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def grid_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A grid of one-pixel lines in the image's darkest colour (per channel), 6 to 9 pixels apart,
    then a 3x3 blur."""
    image = image[..., :3].copy()
    h, w = image.shape[:2]
    ink = tuple(int(v) for v in image.reshape(-1, 3).min(axis=0))
    step = int(rng.integers(6, 10))
    offset = int(rng.integers(0, step))
    for x in range(offset, w, step):
        cv2.line(image, (x, 0), (x, h - 1), ink, 1)
    for y in range(offset, h, step):
        cv2.line(image, (0, y), (w - 1, y), ink, 1)
    return cv2.GaussianBlur(image, (3, 3), 0.9)


def outline(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Only the glyphs' outlines (the ink minus its 3x3 erosion), and 30 dots of the same ink."""
    ink = (cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY) < 128).astype(np.uint8)
    hollow = (ink - cv2.erode(ink, np.ones((3, 3), np.uint8))).astype(bool)
    out = np.full_like(image[..., :3], 245)
    out[hollow] = INK
    for _ in range(30):
        centre = (int(rng.integers(0, image.shape[1])), int(rng.integers(0, image.shape[0])))
        cv2.circle(out, centre, 1, INK, -1)
    return out


Change = Callable[[np.ndarray, np.random.Generator], np.ndarray]
# name: (the generator's style, the change to its image, glyphs per label, image height, file suffix)
NOVEL: dict[str, tuple[str, Change, int, int, str]] = {
    "inverted-jpeg": ("simple", inverted_jpeg, 5, 40, ".jpg"),
    "grid-blur": ("simple", grid_blur, 5, 40, ".png"),
    "outline": ("simple", outline, 6, 48, ".png"),
    "noisy-grid": ("noisy", grid_blur, 5, 40, ".png"),
    "touching-outline": ("touching", outline, 5, 48, ".png"),
}


def write_style(folder: Path, name: str, count: int, seed: int) -> None:
    """``count`` labelled files ``TEXT_NNNNN.ext`` of one novel style; the same seed, the same files."""
    style, change, length, height, suffix = NOVEL[name]
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        text = random_text(length, DEFAULT_CHARSET, rng)
        image = cv2.cvtColor(change(render(text, style, rng, height=height).image, rng), cv2.COLOR_RGB2BGR)
        options = [cv2.IMWRITE_JPEG_QUALITY, 35] if suffix == ".jpg" else []
        cv2.imwrite(str(folder / f"{text}_{i:05d}{suffix}"), image, options)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "novel-styles")
    p.add_argument("--count", type=int, default=3750, help="images per style (80%% train: 3,000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--styles", nargs="+", choices=list(NOVEL), default=list(NOVEL))
    args = p.parse_args()
    for name in args.styles:
        write_style(args.out / name, name, args.count, args.seed)
        print(f"{name}: {args.count} images in {args.out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
