"""Every setting of a VQA model and its training, with its default: the one place they live.

:class:`VQAConfig` nests the image encoder (:class:`EncoderConfig`), the network
(:class:`NetworkConfig`) and the training run (:class:`TrainConfig`). ``vqa train`` builds its
options from these fields (``recognisers.contract.add_config_options``), and a model saves its
config whole in ``meta.json``.

The kind itself defaults to None too: :data:`DEFAULT_KIND` (chosen on validation), the
baseline for frozen VGG features. What differs per network kind (filters, learning rate and
its decay, image size, epochs) is one table, :data:`KIND_DEFAULTS`: such fields default to
None, meaning "the kind's default", and :meth:`VQAConfig.resolved` fills them in; a model
holds and saves the resolved config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from recognisers.contract import option
from recognisers.errors import UserError

FROZEN_ENCODERS = ("vgg16", "vgg19")  # keras.applications, used as they are
ENCODERS = ("compact", *FROZEN_ENCODERS)
FEATURE_DIMS = {"fc7": 4096, "pool": 512}  # what each frozen VGG layer gives per image
KINDS = ("cnn-lstm", "attention", "relation")
# The default kind, chosen on the validation slices (README, "Which VQA model is the default"):
# attention matched the baseline on easy-VQA and left it far behind on the shapes set. Frozen
# VGG features are one pooled vector per image, with no map to attend over: the baseline.
DEFAULT_KIND, FROZEN_ENCODER_KIND = "attention", "cnn-lstm"
FUSIONS = ("product", "concat")
DECAYS = ("cosine", "none")  # how the learning rate moves over training
VGG_IMAGE_SIZE = 224  # what VGG was trained on (and fc7 needs)
# What early stopping watches: the validation slice's accuracy, the figure a model is judged
# by. The validation loss kept falling for epochs after the answers stopped changing (under a
# decaying learning rate it falls to the last epoch), so stopping on it never ended a run
# early: easy-VQA trained all 16 epochs with its validation accuracy at 99.9% from the sixth.
STOP_MONITOR = "val_accuracy"
T = TypeVar("T")


@dataclass(frozen=True)
class KindDefaults:
    """The defaults of one network kind."""

    filters: tuple[int, ...]
    learning_rate: float
    image_size: int = 64
    epochs: int = 10
    convs_per_block: int = 2
    learning_rate_decay: str = "none"


# What differs per model kind. The attention model keeps an 8x8 map and reads colour from
# the pixels too, so a narrower CNN serves it (about 4x faster on CPU). On a generated
# shapes set 1e-3 left the question-only plateau in two epochs (that was with the mean word
# embedding in the question vector; before it, 2e-3 stayed on the plateau). Its validation
# accuracy there was still rising 3 points an epoch at the tenth and levelled off at the
# fourteenth (99.1%), hence 16 epochs at first (early stopping ends sooner where it can). One 3x3
# convolution per block instead of two: a profiled step spent 35% of its time in the CNN, and
# with one the shapes set's validation accuracy reached 99.1% at the fifth epoch instead of
# the fourteenth, 99.75% at the sixteenth (still rising, so 16 stay). Its learning rate
# decays to zero along a cosine over the 16 epochs: with a constant rate the validation loss
# still swung by 2x from epoch to epoch at the end, and the corner-colour question (which
# object is 3 to 5 pixels nearer a corner) was the one left below 99.5%. 24 epochs, not 16:
# over 16, training seed 2 never learnt the closest-object question (validation 97.0%, that
# question 78.8% held-out); over 24 it did, and so did seed 0 once the attention had its
# distance slope (docs/results-history.md, "The closest-object question"). Early stopping
# watches the cosine's second half only (TrainConfig.stop_watch_from).
# The relation model runs g per pair of cells, so it takes a 5x5 map: 80x80 images, four
# blocks.
KIND_DEFAULTS: dict[str, KindDefaults] = {
    "cnn-lstm": KindDefaults(filters=(32, 64, 128), learning_rate=2e-3),
    "attention": KindDefaults(
        filters=(16, 32, 64), learning_rate=1e-3, epochs=24, convs_per_block=1, learning_rate_decay="cosine"
    ),
    "relation": KindDefaults(filters=(16, 32, 64, 64), learning_rate=1e-3, image_size=80),
}


def _per_kind(name: str, show=str) -> str:
    """``--model``'s defaults of one field, for its help text: "2e-3 for cnn-lstm, ..."."""
    return ", ".join(f"{show(getattr(d, name))} for {kind}" for kind, d in KIND_DEFAULTS.items())


