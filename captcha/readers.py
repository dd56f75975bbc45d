"""The reader choice (:class:`CaptchaReader`): the segmenting reader, the sequence reader, or both.

``reader="auto"`` (the default) carves a validation slice from the training samples that
neither reader trains on, trains both on the rest (each within its own budget, counted in
epochs and steps, so that a seeded run repeats on any machine), reads the slice with
each (and with the two voting: the segmenter also reads what the sequence reader is unsure
of), and keeps the cheapest to read with unless a costlier one reads clearly more of it right
(:func:`judge`). Which is cheapest depends on the style (:func:`cost_order`), and the cheapest
trains first; where it misses too few of the slice for another to win (:func:`unbeatable`),
or the other cannot train, it is kept alone. The choice, every
candidate's validation accuracy, the rule and the reason go into ``meta.json``; a model
directory says which reader it holds (``"reader"``), and :meth:`CaptchaReader.load`
dispatches on it. This is the model the CLI, the server, the audit and the bench use.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from captcha.data import Sample, apply_case, split
from captcha.model import (
    FORMAT_VERSION,
    KIND,
    CaptchaModel,
    CaptchaSolver,
    ImageLike,
    Reading,
    SegmentConfig,
)
from captcha.sequence import SequenceConfig, SequenceReader
from recognisers.contract import config_from_json, config_to_json, option
from recognisers.errors import UserError, first_line
from recognisers.metafields import typed_field
from recognisers.modeldir import META_FILE, read_meta, write_json, write_meta

READERS = ("auto", "segment", "sequence")
# From the cheapest reader to read with to the costliest: the sequence reader is one network pass
# per image; the segmenter cuts, and on hard styles re-reads most images through its recognition
# lattice; the vote runs the sequence reader and then the segmenter on what it is unsure of.
COST_ORDER = ("sequence", "segment", "vote")
# ... except where shape alone cuts nearly every image into its label's glyphs: there the
# segmenter reads each glyph with one small CNN pass, and trains in a fraction of the sequence
# reader's time (the README's CAPTCHA bench, "What the cost order changed": really-simple).
CLEAN_CUT_ORDER = ("segment", "sequence", "vote")
CLEAN_CUTS = 0.99  # share of the slice's images whose shape-only glyph count is the label's
READER_NAMES = {"segment": "the segmenter", "sequence": "the sequence reader"}  # in auto's log
VOTE_GATE = 0.9  # a sequence reading at least this confident is kept without asking the segmenter


@dataclass(frozen=True)
class ChoiceConfig:
    """Defaults of ``reader="auto"``."""

    # saved by older models, whose auto shared a wall-clock budget between the readers
    RETIRED_FIELDS: ClassVar[frozenset[str]] = frozenset({"time_budget", "min_sequence_seconds"})

    choice_fraction: float = option(0.1, "auto: share of the training images held out to choose the reader")
    min_z: float = option(
        2.0,
        "auto: a costlier reader is kept only if, on the validation images the two readers disagree "
        "on, its net gain is at least this many standard errors (a paired sign test)",
    )

    def problem(self) -> str:
        """What makes this config unusable, or "" when nothing does."""
        if not (0 < self.choice_fraction < 1 and 0 <= self.min_z < math.inf):
            return "choice_fraction must lie in (0, 1) and min_z be a number at least 0"
        return ""


@dataclass(frozen=True)
class ReaderConfig:
    """Every default of the reader choice: which reader, and each reader's own config."""

    reader: str = option(
        "auto",
        "segment: OpenCV cuts + glyph CNN; sequence: CNN + BiGRU + CTC; "
        "auto: train both, keep the cheapest unless a costlier one reads clearly more of a validation slice "
        "(the costlier is not trained where the cheaper misses too few for that)",
        choices=READERS,
    )
    segment: SegmentConfig = SegmentConfig()
    sequence: SequenceConfig = SequenceConfig()
    choice: ChoiceConfig = ChoiceConfig()


