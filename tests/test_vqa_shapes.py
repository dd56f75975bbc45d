"""A tiny generated VQA task (one coloured shape per image) and the learning test.

Helpers here are imported by the other vqa tests: the model is trained once per session.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220)}
SHAPES = ("circle", "square", "triangle")
TINY_TRAIN_ARGS = [
    "--epochs",
    "12",
    "--image-size",
    "32",
    "--filters",
    "8,16",
    "--embed-dim",
    "16",
    "--lstm-units",
    "16",
    "--hidden",
    "32",
    "--batch-size",
    "16",
    "--learning-rate",
    "0.005",
    "--patience",
    "4",
    "--val-fraction",
    "0.2",
    "--seed",
    "0",
    "--quiet",
]
_CACHE: dict[str, Path] = {}


def draw_shape(shape: str, colour: str, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """One shape of one colour at a random place and size on white."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, size=2))
    fill = COLOURS[colour]
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return img


def make_shapes_set(folder: Path, n_images: int, seed: int) -> Path:
    """Images + a JSONL manifest with a colour and a shape question per image."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n_images):
        shape, colour = SHAPES[rng.integers(3)], list(COLOURS)[rng.integers(3)]
        name = f"img{i:04d}.png"
        draw_shape(shape, colour, rng).save(folder / name)
        lines.append(
            {"image": name, "question": "what color is the shape?", "answer": colour, "type": "colour"}
        )
        lines.append(
            {"image": name, "question": "what shape is in the image?", "answer": shape, "type": "shape"}
        )
    manifest = folder / "questions.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return manifest


def tiny_sets(tmp_path_factory) -> tuple[Path, Path]:
    """(train manifest, test manifest), generated once per session."""
    if "train" not in _CACHE:
        root = tmp_path_factory.mktemp("shapes")
        _CACHE["train"] = make_shapes_set(root / "train", 240, seed=1)
        _CACHE["test"] = make_shapes_set(root / "test", 60, seed=2)
    return _CACHE["train"], _CACHE["test"]


def tiny_model(tmp_path_factory) -> Path:
    """A small model trained on the generated set through the CLI, once per session."""
    if "model" not in _CACHE:
        from vqa.cli import main

        train, _ = tiny_sets(tmp_path_factory)
        out = tmp_path_factory.mktemp("models") / "tiny"
        assert (
            main(["train", "--dataset", "jsonl", "--train", str(train), "--out", str(out), *TINY_TRAIN_ARGS])
            == 0
        )
        _CACHE["model"] = out
    return _CACHE["model"]


def test_generator_is_seeded(tmp_path):
    a = make_shapes_set(tmp_path / "a", 4, seed=3)
    b = make_shapes_set(tmp_path / "b", 4, seed=3)
    assert a.read_text() == b.read_text()
    assert (
        np.asarray(Image.open(a.parent / "img0003.png")) == np.asarray(Image.open(b.parent / "img0003.png"))
    ).all()


def test_tiny_model_learns_well_above_chance(tmp_path_factory, tmp_path):
    from recognisers.modeldir import read_meta
    from vqa.cli import main

    model_dir = tiny_model(tmp_path_factory)
    _, test = tiny_sets(tmp_path_factory)
    meta = read_meta(model_dir, "vqa", 1)
    assert sorted(meta["answers"]) == sorted([*COLOURS, *SHAPES])
    for name in ("model.weights.h5", "history.csv", "history.png"):
        assert (model_dir / name).is_file()
    report_path = tmp_path / "report.json"
    assert (
        main(
            [
                "evaluate",
                str(model_dir),
                "--dataset",
                "jsonl",
                "--data",
                str(test),
                "--report",
                str(report_path),
            ]
        )
        == 0
    )
    report = json.loads(report_path.read_text())
    # Chance is 1/3 within each question type (the question tells colour from shape).
    assert report["count"] == 120
    assert report["per_type"]["colour"]["accuracy"] >= 0.8
    assert report["accuracy"] >= 0.6
    assert report["questions_per_second"] == pytest.approx(120 / report["seconds"], rel=0.05)
    assert report_path.with_suffix(".confusion.png").is_file()