def _commas(values: tuple[int, ...]) -> str:
    return ",".join(map(str, values))


@dataclass(frozen=True)
class EncoderConfig:
    """Everything that decides what the image encoder outputs."""

    # Models saved before convs_per_block existed had two per block in every kind.
    LEGACY_VALUES: ClassVar[dict[str, Any]] = {"convs_per_block": 2}

    image_encoder: str = option(
        "compact",
        "compact: a VGG-style CNN trained with the model; vgg16/vgg19: frozen keras.applications features",
        choices=ENCODERS,
    )
    image_size: int | None = option(
        None,
        f"image side in pixels (default: {VGG_IMAGE_SIZE} for vgg16/vgg19; for compact "
        + _per_kind("image_size")
        + ")",
    )
    filters: tuple[int, ...] | None = option(
        None, "compact CNN widths per block (default: " + _per_kind("filters", _commas) + ")"
    )
    convs_per_block: int | None = option(
        None, "3x3 convolutions per compact CNN block (default: " + _per_kind("convs_per_block") + ")"
    )
    vgg_layer: str = option(
        "pool",
        "frozen VGG features: pool (last conv block average-pooled, 512-d, any image size) "
        "or fc7 (4096-d, needs --image-size 224)",
        choices=tuple(FEATURE_DIMS),
    )
    vgg_weights: str | None = option(
        None, "imagenet or a local weights file (default: random weights; 'none' says the same)"
    )

    @property
    def frozen(self) -> bool:
        return self.image_encoder in FROZEN_ENCODERS

    @property
    def side(self) -> int:
        """The image side of a resolved config (:meth:`VQAConfig.resolved` fills it in)."""
        return _resolved(self.image_size)

    @property
    def widths(self) -> tuple[int, ...]:
        """The compact CNN's filters of a resolved config."""
        return _resolved(self.filters)

    @property
    def convs(self) -> int:
        """The compact CNN's convolutions per block of a resolved config."""
        return _resolved(self.convs_per_block)

    def check(self) -> None:
        """Refuse settings the encoder cannot build, before any work is done."""
        if self.image_encoder not in ENCODERS:
            raise UserError(f"unknown image encoder {self.image_encoder!r} ({', '.join(ENCODERS)})")
        if self.frozen and self.vgg_layer not in FEATURE_DIMS:
            raise UserError(f"--vgg-layer must be fc7 or pool, not {self.vgg_layer!r}")
        if self.frozen and self.vgg_layer == "fc7" and self.image_size != VGG_IMAGE_SIZE:
            raise UserError(f"fc7 features need --image-size {VGG_IMAGE_SIZE}")
        if self.image_size is not None and self.image_size < 32:
            raise UserError("--image-size must be at least 32")
        if self.filters is not None and (not self.filters or min(self.filters) < 1):
            raise UserError("--filters must be positive integers")
        if self.convs_per_block is not None and not 1 <= self.convs_per_block <= 8:
            raise UserError("--convs-per-block must be 1 to 8")
        weights = self.vgg_weights
        if self.frozen and weights is not None and weights != "imagenet" and not Path(weights).is_file():
            raise UserError(f"VGG weights file not found: {weights}")


