"""Dataset readers: easy-VQA, VQA v2 JSON + COCO image folder, JSONL manifests.

Every reader returns a :class:`VQASet`, which stores questions grouped by image (a list of
unique image paths and, per question, the index of its image). Training and evaluation then
run the image encoder once per image instead of once per question.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recognisers.errors import UserError

YES_NO_STARTS = ("is", "are", "does", "do", "can", "was", "has", "have")


@dataclass
class VQASet:
    """Questions about images; ``image_index[i]`` points into ``image_paths``.

    ``human_answers[i]`` is None for a question without human answers (a JSONL line with only
    ``answer``): the official metric is computed over the others, never on invented ones.
    """

    image_paths: list[str]
    image_index: np.ndarray
    questions: list[str]
    answers: list[str]
    types: list[str]
    human_answers: list[list[str] | None] | None = None
    name: str = "dataset"
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.questions)

    def subset(self, keep: np.ndarray, name: str | None = None) -> VQASet:
        """The questions at ``keep`` (indices), with only the images they use."""
        keep = np.asarray(keep, dtype=np.int64)
        used, new_index = np.unique(self.image_index[keep], return_inverse=True)
        return VQASet(
            image_paths=[self.image_paths[i] for i in used],
            image_index=new_index.astype(np.int64),
            questions=[self.questions[i] for i in keep],
            answers=[self.answers[i] for i in keep],
            types=[self.types[i] for i in keep],
            human_answers=None if self.human_answers is None else [self.human_answers[i] for i in keep],
            name=name or self.name,
            info=dict(self.info),
        )

    def head(self, max_questions: int | None) -> VQASet:
        """The first ``max_questions`` questions (all when None), in reading order."""
        if max_questions is None or max_questions >= len(self):
            return self
        if max_questions < 1:
            raise UserError("--max-questions must be at least 1")
        return self.subset(np.arange(max_questions))


def _build(
    items: Sequence[tuple[str, str, str, str, list[str] | None]], name: str, info: dict | None = None
) -> VQASet:
    """Assemble a set from (image, question, answer, type, human answers) tuples."""
    if not items:
        raise UserError(f"{name}: no questions found")
    index_of: dict[str, int] = {}
    image_index = np.array([index_of.setdefault(it[0], len(index_of)) for it in items], np.int64)
    has_human = any(it[4] for it in items)
    return VQASet(
        image_paths=list(index_of),
        image_index=image_index,
        questions=[it[1] for it in items],
        answers=[it[2] for it in items],
        types=[it[3] for it in items],
        human_answers=[it[4] or None for it in items] if has_human else None,
        name=name,
        info=info or {},
    )


def easy_vqa_type(question: str) -> str:
    """Question kind from its text: yes/no, colour or shape (easy-VQA has no type field)."""
    words = question.lower().split()
    if words and words[0] in YES_NO_STARTS:
        return "yes/no"
    if "color" in words or "colour" in words:
        return "colour"
    return "shape" if any(w.startswith("shape") for w in words) else "other"


def read_easy_vqa(split: str, max_questions: int | None = None) -> VQASet:
    """The easy-VQA set shipped by the ``easy-vqa`` package (64x64 images, 13 answers)."""
    import easy_vqa

    if split not in ("train", "test"):
        raise UserError(f"easy-vqa has splits train and test, not {split!r}")
    if split == "train":
        texts, answers, ids = easy_vqa.get_train_questions()
        paths = easy_vqa.get_train_image_paths()
    else:
        texts, answers, ids = easy_vqa.get_test_questions()
        paths = easy_vqa.get_test_image_paths()
    items = [(paths[i], q, a, easy_vqa_type(q), None) for q, a, i in zip(texts, answers, ids)]
    return _build(items, f"easy-vqa/{split}", {"dataset": "easy-vqa", "split": split}).head(max_questions)


def _load_json(path: str | os.PathLike, what: str):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise UserError(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{what} file {path} is not readable JSON: {_reason(exc)}") from None
    except RecursionError:
        raise UserError(f"{what} file {path} is not readable JSON: nested too deeply") from None


def _reason(exc: Exception) -> str:
    """Why a file could not be read, without its name (the error line names it once)."""
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def coco_image_path(images: Path, subtype: str, image_id: int) -> str:
    """COCO file name as VQA v2 uses it: ``COCO_val2014_000000000042.jpg``."""
    return str(images / f"COCO_{subtype}_{int(image_id):012d}.jpg")


def read_vqa2(questions: str, annotations: str, images: str, max_questions: int | None = None) -> VQASet:
    """VQA v2 questions + annotations JSON and a COCO image folder; keeps the 10 human answers."""
    qdata = _load_json(questions, "questions")
    adata = _load_json(annotations, "annotations")
    try:
        subtype = qdata.get("data_subtype") or adata.get("data_subtype")
        by_qid = {a["question_id"]: a for a in adata["annotations"]}
        items = []
        for q in qdata["questions"]:
            ann = by_qid.get(q["question_id"])
            if ann is None:
                continue
            human = [str(a["answer"]) for a in ann.get("answers", [])]
            items.append(
                (
                    coco_image_path(Path(images), subtype, q["image_id"]),
                    q["question"],
                    str(ann["multiple_choice_answer"]),
                    ann.get("answer_type", "other"),
                    human or None,
                )
            )
    except KeyError as exc:
        raise UserError(f"{questions} / {annotations} are not in the VQA v2 format (missing {exc})") from None
    except (TypeError, AttributeError, ValueError) as exc:  # e.g. an image_id that is not a number
        raise UserError(f"{questions} / {annotations} are not in the VQA v2 format ({exc})") from None
    info = {
        "dataset": "vqa2",
        "questions": str(questions),
        "annotations": str(annotations),
        "images": str(images),
    }
    return _build(items[:max_questions] if max_questions else items, "vqa2", info)


def read_jsonl(path: str | os.PathLike, max_questions: int | None = None) -> VQASet:
    """A manifest of ``{"image", "question", "answer"[, "answers", "type"]}`` lines.

    Relative image paths are taken from the manifest's folder, so a set can be moved whole.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"manifest not found: {path}")
    items = []
    try:
        # utf-8-sig: a leading BOM is no error; "\n" only: splitlines() also splits on U+2028,
        # which json.dumps(..., ensure_ascii=False) leaves inside strings
        lines = path.read_text(encoding="utf-8-sig").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"manifest {path} is unreadable: {_reason(exc)}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        items.append(_manifest_item(path, number, line))
        if max_questions and len(items) >= max_questions:
            break
    return _build(items, path.name, {"dataset": "jsonl", "manifest": str(path)})


