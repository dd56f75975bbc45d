"""Training: validation slice by image, answer vocabulary, grouped batches, early stopping.

:func:`train` is what :meth:`vqa.model.VQAModel.fit` runs; it writes nothing to disk but the
frozen-feature cache, and returns what was learnt.
"""

from __future__ import annotations

import csv
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recognisers.errors import UserError
from recognisers.training import HISTORY_CSV, best_epoch, set_seed, training_callbacks
from vqa.batches import training_dataset
from vqa.config import STOP_MONITOR, TrainConfig, VQAConfig
from vqa.data import VQASet, answer_vocabulary, split_by_image
from vqa.features import build_vgg_encoder, image_table
from vqa.network import answers_view, build_vqa_model
from vqa.text import QuestionEncoder


@dataclass
class Trained:
    """What a training run learnt, and how it went (``history``: one row per epoch)."""

    network: Any
    questions: QuestionEncoder
    answers: list[str]
    image_encoder: Any
    info: dict
    history: list[dict[str, str]] = field(default_factory=list)


def train(data: VQASet, config: VQAConfig, cache_dir: str | os.PathLike, verbose: int = 2) -> Trained:
    """Train on ``data`` (a validation slice of whole images cut from it); ``config`` resolved."""
    encoder, network_config, settings = config.encoder, config.network, config.training
    set_seed(settings.seed)
    train_part, val_part = split_by_image(data, settings.val_fraction, settings.seed)
    answers = answer_vocabulary(train_part.answers, settings.top_answers)
    train_part, train_labels = _in_vocabulary(train_part, answers)
    val_part, val_labels = _in_vocabulary(val_part, answers)
    questions = QuestionEncoder.fit(train_part.questions, settings.max_length)

    image_encoder = build_vgg_encoder(encoder) if encoder.frozen else None
    tables = [
        image_table(part.image_paths, encoder, image_encoder, cache_dir) for part in (train_part, val_part)
    ]
    network = build_vqa_model(
        encoder, network_config, questions.vocabulary_size, questions.max_length, len(answers)
    )
    import keras

    trainable = answers_view(network)
    train_ds = training_dataset(
        tables[0],
        train_part.image_index,
        questions(train_part.questions),
        train_labels,
        settings.batch_size,
        settings.seed,
    )
    trainable.compile(
        optimizer=keras.optimizers.Adam(_learning_rate(settings, int(train_ds.cardinality()))),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    val_ds = training_dataset(
        tables[1], val_part.image_index, questions(val_part.questions), val_labels, 1024, None
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vqa-history-") as logs:
        # shuffle=False: the pipeline reshuffles images itself, keeping each image's questions together.
        trainable.fit(
            train_ds,
            validation_data=val_ds,
            epochs=settings.epochs,
            callbacks=training_callbacks(
                Path(logs), settings.patience, STOP_MONITOR, start_from_epoch=settings.stop_watch_from
            ),
            verbose=verbose,
            shuffle=False,
        )
        with open(Path(logs) / HISTORY_CSV, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    seconds = time.perf_counter() - started
    info = _training_info(data, train_part, val_part, config, rows, seconds)
    return Trained(network, questions, answers, image_encoder, info, rows)


def _learning_rate(settings: TrainConfig, steps_per_epoch: int):
    """Adam's learning rate: constant, or decaying to zero along a cosine by the last step of
    the most epochs (small late steps settle fine distinctions a constant rate keeps shaking)."""
    import keras

    if settings.learning_rate_decay == "none":
        return settings.learning_rate
    steps = settings.most_epochs * steps_per_epoch
    return keras.optimizers.schedules.CosineDecay(settings.learning_rate, decay_steps=steps)


def _in_vocabulary(part: VQASet, answers: list[str]) -> tuple[VQASet, np.ndarray]:
    """Leave out questions whose answer is outside the vocabulary; labels of the rest."""
    index = {a: i for i, a in enumerate(answers)}
    keep = np.array([i for i, a in enumerate(part.answers) if a in index], np.int64)
    if len(keep) == 0:
        raise UserError(f"{part.name}: no question has an answer in the answer vocabulary")
    kept = part.subset(keep) if len(keep) < len(part) else part
    return kept, np.array([index[a] for a in kept.answers], np.int32)


def _training_info(data, train_part, val_part, config: VQAConfig, rows: list[dict], seconds) -> dict:
    """The training summary saved in ``meta.json``; ``rows``: the history, one per epoch."""
    start = config.training.stop_watch_from
    kept = best_epoch(rows, STOP_MONITOR, start_from_epoch=start)
    return {
        "dataset": data.info,
        "dataset_name": data.name,
        "questions": len(data),
        "train_questions": len(train_part),
        "validation_questions": len(val_part),
        "images": len(data.image_paths),
        "seed": config.training.seed,
        "epochs_run": len(rows),
        "best_epoch": len(rows) if kept is None else kept + 1,
        "stop_watch_from": start,
        "validation_accuracy": None if kept is None else float(rows[kept]["val_accuracy"]),
        "train_seconds": round(seconds, 1),
        "batch_size": config.training.batch_size,
        "learning_rate": config.training.learning_rate,
    }
