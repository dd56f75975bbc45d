"""The segmentation-free reader: a small CNN + bidirectional GRU trained with CTC.

It reads the whole image as a sequence of columns, so touching glyphs, noise lines through
the text and variable lengths cost it nothing extra, where the segmenting reader has to cut
first. Built for two CPU cores: the image is scaled to a small fixed height (width from the
training images' aspect ratio, padded with background), three conv blocks shrink it 4x along
x, and one BiGRU reads the columns. Keras preprocessing layers (active only in training)
augment small folders. Greedy CTC decoding keeps the frame path, which gives each character
its confidence (its best frame's probability) and an approximate column span (its frames).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from captcha.data import CASES, Sample, apply_case, grey
from captcha.model import (
    FORMAT_VERSION,
    KIND,
    CaptchaModel,
    ImageLike,
    Reading,
    check_reader,
    load_network,
    pixels_of,
    read_each,
    read_history,
)
from captcha.segment import SegmentSettings, ink_map
from captcha.train import TUNE_IMAGES, describe, tune_settings
from recognisers.backend import import_keras, native_bfloat16
from recognisers.contract import config_from_json, option
from recognisers.errors import UserError
from recognisers.layers import fused_batch_normalization
from recognisers.metafields import typed_field
from recognisers.modeldir import read_meta
from recognisers.training import set_seed, without_autotune

READER = "sequence"  # every CAPTCHA reader shares model.KIND and FORMAT_VERSION
MODEL_FILE = "sequence_ctc.keras"
POOL_X = 4  # the CNN shrinks x by this much: one CTC frame per 4 input columns
# Most optimizer steps of one training. The batch grows with the folder (about 100 steps per
# epoch from 1,600 training images on), so the work grows with it too. Measured with two
# convolutions per block, on one pinned core while the other core ran another bench: cc-digits
# (batch 32) ran 2,040 steps in 404 s (about 200 ms a step) and auto's two readers took 474 s
# on its 4,002 images; curved-lines' 2,800 steps took 514 s. A run that uses the whole cap
# (3,750 steps) takes about 12 minutes of one such core for this reader.
STEP_BUDGET = 2500
STEP_CAP = 3750  # a cycle of 2,500 steps, then at most one of 1,250 (see train_epochs)
INK_INPUTS = ("auto", "band", "none")  # what the network reads besides the pixels (see choose_ink)
INK_READS = {"band": "the pixels and band ink", "none": "the pixels"}  # resolved values, in the log's words
# Images per call of the reading network. Small chunks keep a call's activations in the CPU's
# caches: on an AVX2-only EPYC, whole batch reads (files decoded included) on one core ran 35%
# faster at 64 than at 512 for arcs-dots (4 input channels; 219-236 against 168-169 CAPTCHAs/s)
# and 15% for dark-lines (176-179 against 152-154), 128 level with 64; on both cores 128 read
# 320-343 and 312/s, 64 292-328 and 275-288/s, 512 242/s (dark-lines), 256 293/s (arcs-dots).
READ_CHUNK = 128


@dataclass(frozen=True)
class SequenceConfig:
    """Every default of the sequence reader (saved whole in meta.json)."""

    RETIRED_FIELDS: ClassVar[frozenset[str]] = frozenset({"lr_patience"})  # saved by older models
    # values of fields that models saved before the field existed were built with
    LEGACY_VALUES: ClassVar[dict[str, Any]] = {"colour": False, "convs_per_block": 1, "ink": "none"}

    height: int = option(32, "sequence reader: input height in pixels")
    colour: bool = option(
        True, "sequence reader: read RGB (the CNN learns which hues are text); --no-colour: grey"
    )
    ink: str = option(
        "auto",
        "sequence reader: band: read the segmenter's band ink (ink much darker than the letters "
        "dropped) as one more channel beside the pixels; none: the pixels alone; auto: band where "
        "the segmenter's clean-up, chosen on the validation slice, is band ink",
        choices=INK_INPUTS,
    )
    input_width: int = option(0, "sequence reader: input width (0: from the training images' median aspect)")
    max_width: int = option(
        256, "sequence reader: cap on the measured input width (bounds the work per image)"
    )
    filters: tuple[int, ...] = option((32, 64, 128), "sequence reader: filters of each conv block")
    convs_per_block: int = option(2, "sequence reader: 3x3 convolutions in each conv block")
    rnn_units: int = option(96, "sequence reader: GRU units per direction")
    dropout: float = option(0.25, "sequence reader: dropout before and after the GRU")
    augment: bool = option(True, "sequence reader: small shifts, zooms and rotations while training")
    batch_size: int = option(0, "sequence reader: batch size (0: about 100 steps per epoch, 16 to 64)")
    learning_rate: float = option(
        2e-3, "sequence reader: Adam's peak learning rate (a cosine takes it to 0 once validation reads)"
    )
    epochs: int = option(60, "sequence reader: most epochs")
    max_steps: int = option(
        STEP_BUDGET,
        "sequence reader: optimizer steps of the first cycle of training (the budget is counted in "
        "work, not seconds: a seeded run trains the same model on any machine)",
    )
    step_cap: int = option(
        STEP_CAP,
        "sequence reader: most optimizer steps in all: where CTC read its first validation image too late "
        "in a cycle for it to settle, another cycle of half the steps at half the rate follows, up to this",
    )
    patience: int = option(8, "sequence reader: epochs without a better validation reading before stopping")
    val_fraction: float = option(
        0.1, "sequence reader: share of its training images that picks the best epoch"
    )
    max_seconds: float = option(
        0.0,
        "sequence reader: optional wall-clock cap in seconds (0: none; with a cap, training "
        "stops earlier on a slower or busier machine, so a seeded run no longer repeats)",
    )
    bfloat16: bool = option(
        True,
        "sequence reader: read in bfloat16 where the CPU computes it natively (AVX512-BF16, AMX) "
        "and it read the validation slice at least as well as float32; --no-bfloat16: float32 always",
    )
    case: str = option("keep", "how labels are normalised: upper, lower or keep", choices=CASES)
    seed: int = option(0, "seed of every random choice: the same seed trains the same model")

    def channels(self, ink: str) -> int:
        """Input channels: RGB or grey, and band ink beside them where ``ink`` is "band"."""
        return (3 if self.colour else 1) + (ink == "band")

    def problem(self) -> str:
        """What makes this config unusable, or "" when nothing does."""
        if min(self.height, self.max_width, self.rnn_units, self.epochs, self.max_steps, self.patience) < 1:
            return "height, max_width, rnn_units, epochs, max_steps and patience must be at least 1"
        if not 1 <= self.convs_per_block <= 4:
            return "convs_per_block must lie in 1 to 4"
        if not 0 <= self.seed < 2**32:
            return "seed must lie in 0 to 2**32 - 1"
        if self.ink not in INK_INPUTS:
            return f"ink must be one of {', '.join(INK_INPUTS)}"
        if len(self.filters) < 2 or min(self.filters) < 1 or self.input_width < 0 or self.batch_size < 0:
            return "filters needs two positive counts at least; input_width and batch_size at least 0"
        if self.height < 2 ** len(self.filters) or self.max_width < 16 or 0 < self.input_width < 16:
            # every conv block halves the height, the first two the width too
            return (
                f"height must be at least {2 ** len(self.filters)} (2 to the number of conv blocks), "
                "max_width and input_width (unless 0) at least 16"
            )
        if not (
            0 <= self.dropout < 1
            and 0 < self.val_fraction < 1
            and self.learning_rate > 0
            and self.max_seconds >= 0
        ):
            return (
                "dropout must lie in [0, 1), val_fraction in (0, 1), learning_rate above 0, "
                "max_seconds at least 0"
            )
        return ""


def fit_to_input(
    pixels: np.ndarray, height: int, width: int, channels: int, ink: str = "none"
) -> tuple[np.ndarray, float]:
    """Scale to ``height`` keeping the aspect (squeeze if wider than ``width``), pad right.

    Returns ink-positive floats (0 = white, so padding is background), ``channels`` deep (1:
    grey; 3: RGB, a grey image repeated; with ``ink="band"`` one more, the band ink map of
    :func:`captcha.segment.ink_map`), and the x scale.
    """
    band = band_plane(pixels) if ink == "band" else None
    if channels - (band is not None) == 1:
        pixels = grey(pixels)
    elif pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    if band is not None:
        pixels = np.dstack([pixels, band])
    h, w = pixels.shape[:2]
    new_w = max(1, min(width, round(w * height / h)))
    small = cv2.resize(pixels, (new_w, height), interpolation=cv2.INTER_AREA).reshape(height, new_w, -1)
    out = np.zeros((height, width, channels), np.float32)
    out[:, :new_w] = 1.0 - small.astype(np.float32) / 255.0
    return out, new_w / w


def band_plane(pixels: np.ndarray) -> np.ndarray:
    """The band ink map as a grey image (white where there is no ink)."""
    strength = ink_map(pixels, "band")
    if strength is None:
        return np.full(pixels.shape[:2], 255, np.uint8)
    return (255 - strength * 255).astype(np.uint8)


def measured_width(images: Sequence[np.ndarray], config: SequenceConfig) -> int:
    """Input width: the median training aspect ratio at ``height``, a multiple of 16, capped."""
    aspect = float(np.median([g.shape[1] / g.shape[0] for g in images]))
    width = int(math.ceil(aspect * config.height / 16) * 16)
    return int(min(config.max_width, max(32, width)))


def check_frames(labels: Sequence[str], width: int) -> None:
    """Refuse labels longer than the network has frames to read them in (width / 4).

    CTC needs a frame per character and a blank between two equal ones; with fewer, the loss
    cannot fall and the model reads nothing, after all the training.
    """
    need = max(len(t) + sum(a == b for a, b in zip(t, t[1:])) for t in labels)
    if need > width // 4:
        raise UserError(
            f"a label needs {need} frames (a frame per character, a blank between repeated ones); "
            f"an input {width} pixels wide gives {width // 4}: pass --input-width {4 * need} or more"
        )


def build_network(
    config: SequenceConfig, width: int, channels: int, n_classes: int, precision: str | None = None
):
    """conv blocks (x/4, y/8) -> columns as frames -> BiGRU -> per-frame logits (blank = 0).

    ``precision`` ("float32" or "bfloat16") builds the reading copy instead (see
    :func:`reading_network`): no augmentation, no batch normalisation (each is folded into the
    biased convolution before it), computed in that precision; its logits are float32.

    Each frame's features are layer-normalised and also go straight to the logits beside the
    GRU's output (a shortcut round the GRU): on validation slices of curved-lines and touching,
    CTC then left its plateau of blanks after 300 to 400 steps instead of about 1,000 (in
    three runs of four) and read 82 to 90% of the slice after 1,500 steps where the plain
    network read 21%; the cost per step stayed within the noise of a shared core.

    The conv blocks are twice as wide as they were (32/64/128 filters, not 16/32/64): after
    1,500 steps on validation slices the wider stack read 54.0% of arcs-dots (43.0%), 88.7%
    of touching (82.3%) and 92.7% of curved-lines (83.7%), for about 1.4 times the cost
    of a step on one shared core. A 40-pixel input (the generated images' own height, not
    32) read 49.0% of arcs-dots at a similar cost and started reading later, so the height
    stays. XLA (``jit_compile=True``, CTC loss included: it compiles) measured no faster per
    step on one core, nor did leaving out the augmentation layers or the data pipeline
    (0.07 s an epoch): the step's cost is the network's.

    Each block stacks two 3x3 convolutions (``convs_per_block``; one before): after 1,500 steps
    on the arcs-dots validation slice the network read 75.7% of it against 49.0% with one (and
    58.3% with two in the last two blocks only, 49.7% with one at twice the learning rate), in
    the same session, for about 1.8 times the cost of a step; on touching it read 93.3%
    and on curved-lines 96.0%, against 88.7% and 92.7% for one (the earlier screening).
    """
    keras = import_keras()
    from keras import layers

    norm = fused_batch_normalization()
    reading = precision is not None
    dtype = {None: None, "float32": "float32", "bfloat16": "mixed_bfloat16"}[precision]
    inputs = keras.Input((config.height, width, channels), name="image")
    x = inputs
    if config.augment and not reading:
        x = layers.RandomTranslation(0.06, 0.03, fill_mode="constant")(x)
        x = layers.RandomZoom(0.08, fill_mode="constant")(x)
        x = layers.RandomRotation(0.01, fill_mode="constant")(x)
    pools = [(2, 2), (2, 2)] + [(2, 1)] * (len(config.filters) - 2)
    for filters, pool in zip(config.filters, pools):
        for _ in range(config.convs_per_block):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=reading, dtype=dtype)(x)
            if not reading:
                x = norm(momentum=0.9)(x)  # settles within a few small epochs
            x = layers.Activation("relu", dtype=dtype)(x)
        x = layers.MaxPooling2D(pool, dtype=dtype)(x)
    x = layers.Permute((2, 1, 3), dtype=dtype)(x)  # (frames, rows, channels)
    x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]), dtype=dtype)(x)
    x = layers.Dense(2 * config.rnn_units, activation="relu", dtype=dtype)(x)
    x = layers.LayerNormalization(dtype=dtype)(x)
    x = layers.Dropout(config.dropout)(x)
    gru = layers.GRU(config.rnn_units, return_sequences=True, dtype=dtype)
    read = layers.Bidirectional(gru, dtype=dtype)(x)
    x = layers.Dropout(config.dropout)(layers.Concatenate(dtype=dtype)([read, x]))
    logits = layers.Dense(n_classes + 1, name="logits", dtype="float32" if reading else None)(x)
    return keras.Model(inputs, logits, name="sequence_ctc")


def reading_network(model, config: SequenceConfig, width: int, n_classes: int, precision: str):
    """A copy of the trained ``model`` for reading, in ``precision`` ("float32" or "bfloat16").

    Each batch normalisation is folded into the convolution before it (kernel times
    gamma / sqrt(variance + epsilon), and a bias): at inference it is a fixed scale and shift,
    and as a separate layer it cost a pass over every activation map. Folded, the network read
    about 13% more CAPTCHAs a second on one core; in bfloat16 (on a CPU that computes it
    natively) 1.7 times as many again, its texts the same on 1,999 of 2,000 really-simple images.
    """
    from keras import layers

    net = build_network(config, width, model.input_shape[-1], n_classes, precision)
    kinds = (layers.Conv2D, layers.Dense, layers.LayerNormalization, layers.Bidirectional)
    norms = iter(layer for layer in model.layers if isinstance(layer, layers.BatchNormalization))
    trained = [layer for layer in model.layers if isinstance(layer, kinds)]
    copies = [layer for layer in net.layers if isinstance(layer, kinds)]
    for source, target in zip(trained, copies, strict=True):
        if not isinstance(source, layers.Conv2D):
            target.set_weights(source.get_weights())
            continue
        norm = next(norms)
        gamma, beta, mean, variance = (np.asarray(w) for w in norm.weights)
        scale = gamma / np.sqrt(variance + norm.epsilon)
        target.set_weights([np.asarray(source.kernel) * scale, beta - mean * scale])
    return net


def learning_rate(
    config: SequenceConfig, epoch: int, epochs: int, reading_from: int | None, cycle: int = 0
) -> float:
    """The rate of an epoch: the peak until the validation slice is first read, then a cosine to 0.

    CTC first sits on a plateau (blanks everywhere) for a number of steps that depends on the
    data, and a high rate gets it off soonest; once it reads, the cosine spends the rest of the
    planned epochs settling, so a run that the budget ends is a settled model (halving the rate
    on a validation plateau left a budget-limited run still swinging at a high rate). Each
    further cycle (``cycle`` 1, 2 ...; ``reading_from`` is then its first epoch) restarts the
    cosine at half the previous peak.
    """
    peak = config.learning_rate / 2**cycle
    if reading_from is None:
        return peak
    done = (epoch - reading_from) / (epochs - reading_from)
    return peak * 0.5 * (1 + math.cos(math.pi * done))


def too_short_to_settle(accuracy: float, cycle_start: int | None, cycle_end: int, first: int = 0) -> bool:
    """Whether a cycle (epochs ``first`` to ``cycle_end``) ended before it could settle: worth another.

    ``accuracy`` is its best validation reading; ``cycle_start`` is the epoch its cosine began
    (the first after one that read a validation image right). A cycle that spent most of its
    epochs on the CTC plateau had a cosine under half its length, too short to settle: a style
    that reads late is not one that has been learned. A best epoch late in the cycle is no such
    sign: the cosine ends each cycle at a rate near 0, so the best reading comes late by design.
    In two bench runs of 2026-12-07 (14 sets each), a late best earned 10 second cycles: they
    cost 96 to 388 s each and read 1 or 2 more validation images in 3 of them, none in 7.
    A slice read perfectly has nothing left to show.
    """
    if cycle_start is None or not 0 < accuracy < 1:
        return False
    return 2 * (cycle_end - cycle_start) < cycle_end - first


def inference_function(model):
    """The network in inference mode, traced once for any batch size (no retracing per size)."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)
    return tf.function(lambda x: model(x, training=False), input_signature=[spec])


