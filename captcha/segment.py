"""Cut a CAPTCHA into glyphs by shape: ink map, threshold, clean-up, findContours, merge, split.

This is the fast path. It handles coloured backgrounds and gradients (ink is measured against a
local background estimate), noise darker than the text (``ink="band"`` keeps only the ink of
the letters' own darkness), noise dots (small components are dropped), thin lines and
strike-throughs (a vertical opening removes strokes thinner than ``line_kernel``; an opening
by a disc of ``opening`` pixels, sized to the letters' stroke width, removes thin lines of any
direction), broken
glyphs (fragments are merged with the neighbour they overlap) and touching glyphs (a wide
component is cut, at minima of its column projection, into as many glyphs as its width
suggests). When shape alone is not conclusive, :mod:`captcha.recognise` lets the classifier
choose the cuts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from captcha.data import grey

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive)
MIN_CONTRAST = 40  # grey levels between ink and background below which an image has no ink
LATTICES = ("shape", "even")  # where recognition may cut (see recognise.py)
INKS = ("dark", "band", "colour")  # how ink is measured (see ink_map)
CONTEXT_DIM = 0.4  # context pixels beside a glyph reach the CNN at this fraction of their ink


@dataclass(frozen=True)
class SegmentSettings:
    """Everything the segmenter needs; stored in the model's meta.json."""

    glyph_width: float = 20.0  # typical glyph width in pixels, learned from the training data
    line_kernel: int = 0  # height of the vertical opening that removes thin lines (0: off)
    ink: str = "dark"  # "dark": darkness; "band": drop ink much darker than the letters;
    # "colour": colour distance from the local background
    opening: int = 0  # side of the disc whose opening removes thinner strokes (0: off)
    stroke_width: float = 0.0  # the letters' stroke width measured on the training data (info)
    min_area: float = 0.04  # components smaller than this x glyph_width**2 are noise
    context: float = 0.2  # margin around a glyph crop, as a fraction of glyph_width
    glyph_size: int = 28  # side of the square the CNN reads
    lattice: str = "shape"  # where recognition may cut: "shape" or "even" (see recognise.py)

    def to_dict(self) -> dict:
        return asdict(self)

    def problem(self) -> str:
        """What makes these settings unusable (a hand-edited meta.json), or "" when none."""
        if not (
            self.glyph_width > 0
            and self.line_kernel >= 0
            and self.min_area >= 0
            and self.context >= 0
            and self.glyph_size >= 4
        ):
            return "segmentation sizes must be positive (glyph_size at least 4)"
        if self.lattice not in LATTICES:
            return f"segmentation.lattice must be one of {', '.join(LATTICES)}"
        if self.ink not in INKS or self.opening < 0 or self.stroke_width < 0:
            return f"segmentation.ink must be one of {', '.join(INKS)}, opening and stroke_width >= 0"
        return ""


@dataclass(frozen=True)
class Segmentation:
    """Result for one image: ink map, clean mask, glyph boxes, and whether shape alone sufficed."""

    ink: np.ndarray
    mask: np.ndarray
    boxes: list[Box]
    clean: bool
    components: list[Box]  # ink components after merging fragments: where recognition may cut


