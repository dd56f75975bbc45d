"""Segmentation by recognition: let the glyph classifier choose where to cut.

Where shape alone cannot separate glyphs (overlaps, a strike-through fused with the text),
we propose candidate cut columns around the equal-width positions of the ink's extent (plus
the projection minima there), crop every plausible segment between two candidate cuts, score
all crops with the CNN in one batch, and let a small dynamic program pick the ``n`` segments
whose summed log-probability is highest. Training uses the same lattice for forced alignment:
the score of segment ``k`` is then the log-probability of the label's ``k``-th character.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from captcha.network import classify
from captcha.segment import Box, Segmentation, SegmentSettings, crop, glyph_counts, tighten


@dataclass
class Lattice:
    """Candidate segmentations of one image into ``n`` glyphs."""

    n: int
    boxes: list[Box]  # every distinct candidate segment
    edges: list[np.ndarray]  # per glyph k: (i, j, box index) rows, i/j index cuts k, k+1
    widths: list[int]  # number of candidate cuts at each boundary


def window(lo: float, hi: float, step: int, profile: np.ndarray, extra: list[int]) -> np.ndarray:
    """Grid columns in [lo, hi] plus the deepest projection point there and any ``extra``."""
    lo_i = int(np.ceil(lo))
    hi_i = max(lo_i, int(np.floor(hi)))
    inside = profile[lo_i : hi_i + 1]
    deepest = [lo_i + int(np.argmin(inside))] if inside.size else []
    return np.unique(np.r_[np.arange(lo_i, hi_i + 1, step), deepest, extra].astype(np.int64))


def candidate_cuts(mask: np.ndarray, components: list[Box], counts: list[int]) -> list[np.ndarray]:
    """Candidate columns for each of the sum(counts) + 1 boundaries between glyphs.

    A gap between two components is one fixed cut. Inside a component holding ``n`` glyphs,
    each inner boundary may fall within 0.4 glyph pitch of its equal-width position (grid
    plus the deepest point of the column projection, so a clean gap is always a candidate).
    The two outer ends may move inwards as far, so that leftovers of a strike line at either
    end of the text can be left out.
    """
    profile = np.count_nonzero(mask, axis=0)
    cuts: list[np.ndarray] = []
    last = len(components) - 1
    for i, ((x0, _, x1, _), n) in enumerate(zip(components, counts)):
        pitch = (x1 - x0) / n
        step = max(1, int(round(pitch / 6)))
        if i == 0:
            cuts.append(window(x0, x0 + 0.4 * pitch, step, profile, [x0]))
        for k in range(1, n):
            centre = x0 + k * pitch
            cuts.append(window(centre - 0.4 * pitch, centre + 0.4 * pitch, step, profile, []))
        if i == last:
            cuts.append(window(x1 - 0.4 * pitch, x1, step, profile, [x1]))
        else:
            cuts.append(np.array([(x1 + components[i + 1][0]) // 2]))
    return cuts


def build_lattice(mask: np.ndarray, components: list[Box], counts: list[int], min_width: float) -> Lattice:
    """All segments between consecutive boundaries' candidates that are at least ``min_width`` wide."""
    cuts = candidate_cuts(mask, components, counts)
    n = sum(counts)
    index: dict[tuple[int, int], int] = {}
    boxes: list[Box] = []
    edges = []
    for k in range(n):
        rows = []
        for i, a in enumerate(cuts[k]):
            for j, b in enumerate(cuts[k + 1]):
                if b - a < min_width:
                    continue
                key = (int(a), int(b))
                if key not in index:
                    index[key] = len(boxes)
                    boxes.append(tighten(mask, key[0], key[1]))
                rows.append((i, j, index[key]))
        edges.append(np.array(rows, dtype=np.int64).reshape(-1, 3))
    return Lattice(n, boxes, edges, [len(c) for c in cuts])


def best_path(lattice: Lattice, scores: np.ndarray) -> tuple[list[int], float]:
    """Viterbi over the lattice; ``scores[k, box]`` is the log-score of glyph k in that box.

    Returns the chosen box index for each glyph and the total score (``-inf`` if no path).
    """
    value = np.zeros(lattice.widths[0])
    back = []
    for k, rows in enumerate(lattice.edges):
        nxt = np.full(lattice.widths[k + 1], -np.inf)
        arg = np.full(lattice.widths[k + 1], -1)
        if rows.size:
            total = value[rows[:, 0]] + scores[k, rows[:, 2]]
            order = np.argsort(total, kind="stable")  # later writes win: the maxima
            nxt[rows[order, 1]] = total[order]
            arg[rows[order, 1]] = order
        back.append((rows, arg))
        value = nxt
    end = int(np.argmax(value))
    if not np.isfinite(value[end]):
        return [], -np.inf
    path = []
    for rows, arg in reversed(back):
        row = rows[arg[end]]
        path.append(int(row[2]))
        end = int(row[0])
    return path[::-1], float(value.max())


def best_paths(
    network: Any,
    jobs: Sequence[tuple[Segmentation, Lattice]],
    settings: SegmentSettings,
    score: Callable[[int, np.ndarray], np.ndarray],
) -> list[tuple[list[int], float, np.ndarray]]:
    """The lattice scorer: every lattice's crops through the CNN in one call, then its best path.

    ``score(j, probs)`` turns job ``j``'s class probabilities (segments x classes) into the
    (glyphs x segments) log-scores :func:`best_path` sums: reading scores a segment by its most
    likely character, forced alignment by the label's k-th character. Returns, per job, the
    path, its total score and the probabilities.
    """
    crops = [lattice_crops(seg.ink, lattice, settings) for seg, lattice in jobs]
    if not crops:
        return []
    probs = classify(network, np.concatenate(crops))
    parts = np.split(probs, np.cumsum([len(c) for c in crops])[:-1])
    return [(*best_path(lattice, score(j, p)), p) for j, ((_, lattice), p) in enumerate(zip(jobs, parts))]


def lattice_crops(ink: np.ndarray, lattice: Lattice, settings: SegmentSettings) -> np.ndarray:
    """The CNN inputs of every candidate segment, (boxes, S, S)."""
    if not lattice.boxes:
        return np.zeros((0, settings.glyph_size, settings.glyph_size), np.float32)
    return np.stack([crop(ink, box, settings) for box in lattice.boxes])


def lattice_for(seg: Segmentation, n: int, settings: SegmentSettings) -> Lattice:
    """The lattice of ``n`` glyphs, segments at least a third of a glyph wide.

    ``settings.lattice`` says where the cuts may go: "shape" keeps the gaps between ink
    components and cuts only inside components (few crops: fast), "even" spreads the n
    glyphs over the whole ink extent (for text fused by overlaps and strike lines).
    """
    if settings.lattice == "even":
        x0 = min(b[0] for b in seg.components)
        x1 = max(b[2] for b in seg.components)
        components, counts = [(x0, 0, x1, seg.mask.shape[0])], [n]
    else:
        components, counts = seg.components, glyph_counts(seg.components, settings.glyph_width, [n])
    return build_lattice(seg.mask, components, counts, max(2.0, settings.glyph_width / 3))