def ctc_loss(y_true, y_pred):
    """CTC loss of padded labels (class ids from 1, 0 pads) against per-frame logits."""
    from keras import ops

    labels = ops.cast(y_true, "int32")
    label_length = ops.sum(ops.cast(labels > 0, "int32"), axis=1)
    frames = ops.shape(y_pred)[1]
    frame_length = ops.full((ops.shape(y_pred)[0],), frames, dtype="int32")
    return ops.ctc_loss(labels, y_pred, label_length, frame_length, mask_index=0)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


Runs = list[tuple[int, int, int, float]]  # per character: (class, first frame, last frame, p)


def greedy_paths(probs: np.ndarray) -> list[Runs]:
    """Best-path CTC decoding that keeps the alignment: per image, (class, first, last frame, p).

    ``keras.ops.ctc_decode`` gives the same text but not the frames, which the confidences
    and boxes need; the best path is one argmax and one pass over the frames.
    """
    return [path_runs(row, probs[i]) for i, row in enumerate(probs.argmax(axis=-1))]


def path_runs(path: np.ndarray, probs: np.ndarray) -> Runs:
    """The characters of one frame path (blanks dropped, repeats merged), each with its frames
    and its confidence: the probability of its class at its best frame."""
    runs: Runs = []
    prev = 0
    for t, k in enumerate(path):
        if k != 0 and k == prev and runs:
            c, first, _, conf = runs[-1]
            runs[-1] = (c, first, t, max(conf, float(probs[t, k])))
        elif k != 0:
            runs.append((int(k), t, t, float(probs[t, k])))
        prev = k
    return runs


