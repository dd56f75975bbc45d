"""Visual question answering: VGG image features + LSTM question encoder (see DESIGN.md).

``from vqa import VQAModel`` is imported lazily, so ``vqa --help`` starts without TensorFlow.
"""

from __future__ import annotations

__all__ = ["VQAModel"]


def __getattr__(name: str):
    if name == "VQAModel":
        from vqa.answerer import VQAModel

        return VQAModel
    raise AttributeError(f"module 'vqa' has no attribute {name!r}")
