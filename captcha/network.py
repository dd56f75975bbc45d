"""The Keras CNN that classifies one glyph crop, and its training loop.

Small on purpose: batch reading must stay above 1,500 CAPTCHAs/s on two CPU cores, and a
glyph is a 28x28 crop with a few dozen classes. Random shifts and small zooms (active only
in training) make it tolerant of imperfect cuts.
"""

from __future__ import annotations

import numpy as np

from recognisers.backend import import_keras

PATIENCE = 3  # epochs without a lower validation loss before early stopping


def build_model(glyph_size: int, n_classes: int, width: int = 16):
    """conv-pool x3 -> dense -> softmax over the charset."""
    keras = import_keras()
    from keras import layers

    model = keras.Sequential(
        [
            keras.Input((glyph_size, glyph_size, 1)),
            layers.RandomTranslation(0.08, 0.08, fill_mode="constant"),
            layers.RandomZoom(0.08, fill_mode="constant"),
            layers.Conv2D(width, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(2 * width, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(2 * width, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dropout(0.3),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.3),
            layers.Dense(n_classes, activation="softmax"),
        ],
        name="glyph_cnn",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def fit(
    model,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    epochs: int,
    batch_size: int = 128,
    verbose: int = 2,
) -> list[dict]:
    """Train with early stopping on the validation slice (the best epoch's weights are kept).

    Returns the history as rows (one per epoch): the model's ``save`` writes it, fit writes nothing.
    """
    keras = import_keras()
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=PATIENCE, restore_best_weights=True)
    history = model.fit(
        train[0][..., None],
        train[1],
        validation_data=(val[0][..., None], val[1]),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=verbose,
        callbacks=[stop],
    ).history
    return [{"epoch": e, **{k: float(v[e]) for k, v in history.items()}} for e in range(len(history["loss"]))]


def classify(model, glyphs: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Class probabilities for a stack of glyph crops, in as few compiled calls as possible."""
    if len(glyphs) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    out = [
        np.asarray(model.predict_on_batch(glyphs[i : i + chunk, ..., None]))
        for i in range(0, len(glyphs), chunk)
    ]
    return np.concatenate(out)
