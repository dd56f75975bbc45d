"""The segmenter against generated CAPTCHAs whose glyph boxes are known."""

import itertools

import numpy as np
import pytest

from captcha.data import to_gray
from captcha.recognise import Lattice, best_path, best_paths, lattice_for
from captcha.segment import (
    SegmentSettings,
    ink_map,
    ink_mask,
    segment,
    stroke_width,
    tighten,
    trim_line_tails,
)
from captcha.synth import random_text, render
from captcha.train import describe, tune_settings

CHARSET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def settings_for(captcha, **kw) -> SegmentSettings:
    widths = [b[2] - b[0] for b in captcha.boxes]
    return SegmentSettings(glyph_width=float(np.median(widths)), **kw)


def x_errors(found, truth) -> list[int]:
    return [max(abs(f[0] - t[0]), abs(f[2] - t[2])) for f, t in zip(found, truth)]


@pytest.mark.parametrize("fonts", [None, (None,)], ids=["system-fonts", "builtin-font"])
def test_separate_glyphs_get_their_true_boxes(fonts):
    rng = np.random.default_rng(0)
    for _ in range(20):
        captcha = render(random_text(5, CHARSET, rng), "simple", rng, fonts=fonts)
        seg = segment(to_gray(captcha.image), settings_for(captcha), [5])
        assert seg.clean and len(seg.boxes) == 5
        assert max(x_errors(seg.boxes, captcha.boxes)) <= 2, (captcha.text, seg.boxes, captcha.boxes)
        for f, t in zip(seg.boxes, captcha.boxes):
            assert abs(f[1] - t[1]) <= 2 and abs(f[3] - t[3]) <= 2


def test_touching_glyphs_are_split_near_the_true_cut():
    rng = np.random.default_rng(1)
    touching = close = 0
    for _ in range(40):
        captcha = render(random_text(4, CHARSET, rng), "simple", rng, gaps=(-2, 0))
        seg = segment(to_gray(captcha.image), settings_for(captcha), [4])
        touching += not seg.clean
        assert len(seg.boxes) == 4
        close += max(x_errors(seg.boxes, captcha.boxes)) <= 4
    assert touching >= 15  # the test really exercised splitting
    assert close >= 30  # shape alone; the rest is what segmentation by recognition is for


def test_noise_dots_and_lines_are_cleaned_from_noisy_captchas():
    rng = np.random.default_rng(2)
    right = 0
    for _ in range(30):  # Pillow's own font: the same on every machine, whatever fonts are installed
        captcha = render(random_text(4, CHARSET, rng), "noisy", rng, fonts=(None,))
        seg = segment(to_gray(captcha.image), settings_for(captcha, line_kernel=2), [4])
        right += len(seg.boxes) == 4 and max(x_errors(seg.boxes, captcha.boxes)) <= 5
    assert right >= 22


def test_coloured_light_on_dark_image_is_segmented():
    rng = np.random.default_rng(3)
    captcha = render("AB34", "simple", rng)
    inverted = 255 - captcha.image
    inverted[..., 0] //= 2  # colour the background
    seg = segment(to_gray(inverted), settings_for(captcha), [4])
    assert max(x_errors(seg.boxes, captcha.boxes)) <= 2


def test_blank_image_has_no_ink():
    assert segment(np.full((40, 120), 200, np.uint8), SegmentSettings()) is None  # an outcome, not an error


def brute_force(lattice: Lattice, scores: np.ndarray) -> float:
    best = -np.inf
    per_glyph = [{(i, j): b for i, j, b in rows} for rows in lattice.edges]
    for path in itertools.product(*(range(w) for w in lattice.widths)):
        total = 0.0
        for k in range(lattice.n):
            box = per_glyph[k].get((path[k], path[k + 1]))
            if box is None:
                total = -np.inf
                break
            total += scores[k, box]
        best = max(best, total)
    return best


def test_viterbi_finds_the_best_segmentation():
    rng = np.random.default_rng(4)
    captcha = render("AB3K", "simple", rng, gaps=(-2, 0))
    seg = segment(to_gray(captcha.image), settings_for(captcha), [4])
    for mode in ("shape", "even"):
        lattice = lattice_for(seg, 4, settings_for(captcha, lattice=mode))
        assert lattice.n == 4 and len(lattice.boxes) > 4
        for _ in range(3):
            check_viterbi(lattice, rng.normal(size=(4, len(lattice.boxes))))


def check_viterbi(lattice, scores):
    path, total = best_path(lattice, scores)
    assert total == pytest.approx(brute_force(lattice, scores))
    assert total == pytest.approx(sum(scores[k, b] for k, b in enumerate(path)))


def test_lattice_copes_with_glyphs_at_the_border_and_too_many_glyphs():
    captcha = render("AB3K", "simple", np.random.default_rng(5))
    gray = to_gray(captcha.image)[:, : captcha.boxes[-1][2] - 2]  # last glyph cut by the border
    settings = settings_for(captcha)
    seg = segment(gray, settings, [4])
    for n in (4, 7):
        lattice = lattice_for(seg, n, settings)
        path, total = best_path(lattice, np.zeros((lattice.n, len(lattice.boxes))))
        assert lattice.n == n and len(path) == n and np.isfinite(total)