def _manifest_item(path: Path, number: int, line: str):
    where = f"{path}:{number}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not a JSON object ({exc.msg})") from None
    except RecursionError:
        raise UserError(f"{where}: not a JSON object (nested too deeply)") from None
    if not isinstance(obj, dict):
        raise UserError(f"{where}: not a JSON object")
    for key in ("image", "question"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise UserError(f"{where}: missing {key!r}")
    human = obj.get("answers")
    if human is not None and not (isinstance(human, list) and all(isinstance(a, str) for a in human)):
        raise UserError(f"{where}: 'answers' must be a list of strings")
    if human is not None and not all(a.strip() for a in human):
        raise UserError(f"{where}: 'answers' holds an empty answer")
    kind = obj.get("type")
    if kind is not None and not isinstance(kind, str):
        raise UserError(f"{where}: 'type' must be a string")
    answer = obj.get("answer")
    if not isinstance(answer, str) or not answer.strip():
        if not human:
            raise UserError(f"{where}: missing 'answer'")
        answer = Counter(human).most_common(1)[0][0]
    image = Path(obj["image"]).expanduser()
    image = image if image.is_absolute() else path.parent / image
    return (str(image), obj["question"], answer, kind or "all", human or None)


def answer_vocabulary(answers: list[str], top_k: int) -> list[str]:
    """The ``top_k`` most frequent answers; ties broken by first appearance, for repeatability."""
    counts = Counter(answers)
    return [a for a, _ in counts.most_common(top_k)]


def split_by_image(data: VQASet, fraction: float, seed: int) -> tuple[VQASet, VQASet]:
    """Cut a validation slice of whole images, so no image is on both sides."""
    n_images = len(data.image_paths)
    n_val = int(round(n_images * fraction))
    if fraction <= 0 or n_val < 1 or n_val >= n_images:
        raise UserError(f"cannot cut a {fraction:.0%} validation slice from {n_images} images")
    val_images = np.random.default_rng(seed).permutation(n_images)[:n_val]
    is_val = np.isin(data.image_index, val_images)
    return (
        data.subset(np.flatnonzero(~is_val), f"{data.name} (train part)"),
        data.subset(np.flatnonzero(is_val), f"{data.name} (validation)"),
    )
