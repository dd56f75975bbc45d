"""Data makers shared by the vqa and server tests (the session fixtures are in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220)}
SHAPES = ("circle", "square", "triangle")


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


def write_tiny_vqa2(root: Path) -> tuple[Path, Path, Path]:
    """Two COCO images, three questions, ten human answers each (VQA v2 layout)."""
    images = root / "val2014"
    images.mkdir(parents=True)
    for image_id in (42, 7):
        Image.new("RGB", (40, 30), "red").save(images / f"COCO_val2014_{image_id:012d}.jpg")
    questions = {
        "data_subtype": "val2014",
        "questions": [
            {"image_id": 42, "question": "What color is it?", "question_id": 420},
            {"image_id": 42, "question": "Is it red?", "question_id": 421},
            {"image_id": 7, "question": "How many cats?", "question_id": 70},
        ],
    }
    answers = {420: ["red"] * 8 + ["orange"] * 2, 421: ["yes"] * 10, 70: ["2"] * 6 + ["two"] * 4}
    types = {420: "other", 421: "yes/no", 70: "number"}
    annotations = {
        "data_subtype": "val2014",
        "annotations": [
            {
                "question_id": qid,
                "image_id": qid // 10,
                "answer_type": types[qid],
                "multiple_choice_answer": ans[0],
                "answers": [{"answer": a, "answer_id": i + 1} for i, a in enumerate(ans)],
            }
            for qid, ans in answers.items()
        ],
    }
    (root / "q.json").write_text(json.dumps(questions))
    (root / "a.json").write_text(json.dumps(annotations))
    return root / "q.json", root / "a.json", images
