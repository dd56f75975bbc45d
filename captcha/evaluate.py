"""Measure a reader on labelled images: accuracies, segmentation failures, speed, confusions.

The report is a :class:`recognisers.contract.Report`: the metrics, and per image its file,
label, reading, confidence and boxes (written as JSON by the CLI). It lists every wrong reading and flags
the suspected label errors among them: users label their own CAPTCHAs and make mistakes, and
a reading the model is very sure of that disagrees with the label is more often a wrong label
than a wrong reading (see :class:`EvaluateConfig`). The worst cases are drawn as a PNG (image,
boxes the reader used, file name, text read with its confidence, label) so that a user sees at
a glance where it fails.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from captcha.data import Sample, apply_case, read_image
from captcha.model import CaptchaModel, Reading
from captcha.segment import draw_boxes
from recognisers.contract import Report
from recognisers.errors import UserError
from recognisers.images import UnreadableImage
from recognisers.training import save_figure


@dataclass(frozen=True)
class EvaluateConfig:
    """Defaults of the evaluation.

    ``label_error_confidence``: a wrong reading of the label's length whose confidence (the
    product of its glyphs' confidences) is at least this is flagged as a suspected label
    error. Chosen on generated data, whose labels are right by construction: there, 0.3 to
    0.4% of the images are flagged for nothing (the models' own confident errors; see the
    README), so a flagged disagreement on a user's folder deserves a look at the label first.
    """

    label_error_confidence: float = 0.9
    worst_limit: int = 12


def read_all(reader: CaptchaModel, samples: list[Sample]) -> tuple[list[Reading | UserError], float]:
    """Read every sample (files included in the timing); an unreadable or blank one gives its error."""
    started = time.perf_counter()
    results = reader.read_each([sample.path for sample in samples])
    return results, time.perf_counter() - started


def prediction(sample: Sample, reading: Reading | None, label: str) -> dict:
    """One image's entry in the report: file, label, text read (None: unreadable), confidence, boxes."""
    return {
        "path": str(sample.path),
        "label": label,
        "read": reading.text if reading else None,
        "confidence": round(reading.confidence, 6) if reading else 0.0,
        "boxes": [list(map(int, box)) for box in reading.boxes] if reading else [],
    }


def wrong_readings(predictions: list[dict], texts: list[str]) -> list[dict]:
    """Every wrong reading: path, label, text read and its confidence (unreadable: text None)."""
    return [
        {k: p[k] for k in ("path", "label", "read", "confidence")}
        for p, text in zip(predictions, texts)
        if p["read"] is None or text != p["label"]
    ]


def suspect_label(wrong: dict, config: EvaluateConfig) -> bool:
    """A wrong reading of the label's length that the model is very sure of.

    A reading of another length is not blamed on the label: a confident reading that misses a
    glyph (a faint or hidden one) is a segmentation error, as generated data shows.
    """
    return (
        wrong["read"] is not None
        and len(wrong["read"]) == len(wrong["label"])
        and wrong["confidence"] >= config.label_error_confidence
    )


