"""A tiny generated VQA task (one coloured shape per image) and the learning test.

The data and the model trained on it are session fixtures (``vqa_sets``, ``vqa_model_dir`` in
conftest.py), shared with the other vqa tests.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from vqa_helpers import COLOURS, SHAPES, make_shapes_set


def test_generator_is_seeded(tmp_path):
    a = make_shapes_set(tmp_path / "a", 4, seed=3)
    b = make_shapes_set(tmp_path / "b", 4, seed=3)
    c = make_shapes_set(tmp_path / "c", 4, seed=4)
    assert a.read_text() == b.read_text()
    pixels = [np.asarray(Image.open(m.parent / "img0003.png")) for m in (a, b, c)]
    assert (pixels[0] == pixels[1]).all() and not (pixels[0] == pixels[2]).all()


def test_tiny_model_learns_well_above_chance(vqa_model_dir, vqa_sets, tmp_path):
    from recognisers.modeldir import read_meta
    from vqa.cli import main
    from vqa.model import FORMAT_VERSION

    meta = read_meta(vqa_model_dir, "vqa", FORMAT_VERSION)
    assert sorted(meta["answers"]) == sorted([*COLOURS, *SHAPES])
    for name in ("model.weights.h5", "history.csv", "history.png"):
        assert (vqa_model_dir / name).is_file()
    report_path = tmp_path / "report.json"
    argv = ["evaluate", str(vqa_model_dir), "--dataset", "jsonl", "--data", str(vqa_sets[1])]
    assert main([*argv, "--report", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    # Chance is 1/3 within each question type (the question tells colour from shape).
    assert report["count"] == 120
    assert report["per_type"]["colour"]["accuracy"] >= 0.8
    assert report["accuracy"] >= 0.6
    assert report["questions_per_second"] == pytest.approx(120 / report["seconds"], rel=0.05)
    assert report_path.with_suffix(".confusion.png").is_file()
    # the per-question predictions are the report's own accuracy, question by question
    predictions = report["predictions"]
    assert len(predictions) == 120 and predictions[0]["image"].endswith("img0000.png")
    right = [p["predicted"] == p["truth"] for p in predictions]
    assert np.mean(right) == pytest.approx(report["accuracy"])
    assert {p["type"] for p in predictions} == {"colour", "shape"}
