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

import csv
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from captcha.data import Sample, read_pixels
from captcha.model import build_model, classify, fit
from captcha.recognise import Lattice, best_path, lattice_crops, lattice_for
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
from captcha.solver import KIND, CaptchaSolver
from recognisers.backend import import_keras
from recognisers.errors import UserError
from recognisers.modeldir import staged_model_dir
from recognisers.training import HISTORY_CSV, HISTORY_PNG, plot_history, set_seed

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
    try:
        cols = np.flatnonzero(ink_mask(ink_map(pixels, settings.ink), settings).any(axis=0))
    except UserError:
        return 0
    return int(cols[-1] + 1 - cols[0]) if cols.size else 0


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
    try:
        return stroke_width(ink_mask(ink_map(pixels, settings.ink), settings))
    except UserError:
        return 0.0


def count_agrees(pixels: np.ndarray, label: str, settings: SegmentSettings) -> bool:
    """Does shape alone (no length hint) find as many glyphs as the label has?"""
    try:
        return len(segment(pixels, settings).boxes) == len(label)
    except UserError:
        return False


def glyph_set(
    segs: list[Segmentation | None],
    labels: list[str],
    index: list[int],
    charset: str,
    settings: SegmentSettings,
    junk: dict[int, list[Box]],
) -> tuple[np.ndarray, np.ndarray]:
    """Crops and class ids of the images in ``index`` whose box count matches their label.

    Mis-cut segments found during alignment come too, labelled with the extra "junk" class
    (id ``len(charset)``), so that the CNN learns to give a bad cut a low score.
    """
    xs, ys = [], []
    for i in index:
        seg = segs[i]
        if seg is None or len(seg.boxes) != len(labels[i]):
            continue
        xs += [crop(seg.ink, box, settings) for box in seg.boxes + junk.get(i, [])]
        ys += [charset.index(c) for c in labels[i]] + [len(charset)] * len(junk.get(i, []))
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
    model,
    segs: list[Segmentation | None],
    labels: list[str],
    index: list[int],
    charset: str,
    settings: SegmentSettings,
    junk: dict[int, list[Box]],
    seed: int,
    chunk: int = 64,
) -> int:
    """Re-cut the images in ``index`` by forced alignment with their labels; returns how many."""
    rng = np.random.default_rng(seed)
    done = 0
    for start in range(0, len(index), chunk):
        jobs = []
        for i in index[start : start + chunk]:
            seg = segs[i]
            lattice = lattice_for(seg, len(labels[i]), settings) if seg is not None else None
            if seg is not None and lattice is not None and lattice.n == len(labels[i]):
                jobs.append((i, seg, lattice))
        if not jobs:
            continue
        crops = [lattice_crops(seg.ink, lattice, settings) for _, seg, lattice in jobs]
        logp = np.log(np.maximum(classify(model, np.concatenate(crops)), 1e-12))
        offset = 0
        for (i, seg, lattice), c in zip(jobs, crops):
            ids = [charset.index(ch) for ch in labels[i]]
            path, _ = best_path(lattice, logp[offset : offset + len(c), ids].T)
            offset += len(c)
            if path:
                seg.boxes = [lattice.boxes[j] for j in path]
                junk[i] = mis_cuts(lattice, path, rng)
                done += 1
    return done


