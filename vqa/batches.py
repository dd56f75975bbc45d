"""Batches grouped by image: a few images and all their questions in each batch.

A batch is ``((images, questions, image_index), labels)`` where ``images`` holds each image
(or its cached features) once and ``image_index[i]`` says which of them question ``i`` is
about. The CNN then runs once per image per step, not once per question.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from recognisers.training import without_autotune


class GroupedQuestions:
    """Questions sorted by image, with each image's question range, for fast batch cuts."""

    def __init__(self, image_index: np.ndarray, n_images: int) -> None:
        self.order = np.argsort(image_index, kind="stable")
        counts = np.bincount(image_index, minlength=n_images)
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        self.n_images = n_images

    def images_per_batch(self, questions_per_batch: int) -> int:
        """How many images give about ``questions_per_batch`` questions on average."""
        mean = self.starts[-1] / max(self.n_images, 1)
        return max(1, int(round(questions_per_batch / max(mean, 1e-9))))

    def image_chunks(self, questions_per_batch: int, rng: np.random.Generator | None) -> list[np.ndarray]:
        """Images in (shuffled) order, cut into equal chunks (a fixed count per epoch)."""
        images = np.arange(self.n_images) if rng is None else rng.permutation(self.n_images)
        step = self.images_per_batch(questions_per_batch)
        return [images[i : i + step] for i in range(0, len(images), step)]

    def questions_of(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Question ids of these images and, per question, its image's position in ``images``."""
        lengths = self.starts[images + 1] - self.starts[images]
        ids = np.concatenate([self.order[self.starts[i] : self.starts[i + 1]] for i in images])
        return ids, np.repeat(np.arange(len(images), dtype=np.int32), lengths)


def iterate_batches(
    table: np.ndarray,
    image_index: np.ndarray,
    tokens: np.ndarray,
    labels: np.ndarray | None,
    questions_per_batch: int,
    rng: np.random.Generator | None = None,
) -> Iterator[tuple]:
    """Yield ``((images, tokens, index), labels)`` batches (labels None when not given)."""
    groups = GroupedQuestions(image_index, len(table))
    for images in groups.image_chunks(questions_per_batch, rng):
        ids, index = groups.questions_of(images)
        inputs = (table[images], tokens[ids], index)
        yield inputs, (None if labels is None else labels[ids]), ids


def training_dataset(
    table: np.ndarray,
    image_index: np.ndarray,
    tokens: np.ndarray,
    labels: np.ndarray,
    questions_per_batch: int,
    seed: int | None,
):
    """A ``tf.data`` pipeline of grouped batches, reshuffled every epoch (:func:`without_autotune`)."""
    import tensorflow as tf

    epoch = [0]

    def generate():
        rng = None if seed is None else np.random.default_rng([seed, epoch[0]])
        epoch[0] += 1
        for inputs, batch_labels, _ in iterate_batches(
            table, image_index, tokens, labels, questions_per_batch, rng
        ):
            yield inputs, batch_labels

    n_batches = len(GroupedQuestions(image_index, len(table)).image_chunks(questions_per_batch, None))
    signature = (
        (
            tf.TensorSpec((None, *table.shape[1:]), tf.as_dtype(table.dtype)),
            tf.TensorSpec((None, tokens.shape[1]), tf.int32),
            tf.TensorSpec((None,), tf.int32),
        ),
        tf.TensorSpec((None,), tf.int32),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_batches))
    return without_autotune(dataset)
