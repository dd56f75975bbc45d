"""Reader choice: train the segmenting reader, the sequence reader, or both and keep the better.

``--reader auto`` (the default) carves a validation slice from the training folder that neither
reader trains on, trains both on the rest within a time budget, reads the slice with each (and
with the two voting: the segmenter also reads what the sequence reader is unsure of), and
keeps whichever reads more of it right. The choice, every candidate's validation accuracy and
the reason go into ``meta.json``; a model directory says which reader it holds
(``"reader"``), and :func:`load` dispatches on it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from captcha.data import Sample, apply_case, split
from captcha.sequence import SequenceConfig, SequenceReader
from captcha.solver import FORMAT_VERSION, KIND, CaptchaSolver, ImageLike, Reading
from captcha.train import train
from recognisers.errors import UserError
from recognisers.modeldir import (
    META_FILE,
    check_writable_target,
    read_meta,
    staged_model_dir,
    write_json,
    write_meta,
)

READERS = ("auto", "segment", "sequence")
TIE_ORDER = ("segment", "sequence", "vote")  # on equal validation accuracy, the earlier wins
VOTE_GATE = 0.9  # a sequence reading at least this confident is kept without asking the segmenter


@dataclass(frozen=True)
class ChoiceConfig:
    """Defaults of ``--reader auto``."""

    val_fraction: float = 0.1  # of the training folder, read by both readers to choose
    time_budget: float = 540.0  # seconds for training both (the sequence reader gets the rest)
    min_sequence_seconds: float = 360.0  # however long the segmenter took


class VotingReader:
    """The sequence reader reads every image; where it is unsure the segmenter reads it too.

    Of the two readings of an unsure image the more confident one is kept. Gating on the
    sequence reader's confidence keeps most images off the segmenter's slower lattice.
    """

    reader = "vote"

    def __init__(self, sequence: SequenceReader, segment: CaptchaSolver):
        self.sequence, self.segment = sequence, segment
        self.case = sequence.case

    def predict(self, image: ImageLike) -> Reading:
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[ImageLike]) -> list[Reading]:
        results = self.read_each(images)
        for result in results:
            if isinstance(result, UserError):
                raise result
        return results  # type: ignore[return-value]

    def read_each(self, images: Sequence[ImageLike]) -> list[Reading | UserError]:
        first = self.sequence.read_each(images)
        unsure = [i for i, r in enumerate(first) if not sure(r)]
        second: list = [None] * len(images)
        for i, reading in zip(unsure, self.segment.read_each([images[i] for i in unsure])):
            second[i] = reading
        return vote(first, second)


def sure(result: Reading | UserError | None) -> bool:
    return isinstance(result, Reading) and result.confidence >= VOTE_GATE


def vote(first: list, second: list) -> list[Reading | UserError]:
    """Per image, the first reader's reading when it is sure, else the more confident of the two."""
    out = []
    for a, b in zip(first, second):
        readings = [r for r in (a, b) if isinstance(r, Reading)]
        out.append(a if sure(a) or not readings else max(readings, key=lambda r: r.confidence))
    return out


def load(model_dir: str | os.PathLike):
    """The reader in a model directory, whichever kind it is (``meta.json`` says)."""
    meta = read_meta(model_dir, KIND, FORMAT_VERSION)
    reader = meta.get("reader", "segment")
    if reader == "segment":
        return CaptchaSolver.load(model_dir)
    if reader == "sequence":
        return SequenceReader.load(model_dir, meta)
    if reader == "vote":
        return VotingReader(load(Path(model_dir) / "sequence"), load(Path(model_dir) / "segment"))
    raise UserError(f"{model_dir}/meta.json names an unknown reader {reader!r}")


