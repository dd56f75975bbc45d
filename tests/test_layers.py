"""The shared Keras layers: the fused batch normalisation trains as Keras' own does."""

import numpy as np
import pytest

from recognisers.backend import import_keras
from recognisers.layers import custom_objects, fused_batch_normalization


@pytest.fixture(scope="module")
def pair():
    """A Keras batch normalisation and a fused one with the same weights, after one training call
    on the same batch, with the outputs and gradients of both."""
    keras = import_keras()
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (8, 6, 10, 5)).astype("float32"))
    plain, fused = keras.layers.BatchNormalization(momentum=0.9), fused_batch_normalization()(momentum=0.9)
    gamma = np.random.default_rng(1).normal(1.0, 0.2, 5).astype("float32")
    for layer in (plain, fused):
        layer.build(x.shape)
        layer.gamma.assign(gamma)
    out = {}
    for name, layer in (("plain", plain), ("fused", fused)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y**3)  # not linear, so the gradients depend on the statistics
        out[name] = (y.numpy(), *(g.numpy() for g in tape.gradient(loss, [x, layer.gamma, layer.beta])))
    return plain, fused, x, out


def test_training_output_and_gradients_match_keras(pair):
    _, _, _, out = pair
    for plain, fused in zip(out["plain"], out["fused"]):
        np.testing.assert_allclose(fused, plain, rtol=1e-3, atol=1e-3)
    assert np.abs(out["plain"][0]).max() > 1  # normalised, not all near 0


def test_moving_statistics_update_like_keras(pair):
    plain, fused, x, _ = pair
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-5)
    assert not np.allclose(plain.moving_mean.numpy(), 0)  # the batch moved them
    n = x.shape[0] * x.shape[1] * x.shape[2]  # unbiased against biased batch variance: n / (n - 1)
    batch_plain = (plain.moving_variance.numpy() - 0.9) / 0.1
    batch_fused = (fused.moving_variance.numpy() - 0.9) / 0.1
    np.testing.assert_allclose(batch_fused, batch_plain * n / (n - 1), rtol=1e-4)
    np.testing.assert_allclose(fused(x).numpy(), plain(x).numpy(), rtol=1e-3, atol=1e-3)  # inference


def test_a_network_with_it_saves_and_loads(tmp_path):
    keras = import_keras()
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, fused_batch_normalization()(momentum=0.9)(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", custom_objects=custom_objects())
    assert type(loaded.layers[-1]) is fused_batch_normalization()
