"""VQAModel: the VQA model of the project's one contract (``recognisers.contract``).

``VQAModel(config).fit(data)`` trains, ``predict`` / ``predict_batch`` answer, ``evaluate(data)``
returns a :class:`~recognisers.contract.Report`, ``save(dir)`` writes a model directory
atomically and ``VQAModel.load(dir)`` reads it back. A model directory holds
``model.weights.h5`` (the trainable network), ``encoder.weights.h5`` for a frozen VGG encoder
whose weights are not ImageNet's (random or a local file: saved so that a loaded model answers
identically), ``meta.json`` (the config whole, answer and question vocabularies, the training
summary, versions), ``history.csv`` and ``history.png``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from recognisers.backend import import_keras
from recognisers.contract import Report, SavesModelDir, config_from_json, config_to_json
from recognisers.errors import UserError, first_line
from recognisers.metafields import typed_field
from recognisers.modeldir import read_meta, write_meta
from recognisers.training import HISTORY_CSV, HISTORY_PNG, kept_epoch, plot_history
from vqa.batches import iterate_batches
from vqa.config import STOP_MONITOR, VQAConfig
from vqa.data import VQASet
from vqa.features import build_vgg_encoder, default_cache_dir, image_table
from vqa.network import answers_view, build_vqa_model
from vqa.text import QuestionEncoder
from vqa.train import Trained, train

KIND = "vqa"
FORMAT_VERSION = 2  # 2: the config saved whole under "config"
WEIGHTS_FILE = "model.weights.h5"
ENCODER_WEIGHTS_FILE = "encoder.weights.h5"

ImageLike = str | os.PathLike | np.ndarray
T = TypeVar("T")


class VQAModel(SavesModelDir):
    """Image + question -> answer: a network with its question encoder and answer vocabulary.

    ``config`` is resolved at once (each "kind's default" filled in, every setting checked),
    so ``model.config`` is what is trained and saved. ``cache_dir`` is where frozen VGG
    features are cached by ``fit`` and ``evaluate`` (default :func:`default_cache_dir`); it is a
    place on this machine, not part of the model.
    """

    KIND = KIND

    def __init__(self, config: VQAConfig | None = None, cache_dir: str | os.PathLike | None = None) -> None:
        self.config = (config or VQAConfig()).resolved()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.model_dir: Path | None = None  # where it was loaded from or saved to
        # learned state, set by fit (or load) only
        self._network: Any = None
        self._questions: QuestionEncoder | None = None
        self.answers: list[str] = []
        self.image_encoder: Any = None
        self.info: dict = {}
        self.history: list[dict[str, str]] = []
        self._forward: Any = None
        self._float_copy: Any = None

    def fit(self, data: VQASet, verbose: int = 2) -> VQAModel:
        """Train on ``data`` (a validation slice of whole images is cut from it for early
        stopping; the weights of the epoch with the highest validation accuracy are kept, of equal
        ones the lowest validation loss)."""
        import_keras()
        self._learnt(train(data, self.config, self.cache_dir, verbose))
        return self

    def _learnt(self, trained: Trained) -> None:
        """Take on what training learnt (or what a model directory holds)."""
        self._network, self._questions = trained.network, trained.questions
        self.answers, self.image_encoder = list(trained.answers), trained.image_encoder
        self.info, self.history = trained.info, trained.history
        self._forward = _compiled_forward(trained.network)
        self._float_copy = None

    @property
    def network(self):
        """The Keras network (a clear error for a model that was never fitted)."""
        return _trained(self._network)

    @property
    def questions(self) -> QuestionEncoder:
        """The question encoder learnt by ``fit``."""
        return _trained(self._questions)

    @property
    def kept_epoch(self) -> str:
        """Which epoch early stopping kept, and by which validation measure."""
        return kept_epoch(self.history, STOP_MONITOR, self.info.get("stop_watch_from", 0))

    # ---- asking -------------------------------------------------------------------------
    def predict(self, image: ImageLike, question: str, top: int = 1) -> list[tuple[str, float]]:
        """Top answers with probabilities for one question about one image."""
        return self.predict_batch([image], [question], top=top)[0]

    def predict_batch(
        self,
        images: Sequence[ImageLike],
        questions: Sequence[str],
        top: int = 1,
        cache_dir: str | os.PathLike | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Top answers for many (image, question) pairs; each distinct image is encoded once."""
        if len(images) != len(questions):
            raise UserError(f"{len(images)} images but {len(questions)} questions")
        return self.top_answers(self.probabilities(images, questions, cache_dir), top)

    def probabilities(
        self,
        images: Sequence[ImageLike],
        questions: Sequence[str],
        cache_dir: str | os.PathLike | None = None,
    ) -> np.ndarray:
        """Answer probabilities, shape ``(n, n_answers)``; repeated images are encoded once."""
        # an array passed again (the same object: the server's one image, many questions) is one
        # image; the objects stay alive through the call, so their ids cannot be reused meanwhile
        keys = [
            os.path.realpath(im) if not isinstance(im, np.ndarray) else f"array:{id(im)}" for im in images
        ]
        index_of: dict[str, int] = {}
        image_index = np.array([index_of.setdefault(k, len(index_of)) for k in keys], np.int64)
        firsts: dict[str, ImageLike] = {}
        for key, image in zip(keys, images):
            firsts.setdefault(key, image)
        return self.grouped_probabilities(list(firsts.values()), image_index, questions, cache_dir)

    def grouped_probabilities(
        self,
        images: Sequence[ImageLike],
        image_index: np.ndarray,
        questions: Sequence[str],
        cache_dir: str | os.PathLike | None = None,
        questions_per_batch: int = 1024,
    ) -> np.ndarray:
        """Probabilities when question ``i`` is about ``images[image_index[i]]`` (no duplicates)."""
        table = image_table(images, self.config.encoder, self.image_encoder, cache_dir)
        tokens = self.questions(questions)
        out = np.empty((len(questions), len(self.answers)), np.float32)
        for inputs, _, ids in iterate_batches(table, image_index, tokens, None, questions_per_batch):
            out[ids] = self._forward(*inputs).numpy()
        return out

    def top_answers(self, probs: np.ndarray, top: int) -> list[list[tuple[str, float]]]:
        """The ``top`` answers of each row of probabilities, most probable first."""
        top = max(1, min(int(top), len(self.answers)))
        best = np.argsort(-probs, axis=1, kind="stable")[:, :top]
        return [[(self.answers[j], float(p[j])) for j in row] for row, p in zip(best, probs)]

    def evaluate(self, data: VQASet) -> Report:
        """Accuracy (overall, per question type, the official VQA accuracy where the data has
        human answers), speed, and every question's prediction (:mod:`vqa.evaluate`)."""
        from vqa.evaluate import evaluate

        return evaluate(self, data)

    def explain(self, image: ImageLike, question: str, top: int = 3):
        """The answers and where the model looked (:class:`vqa.explain.Explanation`).

        Attention maps for a spatial model; gradient saliency for the others (the baseline
        and VGG-feature models have no map of their own; a frozen VGG encoder's features are
        taken as given, so its saliency needs pixels: only the compact encoder has it).
        """
        from vqa.explain import Explanation, attention_maps, saliency_map
        from vqa.images import load_image

        if self.config.encoder.frozen:
            raise UserError("--explain needs a model with the compact image encoder")
        pixels = load_image(image, self.config.encoder.side)
        tokens = self.questions([question])
        if self.config.network.spatial:
            probs, maps = attention_maps(self.network, pixels, tokens)
            method = "attention" if self.config.network.model == "attention" else "relations"
        else:
            probs = self._forward(pixels[None], tokens, np.zeros(1, np.int32)).numpy()[0]
            maps = saliency_map(self._float_network(), pixels, tokens, int(np.argmax(probs)))
            method = "saliency"
        return Explanation(self.top_answers(probs[None], top)[0], maps, method)

    def _float_network(self):
        """The same network taking float pixels (uint8 inputs stop gradients), same weights."""
        if self._float_copy is None:
            copy = build_vqa_model(
                self.config.encoder,
                self.config.network,
                self.questions.vocabulary_size,
                self.questions.max_length,
                len(self.answers),
                image_dtype="float32",
            )
            copy.set_weights(self.network.get_weights())
            self._float_copy = copy
        return self._float_copy

    # ---- saving and loading -------------------------------------------------------------
    def write_files(self, model_dir: Path) -> None:
        """Weights, ``meta.json``, ``history.csv`` and its plot into ``model_dir`` (staged by
        :meth:`save`, which replaces an existing model only with ``force``)."""
        self.network.save_weights(str(model_dir / WEIGHTS_FILE))
        if self.config.encoder.frozen and self.config.encoder.vgg_weights != "imagenet":
            self.image_encoder.save_weights(str(model_dir / ENCODER_WEIGHTS_FILE))
        write_meta(
            model_dir,
            KIND,
            FORMAT_VERSION,
            {
                "config": config_to_json(self.config),
                "answers": self.answers,
                "question_encoder": self.questions.to_json(),
                "training": self.info,
            },
        )
        if self.history:
            with open(model_dir / HISTORY_CSV, "w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(self.history[0]))
                writer.writeheader()
                writer.writerows(self.history)
            title = f"vqa: {self.info.get('dataset_name', 'training')}"
            plot_history(model_dir / HISTORY_CSV, model_dir / HISTORY_PNG, title)

    def save(self, model_dir: str | os.PathLike, force: bool = False) -> None:
        """Write the model directory atomically (``force``: replace a vqa model already there)."""
        super().save(model_dir, force)
        self.model_dir = Path(model_dir)

    @classmethod
    def load(cls, model_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> VQAModel:
        """Load a model directory; a clear :class:`UserError` if it is missing or foreign."""
        model_dir = Path(model_dir)
        meta = read_meta(model_dir, KIND, FORMAT_VERSION)
        where = f"{model_dir}/meta.json"
        config = config_from_json(VQAConfig, typed_field(meta, "config", dict, where), where)
        weights = config.encoder.vgg_weights  # the file it names is not needed to load
        try:  # the same checks as for training
            model = cls(replace(config, encoder=replace(config.encoder, vgg_weights=None)), cache_dir)
        except UserError as exc:
            raise UserError(f"{where} is damaged: {exc}") from None
        model.config = replace(model.config, encoder=replace(model.config.encoder, vgg_weights=weights))
        try:  # a hand-edited meta.json: Keras refuses a vocabulary with repeats, an empty word
            questions, answers = _vocabularies(meta, where)
            network = build_vqa_model(
                model.config.encoder,
                model.config.network,
                questions.vocabulary_size,
                questions.max_length,
                len(answers),
            )
        except (ValueError, TypeError) as exc:
            raise UserError(f"{where} is damaged: {first_line(exc)}") from None
        _load_weights(network, model_dir / WEIGHTS_FILE)
        image_encoder = None
        encoder = model.config.encoder
        if encoder.frozen:  # ImageNet's weights come from Keras; any others were saved with it
            imagenet = encoder.vgg_weights == "imagenet"
            image_encoder = build_vgg_encoder(replace(encoder, vgg_weights="imagenet" if imagenet else None))
            if not imagenet:
                _load_weights(image_encoder, model_dir / ENCODER_WEIGHTS_FILE)
        history = _read_history(model_dir / HISTORY_CSV)
        model._learnt(Trained(network, questions, answers, image_encoder, meta.get("training", {}), history))
        model.model_dir = model_dir
        return model


def _trained(value: T | None) -> T:
    """Learned state, or a clear error for a model that was never fitted (nor loaded)."""
    if value is None:
        raise RuntimeError("this VQAModel is not trained: call fit(data) or VQAModel.load(dir) first")
    return value


def _vocabularies(meta: dict, where: str) -> tuple[QuestionEncoder, list[str]]:
    """The question encoder and the answers of ``meta.json``: every field checked (a UserError)."""
    text = typed_field(meta, "question_encoder", dict, where)
    vocabulary = typed_field(text, "vocabulary", list[str], where, "question_encoder.")
    max_length = typed_field(text, "max_length", int, where, "question_encoder.")
    max_tokens = typed_field(text, "max_tokens", int, where, "question_encoder.")
    answers = typed_field(meta, "answers", list[str], where)
    if min(max_length, max_tokens, len(answers)) < 1 or len(vocabulary) + 2 > max_tokens:
        raise UserError(f"{where} is damaged: a size or the answers are empty or not positive")
    return QuestionEncoder(vocabulary, max_length, max_tokens), answers


def _read_history(path: Path) -> list[dict[str, str]]:
    """The saved training history (none for a model saved without training)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _load_weights(model, path: Path) -> None:
    if not path.is_file():
        raise UserError(f"{path.parent} is incomplete: {path.name} is missing")
    try:
        model.load_weights(str(path))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} does not fit this model: {str(exc).splitlines()[0]}") from None


def _compiled_forward(network):
    """One traced inference function for every batch shape (no per-call retracing)."""
    import tensorflow as tf

    image_shape = network.inputs[0].shape[1:]
    signature = [
        tf.TensorSpec((None, *image_shape), tf.float32 if len(image_shape) == 1 else tf.uint8),
        tf.TensorSpec((None, network.inputs[1].shape[1]), tf.int32),
        tf.TensorSpec((None,), tf.int32),
    ]

    answers = answers_view(network)

    @tf.function(input_signature=signature, autograph=False)
    def forward(images, tokens, index):
        return answers([images, tokens, index], training=False)

    return forward