class VotingReader(CaptchaModel):
    """The sequence reader reads every image; where it is unsure the segmenter reads it too.

    Of the two readings of an unsure image the more confident one is kept. Gating on the
    sequence reader's confidence keeps most images off the segmenter's slower lattice. It is
    one of the readers :class:`CaptchaReader` may choose (saved and loaded by it).
    """

    reader = "vote"

    def __init__(self, sequence: SequenceReader, segment: CaptchaSolver):
        self.sequence, self.segment = sequence, segment

    @property
    def case(self) -> str:
        return self.sequence.case

    @property
    def charset(self) -> str:  # type: ignore[override]
        return "".join(sorted(set(self.sequence.charset) | set(self.segment.charset)))

    def read_each(self, images: Sequence[ImageLike]) -> list[Reading | UserError]:
        first = self.sequence.read_each(images)
        unsure = [i for i, r in enumerate(first) if not sure(r)]
        second: list = [None] * len(images)
        for i, reading in zip(unsure, self.segment.read_each([images[i] for i in unsure])):
            second[i] = reading
        return vote(first, second)

    def write_files(self, model_dir: Path) -> None:
        for name, part in (("segment", self.segment), ("sequence", self.sequence)):
            (model_dir / name).mkdir()
            part.write_files(model_dir / name)
        write_meta(
            model_dir,
            KIND,
            FORMAT_VERSION,
            {"reader": "vote", "parts": ["segment", "sequence"], "case": self.case},
        )


def sure(result: Reading | UserError | None) -> bool:
    return isinstance(result, Reading) and result.confidence >= VOTE_GATE


def vote(first: list, second: list) -> list[Reading | UserError]:
    """Per image, the first reader's reading when it is sure, else the more confident of the two."""
    out = []
    for a, b in zip(first, second):
        readings = [r for r in (a, b) if isinstance(r, Reading)]
        out.append(a if sure(a) or not readings else max(readings, key=lambda r: r.confidence))
    return out


class CaptchaReader(CaptchaModel):
    """The model ``captcha train`` makes: the reader asked for, or (auto) the better of both.

    ``fit`` trains and chooses; ``chosen`` is the reader kept, which every reading goes to.
    """

    def __init__(self, config: ReaderConfig = ReaderConfig()):
        if config.reader not in READERS:
            raise UserError(f"unknown reader {config.reader!r}; choose from {', '.join(READERS)}")
        self.config = config
        self.chosen: Any = None  # CaptchaSolver, SequenceReader or VotingReader, set by fit or load
        self.selection: dict | None = None  # what auto measured, and why it chose

    @property
    def reader(self) -> str:  # type: ignore[override]
        return self.chosen.reader if self.chosen is not None else self.config.reader

    @property
    def case(self) -> str:
        return self.chosen.case

    @property
    def charset(self) -> str:  # type: ignore[override]
        return self.chosen.charset

    def fit(
        self, samples: Sequence[Sample], log: Callable[[str], None] = print, verbose: bool = True
    ) -> CaptchaReader:
        """Train the reader asked for (auto: :func:`choose`); nothing is written to disk."""
        cfg, samples = self.config, list(samples)
        if cfg.reader == "segment":
            self.chosen = CaptchaSolver(cfg.segment).fit(samples, log, verbose)
        elif cfg.reader == "sequence":
            self.chosen = SequenceReader(cfg.sequence).fit(samples, log, verbose)
        else:
            self.chosen, self.selection = choose(samples, cfg, log, verbose)
        return self

    def read_each(self, images: Sequence[ImageLike]) -> list[Reading | UserError]:
        return self.chosen.read_each(images)

    def write_files(self, model_dir: Path) -> None:
        """The chosen reader's files, with the reader choice's config and selection in meta.json."""
        self.chosen.write_files(model_dir)
        meta = read_meta(model_dir, KIND, FORMAT_VERSION)
        choice = {"reader_config": config_to_json(self.config), "selection": self.selection}
        write_json(model_dir / META_FILE, {**meta, **choice})

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> CaptchaReader:
        """Whichever reader a model directory holds (``meta.json`` says); a wrong one is a UserError."""
        meta = read_meta(model_dir, KIND, FORMAT_VERSION)
        where = f"{model_dir}/meta.json"
        name = typed_field(meta, "reader", str, where)
        loaders: dict[str, Callable[[Path], Any]] = {
            "segment": CaptchaSolver.load,
            "sequence": SequenceReader.load,
            "vote": lambda d: VotingReader(
                SequenceReader.load(d / "sequence"), CaptchaSolver.load(d / "segment")
            ),
        }
        if name not in loaders:
            raise UserError(f"{where} names an unknown reader {name!r}")
        config = ReaderConfig(reader=name)
        if "reader_config" in meta:
            config = config_from_json(ReaderConfig, meta["reader_config"], where)
        model = cls(config)
        try:
            model.chosen = loaders[name](Path(model_dir))
        except (ValueError, TypeError, KeyError) as exc:  # a hand-edited meta.json, weights of another model
            raise UserError(f"{where} is damaged or does not match the weights: {first_line(exc)}") from None
        selection = meta.get("selection")
        model.selection = selection if isinstance(selection, dict) else None
        return model