def reading_paths(probs: np.ndarray, lengths: Sequence[int]) -> list[Runs]:
    """Best paths, each held to a text length seen in training (see :func:`length_path`).

    Greedy CTC drops a glyph or adds one with no doubt in its confidences: a character that
    is missing has no probability to lower the product. Where the best path's length is not
    one of ``lengths``, the best path of a length that is replaces it, so a merged double
    or a dropped glyph comes back (captcha-images-v2's held-out 96.2% read 99.5%: README,
    CAPTCHA bench) or an added one shows in its low confidence. Other images keep their
    best path, so reading costs no more where the network is right.
    """
    out = greedy_paths(probs)
    for i, runs in enumerate(out):
        if lengths and len(runs) not in lengths:
            path = length_path(probs[i], lengths)
            out[i] = path_runs(path, probs[i]) if path is not None else runs
    return out


def length_path(probs: np.ndarray, lengths: Sequence[int]) -> np.ndarray | None:
    """The most probable frame path whose text has one of ``lengths`` characters (Viterbi).

    ``probs`` is (frames, classes), class 0 the blank. The state after a frame is (characters
    so far, the frame's class): a blank or a repeat of the class before adds nothing, any other
    class adds one. None when no allowed length fits in the frames.
    """
    frames, classes = probs.shape
    most = max(lengths)
    if most < 1:
        return None
    logp = np.log(np.maximum(probs, 1e-30))
    score = np.full((most + 1, classes), -np.inf)  # rows: characters so far; columns: class
    score[0, 0], score[1, 1:] = logp[0, 0], logp[0, 1:]
    back = np.zeros((frames, most + 1, classes, 2), np.int32)  # the state before: (count, class)
    counts, chars = np.arange(most + 1)[:, None], np.arange(1, classes)
    for t in range(1, frames):
        # a new character comes from any class but its own in the frame before, one count lower
        top2 = np.argsort(score[:-1], axis=1)[:, :-3:-1]  # per count: the best class, the second
        before = np.zeros((most + 1, classes - 1), np.int64)
        before[1:] = np.where(chars == top2[:, :1], top2[:, 1:], top2[:, :1])
        emit = np.full((most + 1, classes - 1), -np.inf)
        emit[1:] = np.take_along_axis(score[:-1], before[1:], axis=1)
        new = emit > score[:, 1:]  # else the class of the frame before again: no new character
        back[t, :, 0] = np.stack([counts[:, 0], score.argmax(axis=1)], axis=1)
        back[t, :, 1:, 0] = np.where(new, counts - 1, counts)
        back[t, :, 1:, 1] = np.where(new, before, chars)
        blank = score.max(axis=1, keepdims=True)
        score = np.concatenate([blank, np.maximum(emit, score[:, 1:])], axis=1) + logp[t]
    n = max((n for n in lengths if n <= most), key=lambda n: score[n].max())
    k = int(score[n].argmax())
    if not np.isfinite(score[n, k]):
        return None
    path = [k]
    for t in range(frames - 1, 0, -1):
        n, k = (int(v) for v in back[t, n, k])
        path.append(k)
    return np.array(path[::-1])