def test_band_ink_keeps_the_letters_and_drops_darker_noise():
    rng = np.random.default_rng(6)
    kept = 0
    for _ in range(20):
        captcha = render(random_text(4, CHARSET, rng), "dark-lines", rng)
        gray = to_gray(captcha.image)
        plain, band = ink_map(gray), ink_map(gray, "band")
        inside = np.zeros(gray.shape, bool)
        for x0, y0, x1, y1 in captcha.boxes:
            inside[y0:y1, x0:x1] = True
        # noise outside the glyphs: strong in plain ink, nearly gone in the band
        assert (plain[~inside] > 0.5).sum() > 5 * max(1, (band[~inside] > 0.5).sum())
        # the letters themselves stay strong
        assert (band[inside] > 0.5).sum() > 0.8 * (plain[inside] > 0.3).sum() - (plain[~inside] > 0.5).sum()
        seg = segment(gray, settings_for(captcha, ink="band"), [4])
        kept += len(seg.boxes) == 4 and max(x_errors(seg.boxes, captcha.boxes)) <= 4
    assert kept >= 15


def test_band_ink_changes_nothing_where_the_text_is_the_darkest_ink():
    captcha = render("AB34", "simple", np.random.default_rng(7))
    gray = to_gray(captcha.image)
    assert np.array_equal(ink_map(gray, "band") > 0.5, ink_map(gray) > 0.5)


def test_stroke_width_is_measured_and_a_disc_opening_removes_thinner_lines():
    mask = np.zeros((40, 100), np.uint8)
    mask[8:32, 10:16] = 255  # a stroke 6 px wide
    mask[20, :] = 255  # a 1 px line through everything
    assert 5 <= stroke_width(mask) <= 7
    clean = ink_mask(mask.astype(np.float32) / 255, SegmentSettings(glyph_width=20, opening=3))
    assert clean[20, 40:].sum() == 0 and clean[10:30, 11:15].all()


def test_training_chooses_the_clean_up_on_validation_images():
    rng = np.random.default_rng(8)

    def images(style):
        return [
            (to_gray(c.image), c.text)
            for c in (render(random_text(4, CHARSET, rng), style, rng) for _ in range(40))
        ]

    settings, agree = tune_settings(images("dark-lines"), 28, None)
    assert settings.ink == "band" and agree[describe(settings)] > agree["dark/line0/disc0"] + 0.3
    assert settings.stroke_width > 2
    settings, _ = tune_settings(images("simple"), 28, None)
    assert (settings.ink, settings.line_kernel, settings.opening) == ("dark", 0, 0)


class RandomNet:
    """A stand-in glyph CNN: seeded random class probabilities; counts its calls."""

    output_shape = (None, 5)

    def __init__(self, seed: int):
        self.rng, self.calls = np.random.default_rng(seed), 0

    def predict_on_batch(self, x):
        self.calls += 1
        p = self.rng.random((len(x), self.output_shape[1]))
        return p / p.sum(axis=1, keepdims=True)


def test_the_lattice_scorer_finds_every_lattices_best_path_in_one_network_call():
    rng = np.random.default_rng(9)
    jobs = []
    for text in ("AB3K", "H2GD"):
        captcha = render(text, "simple", rng, gaps=(-2, 0))
        settings = settings_for(captcha, lattice="even")
        seg = segment(to_gray(captcha.image), settings, [4])
        jobs.append((seg, lattice_for(seg, 4, settings)))
    net = RandomNet(0)

    def score(j, probs):  # glyph k of job j scored by class (j + k) % 5
        return np.log(probs[:, [(j + k) % 5 for k in range(4)]]).T

    found = best_paths(net, jobs, settings, score)
    assert net.calls == 1 and len(found) == 2
    for j, ((_, lattice), (path, total, probs)) in enumerate(zip(jobs, found)):
        assert len(probs) == len(lattice.boxes) and len(path) == 4
        assert total == pytest.approx(brute_force(lattice, score(j, probs)))
        assert total == pytest.approx(sum(score(j, probs)[k, b] for k, b in enumerate(path)))


def test_trim_line_tails_blanks_a_long_thin_line_beside_the_text_and_keeps_a_short_one():
    mask = np.zeros((40, 200), np.uint8)
    mask[5:35, 80:120] = 255  # the text: 30 pixels of ink per column
    mask[20:23, 0:80] = 255  # a strike line's long loose end on the left (3 pixels high)
    mask[20:23, 120:128] = 255  # a short stub on the right: less than 0.6 glyph widths
    trimmed = trim_line_tails(mask.copy(), SegmentSettings(glyph_width=20, line_kernel=3))
    assert not trimmed[:, :80].any() and (trimmed[:, 80:] == mask[:, 80:]).all()
    untouched = trim_line_tails(mask.copy(), SegmentSettings(glyph_width=200, line_kernel=3))
    assert (untouched == mask).all()  # with glyphs this wide, no tail is long enough to be a line


def test_tighten_finds_the_ink_box_within_a_strip_and_keeps_an_empty_strip_whole():
    mask = np.zeros((30, 60), np.uint8)
    mask[5:12, 8:14] = 255  # left of the strip: must not count
    mask[10:25, 22:27] = 255
    mask[18, 35] = 255
    assert tighten(mask, 20, 40) == (22, 10, 36, 25)
    assert tighten(mask, 40, 60) == (40, 0, 60, 30)  # no ink: the whole strip