def choose(
    samples: list[Sample], config: ReaderConfig, log: Callable[[str], None], verbose: bool
) -> tuple[CaptchaModel, dict]:
    """``reader="auto"``: both readers on the same data, judged on the same unseen slice.

    The reader cheapest for the style (:func:`cost_order`) trains first. Where it misses too few
    images of the slice for any costlier reader to win (:func:`unbeatable`), the other is not
    trained at all: on easy styles that saves its whole training time and changes no choice.
    """
    choice, case = config.choice, config.sequence.case
    rest, held = split(samples, choice.choice_fraction, config.sequence.seed)
    if choice.problem():
        raise UserError(f"auto: {choice.problem()}")
    if not held or not rest:
        raise UserError(
            f"too few images to choose a reader: {len(samples)} leave {len(held)} to choose on "
            f"({choice.choice_fraction:.0%}); use more images or --reader segment|sequence"
        )
    started = time.perf_counter()
    order, agreement = cost_order(held, config.segment, log)
    log(f"auto: training the readers on {len(rest)} images, choosing on {len(held)} others")
    if agreement is not None:
        log(f"auto: shape alone counts the glyphs of {agreement:.1%} of them: {READER_NAMES[order[0]]} first")
    trainers: dict[str, Callable[[], CaptchaModel]] = {
        "sequence": lambda: SequenceReader(config.sequence).fit(rest, log, verbose),
        "segment": lambda: CaptchaSolver(config.segment).fit(rest, log, verbose),
    }
    models, read, why = train_cheapest_first(order, trainers, held, case, choice.min_z)
    if len(read) == 1:
        selection = alone(read, held, case, choice.min_z, order, why)
    else:
        selection = judge(read, held, case, choice.min_z, order)
    selection["shape_cut_agreement"] = agreement
    chosen = models.get(selection["chosen"]) or VotingReader(models["sequence"], models["segment"])
    log(f"auto: kept the {selection['chosen']} reader: {selection['reason']}")
    log(f"auto: trained and chose in {time.perf_counter() - started:.0f} s")
    return chosen, selection


def cost_order(
    held: list[Sample], segment: SegmentConfig, log: Callable[[str], None]
) -> tuple[tuple[str, ...], float | None]:
    """The readers from cheapest to costliest for this style, and the share of ``held``'s images
    whose glyphs shape alone counts right (the segmenter's own clean-up choice,
    :func:`captcha.train.tune_settings`; None where the images cannot be read).

    Where shape cuts at least :data:`CLEAN_CUTS` of them, the segmenter reads nearly every
    image with one small CNN pass per glyph and no recognition lattice, and trains in a fraction
    of the sequence reader's time: it is the cheapest. Elsewhere the sequence reader is.
    """
    from captcha.train import TUNE_IMAGES, describe, read_training_images, tune_settings

    try:
        images = read_training_images(held[:TUNE_IMAGES], log)
    except UserError:
        return COST_ORDER, None
    settings, agree = tune_settings(images, segment.glyph_size, segment.line_kernel)
    agreement = agree[describe(settings)]
    return (CLEAN_CUT_ORDER if agreement >= CLEAN_CUTS else COST_ORDER), round(agreement, 4)


def train_cheapest_first(
    order: tuple[str, ...],
    trainers: dict[str, Callable[[], CaptchaModel]],
    held: list[Sample],
    case: str,
    min_z: float,
) -> tuple[dict[str, Any], dict[str, tuple[list, float]], str]:
    """Train the readers in ``order`` until one is :func:`unbeatable`; read the slice with each.

    Returns the trained readers, their readings of ``held`` and, where only one trained, why
    (the other was not needed, or it could not train: e.g. too few images cut to their labels'
    lengths). A reader that cannot train is skipped; the error is raised only if none could.
    """
    models: dict[str, Any] = {}
    read: dict[str, tuple[list, float]] = {}
    why, failure = "", None
    for name in (n for n in order if n in trainers):
        if len(read) == 1 and (why := unbeatable(read, held, case, min_z, READER_NAMES[name])):
            break
        try:
            models[name] = trainers[name]()
        except UserError as exc:
            why, failure = f"{READER_NAMES[name]}: {exc}", failure or exc
            continue
        read[name] = read_slice(models[name], held)
    if not read:
        raise failure or UserError("no reader could train")
    return models, read, why


def read_slice(model: CaptchaModel, held: list[Sample]) -> tuple[list, float]:
    """A reader's readings of the choosing slice, and the seconds they took."""
    started = time.perf_counter()
    return model.read_each([s.path for s in held]), time.perf_counter() - started


def right_of(results: list, held: list[Sample], case: str) -> np.ndarray:
    """Which readings are the label, as the reader's case rule compares them."""
    labels = [apply_case(s.label, case) for s in held]
    return np.array(
        [isinstance(r, Reading) and apply_case(r.text, case) == t for r, t in zip(results, labels)]
    )


