"""The CAPTCHA readers' contract, and the segmenting reader (:class:`CaptchaSolver`).

Every CAPTCHA reader (the segmenting one here, :class:`captcha.sequence.SequenceReader`, the
reader choice :class:`captcha.readers.CaptchaReader`) follows ``recognisers.contract``:
``Reader(config).fit(samples)``, ``predict``/``predict_batch``, ``evaluate(samples) -> Report``,
``save(dir, force=False)``, ``Reader.load(dir)``. They share :class:`CaptchaModel`, which adds
``read_each``: a batch that goes on past a bad file (``predict`` with many paths, the server).

The segmenting reader's reading is batched: every image is segmented by shape; images whose
glyphs came out clean (one component per glyph, an allowed count) go through the CNN together
in one call, the others are read by recognition (:mod:`captcha.recognise`) with all their
candidate crops in one more call. Its training lives in :mod:`captcha.train`.
"""

from __future__ import annotations

import csv
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from captcha.data import CASES, Sample, read_pixels, to_pixels
from captcha.network import classify
from captcha.recognise import best_paths, lattice_for
from captcha.segment import Box, Segmentation, SegmentSettings, crop, segment
from recognisers.backend import import_keras
from recognisers.contract import SavesModelDir, config_from_json, config_to_json, option
from recognisers.errors import UserError
from recognisers.layers import custom_objects
from recognisers.metafields import dataclass_from_meta, typed_field
from recognisers.modeldir import read_meta, write_meta
from recognisers.training import HISTORY_CSV, HISTORY_PNG, plot_history

if TYPE_CHECKING:
    from captcha.evaluate import EvaluateConfig
    from recognisers.contract import Report

KIND = "captcha"
FORMAT_VERSION = 2  # 2: the whole config in meta.json ("config"), every reader names itself ("reader")
MODEL_FILE = "glyph_cnn.keras"
ImageLike = str | os.PathLike | np.ndarray


def pixels_of(image: ImageLike) -> np.ndarray:
    """Grey or RGB uint8 pixels of a path or array, as every reader reads them.

    :mod:`captcha.data` holds every check (pixel limit before decoding, truncated files, one-line
    errors), composites transparent pixels onto white and shrinks huge images.
    """
    return read_pixels(image) if isinstance(image, (str, os.PathLike)) else to_pixels(image)


RECHECK = 0.9  # a clean reading with a glyph less sure than this is also read by recognition


@dataclass(frozen=True)
class SegmentConfig:
    """Every default of the segmenting reader (saved whole in meta.json)."""

    epochs: int = option(15, "most epochs of the glyph CNN (each alignment round: half, at least 2)")
    seed: int = option(0, "seed of every random choice: the same seed trains the same model")
    case: str = option("keep", "how labels are normalised: upper, lower or keep", choices=CASES)
    align_rounds: int = option(1, "rounds of re-cutting hard images by forced alignment, then retraining")
    glyph_size: int = option(28, "side in pixels of the square glyph crop the CNN reads")
    line_kernel: int | None = option(
        None, "height of the vertical opening that removes thin lines (default: tuned on the data)"
    )
    width: int = option(
        16, "filters in the glyph CNN's first layer (16: fast; 32: more accurate on hard sets)"
    )

    def problem(self) -> str:
        """What makes this config unusable, or "" when nothing does."""
        if self.epochs < 1 or self.width < 1 or self.align_rounds < 0:
            return "epochs and width must be at least 1, align_rounds at least 0"
        if not 0 <= self.seed < 2**32:
            return "seed must lie in 0 to 2**32 - 1"
        if self.glyph_size < 8 or (self.line_kernel is not None and self.line_kernel < 0):
            return (
                "glyph_size must be at least 8 (the glyph CNN halves it three times), line_kernel at least 0"
            )
        return ""


def mean_log(reading: Reading) -> float:
    """Mean log-probability per glyph: how two readings of one image are compared."""
    if not reading.char_confidences:
        return -np.inf
    return float(np.mean(np.log(np.maximum(reading.char_confidences, 1e-12))))