def evaluate(
    reader: CaptchaModel,
    samples: list[Sample],
    case: str | None = None,
    config: EvaluateConfig = EvaluateConfig(),
) -> Report:
    """The report: counts, accuracies, failure rate, speed, per-character accuracy, confusions,
    every wrong reading and the suspected label errors among them; every image's reading."""
    case = case or reader.case
    results, seconds = read_all(reader, samples)
    readings = [None if isinstance(r, UserError) else r for r in results]
    unreadable = [s.path.name for s, r in zip(samples, results) if isinstance(r, UnreadableImage)]
    labels = [apply_case(s.label, case) for s in samples]
    known = apply_case(reader.charset, case)  # labels with other characters cannot be read
    texts = [apply_case(r.text, case) if r else "" for r in readings]
    per_char: dict[str, list[int]] = {}
    confusions: Counter = Counter()
    for label, text in zip(labels, texts):
        for k, true in enumerate(label):
            got = text[k] if k < len(text) else ""
            per_char.setdefault(true, []).append(int(got == true))
            if got != true and len(text) == len(label):
                confusions[f"{true}->{got}"] += 1
    n_chars = sum(len(label) for label in labels)
    predictions = [prediction(s, r, label) for s, r, label in zip(samples, readings, labels)]
    wrong = wrong_readings(predictions, texts)
    metrics = {
        "count": len(samples),
        "unknown_characters": "".join(sorted(set("".join(labels)) - set(known))),
        "unreadable": len(unreadable),  # files that are not images (blank images are read as "")
        "unreadable_files": unreadable[:20],
        "sequence_accuracy": float(np.mean([t == label for t, label in zip(texts, labels)])),
        "char_accuracy": sum(sum(v) for v in per_char.values()) / max(1, n_chars),
        "segmentation_failure_rate": float(
            np.mean([r is None or len(r.text) != len(label) for r, label in zip(readings, labels)])
        ),
        "read_by_recognition_rate": float(np.mean([bool(r and r.by_recognition) for r in readings])),
        "images_per_second": len(samples) / seconds,
        "seconds": round(seconds, 3),
        "per_character_accuracy": {c: float(np.mean(v)) for c, v in sorted(per_char.items())},
        "top_confusions": dict(confusions.most_common(10)),
        "reader": reader.reader,
        "read_by": dict(Counter(r.reader for r in readings if r)),
        "wrong_count": len(wrong),
        "label_error_confidence": config.label_error_confidence,
        "suspected_label_errors": [w for w in wrong if suspect_label(w, config)],
        "wrong_readings": wrong,
    }
    return Report(metrics, predictions)


def worst_cases(report: Report, png: Path, limit: int = EvaluateConfig.worst_limit) -> None:
    """Draw the least confident wrong readings (unreadable first), then the suspected label errors.

    Each row names the file and shows the boxes the reader used with the characters it read,
    the text read with its confidence, and the label; a legend at the top says how to read it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    predictions = report.predictions
    where = {p["path"]: i for i, p in enumerate(predictions)}
    suspected = {w["path"] for w in report.metrics["suspected_label_errors"]}
    wrong = [where[w["path"]] for w in report.metrics["wrong_readings"]]
    wrong.sort(key=lambda i: predictions[i]["confidence"] if predictions[i]["read"] is not None else -1.0)
    paths = [p["path"] for p in predictions]
    flagged = [i for i in wrong if paths[i] in suspected][-(limit // 3) :] if limit >= 3 else []
    rows = [i for i in wrong if paths[i] not in suspected][: limit - len(flagged)] + flagged
    fig, axes = plt.subplots(max(1, len(rows)), 1, figsize=(5, 0.4 + 1.3 * max(1, len(rows))), squeeze=False)
    for ax, i in zip(axes[:, 0], rows):
        p = predictions[i]
        try:
            gray = read_image(p["path"])
        except UserError:
            gray = np.full((20, 80), 255, np.uint8)  # an unreadable file: a blank tile
        ax.imshow(draw_boxes(gray, [tuple(b) for b in p["boxes"]], p["read"])[:, :, ::-1])
        read = f"read {p['read']!r} ({p['confidence']:.2f})" if p["read"] is not None else "unreadable"
        tag = "  LABEL?" if paths[i] in suspected else ""
        ax.set_title(
            f"{Path(p['path']).name}: {read}, label {p['label']!r}{tag}",
            fontsize=7,
            color="tab:red" if tag else "black",
        )
        ax.axis("off")
    if not rows:
        axes[0, 0].text(0.5, 0.5, "no wrong readings", ha="center", va="center")
        axes[0, 0].axis("off")
    fig.suptitle(
        f"{len(wrong)} wrong of {len(predictions)}. Each row: file: text read (confidence), label;\n"
        f"boxes: the glyphs the reader used. LABEL? (red): as long as the label and read with\n"
        f"confidence >= {report.metrics['label_error_confidence']:.2f}: check the label first.",
        fontsize=7,
    )
    fig.tight_layout()
    save_figure(fig, png)
    plt.close(fig)
