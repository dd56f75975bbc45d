"""Training: validation slice by image, answer vocabulary, grouped batches, early stopping."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recognisers.errors import UserError
from recognisers.training import set_seed, training_callbacks
from vqa.answerer import VQAModel
from vqa.batches import training_dataset
from vqa.data import VQASet, answer_vocabulary, split_by_image
from vqa.features import EncoderConfig, build_vgg_encoder, default_cache_dir, image_table
from vqa.model import ModelConfig, answers_view, build_vqa_model
from vqa.text import QuestionEncoder


@dataclass
class TrainSettings:
    """Everything ``vqa train`` can set; defaults are the easy-VQA settings of the bench."""

    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 2e-3
    val_fraction: float = 0.1
    patience: int = 3
    seed: int = 0
    top_answers: int = 1000
    max_length: int | None = None
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    network: ModelConfig = field(default_factory=ModelConfig)
    cache_dir: str | None = None
    verbose: int = 2


# What differs per model kind. The attention model keeps an 8x8 map and reads colour from
# the pixels too, so a narrower CNN serves it (about 4x faster on CPU); at 2e-3 it stayed on
# the question-only plateau of a generated shapes set, at 3e-4 to 5e-4 it left it.
# The relation model runs g per pair of cells, so it takes a 5x5 map: 80x80 images, four
# blocks.
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn-lstm": {"filters": EncoderConfig.filters, "learning_rate": 2e-3},
    "attention": {"filters": (16, 32, 64), "learning_rate": 5e-4},
    "relation": {"filters": (16, 32, 64, 64), "learning_rate": 1e-3, "image_size": 80},
}


def settings_for(kind: str = ModelConfig.kind, **overrides) -> TrainSettings:
    """The default settings of ``vqa train --model kind``."""
    defaults = KIND_DEFAULTS[kind]
    return TrainSettings(
        **{
            "learning_rate": defaults["learning_rate"],
            "encoder": EncoderConfig(filters=defaults["filters"], image_size=defaults.get("image_size", 64)),
            "network": ModelConfig(kind=kind),
            **overrides,
        }
    )


def train(data: VQASet, workdir: Path, settings: TrainSettings) -> VQAModel:
    """Train on ``data`` (validation cut from it); history files go to ``workdir``."""
    settings.encoder.check()
    settings.network.check(settings.encoder)
    if settings.epochs < 1:
        raise UserError("--epochs must be at least 1")
    set_seed(settings.seed)
    train_part, val_part = split_by_image(data, settings.val_fraction, settings.seed)
    answers = answer_vocabulary(train_part.answers, settings.top_answers)
    train_part, train_labels = _in_vocabulary(train_part, answers)
    val_part, val_labels = _in_vocabulary(val_part, answers)
    questions = QuestionEncoder.fit(train_part.questions, settings.max_length)

    image_encoder = build_vgg_encoder(settings.encoder) if settings.encoder.frozen else None
    cache_dir = settings.cache_dir or default_cache_dir()
    tables = [
        image_table(part.image_paths, settings.encoder, image_encoder, cache_dir)
        for part in (train_part, val_part)
    ]
    network = build_vqa_model(
        settings.encoder, settings.network, questions.vocabulary_size, questions.max_length, len(answers)
    )
    import keras

    trainable = answers_view(network)
    trainable.compile(
        optimizer=keras.optimizers.Adam(settings.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    train_ds = training_dataset(
        tables[0],
        train_part.image_index,
        questions(train_part.questions),
        train_labels,
        settings.batch_size,
        settings.seed,
    )
    val_ds = training_dataset(
        tables[1], val_part.image_index, questions(val_part.questions), val_labels, 1024, None
    )
    started = time.perf_counter()
    # shuffle=False: the pipeline reshuffles images itself, keeping each image's questions together.
    history = trainable.fit(
        train_ds,
        validation_data=val_ds,
        epochs=settings.epochs,
        callbacks=training_callbacks(workdir, settings.patience),
        verbose=settings.verbose,
        shuffle=False,
    )
    seconds = time.perf_counter() - started
    info = _training_info(data, train_part, val_part, settings, history.history, seconds)
    return VQAModel(network, questions, answers, settings.encoder, settings.network, image_encoder, info)


def _in_vocabulary(part: VQASet, answers: list[str]) -> tuple[VQASet, np.ndarray]:
    """Leave out questions whose answer is outside the vocabulary; labels of the rest."""
    index = {a: i for i, a in enumerate(answers)}
    keep = np.array([i for i, a in enumerate(part.answers) if a in index], np.int64)
    if len(keep) == 0:
        raise UserError(f"{part.name}: no question has an answer in the answer vocabulary")
    kept = part.subset(keep) if len(keep) < len(part) else part
    return kept, np.array([index[a] for a in kept.answers], np.int32)


def _training_info(data, train_part, val_part, settings, history, seconds) -> dict:
    val_acc = history.get("val_accuracy", [])
    best = int(np.argmin(history["val_loss"])) if history.get("val_loss") else len(val_acc) - 1
    return {
        "dataset": data.info,
        "questions": len(data),
        "train_questions": len(train_part),
        "validation_questions": len(val_part),
        "images": len(data.image_paths),
        "seed": settings.seed,
        "epochs_run": len(history.get("loss", [])),
        "best_epoch": best + 1,
        "validation_accuracy": float(val_acc[best]) if val_acc else None,
        "train_seconds": round(seconds, 1),
        "batch_size": settings.batch_size,
        "learning_rate": settings.learning_rate,
    }