@dataclass(frozen=True)
class NetworkConfig:
    """The network kind and its sizes."""

    # Models saved before distance_score existed scored distance through the MLP alone;
    # before ink_xy, every cell's x, y was its centre; before anchor, the first round
    # measured no distance.
    LEGACY_VALUES: ClassVar[dict[str, Any]] = {"distance_score": False, "ink_xy": False, "anchor": False}

    model: str | None = option(
        None,
        "cnn-lstm: pooled image vector (baseline); attention: question-guided attention over a "
        "feature map with coordinates; relation: a question-conditioned relation module over "
        f"pairs of cells (default: {DEFAULT_KIND}; {FROZEN_ENCODER_KIND} with a frozen VGG encoder)",
        choices=KINDS,
    )
    embed_dim: int = option(64, "question word embedding size")
    lstm_units: tuple[int, ...] = option((64,), "LSTM widths, one per layer")
    hidden: int = option(128, "width of the fused vector and the answer head")
    fusion: str = option("product", "how image and question vectors meet (cnn-lstm)", choices=FUSIONS)
    dropout: float = option(0.2, "dropout before and after the answer head's dense layer (cnn-lstm)")
    hops: int = option(2, "attention rounds (--model attention)")
    distance_score: bool = option(
        True,
        "attention: from the second round on, the question also sets a slope on each cell's "
        "distance from where the previous round looked, added to the cell's score",
    )
    anchor: bool = option(
        True,
        "attention: the first round also measures each cell's distance from a point the "
        "question sets, with a slope on it as later rounds have",
    )
    ink_xy: bool = option(
        True,
        "attention and relation: each cell's x, y is where its ink lies (the centroid of its "
        "pixels' contrast with the image's border colour), not the cell's centre",
    )
    relation_units: int = option(64, "width of g, run per pair of cells (--model relation)")

    @property
    def kind(self) -> str:
        """The network kind of a resolved config (:meth:`VQAConfig.resolved` fills it in)."""
        return _resolved(self.model)

    @property
    def spatial(self) -> bool:
        """Whether the image branch keeps its feature map (and the model has attention)."""
        return self.model in ("attention", "relation")

    def check(self, encoder: EncoderConfig | None = None) -> None:
        """Refuse settings the network cannot build (with ``encoder``: the pair, too)."""
        if encoder is not None and self.spatial and encoder.frozen:
            raise UserError(f"--model {self.model} needs the compact image encoder")
        if self.model not in KINDS:
            raise UserError(f"--model must be one of {', '.join(KINDS)}, not {self.model!r}")
        if self.fusion not in FUSIONS:
            raise UserError(f"--fusion must be one of {', '.join(FUSIONS)}, not {self.fusion!r}")
        if not 0 <= self.dropout < 1:
            raise UserError("--dropout must lie in [0, 1)")
        sizes = (self.embed_dim, self.hidden, self.hops, self.relation_units, *self.lstm_units)
        if not self.lstm_units or min(sizes) < 1:
            raise UserError("embedding, LSTM, hidden and relation sizes and --hops must be positive")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is fitted (the defaults are the easy-VQA settings of the bench)."""

    # Models saved before learning_rate_decay existed trained at a constant rate.
    LEGACY_VALUES: ClassVar[dict[str, Any]] = {"learning_rate_decay": "none"}

    epochs: int | None = option(
        None, "most epochs, early stopping may end sooner (default: " + _per_kind("epochs") + ")"
    )
    batch_size: int = option(
        128, "questions per batch (about: an image's questions share a batch, so the CNN runs once per image)"
    )
    learning_rate: float | None = option(
        None, "Adam learning rate (default: " + _per_kind("learning_rate", "{:g}".format) + ")"
    )
    learning_rate_decay: str | None = option(
        None,
        "cosine: the learning rate falls to zero along a cosine by the last epoch; none: constant "
        "(default: " + _per_kind("learning_rate_decay") + ")",
        choices=DECAYS,
    )
    val_fraction: float = option(0.1, "share of training images kept for validation / early stopping")
    patience: int = option(
        3,
        "early stopping: epochs without a higher validation accuracy (the epoch with the highest "
        "is kept, of equal ones the lowest validation loss)",
    )
    seed: int = option(0, "seed of Python, NumPy and Keras (the same seed, the same model)")
    top_answers: int = option(1000, "answer vocabulary size (the most frequent training answers)")
    max_length: int | None = option(
        None, "question length in tokens (default: the longest training question, at most 30)"
    )

    @property
    def most_epochs(self) -> int:
        """The epochs of a resolved config (early stopping may end sooner)."""
        return _resolved(self.epochs)

    @property
    def stop_watch_from(self) -> int:
        """The first epoch (0-based) early stopping watches and may keep, of a resolved config.

        Under a cosine decay, the second half: in the first the rate is high and the validation
        accuracy swings (a shapes run stopped after 11 of 24 epochs on a dip from 99.25% to
        98.80%, its corner-colour question at 97.2% held-out, where runs that went on passed
        99.5%). At a constant rate, from the first epoch.
        """
        return self.most_epochs // 2 if self.learning_rate_decay == "cosine" else 0

    def check(self) -> None:
        """Refuse settings training cannot run with, before the data is read."""
        if self.epochs is not None and self.epochs < 1:
            raise UserError("--epochs must be at least 1")
        length = 1 if self.max_length is None else self.max_length
        if min(self.batch_size, self.top_answers, length) < 1 or self.patience < 0:
            raise UserError(
                "--batch-size, --top-answers and --max-length must be positive, --patience not negative"
            )
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise UserError("--learning-rate must be positive")
        if not 0 < self.val_fraction < 1:
            raise UserError("--val-fraction must lie between 0 and 1")
        if not 0 <= self.seed < 2**32:
            raise UserError("--seed must lie in 0 to 2**32 - 1")
        if self.learning_rate_decay is not None and self.learning_rate_decay not in DECAYS:
            raise UserError(f"--learning-rate-decay must be one of {', '.join(DECAYS)}")


@dataclass(frozen=True)
class VQAConfig:
    """The whole model: image encoder, network and training settings."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    training: TrainConfig = field(default_factory=TrainConfig)

    def resolved(self) -> VQAConfig:
        """This config with its network kind (:data:`DEFAULT_KIND`, or the baseline for a
        frozen VGG encoder) and every "kind's default" (None) filled in from
        :data:`KIND_DEFAULTS`, and checked: a setting the model cannot use is a
        :class:`UserError` here."""
        default_kind = FROZEN_ENCODER_KIND if self.encoder.frozen else DEFAULT_KIND
        network = replace(self.network, model=_or(self.network.model, default_kind))
        network.check(self.encoder)
        kind = KIND_DEFAULTS[network.kind]
        encoder, training = self.encoder, self.training
        weights = encoder.vgg_weights
        encoder = replace(
            encoder,
            image_size=_or(encoder.image_size, VGG_IMAGE_SIZE if encoder.frozen else kind.image_size),
            filters=_or(encoder.filters, kind.filters),
            convs_per_block=_or(encoder.convs_per_block, kind.convs_per_block),
            vgg_weights=None if weights is None or weights.lower() == "none" else weights,
        )
        training = replace(
            training,
            learning_rate=_or(training.learning_rate, kind.learning_rate),
            learning_rate_decay=_or(training.learning_rate_decay, kind.learning_rate_decay),
            epochs=_or(training.epochs, kind.epochs),
        )
        encoder.check()
        training.check()
        if not encoder.frozen:
            check_map(encoder, network)
        return replace(self, encoder=encoder, network=network, training=training)


def check_map(encoder: EncoderConfig, network: NetworkConfig) -> None:
    """The compact CNN halves the image once per block: something must be left, and a map that
    the spatial models place cells on must cover the image exactly (each cell's ink centroid)."""
    cut = 2 ** len(encoder.widths)
    if encoder.side < cut:
        raise UserError(
            f"--image-size {encoder.side} is too small for {len(encoder.widths)} blocks (at least {cut})"
        )
    if network.spatial and encoder.side % cut:
        low = encoder.side // cut * cut
        raise UserError(
            f"--model {network.model} needs --image-size a multiple of {cut} ({len(encoder.widths)} blocks "
            f"halve it): {low} or {low + cut}, not {encoder.side}"
        )


def _resolved(value: T | None) -> T:
    """A "kind's default" field once :meth:`VQAConfig.resolved` has filled it in."""
    if value is None:
        raise ValueError("the config is not resolved: use VQAConfig.resolved()")
    return value


def _or(value, default):
    """``value``, or ``default`` where it is None (0 stays 0, to be refused by the checks)."""
    return default if value is None else value
