"""A seeded Sort-of-CLEVR-style set: where things are, and how they relate.

Each 75x75 image holds six objects of six distinct colours, each a square or a circle, not
overlapping. Per image 10 non-relational and 10 relational questions in English, each with
a ``type``:

* ``position``: "Is the red object on the left?" / "... at the top?" (yes / no)
* ``shape``: "What shape is the green object?" (square / circle)
* ``colour``: "What colour is the object closest to the top left corner?"
* ``closest`` / ``furthest``: "What shape is the object closest to the gray object?"
* ``count``: "How many objects have the same shape as the orange object?" (1 to 6)

Unlike the original set, no question is ambiguous: an object is never within ``margin``
pixels of the middle line a position question asks about, and the nearest (or furthest)
object is always ``margin`` pixels nearer (further) than the runner-up, measured both between
centres and between nearest edges (what an eye judges: a square's corner reaches up to 2.3
pixels nearer than a circle's edge at the same centre distance), so both readings of
"closest" give the same answer. A model can then be held to near-perfect accuracy on every
type.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from recognisers.contract import option
from recognisers.errors import UserError
from recognisers.modeldir import current_umask
from recognisers.paths import check_not_around_cwd, check_output_dir

COLOURS = {
    "red": (230, 30, 30),
    "green": (30, 170, 40),
    "blue": (40, 70, 230),
    "orange": (250, 150, 20),
    "gray": (128, 128, 128),
    "yellow": (225, 215, 0),
}
SHAPES = ("square", "circle")
NON_RELATIONAL = ("position", "shape", "colour")
RELATIONAL = ("closest", "furthest", "count")
CORNERS = {
    "top left": (0.0, 0.0),
    "top right": (1.0, 0.0),
    "bottom left": (0.0, 1.0),
    "bottom right": (1.0, 1.0),
}
MANIFEST = "questions.jsonl"


@dataclass(frozen=True)
class ShapesConfig:
    """Every default of the generator (``vqa generate shapes`` takes its defaults here)."""

    images: int = option(10_000, "how many images (20 questions each)")
    seed: int = option(0, "seed of the scenes and questions (the same seed, the same set)")
    size: int = 75
    object_size: int = 11
    questions_per_kind: int = 10  # non-relational and relational questions per image
    margin: float = 3.0


@dataclass(frozen=True)
class Scene:
    """Objects of one image: colour name -> (shape, centre x, centre y) in pixels."""

    objects: dict[str, tuple[str, float, float]]


def random_scene(rng: np.random.Generator, config: ShapesConfig) -> Scene:
    """Six objects, one per colour, centres far enough apart that they never overlap."""
    half = config.object_size / 2
    low, high = half + 1, config.size - half - 1
    centres: list[tuple[float, float]] = []
    while len(centres) < len(COLOURS):
        x, y = (float(v) for v in rng.uniform(low, high, size=2))
        if all((x - a) ** 2 + (y - b) ** 2 > (config.object_size * 1.5) ** 2 for a, b in centres):
            centres.append((x, y))
    return Scene({colour: (SHAPES[int(rng.integers(2))], x, y) for colour, (x, y) in zip(COLOURS, centres)})


def draw_scene(scene: Scene, config: ShapesConfig):
    """The scene as a Pillow RGB image on white."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (config.size, config.size), "white")
    draw = ImageDraw.Draw(img)
    r = config.object_size / 2
    for colour, (shape, x, y) in scene.objects.items():
        box = [x - r, y - r, x + r, y + r]
        (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=COLOURS[colour])
    return img


Thing = tuple[str, float, float]  # (shape, centre x, centre y); shape "point" for a corner


def centre_distance(a: Thing, b: Thing) -> float:
    """Distance between the centres of two things."""
    return float(np.hypot(a[1] - b[1], a[2] - b[2]))


def edge_distance(a: Thing, b: Thing, radius: float) -> float:
    """Distance between the nearest points of two things (squares of half side ``radius``,
    circles of radius ``radius``, points): the distance from one centre to the other thing
    grown by the first, a box whose half side is the sum of the squares' half sides, its
    corners rounded by the sum of the circles' radii."""
    half = sum(radius for t in (a, b) if t[0] == "square")
    rounded = sum(radius for t in (a, b) if t[0] == "circle")
    dx, dy = max(abs(a[1] - b[1]) - half, 0.0), max(abs(a[2] - b[2]) - half, 0.0)
    return max(float(np.hypot(dx, dy)) - rounded, 0.0)


