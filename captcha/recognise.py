"""Segmentation by recognition: let the glyph classifier choose where to cut.

Where shape alone cannot separate glyphs (overlaps, a strike-through fused with the text),
we propose candidate cut columns around the equal-width positions of the ink's extent (plus
the projection minima there), crop every plausible segment between two candidate cuts, score
all crops with the CNN in one batch, and let a small dynamic program pick the ``n`` segments
whose summed log-probability is highest. Training uses the same lattice for forced alignment:
the score of segment ``k`` is then the log-probability of the label's ``k``-th character.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from captcha.segment import Box, SegmentSettings, crop, tighten


@dataclass
class Lattice:
    """Candidate segmentations of one image into ``n`` glyphs."""

    n: int
    boxes: list[Box]                 # every distinct candidate segment
    edges: list[np.ndarray]          # per glyph k: (i, j, box index) rows, i/j index cuts k, k+1
    widths: list[int]                # number of candidate cuts at each boundary


def candidate_cuts(mask: np.ndarray, n: int) -> list[np.ndarray]:
    """For each of the n + 1 boundaries, candidate columns near its equal-width position.

    A regular grid plus the deepest point of the column projection in the window: a clean
    gap between glyphs is then always among the candidates. The outer boundaries may move inwards too, so that leftovers of a strike line at either
    end of the text can be left out.
    """
    cols = np.flatnonzero(mask.any(axis=0))
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    pitch = (x1 - x0) / n
    delta = 0.4 * pitch
    step = max(1, int(round(pitch / 6)))
    profile = mask.sum(axis=0)
    cuts = []
    for k in range(n + 1):
        centre = x0 + k * pitch
        lo, hi = (x0, x0 + delta) if k == 0 else (x1 - delta, x1) if k == n else (centre - delta, centre + delta)
        lo, hi = int(np.ceil(lo)), max(int(np.ceil(lo)), int(np.floor(hi)))
        extra = x0 if k == 0 else x1 if k == n else lo + int(np.argmin(profile[lo:hi + 1]))
        cuts.append(np.unique(np.clip(np.r_[np.arange(lo, hi + 1, step), extra], x0, x1)))
    return cuts


def build_lattice(mask: np.ndarray, n: int, min_width: float) -> Lattice:
    """All segments between consecutive boundaries' candidates that are at least ``min_width`` wide."""
    cuts = candidate_cuts(mask, n)
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


def lattice_crops(ink: np.ndarray, lattice: Lattice, settings: SegmentSettings) -> np.ndarray:
    """The CNN inputs of every candidate segment, (boxes, S, S)."""
    if not lattice.boxes:
        return np.zeros((0, settings.glyph_size, settings.glyph_size), np.float32)
    return np.stack([crop(ink, box, settings) for box in lattice.boxes])


def min_width(mask: np.ndarray, n: int) -> float:
    """Narrowest plausible glyph: a third of the average pitch of ``n`` glyphs over the ink."""
    cols = np.flatnonzero(mask.any(axis=0))
    return max(2.0, (cols[-1] + 1 - cols[0]) / n / 3)
