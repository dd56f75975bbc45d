"""Training's parts on their own: choosing the lattice, forced alignment, the slices."""

from dataclasses import replace

import numpy as np
import pytest

from captcha.data import to_gray
from captcha.model import CaptchaSolver, Reading
from captcha.segment import SegmentSettings, segment
from captcha.synth import render
from captcha.train import GlyphData, align, choose_lattice, slices


class RandomNet:
    """A stand-in glyph CNN: seeded random class probabilities (7 letters + junk)."""

    output_shape = (None, 8)

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def predict_on_batch(self, x):
        p = self.rng.random((len(x), self.output_shape[1]))
        return p / p.sum(axis=1, keepdims=True)


def touching(texts, seed=0):
    """Segmentations of CAPTCHAs whose glyphs touch (shape alone cannot cut them), and settings."""
    rng = np.random.default_rng(seed)
    captchas = [render(text, "simple", rng, gaps=(-3, -1)) for text in texts]
    widths = [b[2] - b[0] for c in captchas for b in c.boxes]
    settings = SegmentSettings(glyph_width=float(np.median(widths)), lattice="even")
    return [segment(to_gray(c.image), settings, [len(c.text)]) for c in captchas], settings


def test_choose_lattice_keeps_shape_unless_even_reads_more_hard_images(monkeypatch):
    segs, settings = touching(["ABCD", "EFGH", "ABEF"])
    segs[2] = replace(segs[2], clean=True)  # a clean image is not asked
    data = GlyphData(segs, ["ABCD", "EFGH", "ABEF"], "ABCDEFGH", [], [0, 1, 2], {})
    answers = {"shape": ["ABCD", "XXXX"], "even": ["ABCD", "EFGH"]}

    def read(self, segs_read):
        assert len(segs_read) == 2  # only the hard validation images
        return [Reading(t, 1.0, [1.0]) for t in answers[self.settings.lattice]]

    monkeypatch.setattr(CaptchaSolver, "read_by_recognition", read)
    assert choose_lattice(None, data, settings) == "even"
    answers["even"] = ["XXXX", "EFGH"]  # a tie: shape, the faster
    assert choose_lattice(None, data, settings) == "shape"


def test_align_returns_new_cuts_and_leaves_its_inputs_alone():
    labels = ["ABCD", "EFGH"]
    segs, settings = touching(labels, seed=1)
    data = GlyphData(segs, labels, "ABCDEFG" + "H", [0, 1], [], {})
    before = [list(s.boxes) for s in segs]
    cuts = align(RandomNet(0), data, [0, 1], settings, seed=0)
    assert set(cuts) == {0, 1}
    assert [list(s.boxes) for s in data.segs] == before and data.junk == {}  # nothing rewritten
    recut = data.recut(cuts)
    for i in (0, 1):
        boxes, junk = cuts[i]
        assert len(boxes) == 4 and recut.segs[i].boxes == boxes and recut.junk[i] == junk
        assert all(b[0] < c[0] for b, c in zip(boxes, boxes[1:]))  # left to right
    assert cuts == align(RandomNet(0), data, [0, 1], settings, seed=0)  # repeatable


@pytest.mark.parametrize("count", [5, 40, 5000])
def test_slices_validate_on_a_tenth_and_tune_on_part_of_it(count):
    val, train, tune = slices(count, seed=3)
    assert sorted(val + train) == list(range(count)) and len(val) == max(1, count // 10)
    assert set(tune) <= set(val) and len(tune) == min(len(val), 300)
    assert slices(count, seed=3) == (val, train, tune)


def test_the_segmenter_trains_on_labels_in_the_case_it_is_given(tmp_path):
    from captcha.data import load_folder
    from captcha.model import SegmentConfig
    from captcha.synth import generate

    generate(tmp_path, 40, 3, charset="abcd", style="simple", seed=3)
    config = SegmentConfig(case="upper", epochs=1, align_rounds=0)
    solver = CaptchaSolver(config).fit(load_folder(tmp_path), log=lambda line: None, verbose=0)
    assert solver.charset == "ABCD"
