"""The VQA network: image features + LSTM question encoder -> fusion -> softmax.

Inputs are a batch of *images* (or cached image features), a batch of questions and, for
each question, the index of its image in the image batch. The image branch runs once per
image and its output is gathered per question (``keras.ops.take``), so the many questions
of one easy-VQA image cost one CNN pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from recognisers.errors import UserError
from vqa.features import FEATURE_DIMS, EncoderConfig, build_compact_cnn

FUSIONS = ("product", "concat")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the question encoder and the answer head (saved in ``meta.json``)."""

    embed_dim: int = 64
    lstm_units: tuple[int, ...] = (64,)
    hidden: int = 128
    fusion: str = "product"
    dropout: float = 0.2

    def to_json(self) -> dict:
        return {**asdict(self), "lstm_units": list(self.lstm_units)}

    @classmethod
    def from_json(cls, obj: dict) -> "ModelConfig":
        return cls(**{**obj, "lstm_units": tuple(obj["lstm_units"])})

    def check(self) -> None:
        if self.fusion not in FUSIONS:
            raise UserError(f"--fusion must be one of {', '.join(FUSIONS)}, not {self.fusion!r}")
        if not self.lstm_units or min(self.lstm_units) < 1 or self.hidden < 1:
            raise UserError("LSTM and hidden sizes must be positive")


def _gather_layer():
    import keras

    class GatherRows(keras.layers.Layer):
        """Row ``index[i]`` of ``table`` for every question ``i``."""

        def call(self, table, index):
            return keras.ops.take(table, keras.ops.cast(index, "int32"), axis=0)

        def compute_output_shape(self, table_shape, index_shape):
            return (index_shape[0], table_shape[-1])

    return GatherRows(name="gather_image_features")


def build_vqa_model(encoder: EncoderConfig, config: ModelConfig, vocabulary_size: int,
                    max_length: int, n_answers: int):
    """The whole trainable network (the compact CNN inside it; frozen VGG features come in)."""
    import keras
    from keras import layers

    if encoder.frozen:
        images = keras.Input((FEATURE_DIMS[encoder.vgg_layer],), name="images")
        image_features = images
    else:
        images = keras.Input((encoder.image_size, encoder.image_size, 3), dtype="uint8",
                             name="images")
        image_features = build_compact_cnn(encoder)(images)
    questions = keras.Input((max_length,), dtype="int32", name="questions")
    image_index = keras.Input((), dtype="int32", name="image_index")

    v = layers.Dense(config.hidden, activation="tanh", name="image_dense")(image_features)
    v = _gather_layer()(v, image_index)

    q = layers.Embedding(vocabulary_size, config.embed_dim, mask_zero=True,
                         name="embedding")(questions)
    for i, units in enumerate(config.lstm_units):
        last = i == len(config.lstm_units) - 1
        q = layers.LSTM(units, return_sequences=not last, name=f"lstm{i}")(q)
    q = layers.Dense(config.hidden, activation="tanh", name="question_dense")(q)

    fused = (layers.Multiply(name="fuse_product")([v, q]) if config.fusion == "product"
             else layers.Concatenate(name="fuse_concat")([v, q]))
    x = layers.Dropout(config.dropout)(fused)
    x = layers.Dense(config.hidden, activation="relu", name="head_dense")(x)
    x = layers.Dropout(config.dropout)(x)
    answers = layers.Dense(n_answers, activation="softmax", name="answers")(x)
    return keras.Model([images, questions, image_index], answers, name="vqa")
