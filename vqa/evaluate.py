"""Evaluation: predictions for a whole set, the metrics, the report and the confusion matrix."""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from recognisers.contract import Report
from recognisers.training import save_figure
from vqa.data import VQASet
from vqa.metrics import exact_match, official_type_score, per_type_accuracy, vqa_accuracy

if TYPE_CHECKING:
    from vqa.model import VQAModel

MAX_CONFUSION_ANSWERS = 30


def evaluate(model: VQAModel, data: VQASet) -> Report:
    """The report: metrics (counts, accuracies, speed, dataset, model, time) and, per question,
    its image, question, predicted answer, expected answer, human answers (when given), type."""
    started = time.perf_counter()
    probs = model.grouped_probabilities(data.image_paths, data.image_index, data.questions, model.cache_dir)
    predicted = [model.answers[j] for j in probs.argmax(axis=1)]
    seconds = time.perf_counter() - started
    correct = [float(exact_match(p, a)) for p, a in zip(predicted, data.answers)]
    metrics = {
        "dataset": {"name": data.name, **data.info},
        "model": None if model.model_dir is None else str(model.model_dir),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "count": len(data),
        "images": len(data.image_paths),
        "accuracy": float(np.mean(correct)),
        "per_type": per_type_accuracy(correct, data.types),
        "seconds": round(seconds, 3),
        "questions_per_second": len(data) / max(seconds, 1e-9),
    }
    metrics.update(official_metric(predicted, data))
    return Report(metrics, predictions(data, predicted))


def predictions(data: VQASet, predicted: list[str]) -> list[dict]:
    """One entry per question: what was asked about which image, what was answered and expected."""
    humans = data.human_answers or [None] * len(data)
    return [
        {
            "image": data.image_paths[int(data.image_index[i])],
            "question": data.questions[i],
            "predicted": answer,
            "truth": data.answers[i],
            "type": data.types[i],
            **({"answers": humans[i]} if humans[i] else {}),
        }
        for i, answer in enumerate(predicted)
    ]


def official_metric(predictions: list[str], data: VQASet) -> dict:
    """``vqa_accuracy`` over the questions that carry human answers, with their count.

    Per-type figures use the score the official script averages per type (see
    :func:`vqa.metrics.official_type_score`). Empty when no question has human answers.
    """
    answered = [(i, h) for i, h in enumerate(data.human_answers or []) if h]
    if not answered:
        return {}
    return {
        "vqa_accuracy": float(np.mean([vqa_accuracy(predictions[i], h) for i, h in answered])),
        "vqa_accuracy_count": len(answered),
        # the script's leave-one-out subsets assume ten answers: under four, 1.0 is out of reach
        "vqa_accuracy_under_four_answers": sum(len(h) < 4 for _, h in answered),
        "per_type_vqa_accuracy": per_type_accuracy(
            [official_type_score(predictions[i], h) for i, h in answered],
            [data.types[i] for i, _ in answered],
        ),
    }


def report_rows(report: dict) -> list[tuple[str, object]]:
    """The rows of the short human table."""
    rows: list[tuple[str, object]] = [("questions", report["count"]), ("accuracy", report["accuracy"])]
    if "vqa_accuracy" in report:
        rows.append(
            (
                f"vqa_accuracy, official ({report['vqa_accuracy_count']} with human answers)",
                report["vqa_accuracy"],
            )
        )
    for kind, entry in report["per_type"].items():
        rows.append((f"accuracy: {kind} ({entry['count']})", entry["accuracy"]))
    rows.append(("questions/s", float(report["questions_per_second"])))
    return rows


def confusion_counts(truth: list[str], predicted: list[str]) -> tuple[list[str], np.ndarray]:
    """Labels and counts (rows: true, columns: predicted) of the most frequent answers; the
    rest pooled as '(other)' when there is any."""
    labels = [a for a, _ in Counter(truth + predicted).most_common(MAX_CONFUSION_ANSWERS)]
    other = len(labels)
    index = {a: i for i, a in enumerate(labels)}
    matrix = np.zeros((other + 1, other + 1), np.int64)
    for t, p in zip(truth, predicted):
        matrix[index.get(t, other), index.get(p, other)] += 1
    if not matrix[other].any() and not matrix[:, other].any():
        return labels, matrix[:other, :other]
    return labels + ["(other)"], matrix


def plot_confusion(
    truth: list[str], predicted: list[str], per_type: dict, png_path: str | os.PathLike, title: str
) -> None:
    """The confusion matrix beside a bar chart of accuracy per question type.

    Colours are shares of each true answer (rows sum to 1), so rare answers are as readable
    as the frequent yes/no; the cells print the counts.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, matrix = confusion_counts(truth, predicted)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = max(4.0, 0.4 * len(labels) + 2)
    bars = max(3.0, 0.5 * len(per_type) + 2)
    fig, (ax, bx) = plt.subplots(
        1, 2, figsize=(side + 1 + bars, side), gridspec_kw={"width_ratios": [side + 1, bars]}
    )
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if shares[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: share of each true answer (counts in cells)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    kinds = list(per_type)
    values = [100 * per_type[k]["accuracy"] for k in kinds]
    bx.bar(range(len(kinds)), values, color="tab:blue")
    for i, value in enumerate(values):
        bx.text(i, value + 1, f"{value:.1f}", ha="center", fontsize=7)
    bx.set_xticks(range(len(kinds)), [f"{k} ({per_type[k]['count']})" for k in kinds], rotation=90)
    bx.set_ylim(0, 110)
    bx.set_ylabel("accuracy %")
    bx.set_title("per question type", fontsize=9)
    fig.tight_layout()
    save_figure(fig, png_path)
    plt.close(fig)