def clear_winner(
    scene: Scene, reference: Thing, config: ShapesConfig, furthest: bool = False, skip: str | None = None
) -> str | None:
    """The colour of the object nearest ``reference`` (furthest with ``furthest``), other than
    ``skip``, if it is so between centres and between nearest edges, by ``margin`` pixels over
    the runner-up each time; None when the question would be ambiguous."""
    edges = partial(edge_distance, radius=config.object_size / 2)
    winners = set()
    for distance in (centre_distance, edges):
        ranked = sorted(
            (distance(reference, thing), colour) for colour, thing in scene.objects.items() if colour != skip
        )
        if furthest:
            ranked = ranked[::-1]
        if abs(ranked[1][0] - ranked[0][0]) < config.margin:
            return None
        winners.add(ranked[0][1])
    return winners.pop() if len(winners) == 1 else None


def ask(kind: str, scene: Scene, rng: np.random.Generator, config: ShapesConfig) -> tuple[str, str] | None:
    """One (question, answer) of ``kind``, or None when the drawn one would be ambiguous."""
    colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
    shape, x, y = scene.objects[colour]
    middle = config.size / 2
    if kind == "position":
        horizontal = bool(rng.integers(2))
        coord = x if horizontal else y
        if abs(coord - middle) < config.margin:
            return None
        where = "on the left" if horizontal else "at the top"
        return f"Is the {colour} object {where}?", "yes" if coord < middle else "no"
    if kind == "shape":
        return f"What shape is the {colour} object?", shape
    if kind == "colour":
        corner = list(CORNERS)[int(rng.integers(len(CORNERS)))]
        cx, cy = (v * config.size for v in CORNERS[corner])
        nearest = clear_winner(scene, ("point", cx, cy), config)
        if nearest is None:
            return None
        return f"What colour is the object closest to the {corner} corner?", nearest
    if kind in ("closest", "furthest"):
        other = clear_winner(scene, scene.objects[colour], config, kind == "furthest", skip=colour)
        if other is None:
            return None
        return (
            f"What shape is the object {kind} {'to' if kind == 'closest' else 'from'} the {colour} object?",
            scene.objects[other][0],
        )
    same = sum(1 for s, _, _ in scene.objects.values() if s == shape)
    return f"How many objects have the same shape as the {colour} object?", str(same)


def scene_questions(
    scene: Scene, rng: np.random.Generator, config: ShapesConfig
) -> list[tuple[str, str, str]]:
    """``questions_per_kind`` non-relational and as many relational (question, answer, type)."""
    out: list[tuple[str, str, str]] = []
    for kinds in (NON_RELATIONAL, RELATIONAL):
        while sum(t in kinds for *_, t in out) < config.questions_per_kind:
            kind = kinds[int(rng.integers(len(kinds)))]
            qa = ask(kind, scene, rng, config)
            if qa is not None:
                out.append((*qa, kind))
    return out


def write_shapes_set(
    out: str | os.PathLike, config: ShapesConfig = ShapesConfig(), force: bool = False
) -> Path:
    """Write ``images/*.png`` and ``questions.jsonl`` into ``out``; returns the manifest.

    The set is written into a hidden sibling and renamed into place, so ``out`` is whole or
    untouched. An existing ``out`` is replaced only with ``force`` and only if it is empty
    or a set written here (it holds ``questions.jsonl`` and ``images/`` and nothing else).
    """
    out = Path(out)
    if config.images < 1 or config.seed < 0:
        raise UserError("--images must be at least 1 and --seed at least 0")
    check_output_dir(out, "OUT")
    check_not_around_cwd(out, "OUT")
    if out.is_symlink():
        raise UserError(f"{out} is a symbolic link; name the folder itself")
    if out.exists():
        entries = {p.name for p in out.iterdir()} if out.is_dir() else None
        if entries and entries != {MANIFEST, "images"}:
            raise UserError(f"{out} exists and is not a generated shapes set; choose another OUT")
        if entries and not force:
            raise UserError(f"{out} already holds a shapes set; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old: Path | None = None
    try:
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private; a data set is not
        _write_into(tmp, config)
        if out.exists():  # moved aside first: out is never without a whole set
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            out.rename(old)  # onto the empty directory just made: atomic
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out / MANIFEST


def _write_into(folder: Path, config: ShapesConfig) -> None:
    (folder / "images").mkdir()
    rng = np.random.default_rng(config.seed)
    lines: list[str] = []
    for i in range(config.images):
        scene = random_scene(rng, config)
        name = f"images/{i:06d}.png"
        draw_scene(scene, config).save(folder / name)
        lines.extend(
            json.dumps({"image": name, "question": q, "answer": a, "type": t})
            for q, a, t in scene_questions(scene, rng, config)
        )
    (folder / MANIFEST).write_text("\n".join(lines) + "\n", encoding="utf-8")
