"""Where the model looked: attention maps, or gradient saliency for a model without attention.

An attention model's maps are its own softmax weights over the cells of the feature map, one
per hop, so they show what the answer was actually read from. A relation model's one map is
each cell's share of the summed pair activations (the pairs it takes part in). The baseline pools the image
away; for it the map is the gradient of the top answer's score (its logit) with respect to
the pixels (largest over the colour channels), which shows the pixels the answer is most
sensitive to.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass

import numpy as np

from vqa.images import load_image

_ANSWER_FEATURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # see answer_features


@dataclass(frozen=True)
class Explanation:
    """The answers and the maps behind them.

    ``maps`` has shape ``(k, h, w)``, each map scaled to a maximum of 1: one per attention hop
    (``method == "attention"``, h x w the feature-map cells), one share of the relations
    (``method == "relations"``, the same cells) or one gradient map at the
    image's input size (``method == "saliency"``). ``heat`` is what to look at first.
    """

    answers: list[tuple[str, float]]
    maps: np.ndarray
    method: str

    @property
    def heat(self) -> np.ndarray:
        """One map: the mean over the hops (each hop's map already peaks at 1)."""
        heat = self.maps.mean(axis=0)
        return heat / max(float(heat.max()), 1e-12)

    @property
    def labels(self) -> list[str]:
        if self.method == "saliency":
            return ["gradient saliency"]
        if self.method == "relations":
            return ["share of the relations"]
        return [f"attention, hop {k + 1}" for k in range(len(self.maps))]


def _scaled(maps: np.ndarray) -> np.ndarray:
    peak = maps.reshape(len(maps), -1).max(axis=1)
    return maps / np.maximum(peak, 1e-12)[:, None, None]


def attention_maps(network, pixels: np.ndarray, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(answer probabilities, maps ``(hops, side, side)``) of one image and one question."""
    probs, maps = network([pixels[None], tokens, np.zeros(1, np.int32)], training=False)
    maps = np.asarray(maps)[0]
    side = int(round(np.sqrt(maps.shape[-1])))
    return np.asarray(probs)[0], _scaled(maps.reshape(len(maps), side, side))


def answer_features(float_network):
    """The sub-model from ``float_network``'s inputs to its answer layer's input, built once per
    network and kept while the network lives (building a Keras model on every score cost more
    than running it)."""
    import keras

    features = _ANSWER_FEATURES.get(float_network)
    if features is None:
        features = keras.Model(float_network.inputs, float_network.get_layer("answers").input)
        _ANSWER_FEATURES[float_network] = features
    return features


def answer_score(float_network, pixels, tokens, answer: int):
    """The answer's unnormalised score (its logit, the softmax's input) for a batch of one.

    Saliency follows the score, not the probability (as Simonyan et al. 2014 do): a confident
    answer's probability is 1.0 in float32, and its gradient is then zero everywhere.
    """
    import keras

    dense = float_network.get_layer("answers")
    inputs = [keras.ops.convert_to_tensor(pixels, "float32"), keras.ops.convert_to_tensor(tokens)]
    features = answer_features(float_network)([*inputs, keras.ops.zeros((1,), "int32")])
    return keras.ops.matmul(features, dense.kernel[:, answer])[0] + dense.bias[answer]


def saliency_map(float_network, pixels: np.ndarray, tokens: np.ndarray, answer: int) -> np.ndarray:
    """|d score(answer) / d pixel|, largest over colour channels, shape ``(1, size, size)``."""
    import tensorflow as tf

    image = tf.Variable(pixels[None].astype(np.float32))
    with tf.GradientTape() as tape:
        score = answer_score(float_network, image, tf.constant(tokens), answer)
    grad = np.abs(np.asarray(tape.gradient(score, image)))[0].max(axis=-1)
    return _scaled(grad[None])


def write_explanation(model, image, question: str, png_path: str | os.PathLike) -> Explanation:
    """The image with each map over it, side by side, as a PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recognisers.training import save_figure

    explanation = model.explain(image, question)
    size = model.config.encoder.side
    pixels = load_image(image, size)
    fig, axes = plt.subplots(
        1, len(explanation.maps) + 1, figsize=(3.2 * (len(explanation.maps) + 1), 3.6), squeeze=False
    )
    axes[0, 0].imshow(pixels)
    answer, prob = explanation.answers[0]
    axes[0, 0].set_title(f"{answer} ({prob:.2f})", fontsize=9)
    for ax, heat, label in zip(axes[0, 1:], explanation.maps, explanation.labels):
        ax.imshow(pixels)
        ax.imshow(
            heat,
            cmap="jet",
            alpha=0.5,
            extent=(0, size, size, 0),
            interpolation="bilinear",
            vmin=0.0,
            vmax=1.0,
        )
        ax.set_title(label, fontsize=9)
    for ax in axes[0]:
        ax.axis("off")
    fig.suptitle(question, fontsize=10)
    fig.tight_layout()
    save_figure(fig, png_path)
    plt.close(fig)
    return explanation
