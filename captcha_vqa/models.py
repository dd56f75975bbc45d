"""Loading the models the server answers with, and describing them for ``GET /v1/models``.

The server calls the models' public API only (``load``, ``read_each``, ``predict_batch``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from captcha.model import FORMAT_VERSION as CAPTCHA_FORMAT
from captcha.model import KIND as CAPTCHA_KIND
from captcha.readers import CaptchaReader
from recognisers.modeldir import read_meta
from vqa.model import FORMAT_VERSION as VQA_FORMAT
from vqa.model import KIND as VQA_KIND
from vqa.model import VQAModel


def load_captcha(model_dir: str | os.PathLike):
    """A CAPTCHA reader from its directory (the one place that chooses the loader)."""
    return CaptchaReader.load(model_dir)


def reader_name(model) -> str:
    """Which CAPTCHA reader a model is: the segmenting one unless it says otherwise."""
    return getattr(model, "reader", "segment")


@dataclass
class Loaded:
    """The models a server holds (either may be None) and what ``/v1/models`` says of them."""

    captcha: Any = None
    vqa: VQAModel | None = None
    captcha_info: dict | None = None
    vqa_info: dict | None = None

    @classmethod
    def load(cls, captcha_dir: str | None, vqa_dir: str | None) -> Loaded:
        """Load what is named; a wrong directory is a UserError before the server starts."""
        loaded = cls()
        if captcha_dir:
            loaded.captcha = load_captcha(captcha_dir)
            loaded.captcha_info = describe_captcha(loaded.captcha, captcha_dir)
        if vqa_dir:
            loaded.vqa = VQAModel.load(vqa_dir)
            loaded.vqa_info = describe_vqa(loaded.vqa, vqa_dir)
        loaded.warm_up()
        return loaded

    def warm_up(self) -> None:
        """One call of each model on a blank image, so the first user does not wait for tracing."""
        blank = np.full((64, 64, 3), 255, np.uint8)
        if self.captcha is not None:
            self.captcha.read_each([blank])  # a blank image reads as an error in place: fine
        if self.vqa is not None:
            self.vqa.predict_batch([blank], ["what is this?"])


def describe_captcha(model, model_dir: str | os.PathLike) -> dict:
    meta = read_meta(model_dir, CAPTCHA_KIND, CAPTCHA_FORMAT)
    return {
        "kind": CAPTCHA_KIND,
        "format_version": CAPTCHA_FORMAT,
        "reader": reader_name(model),
        "charset": meta.get("charset", ""),
        "lengths": meta.get("lengths", []),
        "case": meta.get("case", "keep"),
        "training": meta.get("training", {}),
        "versions": meta.get("versions", {}),
    }


def describe_vqa(model: VQAModel, model_dir: str | os.PathLike) -> dict:
    meta = read_meta(model_dir, VQA_KIND, VQA_FORMAT)
    return {
        "kind": VQA_KIND,
        "format_version": VQA_FORMAT,
        "answer_vocabulary_size": len(model.answers),
        "training": meta.get("training", {}),
        "versions": meta.get("versions", {}),
    }
