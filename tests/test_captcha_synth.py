"""The built-in generator: every style gives well-formed, labelled, repeatable CAPTCHAs."""

import numpy as np
import pytest
from PIL import Image

from captcha.cli import main
from captcha.data import load_folder
from captcha.synth import DEFAULT_CHARSET, STYLES, random_text, render

NEW_STYLES = ("dark-lines", "arcs-dots", "curved-lines", "pastel", "transparent", "touching")


def sample(style, seed, count=6, length=(4, 8)):
    rng = np.random.default_rng(seed)
    return [render(random_text(length, DEFAULT_CHARSET, rng), style, rng) for _ in range(count)]


def test_every_listed_style_exists():
    assert set(NEW_STYLES) <= set(STYLES)


@pytest.mark.parametrize("style", STYLES)
def test_style_is_well_formed_and_repeatable(style):
    captchas = sample(style, seed=5)
    lengths = set()
    for c in captchas:
        h, w = c.image.shape[:2]
        assert h == 40 and c.image.dtype == np.uint8
        assert c.image.shape[2] == (4 if style == "transparent" else 3)
        assert 4 <= len(c.text) <= 8 and set(c.text) <= set(DEFAULT_CHARSET)
        assert len(c.boxes) == len(c.text)
        lengths.add(len(c.text))
        for x0, y0, x1, y1 in c.boxes:
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert [b[0] for b in c.boxes] == sorted(b[0] for b in c.boxes)
    assert len(lengths) > 1  # a range of lengths really varies
    again = sample(style, seed=5)
    assert all(np.array_equal(a.image, b.image) and a.boxes == b.boxes for a, b in zip(captchas, again))
    assert not np.array_equal(captchas[0].image, sample(style, seed=6)[0].image)


def grey(image):
    return np.asarray(Image.fromarray(image).convert("L"), np.float32)


def test_dark_lines_noise_is_darker_than_the_letters():
    for c in sample("dark-lines", seed=1):
        g = grey(c.image)
        inside = np.zeros(g.shape, bool)
        for x0, y0, x1, y1 in c.boxes:
            inside[y0:y1, x0:x1] = True
        inked = g[inside][g[inside] < 200]  # mostly the letters: the lines are thin
        assert g[~inside].min() < 60 and np.median(inked) > 100


def test_transparent_background_and_per_glyph_colours():
    for c in sample("transparent", seed=2):
        alpha = c.image[..., 3]
        assert alpha[0, 0] == 0 and (alpha == 0).mean() > 0.5 and (alpha == 255).any()
    c = sample("pastel", seed=3, count=1, length=6)[0]
    centres = [c.image[(y0 + y1) // 2, x0:x1].reshape(-1, 3) for x0, y0, x1, y1 in c.boxes]
    assert len({tuple(px[np.argmin(px.sum(axis=1))]) for px in centres}) > 2


def test_touching_glyphs_overlap_their_neighbours():
    touching = sum(a[2] >= b[0] for c in sample("touching", seed=4) for a, b in zip(c.boxes, c.boxes[1:]))
    assert touching > 10


def test_cli_generates_a_length_range_and_refuses_bad_ones(tmp_path, capsys):
    assert (
        main(
            [
                "generate",
                str(tmp_path / "v"),
                "--count",
                "12",
                "--length",
                "4-8",
                "--style",
                "transparent",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    samples = load_folder(tmp_path / "v")
    assert {len(s.label) for s in samples} <= set(range(4, 9)) and len({len(s.label) for s in samples}) > 2
    assert Image.open(samples[0].path).mode == "RGBA"
    capsys.readouterr()
    for bad in ("8-4", "x", "0"):
        assert main(["generate", str(tmp_path / "w"), "--length", bad]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("captcha: error: --length")
