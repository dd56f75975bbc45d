"""Question encoding with ``keras.layers.TextVectorization``.

The vocabulary is learnt from the training questions and saved in ``meta.json``; loading
rebuilds the layer with exactly that vocabulary, so a loaded model reads questions the same
way. Unknown words map to the OOV token (index 1) instead of failing.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

import numpy as np

from recognisers.backend import import_keras
from recognisers.errors import UserError

# What ``lower_and_strip_punctuation`` removes (Keras's own pattern), to name unknown words.
_STRIP = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')
_SPACE = re.compile(r"[ \t\n\r\v\f]+")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def check_text(question: str) -> None:
    """Refuse a question that is not encodable text (a lone surrogate from a bad JSON escape):
    TensorFlow would fail on it deep inside the layer."""
    try:
        question.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"question {question!r} is not valid text (a lone surrogate character)") from None


class QuestionEncoder:
    """Questions -> fixed-length int token arrays (0 = padding, 1 = unknown word)."""

    def __init__(
        self, vocabulary: Sequence[str] | None = None, max_length: int = 16, max_tokens: int = 10_000
    ) -> None:
        keras = import_keras()
        self.max_length = int(max_length)
        self.max_tokens = int(max_tokens)
        self.layer = keras.layers.TextVectorization(
            max_tokens=self.max_tokens,
            output_mode="int",
            output_sequence_length=self.max_length,
            standardize="lower_and_strip_punctuation",
        )
        if vocabulary is not None:
            self.layer.set_vocabulary(list(vocabulary))

    @classmethod
    def fit(
        cls, questions: Sequence[str], max_length: int | None = None, max_tokens: int = 10_000
    ) -> QuestionEncoder:
        """Learn the vocabulary; the length defaults to the longest training question (<= 30)."""
        for q in questions:
            check_text(q)
        longest = max(len(q.split()) for q in questions)
        encoder = cls(None, max_length or min(max(longest, 1), 30), max_tokens)
        encoder.layer.adapt(np.asarray(questions, dtype=object))
        return encoder

    @property
    def vocabulary(self) -> list[str]:
        """Learnt tokens, without the padding and OOV entries the layer adds itself."""
        return list(self.layer.get_vocabulary()[2:])

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary) + 2

    def __call__(self, questions: Sequence[str]) -> np.ndarray:
        """Token ids, shape ``(len(questions), max_length)``."""
        for q in questions:
            if not isinstance(q, str) or not q.strip():
                raise UserError("empty question")
            check_text(q)
        return np.asarray(self.layer(np.asarray(list(questions), dtype=object)), np.int32)

    def unknown_words(self, question: str) -> list[str]:
        """The question's words (as the layer standardises them) outside the vocabulary.

        The network reads each of them as the one OOV token, so a question made of them is
        answered as if it were not asked: callers warn about them.
        """
        known = self._known()
        return list(dict.fromkeys(w for w in self.words(question) if w not in known))

    def cut_words(self, question: str) -> list[str]:
        """The question's words past ``max_length``: the layer drops them, so callers warn."""
        return self.words(question)[self.max_length :]

    @staticmethod
    def words(question: str) -> list[str]:
        """The question's words as the layer sees them: ASCII letters lowered, punctuation
        stripped, split at ASCII whitespace only (TensorFlow's string ops; Python's lower() and
        split() would also take "GRÜN" and a no-break space, and miss what the layer cannot read)."""
        return [w for w in _SPACE.split(_STRIP.sub("", question.translate(_ASCII_LOWER))) if w]

    def _known(self) -> frozenset[str]:
        if getattr(self, "_known_words", None) is None:
            self._known_words = frozenset(self.vocabulary)
        return self._known_words

    def to_json(self) -> dict:
        return {"vocabulary": self.vocabulary, "max_length": self.max_length, "max_tokens": self.max_tokens}

    @classmethod
    def from_json(cls, obj: dict) -> QuestionEncoder:
        return cls(obj["vocabulary"], obj["max_length"], obj["max_tokens"])