def read_each(
    images: Sequence[ImageLike], prepare: Callable[[ImageLike], Any], read: Callable[[list], list[Reading]]
) -> list[Reading | UserError]:
    """``prepare`` every image, ``read`` the prepared ones in one batch; a bad one keeps its error.

    Every reader's ``read_each`` is this with its own preparation and batch.
    """
    results: list = [None] * len(images)
    prepared, where = [], []
    for i, image in enumerate(images):
        try:
            prepared.append(prepare(image))
            where.append(i)
        except UserError as exc:
            results[i] = exc
    for i, reading in zip(where, read(prepared)):
        results[i] = reading
    return results


@dataclass
class Reading:
    """The text read from one CAPTCHA, its confidence (product of per-glyph ones) and its boxes.

    ``boxes`` are (x0, y0, x1, y1) in the pixels the reader read: an image over ``MAX_SIDE`` pixels a
    side is shrunk first (:func:`captcha.data.shrink`), so divide them by
    ``captcha.data.shrink_scale(image.shape)`` to draw them on the image as given.
    """

    text: str
    confidence: float
    char_confidences: list[float]
    boxes: list[Box] = field(default_factory=list)
    by_recognition: bool = False
    reader: str = "segment"  # which reader read it: "segment" or "sequence"

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "confidence": round(self.confidence, 6),
            "char_confidences": [round(c, 6) for c in self.char_confidences],
            "reader": self.reader,
        }


class CaptchaModel(SavesModelDir):
    """What every CAPTCHA reader shares: ``predict``, ``predict_batch`` and ``evaluate`` on top
    of its own ``read_each``; ``save`` (staged, atomic) on top of its own ``write_files``."""

    KIND = KIND
    config: Any
    reader: str
    charset: str
    lengths: list[int]

    @property
    def case(self) -> str:
        return self.config.case

    def read_each(self, images: Sequence[ImageLike]) -> list[Reading | UserError]:
        """Read many images in one batch; an unreadable one gives its UserError in its place."""
        raise NotImplementedError

    def predict(self, image: ImageLike) -> Reading:
        """Read one CAPTCHA (a path, or a grey/RGB(A) array)."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[ImageLike]) -> list[Reading]:
        """Read many CAPTCHAs in batched network calls; raises the first unreadable image's UserError."""
        results = self.read_each(images)
        for result in results:
            if isinstance(result, UserError):
                raise result
        return results  # type: ignore[return-value]

    def write_reader(self, model_dir: Path, network: Any, model_file: str, **extra: Any) -> None:
        """A single reader's files: its network, meta.json (what it needs to read) and its history."""
        network.save(model_dir / model_file)
        meta: dict[str, Any] = {"reader": self.reader, "model_file": model_file, "charset": self.charset}
        meta.update(lengths=self.lengths, case=self.case, **extra, config=config_to_json(self.config))
        write_meta(model_dir, KIND, FORMAT_VERSION, {**meta, "training": self.training})  # type: ignore[attr-defined]
        write_history(model_dir, self.history, f"{self.reader} reader ({model_dir.name})")  # type: ignore[attr-defined]

    def evaluate(
        self, samples: Sequence[Sample], case: str | None = None, config: EvaluateConfig | None = None
    ) -> Report:
        """Accuracies, speed and every reading of labelled samples (see :mod:`captcha.evaluate`)."""
        from captcha.evaluate import EvaluateConfig, evaluate

        return evaluate(self, list(samples), case, config or EvaluateConfig())