class SequenceReader(CaptchaModel):
    """CNN + BiGRU + CTC behind the readers' contract (see :mod:`captcha.model`)."""

    reader = READER

    def __init__(self, config: SequenceConfig = SequenceConfig()):
        self.config = config
        self.model: Any = None  # the Keras network, built by fit or load
        self.charset = ""
        self.lengths: list[int] = []
        self.width = config.input_width
        self.ink = "none"  # what the network reads: config.ink as resolved by fit (see choose_ink)
        self.training: dict = {}
        self.history: list[dict] = []
        self._forward: Any = None  # the traced reading function, made on first use

    # -- training ------------------------------------------------------------------------
    def fit(
        self, samples: Sequence[Sample], log: Callable[[str], None] = print, verbose: bool = True
    ) -> SequenceReader:
        """Train on labelled samples; a validation slice carved from them picks the best epoch.

        Nothing is written to disk: ``save`` writes the model and its history.
        """
        cfg = self.config
        if cfg.problem():
            raise UserError(f"sequence reader: {cfg.problem()}")
        keras = import_keras()
        started = time.perf_counter()
        set_seed(cfg.seed)
        images, labels = read_training_images(samples, cfg.case, log)
        self.charset = "".join(sorted(set("".join(labels))))
        self.lengths = sorted(set(map(len, labels)))
        self.width = cfg.input_width or measured_width(images, cfg)
        check_frames(labels, self.width)
        order = np.random.default_rng(cfg.seed).permutation(len(labels))
        n_val = max(1, int(round(len(labels) * cfg.val_fraction)))
        val, train = order[:n_val], order[n_val:]
        if len(train) == 0:
            raise UserError("too few training images: need at least two")
        self.ink = choose_ink(cfg.ink, [(images[i], labels[i]) for i in val], log)
        x = self.inputs(images)
        y = encode_labels(labels, self.charset, max(self.lengths))
        batch = cfg.batch_size or int(np.clip(len(train) // 100, 16, 64))
        steps_per_epoch = math.ceil(len(train) / batch)
        epochs = min(cfg.epochs, max(1, cfg.max_steps // steps_per_epoch))
        most = min(cfg.epochs, max(epochs, cfg.step_cap // steps_per_epoch))
        channels = cfg.channels(self.ink)
        self.model, self._forward = build_network(cfg, self.width, channels, len(self.charset)), None
        self.model.compile(
            optimizer=keras.optimizers.Adam(cfg.learning_rate),
            loss=ctc_loss,
            jit_compile=False,
        )
        data = dataset(x[train], y[train], batch, cfg.seed)
        val_labels = [labels[i] for i in val]
        best = self.train_epochs(data, (epochs, most), x[val], val_labels, log if verbose else None)
        self.training = {
            "images": len(samples),
            "readable": len(labels),
            "train_images": len(train),
            "validation_images": len(val),
            "batch_size": batch,
            "planned_epochs": epochs,
            "most_epochs": most,
            "steps": best["epochs_run"] * steps_per_epoch,
            **best,
            "bfloat16": self.check_bfloat16(x[val], val_labels),
            "seconds": round(time.perf_counter() - started, 1),
        }
        log(
            f"sequence reader: best epoch {best['best_epoch']} of {best['epochs_run']}, validation "
            f"sequence accuracy {best['validation_sequence_accuracy']:.4f} ({best['stopped_by']}), "
            f"{self.training['seconds']:.0f} s"
        )
        if self.training["bfloat16"]:
            right = self.training["bfloat16"]["validation_right"]
            log(
                f"sequence reader: reads in {self.precision()} on this machine (validation images read "
                f"right: {right['bfloat16']} in bfloat16, {right['float32']} in float32)"
            )
        return self

    def train_epochs(
        self,
        data,
        plan: tuple[int, int],
        x_val: np.ndarray,
        val_labels: list[str],
        log: Callable[[str], None] | None,
    ) -> dict:
        """Cycles of epochs, fewer on patience; the best epoch's weights are kept.

        ``plan`` is (epochs of the first cycle, most epochs in all). The learning rate follows
        :func:`learning_rate`. Patience does not count before the first image is read right:
        CTC first sits on a plateau (blanks everywhere) for a number of steps that depends on
        the data. After a cycle too short to settle (:func:`too_short_to_settle`), another
        cycle of half as many epochs follows, at half the rate, while the most epochs allow
        (the budget grows only where CTC left its plateau late).

        "Best" is the higher validation sequence accuracy, then the lower validation loss:
        CTC often reads nothing right for several epochs while its loss falls, and those
        epochs are progress.
        """
        cfg, started = self.config, time.perf_counter()
        y_val = encode_labels(val_labels, self.charset, max(self.lengths))
        live = inference_function(self.model)  # the network as it trains (no folded copy)
        best = (-1.0, math.inf, 0, None)  # accuracy, loss, epoch, weights
        self.history = []
        epochs, most = plan
        stopped_by = "step budget" if epochs < cfg.epochs else "epochs"
        reading_from = None  # the first epoch after one that read a validation image right
        cycle, epoch, first = 0, 0, 0  # first: the cycle's first epoch
        while epoch < epochs:
            rate = learning_rate(cfg, epoch, epochs, reading_from, cycle)
            self.model.optimizer.learning_rate.assign(rate)
            fitted = self.model.fit(
                data, initial_epoch=epoch, epochs=epoch + 1, verbose=0, shuffle=False
            )  # the dataset shuffles
            probs = self.frame_probs(x_val, live)
            acc = float(np.mean([t == label for t, label in zip(self.texts(probs), val_labels)]))
            loss = float(np.mean(np.asarray(ctc_loss(y_val, np.log(np.maximum(probs, 1e-9))))))
            elapsed = time.perf_counter() - started
            self.history.append(
                {
                    "epoch": epoch,
                    "loss": fitted.history["loss"][-1],
                    "val_loss": loss,
                    "val_sequence_accuracy": acc,
                    "learning_rate": rate,
                    "seconds": round(elapsed, 1),
                }
            )
            if log:
                log(
                    f"epoch {epoch + 1}/{epochs}: loss {self.history[-1]['loss']:.3f}, validation "
                    f"loss {loss:.3f}, sequence accuracy {acc:.4f} ({elapsed:.0f} s)"
                )
            if reading_from is None and acc > 0:
                reading_from = epoch + 1
            if acc > best[0] or (acc == best[0] and loss < best[1]):
                best = (acc, loss, epoch, self.model.get_weights())
            if best[0] > 0 and epoch - best[2] >= cfg.patience:
                stopped_by = "no better validation reading"
                break
            if cfg.max_seconds and epoch and 2 * elapsed - self.history[-2]["seconds"] > cfg.max_seconds:
                stopped_by = "time cap"  # one more epoch would not fit
                break
            epoch += 1
            if epoch == epochs < most and too_short_to_settle(best[0], reading_from, epochs, first):
                cycle, reading_from, first = cycle + 1, epochs, epochs  # another, shorter cycle
                epochs = min(most, epochs + max(1, plan[0] // 2**cycle))
                stopped_by = "step cap" if epochs == most < cfg.epochs else stopped_by
        self.model.set_weights(best[3])
        self._forward = None
        return {
            "best_epoch": best[2] + 1,
            "epochs_run": len(self.history),
            "validation_sequence_accuracy": round(best[0], 4),
            "cycles": cycle + 1,
            "stopped_by": stopped_by,
        }

    def texts(self, probs: np.ndarray) -> list[str]:
        """Greedy CTC text of per-frame probabilities, as training compares epochs and precisions.

        Without the length prior of reading (:func:`reading_paths`): an epoch whose network
        drops glyphs should not look as good as one whose best path already has them.
        """
        return ["".join(self.charset[k - 1] for k, *_ in runs) for runs in greedy_paths(probs)]

    def inputs(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """The network's input batch for grey or RGB images."""
        return np.stack([self.fit_to_input(g)[0] for g in images])

    def fit_to_input(self, pixels: np.ndarray) -> tuple[np.ndarray, float]:
        """One image as the network reads it (see :func:`fit_to_input`), and its x scale."""
        cfg = self.config
        return fit_to_input(pixels, cfg.height, self.width, cfg.channels(self.ink), self.ink)

    # -- reading -------------------------------------------------------------------------
    def read_each(self, images: Sequence[ImageLike]) -> list[Reading | UserError]:
        return read_each(images, pixels_of, self.read_arrays)

    def frame_probs(self, x: np.ndarray, forward: Any = None, chunk: int = READ_CHUNK) -> np.ndarray:
        """Per-frame class probabilities for an input batch (by default from the reading copy),
        ``chunk`` images a call."""
        if len(x) == 0:
            return np.zeros((0, self.width // POOL_X, len(self.charset) + 1), np.float32)
        if forward is None:
            if self._forward is None:
                self._forward = inference_function(self.reading_copy(self.precision()))
            forward = self._forward
        return softmax(np.concatenate([forward(x[i : i + chunk]).numpy() for i in range(0, len(x), chunk)]))

    def reading_copy(self, precision: str):
        """The trained network as :func:`reading_network` folds it, in ``precision``."""
        return reading_network(self.model, self.config, self.width, len(self.charset), precision)

    def precision(self) -> str:
        """bfloat16 where the config allows it, training found it as good and this CPU has it."""
        checked = self.training.get("bfloat16") or {}
        usable = self.config.bfloat16 and checked.get("as_good") is True and native_bfloat16()
        return "bfloat16" if usable else "float32"

    def check_bfloat16(self, x_val: np.ndarray, val_labels: list[str]) -> dict | None:
        """Read the validation slice in float32 and in bfloat16: is bfloat16 as good?

        Checked only where it could be used (the config allows it, the CPU has it natively);
        a model trained elsewhere reads in float32. Saved in ``meta.json`` under ``training``.
        """
        if not (self.config.bfloat16 and native_bfloat16()):
            return None
        right, forwards = {}, {}
        for precision in ("float32", "bfloat16"):
            forwards[precision] = inference_function(self.reading_copy(precision))
            probs = self.frame_probs(x_val, forwards[precision])
            right[precision] = int(sum(t == label for t, label in zip(self.texts(probs), val_labels)))
        as_good = right["bfloat16"] >= right["float32"]
        self._forward = forwards["bfloat16" if as_good else "float32"]  # what precision() will pick
        return {"validation_right": right, "as_good": as_good}

    def read_arrays(self, images: Sequence[np.ndarray]) -> list[Reading]:
        """Decode images; boxes are the characters' frame spans in the image's columns."""
        scaled = [self.fit_to_input(g) for g in images]
        x = np.stack([s[0] for s in scaled]) if scaled else np.zeros((0,))
        readings = []
        paths = reading_paths(self.frame_probs(x), self.lengths)
        for image, (_, scale), runs in zip(images, scaled, paths):
            conf = [p for _, _, _, p in runs]
            boxes = [
                (
                    int(first * POOL_X / scale),
                    0,
                    int(min(image.shape[1], (last + 1) * POOL_X / scale)),
                    image.shape[0],
                )
                for _, first, last, _ in runs
            ]
            text = "".join(self.charset[k - 1] for k, _, _, _ in runs)
            readings.append(Reading(text, float(np.prod(conf)) if conf else 0.0, conf, boxes, reader=READER))
        return readings

    # -- persistence ---------------------------------------------------------------------
    def write_files(self, model_dir: Path) -> None:
        """The network, meta.json (config, charset, input width) and the training history."""
        self.write_reader(model_dir, self.model, MODEL_FILE, width=self.width, ink=self.ink)

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> SequenceReader:
        """Load a directory written by :meth:`save`; a wrong or damaged one is a UserError."""
        meta = read_meta(model_dir, KIND, FORMAT_VERSION)
        check_reader(meta, model_dir, READER)
        where = f"{model_dir}/meta.json"
        reader = cls(config_from_json(SequenceConfig, typed_field(meta, "config", dict, where), where))
        reader.charset = typed_field(meta, "charset", str, where)
        reader.lengths = typed_field(meta, "lengths", list[int], where)
        reader.width = typed_field(meta, "width", int, where)
        reader.ink = typed_field(meta, "ink", str, where) if "ink" in meta else "none"  # older: pixels
        training = meta.get("training")
        reader.training = training if isinstance(training, dict) else {}
        if not reader.charset or not reader.lengths or reader.width < 1 or reader.ink not in INK_READS:
            raise UserError(f"{where} is damaged: charset, lengths, width or ink is not valid")
        model_file = typed_field(meta, "model_file", str, where)
        reader.model = load_network(Path(model_dir), model_file)
        cfg = reader.config
        expected = (None, cfg.height, reader.width, cfg.channels(reader.ink))
        if tuple(reader.model.input_shape) != expected:
            raise UserError(
                f"{where} does not fit {model_file}: the network reads {reader.model.input_shape}; "
                f"meta.json says {expected} (height, width, colour and ink)"
            )
        if reader.model.output_shape[-1] != len(reader.charset) + 1:
            raise UserError(
                f"{where} does not fit {model_file}: the network reads {reader.model.output_shape[-1] - 1} "
                f"characters; meta.json's charset has {len(reader.charset)}"
            )
        reader.history = read_history(Path(model_dir))
        return reader


def choose_ink(setting: str, validation: list[tuple[np.ndarray, str]], log: Callable[[str], None]) -> str:
    """Whether band ink goes beside the pixels: ``setting``, or for "auto" the segmenter's choice.

    Where noise is darker than the letters (arcs, dots, thin lines drawn over them), the
    network must learn from the labels alone to look past it; the band ink map has already
    dropped it. The segmenter's clean-up choice on ``validation`` (:func:`captcha.train.tune_settings`:
    the clean-up whose shape-only glyph counts agree with the labels most often) says where
    that is so. Band ink goes beside the pixels, not in their place: where glyphs differ in
    darkness or hue, band ink alone loses some. On arcs-dots (3,000 images, seed 0), the
    network read 98.0% of its validation slice with both, 97.3% with band ink alone, and
    after 8 epochs 83.7% with both against 58.3% with the pixels alone (in a run planned for
    twice the steps).
    """
    if setting != "auto":
        log(f"sequence reader: reads {INK_READS[setting]} (--ink {setting})")
        return setting
    chosen, _ = tune_settings(validation[:TUNE_IMAGES], SegmentSettings().glyph_size, None)
    ink = "band" if chosen.ink == "band" else "none"
    log(f"sequence reader: reads {INK_READS[ink]} (segmenter's clean-up on validation: {describe(chosen)})")
    return ink


def read_training_images(
    samples: Sequence[Sample], case: str, log: Callable[[str], None]
) -> tuple[list[np.ndarray], list[str]]:
    """Pixels and case-normalised labels; unreadable files are skipped and counted."""
    images, labels = [], []
    for sample in samples:
        try:
            images.append(pixels_of(sample.path))
            labels.append(apply_case(sample.label, case))
        except UserError:
            continue
    if len(images) < len(samples):
        log(f"skipped {len(samples) - len(images)} unreadable image(s)")
    if not images:
        raise UserError("no readable training images")
    return images, labels


def dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """In-memory arrays, reshuffled every epoch by ``seed``, batched (:func:`without_autotune`)."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y))
    return without_autotune(data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size))


def encode_labels(labels: Sequence[str], charset: str, length: int) -> np.ndarray:
    """Class ids (from 1; 0 is the CTC blank and the padding) of each label, padded to ``length``."""
    y = np.zeros((len(labels), length), np.int32)
    for i, label in enumerate(labels):
        y[i, : len(label)] = [charset.index(c) + 1 for c in label]
    return y