def ink_map(pixels: np.ndarray, mode: str = "dark") -> np.ndarray | None:
    """Ink strength in [0, 1] against a local background (copes with gradients and light-on-dark);
    None when the image has no ink (blank or too faint).

    ``pixels`` are grey or RGB. ``mode="band"`` keeps only ink of about the letters' darkness
    (see :func:`letters_only`); ``mode="colour"`` measures ink as colour distance from the
    local background, so that glyphs as light as the background but of another hue count.
    """
    gray = colour_distance(pixels) if mode == "colour" else grey(pixels)
    if quantile_u8(gray, 0.5) < 128:
        gray = 255 - gray
    k = max(9, (min(gray.shape) // 3) | 1)
    background = cv2.dilate(gray, np.ones((k, k), np.uint8))
    diff = cv2.subtract(background, gray)
    top = float(quantile_u8(diff, 0.995))
    if top < MIN_CONTRAST:
        return None  # blank or too faint: no ink
    ink = np.minimum(diff.astype(np.float32) / top, 1.0)
    return letters_only(ink) if mode == "band" else ink


def colour_distance(pixels: np.ndarray) -> np.ndarray:
    """255 minus the distance of every pixel's colour from the local background (the median
    colour around it): ink is dark whatever its hue or lightness."""
    k = max(9, (min(pixels.shape[:2]) // 2) | 1)
    diff = pixels.astype(np.float32) - cv2.medianBlur(pixels, k)
    dist = np.sqrt((diff**2).sum(axis=2)) if pixels.ndim == 3 else np.abs(diff)
    return (255 - np.minimum(dist, 255)).astype(np.uint8)


def letters_only(ink: np.ndarray) -> np.ndarray:
    """Drop ink much darker than the letters: thin noise lines, arcs and dots drawn over them.

    The letters' darkness is the median ink inside thick strokes (what survives a 3x3 erosion:
    thin lines do not). Ink clearly beyond it is noise; where noise crossed a letter, the hole
    is filled from the letter pixels around it. Where the text is the darkest ink, nothing
    changes but the scale.
    """
    strong = (ink > 0.15).astype(np.uint8)
    interior = cv2.erode(strong, np.ones((3, 3), np.uint8)).astype(bool)
    if interior.sum() < 20:
        return ink
    level = float(np.median(ink[interior]))
    cut = level + 0.5 * (1.0 - level)
    if cut >= 0.95:
        return ink
    kept = np.where(ink > cut, 0.0, ink).astype(np.float32)
    filled = cv2.dilate(kept, np.ones((3, 3), np.uint8))
    kept = np.where(ink > cut, np.minimum(filled, level), kept)
    return np.minimum(kept / level, 1.0)


def quantile_u8(image: np.ndarray, q: float) -> int:
    """Quantile of a uint8 image from its histogram: several times faster than np.percentile."""
    cumulative = np.cumsum(np.bincount(image.ravel(), minlength=256))
    return int(np.searchsorted(cumulative, q * cumulative[-1]))


def ink_mask(ink: np.ndarray, settings: SegmentSettings) -> np.ndarray:
    """Binary ink (Otsu, with a floor so faint noise never counts), lines opened away, dots dropped."""
    ink8 = (ink * 255).astype(np.uint8)
    level, _ = cv2.threshold(ink8, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    _, mask = cv2.threshold(ink8, max(level, 64), 255, cv2.THRESH_BINARY)
    if settings.line_kernel > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((settings.line_kernel, 1), np.uint8))
    if settings.opening > 1:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (settings.opening, settings.opening))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, disc)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    small = stats[:, cv2.CC_STAT_AREA] < settings.min_area * settings.glyph_width**2
    small[0] = True  # the background label
    if small[1:].any():
        mask[small[labels]] = 0
    return trim_line_tails(mask, settings) if settings.line_kernel > 1 else mask


def trim_line_tails(mask: np.ndarray, settings: SegmentSettings) -> np.ndarray:
    """Blank a long, thin run of ink before or after the text: a strike line's loose ends.

    Opening removes a line only where it is thinner than the kernel; where it is thicker, its
    ends still stretch the text's extent. Columns holding at most twice the kernel's height
    of ink, for more than 0.6 glyph widths at either end, are such ends.
    """
    counts = np.count_nonzero(mask, axis=0)
    thick = np.flatnonzero(counts > 2 * settings.line_kernel)
    inked = np.flatnonzero(counts)
    if thick.size == 0:
        return mask
    run = 0.6 * settings.glyph_width
    if thick[0] - inked[0] >= run:
        mask[:, : thick[0]] = 0
    if inked[-1] - thick[-1] >= run:
        mask[:, thick[-1] + 1 :] = 0
    return mask


def stroke_width(mask: np.ndarray) -> float:
    """Width of the thick strokes of a binary mask: twice the 90th percentile of the distance
    from ink to background (the letters' cores, where thin lines hardly count)."""
    dist = cv2.distanceTransform((mask > 0).astype(np.uint8), cv2.DIST_L2, 3)
    inside = dist[dist > 0]
    return float(2 * np.percentile(inside, 90)) if inside.size else 0.0


def contour_boxes(mask: np.ndarray) -> list[Box]:
    """Bounding boxes of the outer contours, left to right."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append((x, y, x + w, y + h))
    return sorted(boxes)


def union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def merge_fragments(boxes: list[Box], glyph_width: float) -> list[Box]:
    """Join pieces of one glyph: boxes that mostly overlap in x, then slivers with a neighbour."""
    merged: list[Box] = []
    for box in boxes:
        if merged:
            prev = merged[-1]
            overlap = min(prev[2], box[2]) - max(prev[0], box[0])
            if overlap > 0.5 * min(prev[2] - prev[0], box[2] - box[0]):
                merged[-1] = union(prev, box)
                continue
        merged.append(box)
    changed = True
    while changed and len(merged) > 1:
        changed = False
        for i, box in enumerate(merged):
            if box[2] - box[0] >= 0.4 * glyph_width:
                continue
            j = nearest_neighbour(merged, i)
            joined = union(box, merged[j])
            if joined[2] - joined[0] <= 1.3 * glyph_width:
                merged[min(i, j)] = joined
                del merged[max(i, j)]
                changed = True
                break
    return merged


def nearest_neighbour(boxes: list[Box], i: int) -> int:
    """Index of the left or right neighbour with the smaller horizontal gap."""
    if i == 0:
        return 1
    if i == len(boxes) - 1:
        return i - 1
    left = boxes[i][0] - boxes[i - 1][2]
    right = boxes[i + 1][0] - boxes[i][2]
    return i - 1 if left <= right else i + 1


def glyph_counts(boxes: list[Box], glyph_width: float, lengths: list[int] | None) -> list[int]:
    """How many glyphs each box holds: its width's suggestion, nudged to the nearest allowed total."""
    widths = [b[2] - b[0] for b in boxes]
    counts = [max(1, int(round(w / glyph_width))) for w in widths]
    if not lengths:
        return counts
    target = min(lengths, key=lambda n: (abs(n - sum(counts)), n))
    while sum(counts) < target:
        i = max(range(len(counts)), key=lambda k: widths[k] / (counts[k] + 1))
        counts[i] += 1
    while sum(counts) > target and max(counts) > 1:
        i = min((k for k in range(len(counts)) if counts[k] > 1), key=lambda k: widths[k] / (counts[k] - 1))
        counts[i] -= 1
    return counts


def split_box(mask: np.ndarray, box: Box, n: int) -> list[Box]:
    """Cut a box into ``n`` glyphs at the column-projection minima nearest the equal-width cuts."""
    x0, _, x1, _ = box
    if n == 1:
        return [tighten(mask, x0, x1)]
    profile = mask[:, x0:x1].sum(axis=0).astype(np.float32)
    step = (x1 - x0) / n
    cuts = [x0]
    for k in range(1, n):
        centre = x0 + k * step
        lo, hi = int(centre - 0.35 * step), max(int(centre - 0.35 * step) + 1, int(centre + 0.35 * step))
        xs = np.arange(lo, hi)
        cost = profile[xs - x0] * (1 + ((xs - centre) / (0.35 * step)) ** 2)  # prefer near-centre minima
        cuts.append(int(xs[np.argmin(cost)]))
    cuts.append(x1)
    return [tighten(mask, a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def tighten(mask: np.ndarray, x0: int, x1: int) -> Box:
    """The ink's box within columns [x0, x1) (the whole strip when it holds no ink)."""
    x, y, w, h = cv2.boundingRect(mask[:, x0:x1])  # one C call: 8 times faster than NumPy here
    if w == 0:
        return (x0, 0, x1, mask.shape[0])
    return (x0 + x, y, x0 + x + w, y + h)


def segment(
    pixels: np.ndarray, settings: SegmentSettings, lengths: list[int] | None = None
) -> Segmentation | None:
    """Glyph boxes of one grey or RGB image; ``clean`` means every box was a whole component of glyph size.

    None when the image holds no ink (blank, too faint, or nothing left after removing noise):
    training skips such an image, reading turns it into the user's error.
    """
    ink = ink_map(pixels, settings.ink)
    if ink is None:
        return None
    mask = ink_mask(ink, settings)
    boxes = merge_fragments(contour_boxes(mask), settings.glyph_width)
    if not boxes:
        return None
    counts = glyph_counts(boxes, settings.glyph_width, lengths)
    glyphs = [g for box, n in zip(boxes, counts) for g in split_box(mask, box, n)]
    clean = max(counts) == 1 and (not lengths or len(glyphs) in lengths)
    return Segmentation(ink, mask, glyphs, clean, boxes)


def crop(ink: np.ndarray, box: Box, settings: SegmentSettings) -> np.ndarray:
    """The glyph with some dimmed context, scaled to fit a square for the CNN (float32, S x S).

    The aspect ratio is kept (a narrow glyph stays narrow: width tells the CNN something).
    """
    x0, y0, x1, y1 = box
    c = int(round(settings.context * settings.glyph_width))
    h, w = ink.shape
    left, right = max(0, x0 - c), min(w, x1 + c)
    patch = ink[max(0, y0 - 2) : min(h, y1 + 2), left:right].copy()
    patch[:, : x0 - left] *= CONTEXT_DIM  # dimmed context: the CNN sees where the cut was
    patch[:, x1 - left :] *= CONTEXT_DIM
    ph, pw = patch.shape
    size = settings.glyph_size
    scale = size / max(ph, pw, 1)
    nh, nw = max(1, min(size, round(ph * scale))), max(1, min(size, round(pw * scale)))
    out = np.zeros((size, size), np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = cv2.resize(patch, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def draw_boxes(
    gray: np.ndarray, boxes: list[Box], labels: str | None = None, height: int = 160
) -> np.ndarray:
    """A colour copy of the image, upscaled to about ``height`` pixels, with the boxes drawn.

    The characters (``labels``, one per box) are written in a band above the image, each over
    its box in the box's colour, large enough to read.
    """
    scale = max(2, int(np.ceil(height / max(gray.shape[0], 1))))
    image = cv2.cvtColor(
        cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2BGR
    )
    band = 36 if labels else 0
    image = cv2.copyMakeBorder(image, band, 0, 0, 0, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    thickness = max(1, scale // 3)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        colour = ((0, 0, 255), (0, 160, 0), (255, 0, 0))[i % 3]
        cv2.rectangle(
            image, (x0 * scale, band + y0 * scale), (x1 * scale - 1, band + y1 * scale - 1), colour, thickness
        )
        if labels and i < len(labels):
            (w, _), _ = cv2.getTextSize(labels[i], cv2.FONT_HERSHEY_SIMPLEX, 1.0, 2)
            x = max(0, (x0 + x1) * scale // 2 - w // 2)
            cv2.putText(image, labels[i], (x, band - 8), cv2.FONT_HERSHEY_SIMPLEX, 1.0, colour, 2)
    return image