def train_reader(
    samples: list[Sample],
    out: str | Path,
    reader: str = "auto",
    seed: int = 0,
    case: str = "keep",
    force: bool = False,
    log: Callable[[str], None] = print,
    verbose: int = 2,
    epochs: int | None = None,
    sequence: SequenceConfig = SequenceConfig(),
    choice: ChoiceConfig = ChoiceConfig(),
    **segment_options,
):
    """Train the reader asked for (``auto``: both, keep the better) and save it to ``out``.

    ``epochs`` (when given) caps both readers; ``segment_options`` go to :func:`captcha.train.train`.
    """
    if reader not in READERS:
        raise UserError(f"unknown reader {reader!r}; choose from {', '.join(READERS)}")
    check_writable_target(Path(out), force, KIND)  # refuse before minutes of training, not after
    sequence = replace(sequence, case=case, seed=seed, epochs=epochs or sequence.epochs)
    segment = dict(
        segment_options,
        seed=seed,
        case=case,
        log=log,
        verbose=verbose,
        **({"epochs": epochs} if epochs else {}),
    )
    if reader == "segment":
        return train(samples, out, force=force, **segment)
    if reader == "sequence":
        model = SequenceReader(sequence).fit(samples, log, verbose > 0)
        model.save(out, force=force)
        log(f"saved {out}")
        return model
    return choose_reader(samples, Path(out), force, log, sequence, choice, segment)


def choose_reader(
    samples: list[Sample],
    out: Path,
    force: bool,
    log: Callable[[str], None],
    sequence: SequenceConfig,
    choice: ChoiceConfig,
    segment: dict,
):
    """``--reader auto``: both readers on the same data, judged on the same unseen slice."""
    rest, held = split(samples, choice.val_fraction, sequence.seed)
    if not held or not rest:
        raise UserError("too few images to choose a reader: need at least two")
    started = time.perf_counter()
    with staged_model_dir(out, kind=KIND, force=force) as tmp:
        log(f"auto: training both readers on {len(rest)} images, choosing on {len(held)} others")
        models: dict[str, CaptchaSolver | SequenceReader] = {
            "segment": train(rest, tmp / "segment", **segment)
        }
        budget = max(choice.min_sequence_seconds, choice.time_budget - (time.perf_counter() - started))
        sequence = replace(sequence, max_seconds=min(sequence.max_seconds, budget))
        models["sequence"] = reader = SequenceReader(sequence).fit(rest, log, segment["verbose"] > 0)
        reader.save_into(ensure_dir(tmp / "sequence"))
        selection = judge(models, held, sequence.case)
        log(f"auto: kept the {selection['chosen']} reader: {selection['reason']}")
        keep(tmp, selection["chosen"], selection, sequence.case)
    log(f"saved {out} in {time.perf_counter() - started:.0f} s")
    return load(out)


def ensure_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def judge(models: dict, held: list[Sample], case: str) -> dict:
    """Validation sequence accuracy and speed of each reader and of their vote; the choice and why."""
    paths = [s.path for s in held]
    labels = [apply_case(s.label, case) for s in held]
    results, seconds = {}, {}
    for name, model in models.items():
        t = time.perf_counter()
        results[name] = model.read_each(paths)
        seconds[name] = time.perf_counter() - t
    results["vote"] = vote(results["sequence"], results["segment"])
    unsure = float(np.mean([not sure(r) for r in results["sequence"]]))
    seconds["vote"] = seconds["sequence"] + unsure * seconds["segment"]
    accuracy = {
        name: float(
            np.mean(
                [isinstance(r, Reading) and apply_case(r.text, case) == label for r, label in zip(rs, labels)]
            )
        )
        for name, rs in results.items()
    }
    chosen = max(TIE_ORDER, key=lambda name: (accuracy[name], -TIE_ORDER.index(name)))
    others = ", ".join(f"{name} {accuracy[name]:.2%}" for name in TIE_ORDER if name != chosen)
    return {
        "chosen": chosen,
        "validation_images": len(held),
        "validation_sequence_accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        "validation_captchas_per_second": {k: round(len(held) / max(v, 1e-9), 1) for k, v in seconds.items()},
        "reason": f"{accuracy[chosen]:.2%} of {len(held)} validation images read right (vs. {others})",
    }


def keep(tmp: Path, chosen: str, selection: dict, case: str) -> None:
    """Leave only the chosen reader in the staged directory, with the selection in meta.json."""
    if chosen == "vote":
        write_meta(
            tmp,
            KIND,
            FORMAT_VERSION,
            {"reader": "vote", "parts": ["segment", "sequence"], "case": case, "selection": selection},
        )
        return
    for other in ("segment", "sequence"):
        if other != chosen:
            shutil.rmtree(tmp / other)
    for child in (tmp / chosen).iterdir():
        child.rename(tmp / child.name)
    (tmp / chosen).rmdir()
    meta = read_meta(tmp, KIND, FORMAT_VERSION)
    write_json(tmp / META_FILE, {**meta, "reader": chosen, "selection": selection})