def unbeatable(
    read: dict[str, tuple[list, float]], held: list[Sample], case: str, min_z: float, other: str
) -> str:
    """Why the one reader in ``read`` is kept without training ``other``; "" where ``other`` could win.

    A costlier reader needs a net gain of ``min_z`` standard errors in :func:`paired_gain`:
    with w wins and l losses, w - l >= min_z * sqrt(w + l) >= min_z * sqrt(w - l), so
    w >= min_z ** 2, and it can only win images the first reader missed (so can the vote).
    Fewer misses than that, and training another reader could not change the choice.
    """
    ((results, _),) = read.values()
    misses = int(np.sum(~right_of(results, held, case)))
    if misses >= min_z**2:
        return ""
    why = f"{misses} missed, fewer than the {min_z**2:g} a costlier reader would have to win"
    return f"{why}: {other} was not trained"


def alone(
    read: dict[str, tuple[list, float]],
    held: list[Sample],
    case: str,
    min_z: float,
    order: tuple[str, ...],
    why: str,
) -> dict:
    """The selection of the one reader in ``read``, the only candidate, and ``why`` it was."""
    ((name, (results, seconds)),) = read.items()
    accuracy = float(np.mean(right_of(results, held, case)))
    return {
        "chosen": name,
        "validation_images": len(held),
        "validation_sequence_accuracy": {name: round(accuracy, 4)},
        "validation_captchas_per_second": {name: round(len(held) / max(seconds, 1e-9), 1)},
        "rule": rule(min_z, order),
        "reason": f"{accuracy:.2%} of {len(held)} validation images read right; {why}",
    }


def rule(min_z: float, order: tuple[str, ...]) -> str:
    return (
        f"cheapest first ({', '.join(order)}); a costlier reader needs a net gain of "
        f"{min_z:g} standard errors on the images the two disagree on"
    )


def judge(
    read: dict[str, tuple[list, float]],
    held: list[Sample],
    case: str,
    min_z: float = ChoiceConfig.min_z,
    order: tuple[str, ...] = COST_ORDER,
) -> dict:
    """Validation sequence accuracy and speed of each reader and of their vote; the choice and why.

    ``read`` holds each reader's :func:`read_slice` of ``held``. The cheapest reader
    (first in ``order``) is kept unless a costlier one reads clearly more of the same images
    (:func:`paired_gain`): a one-image lead is noise, and buying it with a reader several
    times slower is a bad trade.
    """
    results = {name: r for name, (r, _) in read.items()}
    seconds = {name: t for name, (_, t) in read.items()}
    results["vote"] = vote(results["sequence"], results["segment"])
    unsure = float(np.mean([not sure(r) for r in results["sequence"]]))
    seconds["vote"] = seconds["sequence"] + unsure * seconds["segment"]
    right = {name: right_of(rs, held, case) for name, rs in results.items()}
    accuracy = {name: float(np.mean(r)) for name, r in right.items()}
    chosen, notes = order[0], []
    for name in order[1:]:
        gain, spread = paired_gain(right[name], right[chosen])
        if spread and gain >= min_z * spread:
            chosen = name
        elif gain > 0:
            notes.append(
                f"{name} read {gain} more net, under {min_z:g} standard errors ({min_z * spread:.1f}): "
                f"not worth a costlier reader"
            )
    others = ", ".join(f"{name} {accuracy[name]:.2%}" for name in order if name != chosen)
    reason = f"{accuracy[chosen]:.2%} of {len(held)} validation images read right (vs. {others})"
    return {
        "chosen": chosen,
        "validation_images": len(held),
        "validation_sequence_accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        "validation_captchas_per_second": {k: round(len(held) / max(v, 1e-9), 1) for k, v in seconds.items()},
        "rule": rule(min_z, order),
        "reason": "; ".join([reason, *notes]),
    }


def paired_gain(challenger: np.ndarray, incumbent: np.ndarray) -> tuple[int, float]:
    """Net images the challenger reads right over the incumbent, and that count's standard error.

    A paired sign test (McNemar's): only the images exactly one of the two reads right say
    anything; if neither were better, each of those n would fall either way with even odds,
    so the net gain would spread by sqrt(n). With the default 2 standard errors, a costlier
    reader needs 4 of 4 disagreements, 7 of 8, 11 of 14, 21 of 30 ...
    (at least 4 images net).
    """
    wins = int(np.sum(challenger & ~incumbent))
    losses = int(np.sum(incumbent & ~challenger))
    return wins - losses, float(np.sqrt(wins + losses))