def write_history(model_dir: Path, rows: list[dict], title: str) -> None:
    """The per-epoch history as CSV and its plot (nothing when there is no history)."""
    if not rows:
        return
    with open(model_dir / HISTORY_CSV, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_history(model_dir / HISTORY_CSV, model_dir / HISTORY_PNG, title)


def read_history(model_dir: Path) -> list[dict]:
    """The history a saved model carries (so that saving a loaded model keeps it)."""
    path = model_dir / HISTORY_CSV
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_network(model_dir: Path, model_file: str):
    """The Keras network of a model directory; a missing or damaged file is a UserError."""
    path = model_dir / model_file
    if Path(model_file).name != model_file:
        raise UserError(f"{model_dir}/meta.json is damaged: model_file is not valid")
    if not path.is_file():
        raise UserError(f"{model_dir} is incomplete: {model_file} is missing")
    if not zipfile.is_zipfile(path):  # Keras would say "File not found" for a cut file
        raise UserError(
            f"cannot load the model in {model_dir}: {model_file} is damaged or truncated "
            "(not a .keras archive)"
        )
    keras = import_keras()
    try:
        return keras.saving.load_model(path, compile=False, custom_objects=custom_objects())
    except Exception as exc:  # noqa: BLE001  a damaged file can fail in many ways inside Keras
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot load the model in {model_dir}: {first_line}") from None


def check_reader(meta: dict, model_dir: str | os.PathLike, reader: str) -> None:
    """Refuse a model directory that holds another reader (the reader choice loads any)."""
    found = meta.get("reader")
    if found != reader:
        raise UserError(
            f"{model_dir} holds a {found} reader, not a {reader} reader; "
            "load it with captcha.CaptchaReader.load"
        )


class CaptchaSolver(CaptchaModel):
    """The segmenting reader: shape (then recognition) cuts an image into glyphs, a CNN reads each."""

    reader = "segment"

    def __init__(self, config: SegmentConfig = SegmentConfig()):
        self.config = config
        self.network: Any = None  # the glyph CNN, set by fit or load
        self.charset = ""
        self.lengths: list[int] = []
        self.settings = SegmentSettings()
        self.training: dict = {}
        self.history: list[dict] = []

    @classmethod
    def from_parts(
        cls,
        config: SegmentConfig,
        network: Any,
        charset: str,
        lengths: list[int],
        settings: SegmentSettings,
        training: dict | None = None,
        history: list[dict] | None = None,
    ) -> CaptchaSolver:
        """A reader from its learned parts (what training and loading produce)."""
        solver = cls(config)
        solver.network, solver.charset, solver.lengths = network, charset, sorted(lengths)
        solver.settings, solver.training, solver.history = settings, training or {}, history or []
        return solver

    # -- training ------------------------------------------------------------------------------
    def fit(
        self, samples: Sequence[Sample], log: Callable[[str], None] = print, verbose: bool = True
    ) -> CaptchaSolver:
        """Tune the segmenter, train the glyph CNN and refine by alignment (see :mod:`captcha.train`).

        Nothing is written to disk: ``save`` writes the model and its history.
        """
        from captcha.train import train

        fitted = train(list(samples), self.config, log, 2 if verbose else 0)
        self.__dict__.update(vars(fitted))
        return self

    # -- reading -------------------------------------------------------------------------------
    def segment(self, image: ImageLike) -> Segmentation:
        """Shape segmentation of one image (path or array) with this model's settings."""
        seg = segment(pixels_of(image), self.settings, self.lengths)
        if seg is None:
            raise UserError("no ink found in the image (blank, too faint, or only noise)")
        return seg

    def read_each(self, images: Sequence[ImageLike]) -> list[Reading | UserError]:
        return read_each(images, self.segment, self.read_segmentations)

    def read_segmentations(self, segs: Sequence[Segmentation]) -> list[Reading]:
        """The batched core: one CNN call for all clean glyphs, one for all recognition crops.

        A clean reading with a doubtful glyph (below ``RECHECK`` confidence) is read again by
        recognition, and the reading with the higher mean log-probability per glyph wins: a
        noise stroke can pass for a glyph while two real ones are fused.
        """
        readings: list[Reading | None] = [None] * len(segs)
        clean = [i for i, s in enumerate(segs) if s.clean]
        glyphs = [crop(segs[i].ink, box, self.settings) for i in clean for box in segs[i].boxes]
        probs = classify(self.network, np.asarray(glyphs, np.float32).reshape(-1, *self.glyph_shape))
        parts = np.split(probs, np.cumsum([len(segs[i].boxes) for i in clean])[:-1]) if clean else []
        for i, p in zip(clean, parts):
            readings[i] = self.decode(p, segs[i].boxes)
        hard = [i for i, r in enumerate(readings) if r is None or min(r.char_confidences) < RECHECK]
        # a clean cut is re-read at its own length only: with several allowed lengths, halves
        # of glyphs must not outvote whole ones
        lengths = [[len(r.boxes)] if (r := readings[i]) else None for i in hard]
        for i, reading in zip(hard, self.read_by_recognition([segs[i] for i in hard], lengths)):
            old = readings[i]
            if old is None or mean_log(reading) > mean_log(old):
                readings[i] = reading
        return readings  # type: ignore[return-value]

    @property
    def glyph_shape(self) -> tuple[int, int]:
        return (self.settings.glyph_size, self.settings.glyph_size)

    def decode(self, probs: np.ndarray, boxes: list[Box], by_recognition: bool = False) -> Reading:
        """Characters and confidences from per-glyph class probabilities."""
        probs = probs[:, : len(self.charset)]  # the last class, "junk", marks bad cuts
        best = probs.argmax(axis=1)
        conf = probs[np.arange(len(best)), best].astype(float)
        return Reading(
            "".join(self.charset[k] for k in best),
            float(np.prod(conf)),
            conf.tolist(),
            list(boxes),
            by_recognition,
        )

    def read_by_recognition(
        self, segs: Sequence[Segmentation], lengths: Sequence[list[int] | None] | None = None
    ) -> list[Reading]:
        """Try every allowed length's lattice (or the lengths given per image); keep the path
        with the best mean log-probability (each segment scored by its best character)."""
        per_image = [n or self.lengths for n in (lengths or [None] * len(segs))]
        jobs = [(k, lattice_for(s, n, self.settings)) for k, s in enumerate(segs) for n in per_image[k]]
        known = len(self.charset)

        def best_char(j: int, probs: np.ndarray) -> np.ndarray:
            logp = np.log(np.maximum(probs[:, :known].max(axis=1), 1e-12))
            return np.broadcast_to(logp, (jobs[j][1].n, len(probs)))

        found = best_paths(
            self.network, [(segs[k], lattice) for k, lattice in jobs], self.settings, best_char
        )
        best: list[tuple[float, Reading] | None] = [None] * len(segs)
        for (k, lattice), (path, total, probs) in zip(jobs, found):
            so_far = best[k]
            if path and (so_far is None or total / lattice.n > so_far[0]):
                boxes = [lattice.boxes[j] for j in path]
                best[k] = (total / lattice.n, self.decode(probs[path], boxes, True))
        return [b[1] if b else Reading("", 0.0, [], [], True) for b in best]

    # -- persistence ---------------------------------------------------------------------------
    def write_files(self, model_dir: Path) -> None:
        """The network, meta.json (config, charset, segmentation settings) and the history."""
        self.write_reader(model_dir, self.network, MODEL_FILE, segmentation=self.settings.to_dict())

    @staticmethod
    def settings_from_meta(meta: dict, model_dir: str | os.PathLike) -> tuple[SegmentSettings, list[int]]:
        """Segmentation settings and allowed lengths of a model; a damaged meta.json is a UserError."""
        where = f"{model_dir}/meta.json"
        settings = dataclass_from_meta(
            SegmentSettings, typed_field(meta, "segmentation", dict, where), where, "segmentation."
        )
        lengths = typed_field(meta, "lengths", list[int], where)
        problem = settings.problem() or (
            "" if lengths and min(lengths) >= 1 else "lengths must be positive integers"
        )
        if problem:
            raise UserError(f"{where} is damaged: {problem}")
        return settings, lengths

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> CaptchaSolver:
        """Load a segmenting reader's directory; a wrong or damaged one is a UserError."""
        meta = read_meta(model_dir, KIND, FORMAT_VERSION)
        check_reader(meta, model_dir, cls.reader)
        where = f"{model_dir}/meta.json"
        settings, lengths = cls.settings_from_meta(meta, model_dir)
        config = config_from_json(SegmentConfig, typed_field(meta, "config", dict, where), where)
        charset = typed_field(meta, "charset", str, where)
        if not charset or len(set(charset)) != len(charset) or config.case not in CASES:
            raise UserError(f"{where} is damaged: charset or case is not valid")
        model_file = typed_field(meta, "model_file", str, where)
        network = load_network(Path(model_dir), model_file)
        expected = ((None, settings.glyph_size, settings.glyph_size, 1), (None, len(charset) + 1))
        if (tuple(network.input_shape), tuple(network.output_shape)) != expected:
            raise UserError(
                f"{where} does not fit {model_file}: the network reads "
                f"{network.input_shape} and has {network.output_shape[-1]} classes; "
                f"meta.json says {settings.glyph_size}-pixel glyphs and "
                f"{len(charset)} characters + 1 junk class"
            )
        training = meta.get("training") if isinstance(meta.get("training"), dict) else {}
        history = read_history(Path(model_dir))
        return cls.from_parts(config, network, charset, lengths, settings, training, history)
