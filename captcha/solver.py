"""CaptchaSolver: the Python API that reads CAPTCHAs with a trained model; save and load.

Reading is batched: every image is segmented by shape; images whose glyphs came out clean
(one component per glyph, an allowed count) go through the CNN together in one call, the
others are read by recognition (:mod:`captcha.recognise`) with all their candidate crops in
one more call. Training lives in :mod:`captcha.train`, measuring in :mod:`captcha.evaluate`.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from captcha.data import CASES, read_pixels, to_pixels
from captcha.model import classify
from captcha.recognise import best_path, lattice_crops, lattice_for
from captcha.segment import Box, Segmentation, SegmentSettings, crop, segment
from recognisers.backend import import_keras
from recognisers.errors import UserError
from recognisers.metafields import dataclass_from_meta, typed_field
from recognisers.modeldir import read_meta, write_meta

KIND = "captcha"
FORMAT_VERSION = 1
MODEL_FILE = "glyph_cnn.keras"
ImageLike = str | os.PathLike | np.ndarray
RECHECK = 0.9  # a clean reading with a glyph less sure than this is also read by recognition


def mean_log(reading: Reading) -> float:
    """Mean log-probability per glyph: how two readings of one image are compared."""
    if not reading.char_confidences:
        return -np.inf
    return float(np.mean(np.log(np.maximum(reading.char_confidences, 1e-12))))


def read_each(
    images: Sequence[ImageLike], prepare: Callable[[ImageLike], Any], read: Callable[[list], list[Reading]]
) -> list[Reading | UserError]:
    """``prepare`` every image, ``read`` the prepared ones in one batch; a bad one keeps its error.

    Every reader's ``read_each`` (for callers that go on past a bad file: ``predict`` with many
    paths, ``evaluate``, the server) is this with its own preparation and batch.
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
    """The text read from one CAPTCHA, its confidence (product of per-glyph ones) and its boxes."""

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


class CaptchaSolver:
    """A trained glyph CNN plus everything needed to cut images into glyphs the same way."""

    reader = "segment"

    def __init__(
        self,
        model,
        charset: str,
        lengths: list[int],
        settings: SegmentSettings,
        case: str = "keep",
        training: dict | None = None,
    ):
        self.model = model
        self.charset = charset
        self.lengths = sorted(lengths)
        self.settings = settings
        self.case = case
        self.training = training or {}

    # -- reading ---------------------------------------------------------------------------
    def segment(self, image: ImageLike) -> Segmentation:
        """Shape segmentation of one image (path or array) with this model's settings."""
        pixels = read_pixels(image) if isinstance(image, (str, os.PathLike)) else to_pixels(image)
        return segment(pixels, self.settings, self.lengths)

    def predict(self, image: ImageLike) -> Reading:
        """Read one CAPTCHA (a path, or a grey/RGB array)."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence[ImageLike]) -> list[Reading]:
        """Read many CAPTCHAs; raises :class:`UserError` for the first unreadable one."""
        return self.read_segmentations([self.segment(image) for image in images])

    def read_each(self, images: Sequence[ImageLike]) -> list[Reading | UserError]:
        """Read many images in one batch; an unreadable one gives its UserError in its place.

        For callers that must go on past a bad file (``predict`` with many paths, ``evaluate``).
        """
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
        probs = classify(self.model, np.asarray(glyphs, np.float32).reshape(-1, *self.glyph_shape))
        start = 0
        for i in clean:
            n = len(segs[i].boxes)
            readings[i] = self.decode(probs[start : start + n], segs[i].boxes)
            start += n
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
        with the best mean log-probability."""
        if not segs:
            return []
        per_image = [n or self.lengths for n in (lengths or [None] * len(segs))]
        jobs = [(k, s, lattice_for(s, n, self.settings)) for k, s in enumerate(segs) for n in per_image[k]]
        crops = [lattice_crops(s.ink, lattice, self.settings) for _, s, lattice in jobs]
        probs = classify(self.model, np.concatenate(crops))
        logp = np.log(np.maximum(probs[:, : len(self.charset)].max(axis=1), 1e-12))
        best: list[tuple[float, Reading] | None] = [None] * len(segs)
        start = 0
        for (k, _, lattice), c in zip(jobs, crops):
            p = probs[start : start + len(c)]
            scores = np.broadcast_to(logp[start : start + len(c)], (lattice.n, len(c)))
            start += len(c)
            path, total = best_path(lattice, scores)
            so_far = best[k]
            if path and (so_far is None or total / lattice.n > so_far[0]):
                best[k] = (total / lattice.n, self.decode(p[path], [lattice.boxes[j] for j in path], True))
        return [b[1] if b else Reading("", 0.0, [], [], True) for b in best]

    # -- persistence -----------------------------------------------------------------------
    def save_into(self, model_dir: Path) -> None:
        """Write the model and meta.json into a (staged) directory."""
        self.model.save(model_dir / MODEL_FILE)
        write_meta(
            model_dir,
            KIND,
            FORMAT_VERSION,
            {
                "model_file": MODEL_FILE,
                "charset": self.charset,
                "lengths": self.lengths,
                "case": self.case,
                "segmentation": self.settings.to_dict(),
                "training": self.training,
            },
        )

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
    def load(cls, model_dir: str | os.PathLike):
        """Load a model directory written by ``captcha train`` (any reader); a wrong one is a UserError."""
        meta = read_meta(model_dir, KIND, FORMAT_VERSION)
        if meta.get("reader", "segment") != "segment":  # a sequence or voting model: dispatch
            from captcha.readers import load

            return load(model_dir)
        where = f"{model_dir}/meta.json"
        settings, lengths = cls.settings_from_meta(meta, model_dir)
        charset, case = typed_field(meta, "charset", str, where), typed_field(meta, "case", str, where)
        model_file = typed_field(meta, "model_file", str, where) if "model_file" in meta else MODEL_FILE
        if (
            not charset
            or len(set(charset)) != len(charset)
            or case not in CASES
            or Path(model_file).name != model_file
        ):
            raise UserError(f"{where} is damaged: charset, case or model_file is not valid")
        path = Path(model_dir) / model_file
        if not path.is_file():
            raise UserError(f"{model_dir} is incomplete: {model_file} is missing")
        if not zipfile.is_zipfile(path):  # Keras would say "File not found" for a cut file
            raise UserError(
                f"cannot load the model in {model_dir}: {model_file} is damaged or "
                "truncated (not a .keras archive)"
            )
        keras = import_keras()
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as exc:  # noqa: BLE001  a damaged file can fail in many ways inside Keras
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"cannot load the model in {model_dir}: {first_line}") from None
        expected = ((None, settings.glyph_size, settings.glyph_size, 1), (None, len(charset) + 1))
        if (tuple(model.input_shape), tuple(model.output_shape)) != expected:
            raise UserError(
                f"{where} does not fit {model_file}: the network reads "
                f"{model.input_shape} and has {model.output_shape[-1]} classes; "
                f"meta.json says {settings.glyph_size}-pixel glyphs and "
                f"{len(charset)} characters + 1 junk class"
            )
        return cls(model, charset, lengths, settings, case, meta.get("training"))
