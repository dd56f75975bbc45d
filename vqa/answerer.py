"""VQAModel: ask questions about images with a trained model; save and load it.

A model directory holds ``model.weights.h5`` (the trainable network), ``encoder.weights.h5``
for a frozen VGG encoder whose weights are not ImageNet's (random or a local file: saved so
that a loaded model answers identically), and ``meta.json`` with everything else: answer
vocabulary, question vocabulary, encoder and network settings, versions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from recognisers.errors import UserError
from recognisers.metafields import dataclass_from_meta, typed_field
from recognisers.modeldir import read_meta, write_meta
from vqa.batches import iterate_batches
from vqa.features import EncoderConfig, build_vgg_encoder, image_table
from vqa.model import ModelConfig, answers_view, build_vqa_model
from vqa.text import QuestionEncoder

KIND = "vqa"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.weights.h5"
ENCODER_WEIGHTS_FILE = "encoder.weights.h5"

ImageLike = str | os.PathLike | np.ndarray


class VQAModel:
    """A trained VQA network with its question encoder and answer vocabulary."""

    def __init__(
        self,
        network,
        questions: QuestionEncoder,
        answers: Sequence[str],
        encoder_config: EncoderConfig,
        model_config: ModelConfig,
        image_encoder=None,
        info: dict | None = None,
    ) -> None:
        self.network = network
        self.questions = questions
        self.answers = list(answers)
        self.encoder_config = encoder_config
        self.model_config = model_config
        self.image_encoder = image_encoder
        self.info = info or {}
        self._forward = _compiled_forward(network)

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
        keys = [
            os.path.realpath(im) if not isinstance(im, np.ndarray) else f"array:{i}"
            for i, im in enumerate(images)
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
        table = image_table(images, self.encoder_config, self.image_encoder, cache_dir)
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

    def explain(self, image: ImageLike, question: str, top: int = 3):
        """The answers and where the model looked (:class:`vqa.explain.Explanation`).

        Attention maps for a spatial model; gradient saliency for the others (the baseline
        and VGG-feature models have no map of their own; a frozen VGG encoder's features are
        taken as given, so its saliency needs pixels: only the compact encoder has it).
        """
        from vqa.explain import Explanation, attention_maps, saliency_map
        from vqa.images import load_image

        if self.encoder_config.frozen:
            raise UserError("--explain needs a model with the compact image encoder")
        pixels = load_image(image, self.encoder_config.image_size)
        tokens = self.questions([question])
        if self.model_config.spatial:
            probs, maps = attention_maps(self.network, pixels, tokens)
            method = "attention" if self.model_config.kind == "attention" else "relations"
        else:
            probs = self._forward(pixels[None], tokens, np.zeros(1, np.int32)).numpy()[0]
            maps = saliency_map(self._float_network(), pixels, tokens, int(np.argmax(probs)))
            method = "saliency"
        return Explanation(self.top_answers(probs[None], top)[0], maps, method)

    def _float_network(self):
        """The same network taking float pixels (uint8 inputs stop gradients), same weights."""
        if getattr(self, "_float_copy", None) is None:
            copy = build_vqa_model(
                self.encoder_config,
                self.model_config,
                self.questions.vocabulary_size,
                self.questions.max_length,
                len(self.answers),
                image_dtype="float32",
            )
            copy.set_weights(self.network.get_weights())
            self._float_copy = copy
        return self._float_copy

    # ---- saving and loading -------------------------------------------------------------
    def save(self, model_dir: str | os.PathLike) -> None:
        """Write weights and ``meta.json`` into ``model_dir`` (a staged directory)."""
        model_dir = Path(model_dir)
        self.network.save_weights(str(model_dir / WEIGHTS_FILE))
        if self.encoder_config.frozen and self.encoder_config.vgg_weights != "imagenet":
            self.image_encoder.save_weights(str(model_dir / ENCODER_WEIGHTS_FILE))
        write_meta(
            model_dir,
            KIND,
            FORMAT_VERSION,
            {
                "answers": self.answers,
                "question_encoder": self.questions.to_json(),
                "image_encoder": self.encoder_config.to_json(),
                "network": self.model_config.to_json(),
                "training": self.info,
            },
        )

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> VQAModel:
        """Load a model directory; a clear :class:`UserError` if it is missing or foreign."""
        model_dir = Path(model_dir)
        meta = read_meta(model_dir, KIND, FORMAT_VERSION)
        questions, encoder_config, model_config, answers = _configs_from_meta(meta, model_dir)
        network = build_vqa_model(
            encoder_config, model_config, questions.vocabulary_size, questions.max_length, len(answers)
        )
        _load_weights(network, model_dir / WEIGHTS_FILE)
        image_encoder = None
        if encoder_config.frozen:
            saved = model_dir / ENCODER_WEIGHTS_FILE
            weights = "imagenet" if encoder_config.vgg_weights == "imagenet" else None
            image_encoder = build_vgg_encoder(
                EncoderConfig.from_json({**encoder_config.to_json(), "vgg_weights": weights})
            )
            if weights is None:
                _load_weights(image_encoder, saved)
        return cls(
            network, questions, answers, encoder_config, model_config, image_encoder, meta.get("training", {})
        )


def _configs_from_meta(meta: dict, model_dir: Path):
    """Question encoder, encoder and network configs, answers: every field checked (a UserError)."""
    where = f"{model_dir}/meta.json"
    text = typed_field(meta, "question_encoder", dict, where)
    vocabulary = typed_field(text, "vocabulary", list[str], where, "question_encoder.")
    max_length = typed_field(text, "max_length", int, where, "question_encoder.")
    max_tokens = typed_field(text, "max_tokens", int, where, "question_encoder.")
    encoder_config = dataclass_from_meta(
        EncoderConfig, typed_field(meta, "image_encoder", dict, where), where, "image_encoder."
    )
    model_config = dataclass_from_meta(
        ModelConfig, typed_field(meta, "network", dict, where), where, "network."
    )
    answers = typed_field(meta, "answers", list[str], where)
    if (
        min(max_length, max_tokens, len(answers), *encoder_config.filters, 1) < 1
        or len(vocabulary) + 2 > max_tokens
        or not encoder_config.filters
    ):
        raise UserError(f"{where} is damaged: a size, the answers or the filters are empty or not positive")
    try:  # the same checks as for training options; the weights file is not needed to load
        replace(encoder_config, vgg_weights=None).check()
        model_config.check()
    except UserError as exc:
        raise UserError(f"{where} is damaged: {exc}") from None
    return QuestionEncoder(vocabulary, max_length, max_tokens), encoder_config, model_config, answers


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
