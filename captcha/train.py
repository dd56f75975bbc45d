"""Training: tune the segmenter on the data, harvest glyphs, train the CNN, refine by alignment.

1. The segmentation settings (ink extraction, line and dot removal, typical glyph width) are
   chosen on the validation slice: the clean-up whose shape-only glyph count most often
   equals the label's length (see :func:`tune_settings`), recorded in meta.json.
2. Every image is segmented with its label's length as a hint; only images whose glyph count
   matches the label give glyphs (the count is reported).
3. After a first fit, images that shape could not cut cleanly are re-cut by forced alignment
   (the recognition lattice, scored by p(true character)), and the CNN is trained again on
   the better crops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from captcha.data import Sample, apply_case, read_pixels
from captcha.model import CaptchaSolver, SegmentConfig
from captcha.network import build_model, fit
from captcha.recognise import Lattice, best_paths, lattice_for
from captcha.segment import (
    INKS,
    Box,
    Segmentation,
    SegmentSettings,
    crop,
    ink_map,
    ink_mask,
    segment,
    stroke_width,
)
from recognisers.backend import import_keras
from recognisers.errors import UserError
from recognisers.training import kept_epoch, set_seed

LINE_KERNELS = (0, 2, 3, 4)
DISC_FRACTIONS = (0.4, 0.6)  # disc openings tried, as fractions of the letters' stroke width
OPENING_COST = 0.1  # agreement each clean-up step must add to be chosen
TUNE_IMAGES = 300  # validation images the clean-up is chosen on


def read_training_images(samples: list[Sample], log: Callable[[str], None]) -> list[tuple[np.ndarray, str]]:
    """Pixels (grey or RGB) with labels; unreadable files are skipped and counted, not fatal."""
    images, bad = [], 0
    for sample in samples:
        try:
            images.append((read_pixels(sample.path), sample.label))
        except UserError:
            bad += 1
    if bad:
        log(f"skipped {bad} unreadable image(s)")
    if not images:
        raise UserError("no readable training images")
    return images


def ink_extent(pixels: np.ndarray, settings: SegmentSettings) -> int:
    """Width in pixels of the columns that hold ink after clean-up (0 when none)."""
    ink = ink_map(pixels, settings.ink)
    return 0 if ink is None else cv2.boundingRect(ink_mask(ink, settings))[2]  # 0 wide when no ink


def tune_settings(
    images: list[tuple[np.ndarray, str]], glyph_size: int, line_kernel: int | None
) -> tuple[SegmentSettings, dict[str, float]]:
    """The clean-up whose shape-only glyph counts agree with the labels most often, then glyph width.

    ``images`` is the validation slice. The candidates: ink by darkness, by the letters'
    darkness band (noise darker than the text) or by colour distance from the background;
    no opening, vertical openings (thin horizontal lines), or discs sized to the letters'
    measured stroke width (thin lines of any direction).
    The agreement is judged with a rough glyph width (half the image height) because a width
    measured with the lines still in would agree with anything, lines included. Returns the
    settings and every candidate's agreement (recorded in meta.json).
    """
    rough = 0.5 * float(np.median([g.shape[0] for g, _ in images]))
    strokes = {
        ink: float(np.median([stroke_of(g, SegmentSettings(rough, ink=ink)) for g, _ in images]))
        for ink in INKS
    }
    candidates = [
        SegmentSettings(rough, k, ink, stroke_width=round(strokes[ink], 2))
        for ink in INKS
        for k in (LINE_KERNELS if line_kernel is None else (line_kernel,))
    ]
    if line_kernel is None:
        candidates += [
            SegmentSettings(rough, 0, ink, disc, round(strokes[ink], 2))
            for ink in INKS
            for disc in sorted({max(2, int(round(f * strokes[ink]))) for f in DISC_FRACTIONS})
        ]
    agree = {
        describe(c): float(np.mean([count_agrees(g, label, c) for g, label in images])) for c in candidates
    }
    # every clean-up also erases some glyph strokes (serifs, bars): it must earn its place
    best = max(candidates, key=lambda c: agree[describe(c)] - OPENING_COST * cleanups(c))
    widths = [ink_extent(g, best) / len(label) for g, label in images]
    best = replace(best, glyph_width=float(np.median(widths)) or rough, glyph_size=glyph_size)
    return best, agree


def describe(settings: SegmentSettings) -> str:
    """A candidate clean-up's name in logs and meta.json: ``band/line3/disc0``."""
    return f"{settings.ink}/line{settings.line_kernel}/disc{settings.opening}"