def train(
    samples: list[Sample],
    out: str | Path,
    epochs: int = 15,
    seed: int = 0,
    case: str = "keep",
    force: bool = False,
    align_rounds: int = 1,
    glyph_size: int = 28,
    line_kernel: int | None = None,
    width: int = 16,
    log: Callable[[str], None] = print,
    verbose: int = 2,
) -> CaptchaSolver:
    """Train a solver on labelled samples and save it atomically to ``out``."""
    with staged_model_dir(out, kind=KIND, force=force) as tmp:
        started = time.perf_counter()
        import_keras()
        set_seed(seed)
        images = read_training_images(samples, log)
        labels = [label for _, label in images]
        charset = "".join(sorted(set("".join(labels))))
        order = np.random.default_rng(seed).permutation(len(images))
        n_val = max(1, len(images) // 10)
        val_idx, train_idx = sorted(order[:n_val]), sorted(order[n_val:])
        tune = [images[i] for i in order[: min(n_val, TUNE_IMAGES)]]  # a random part of the validation slice
        settings, agree = tune_settings(tune, glyph_size, line_kernel)
        log(
            f"segmentation: clean-up {describe(settings)} (shape-only glyph counts agree with the labels "
            f"on {agree[describe(settings)]:.0%} of {len(tune)} validation images), "
            f"glyph width {settings.glyph_width:.1f} px, stroke {settings.stroke_width:.1f} px"
        )
        segs = [segment_or_none(g, settings, len(label)) for g, label in images]
        matched = sum(s is not None and len(s.boxes) == len(label) for s, label in zip(segs, labels))
        clean = sum(s is not None and s.clean for s in segs)
        log(
            f"{matched} of {len(images)} training images segmented to their label's glyph count "
            f"({clean} cleanly by shape alone); their glyphs train the CNN"
        )
        model = build_model(glyph_size, len(charset) + 1, width)  # + the junk class
        history: list[dict] = []
        junk: dict[int, list[Box]] = {}
        aligned = []
        for round_ in range(align_rounds + 1):
            if round_ == 1:
                settings.lattice = choose_lattice(model, segs, labels, val_idx, charset, settings)
                log(f"recognition lattice: {settings.lattice}")
            if round_:
                redo = [i for i, s in enumerate(segs) if s is not None and not s.clean]
                aligned.append(align(model, segs, labels, redo, charset, settings, junk, seed + round_))
                log(f"round {round_}: re-cut {aligned[-1]} images by forced alignment")
            train_set = glyph_set(segs, labels, train_idx, charset, settings, junk)
            val_set = glyph_set(segs, labels, val_idx, charset, settings, junk)
            if len(train_set[1]) == 0 or len(val_set[1]) == 0:
                raise UserError("too few images could be segmented to train on; check the labels")
            log(f"round {round_}: {len(train_set[1])} training glyphs, {len(val_set[1])} validation glyphs")
            fit(
                model,
                train_set,
                val_set,
                epochs if round_ == 0 else max(2, epochs // 2),
                tmp,
                verbose=verbose,
            )
            history += read_history(tmp / HISTORY_CSV)
        info = {
            "images": len(samples),
            "readable": len(images),
            "segmented_to_label_count": matched,
            "clean_by_shape": clean,
            "aligned_per_round": aligned,
            "seed": seed,
            "cleanup_agreement": {k: round(v, 4) for k, v in agree.items()},
            "epochs_run": len(history),
            "seconds": round(time.perf_counter() - started, 1),
        }
        solver = CaptchaSolver(model, charset, sorted(set(map(len, labels))), settings, case, info)
        solver.save_into(tmp)
        write_history(tmp / HISTORY_CSV, history)
        plot_history(tmp / HISTORY_CSV, tmp / HISTORY_PNG, f"glyph CNN ({Path(out).name})")
    log(f"saved {out} in {info['seconds']:.0f} s")
    return solver


def choose_lattice(
    model,
    segs: list[Segmentation | None],
    labels: list[str],
    val_idx: list[int],
    charset: str,
    settings: SegmentSettings,
) -> str:
    """The lattice mode that reads more hard validation images right ("shape" on a tie: faster)."""
    hard = [(i, seg) for i in val_idx if (seg := segs[i]) is not None and not seg.clean]
    right = {}
    for mode in ("shape", "even"):
        trial = replace(settings, lattice=mode)
        solver = CaptchaSolver(model, charset, sorted(set(map(len, labels))), trial)
        readings = solver.read_by_recognition([seg for _, seg in hard])
        right[mode] = sum(r.text == labels[i] for r, (i, _) in zip(readings, hard))
    return "even" if right["even"] > right["shape"] else "shape"


def segment_or_none(pixels: np.ndarray, settings: SegmentSettings, length: int) -> Segmentation | None:
    """Shape segmentation with the label's length as a hint; None for an image with no ink."""
    try:
        return segment(pixels, settings, [length])
    except UserError:
        return None


def read_history(path: Path) -> list[dict]:
    """Rows of one fit's CSVLogger file."""
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_history(path: Path, rows: list[dict]) -> None:
    """All rounds' epochs as one CSV, numbered on from round to round."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for epoch, row in enumerate(rows):
            writer.writerow({**row, "epoch": epoch})
