"""Visual question answering: image features (a compact VGG-style CNN or frozen VGG16/19) and
an LSTM question encoder, classified over the answers (see docs/architecture.md).

``from vqa import VQAModel`` is imported lazily, so ``vqa --help`` starts without TensorFlow.
"""

from __future__ import annotations

__all__ = ["VQAModel"]


def __getattr__(name: str):
    if name == "VQAModel":
        from vqa.model import VQAModel

        return VQAModel
    raise AttributeError(f"module 'vqa' has no attribute {name!r}")