def cleanups(settings: SegmentSettings) -> int:
    """How many clean-up steps beyond plain ink a candidate adds."""
    return int(settings.ink != "dark") + int(settings.line_kernel > 1) + int(settings.opening > 1)


def stroke_of(pixels: np.ndarray, settings: SegmentSettings) -> float:
    """Stroke width of one image's ink (0 when it has none)."""
    ink = ink_map(pixels, settings.ink)
    return 0.0 if ink is None else stroke_width(ink_mask(ink, settings))


def count_agrees(pixels: np.ndarray, label: str, settings: SegmentSettings) -> bool:
    """Does shape alone (no length hint) find as many glyphs as the label has?"""
    seg = segment(pixels, settings)
    return seg is not None and len(seg.boxes) == len(label)


@dataclass(frozen=True)
class GlyphData:
    """What a training round reads: every image's cut (None: no ink), labels, slices, bad cuts."""

    segs: list[Segmentation | None]
    labels: list[str]
    charset: str
    train_idx: list[int]
    val_idx: list[int]
    junk: dict[int, list[Box]]  # per image: mis-cut segments found by alignment

    def recut(self, cuts: dict[int, tuple[list[Box], list[Box]]]) -> GlyphData:
        """The same data with the images in ``cuts`` cut anew: (glyph boxes, bad cuts) each."""
        segs = [
            replace(seg, boxes=cuts[i][0]) if seg is not None and i in cuts else seg
            for i, seg in enumerate(self.segs)
        ]
        return replace(self, segs=segs, junk={**self.junk, **{i: junk for i, (_, junk) in cuts.items()}})


def glyph_set(data: GlyphData, index: list[int], settings: SegmentSettings) -> tuple[np.ndarray, np.ndarray]:
    """Crops and class ids of the images in ``index`` whose box count matches their label.

    Mis-cut segments found during alignment come too, labelled with the extra "junk" class
    (id ``len(charset)``), so that the CNN learns to give a bad cut a low score.
    """
    xs, ys = [], []
    for i in index:
        seg, label, junk = data.segs[i], data.labels[i], data.junk.get(i, [])
        if seg is None or len(seg.boxes) != len(label):
            continue
        xs += [crop(seg.ink, box, settings) for box in seg.boxes + junk]
        ys += [data.charset.index(c) for c in label] + [len(data.charset)] * len(junk)
    size = settings.glyph_size
    return np.asarray(xs, np.float32).reshape(-1, size, size), np.asarray(ys, np.int64)


def overlap_1d(a: Box, b: Box) -> float:
    """Intersection over union of two boxes' column ranges."""
    inter = min(a[2], b[2]) - max(a[0], b[0])
    return max(0, inter) / (max(a[2], b[2]) - min(a[0], b[0]))


def mis_cuts(lattice: Lattice, path: list[int], rng: np.random.Generator, count: int = 3) -> list[Box]:
    """A few lattice segments that overlap no aligned glyph well: examples of bad cuts."""
    chosen = [lattice.boxes[j] for j in path]
    bad = [b for b in lattice.boxes if max(overlap_1d(b, c) for c in chosen) < 0.6]
    picks = rng.permutation(len(bad))[:count]
    return [bad[k] for k in picks]


