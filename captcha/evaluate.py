"""Measure a solver on labelled images: accuracies, segmentation failures, speed, confusions.

The report is a plain dict (written as JSON by the CLI); the worst cases are drawn as a PNG
(image, boxes found, predicted vs. true text) so that a user sees at a glance where it fails.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np

from captcha.data import Sample, apply_case, read_image
from captcha.segment import draw_boxes
from captcha.solver import CaptchaSolver, Reading
from recognisers.errors import UserError
from recognisers.training import save_figure


def read_all(solver: CaptchaSolver, samples: list[Sample]) -> tuple[list[Reading | None], float]:
    """Read every sample (files included in the timing); unreadable or blank ones give None."""
    started = time.perf_counter()
    results = solver.read_each([sample.path for sample in samples])
    readings = [None if isinstance(r, UserError) else r for r in results]
    return readings, time.perf_counter() - started


def evaluate(solver: CaptchaSolver, samples: list[Sample], case: str | None = None) -> dict:
    """The report: counts, accuracies, failure rate, speed, per-character accuracy, confusions."""
    case = case or solver.case
    readings, seconds = read_all(solver, samples)
    labels = [apply_case(s.label, case) for s in samples]
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
    return {
        "count": len(samples),
        "sequence_accuracy": float(np.mean([t == label for t, label in zip(texts, labels)])),
        "char_accuracy": sum(sum(v) for v in per_char.values()) / max(1, n_chars),
        "segmentation_failure_rate": float(np.mean([r is None or len(r.text) != len(label)
                                                    for r, label in zip(readings, labels)])),
        "read_by_recognition_rate": float(np.mean([bool(r and r.by_recognition) for r in readings])),
        "images_per_second": len(samples) / seconds,
        "seconds": round(seconds, 3),
        "per_character_accuracy": {c: float(np.mean(v)) for c, v in sorted(per_char.items())},
        "top_confusions": dict(confusions.most_common(10)),
        "reader": solver.reader,
        "read_by": dict(Counter(r.reader for r in readings if r)),
        "_readings": readings,
        "_texts": texts,
        "_labels": labels,
    }


def worst_cases(report: dict, samples: list[Sample], png: Path, limit: int = 12) -> None:
    """Draw the wrong readings with the lowest confidence (unreadable ones first)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    readings = report["_readings"]
    wrong = [i for i, (r, text, label) in enumerate(zip(readings, report["_texts"], report["_labels"]))
             if r is None or text != label]
    wrong.sort(key=lambda i: readings[i].confidence if readings[i] else -1.0)
    wrong = wrong[:limit] or [0]
    fig, axes = plt.subplots(len(wrong), 1, figsize=(4, 1.1 * len(wrong)), squeeze=False)
    for ax, i in zip(axes[:, 0], wrong):
        reading = readings[i]
        gray = read_image(samples[i].path)
        ax.imshow(draw_boxes(gray, reading.boxes if reading else [], reading.text if reading else None)[:, :, ::-1])
        text = reading.text if reading else "(unreadable)"
        ax.set_title(f"read {text!r}  true {samples[i].label!r}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, png)
    plt.close(fig)