def align(
    network,
    data: GlyphData,
    index: list[int],
    settings: SegmentSettings,
    seed: int,
    chunk: int = 64,
) -> dict[int, tuple[list[Box], list[Box]]]:
    """New cuts of the images in ``index`` by forced alignment with their labels.

    Returns, per image that aligned, its glyph boxes and a few mis-cut segments (the junk
    examples); the data is left as it is (:meth:`GlyphData.recut` applies the cuts).
    """
    rng = np.random.default_rng(seed)
    cuts = {}
    for start in range(0, len(index), chunk):
        jobs = []
        for i in index[start : start + chunk]:
            seg = data.segs[i]
            lattice = lattice_for(seg, len(data.labels[i]), settings) if seg is not None else None
            if seg is not None and lattice is not None and lattice.n == len(data.labels[i]):
                jobs.append((i, seg, lattice))
        ids = [[data.charset.index(ch) for ch in data.labels[i]] for i, _, _ in jobs]
        found = best_paths(network, [(seg, lattice) for _, seg, lattice in jobs], settings, label_scores(ids))
        for (i, _, lattice), (path, _, _) in zip(jobs, found):
            if path:
                cuts[i] = ([lattice.boxes[j] for j in path], mis_cuts(lattice, path, rng))
    return cuts


def label_scores(ids: list[list[int]]) -> Callable[[int, np.ndarray], np.ndarray]:
    """Forced alignment's lattice scores: a segment as glyph k scores log p(the label's k-th character)."""
    return lambda j, probs: np.log(np.maximum(probs[:, ids[j]], 1e-12)).T


def train(
    samples: list[Sample],
    config: SegmentConfig = SegmentConfig(),
    log: Callable[[str], None] = print,
    verbose: int = 2,
) -> CaptchaSolver:
    """A segmenting reader fitted on labelled samples (nothing is written to disk)."""
    problem = config.problem()
    if problem:
        raise UserError(f"segmenting reader: {problem}")
    started = time.perf_counter()
    import_keras()
    set_seed(config.seed)
    cased = [Sample(s.path, apply_case(s.label, config.case)) for s in samples]  # as the sequence reader
    images = read_training_images(cased, log)
    labels = [label for _, label in images]
    val_idx, train_idx, tune_idx = slices(len(images), config.seed)
    settings, agree = tune_settings([images[i] for i in tune_idx], config.glyph_size, config.line_kernel)
    log(
        f"segmentation: clean-up {describe(settings)} (shape-only glyph counts agree with the labels "
        f"on {agree[describe(settings)]:.0%} of {len(tune_idx)} validation images), "
        f"glyph width {settings.glyph_width:.1f} px, stroke {settings.stroke_width:.1f} px"
    )
    charset = "".join(sorted(set("".join(labels))))
    segs, matched, clean = first_cuts(images, settings, log)
    data = GlyphData(segs, labels, charset, train_idx, val_idx, {})
    network = build_model(config.glyph_size, len(charset) + 1, config.width)  # + the junk class
    history = fit_round(network, data, settings, 0, config.epochs, log, verbose)
    settings, aligned, more = refine(network, data, settings, config, log, verbose)
    history += more
    info = {
        "images": len(samples),
        "readable": len(images),
        "segmented_to_label_count": matched,
        "clean_by_shape": clean,
        "aligned_per_round": aligned,
        "seed": config.seed,
        "cleanup_agreement": {k: round(v, 4) for k, v in agree.items()},
        "epochs_run": len(history),
        "seconds": round(time.perf_counter() - started, 1),
    }
    history = [{**row, "epoch": epoch} for epoch, row in enumerate(history)]  # numbered on across rounds
    lengths = sorted(set(map(len, labels)))
    return CaptchaSolver.from_parts(config, network, charset, lengths, settings, info, history)


def refine(
    network,
    data: GlyphData,
    settings: SegmentSettings,
    config: SegmentConfig,
    log: Callable[[str], None],
    verbose: int,
) -> tuple[SegmentSettings, list[int], list[dict]]:
    """The rounds after the first fit: lattice mode chosen, hard images re-cut by forced
    alignment, the CNN trained again on the better crops (half the epochs, at least 2).

    Returns the settings with the lattice chosen, how many images each round re-cut, and the
    rounds' history rows.
    """
    if not config.align_rounds:
        return settings, [], []
    settings = replace(settings, lattice=choose_lattice(network, data, settings))
    log(f"recognition lattice: {settings.lattice}")
    aligned, history = [], []
    for round_ in range(1, config.align_rounds + 1):
        redo = [i for i, s in enumerate(data.segs) if s is not None and not s.clean]
        cuts = align(network, data, redo, settings, config.seed + round_)
        data = data.recut(cuts)
        aligned.append(len(cuts))
        log(f"round {round_}: re-cut {len(cuts)} images by forced alignment")
        history += fit_round(
            network, data, settings, round_, min(config.epochs, max(2, config.epochs // 2)), log, verbose
        )
    return settings, aligned, history


def slices(count: int, seed: int) -> tuple[list[int], list[int], list[int]]:
    """(validation, training, tuning) image indices: a tenth validates, part of it tunes the clean-up."""
    order = np.random.default_rng(seed).permutation(count)
    n_val = max(1, count // 10)
    return sorted(order[:n_val]), sorted(order[n_val:]), list(order[: min(n_val, TUNE_IMAGES)])


def first_cuts(
    images: list[tuple[np.ndarray, str]], settings: SegmentSettings, log: Callable[[str], None]
) -> tuple[list[Segmentation | None], int, int]:
    """Shape segmentation of every image with its label's length as a hint (None: no ink).

    Also returns how many images were cut into their label's glyph count, and how many cleanly.
    """
    segs = [segment(pixels, settings, [len(label)]) for pixels, label in images]
    matched = sum(s is not None and len(s.boxes) == len(label) for s, (_, label) in zip(segs, images))
    clean = sum(s is not None and s.clean for s in segs)
    log(
        f"{matched} of {len(images)} training images segmented to their label's glyph count "
        f"({clean} cleanly by shape alone); their glyphs train the CNN"
    )
    return segs, matched, clean


def fit_round(
    network,
    data: GlyphData,
    settings: SegmentSettings,
    round_: int,
    epochs: int,
    log: Callable[[str], None],
    verbose: int,
) -> list[dict]:
    """One round of CNN training on the current cuts; returns its history rows."""
    train_set = glyph_set(data, data.train_idx, settings)
    val_set = glyph_set(data, data.val_idx, settings)
    if len(train_set[1]) == 0 or len(val_set[1]) == 0:
        raise UserError("too few images could be segmented to train on; check the labels")
    log(f"round {round_}: {len(train_set[1])} training glyphs, {len(val_set[1])} validation glyphs")
    rows = fit(network, train_set, val_set, epochs, verbose=verbose)
    log(f"round {round_}: {kept_epoch(rows)}")
    return rows


def choose_lattice(network, data: GlyphData, settings: SegmentSettings) -> str:
    """The lattice mode that reads more hard validation images right ("shape" on a tie: faster)."""
    hard = [(i, seg) for i in data.val_idx if (seg := data.segs[i]) is not None and not seg.clean]
    lengths = sorted(set(map(len, data.labels)))
    right = {}
    for mode in ("shape", "even"):
        trial = replace(settings, lattice=mode)
        solver = CaptchaSolver.from_parts(SegmentConfig(), network, data.charset, lengths, trial)
        readings = solver.read_by_recognition([seg for _, seg in hard])
        right[mode] = sum(r.text == data.labels[i] for r, (i, _) in zip(readings, hard))
    return "even" if right["even"] > right["shape"] else "shape"
