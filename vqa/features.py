"""Image encoders and the on-disk cache of frozen image features.

Two kinds of encoder:

* ``compact``: a small VGG-style stack (3x3 convolutions, max pooling) ending in global
  average pooling, trained with the rest of the model. Pooling, not Flatten + Dense, is what
  lets the image branch learn colour and shape at all on easy-VQA (a Flatten head sat on the
  question-only plateau of ~67%).
* ``vgg16`` / ``vgg19`` from ``keras.applications``, frozen: fc7 (4096-d, 224x224 input) or the
  last conv block average-pooled (512-d, any input of at least 32x32), L2-normalised. Their
  features never change, so they are computed once per image and cached on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recognisers.backend import import_keras
from recognisers.contract import config_to_json
from recognisers.errors import UserError
from vqa.config import FEATURE_DIMS, EncoderConfig
from vqa.images import load_image, load_images

VGG_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def build_compact_cnn(config: EncoderConfig, pool: bool = True, dtype: str = "uint8"):
    """The trainable VGG-style stack: per block ``convs_per_block`` 3x3 conv + batch norm +
    ReLU, a 2x2 max pool; then global average pooling (``pool``), or the feature map itself for a spatial
    model (8x8 cells for 64x64 images and three blocks).

    Batch norm matters here: easy-VQA images are mostly white, so without it the pooled
    features barely differ between images and the model settles on the question-only answer.
    """
    keras = import_keras()
    from keras import layers

    inputs = keras.Input((config.side, config.side, 3), dtype=dtype, name="images")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    for i, width in enumerate(config.widths):
        for part in "abcdefgh"[: config.convs]:
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i}{part}")(x)
            x = layers.BatchNormalization(name=f"bn{i}{part}")(x)
            x = layers.ReLU(name=f"relu{i}{part}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    if pool:
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, x, name="compact_vgg")


def build_vgg_encoder(config: EncoderConfig):
    """A frozen VGG16/VGG19 giving L2-normalised fc7 or pooled last-conv-block features.

    Input: VGG-preprocessed images (see :func:`vgg_preprocess`). ``vgg_weights``: None
    (random, for tests and offline use), ``"imagenet"`` (Keras downloads and caches them), or
    a local weights file.
    """
    keras = import_keras()
    app = keras.applications.VGG16 if config.image_encoder == "vgg16" else keras.applications.VGG19
    size = config.side
    try:
        if config.vgg_layer == "fc7":
            base = app(include_top=True, weights=config.vgg_weights, input_shape=(size, size, 3))
            out = base.get_layer("fc2").output
        else:
            base = app(
                include_top=False, weights=config.vgg_weights, input_shape=(size, size, 3), pooling="avg"
            )
            out = base.output
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        raise UserError(
            f"cannot build {config.image_encoder} with weights {config.vgg_weights!r}: {reason}"
        ) from None
    out = keras.layers.UnitNormalization(name="l2_norm")(out)
    encoder = keras.Model(base.input, out, name=f"{config.image_encoder}_{config.vgg_layer}")
    encoder.trainable = False
    return encoder


def vgg_preprocess(images: np.ndarray) -> np.ndarray:
    """RGB uint8 -> the BGR, mean-subtracted float input VGG was trained on."""
    return images[..., ::-1].astype(np.float32) - VGG_MEAN_BGR


def encoder_fingerprint(config: EncoderConfig, encoder) -> str:
    """A digest of the encoder's settings and weights: cached features are valid iff it matches."""
    digest = hashlib.sha1(json.dumps(config_to_json(config), sort_keys=True).encode())
    for weight in encoder.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$VQA_CACHE_DIR``, else ``~/.cache/captcha-vqa/vqa-features``."""
    env = os.environ.get("VQA_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "captcha-vqa" / "vqa-features"


class FeatureCache:
    """Frozen-encoder features on disk, one ``.npy`` per image and encoder.

    The key is the image's absolute path, modification time and size plus the encoder
    fingerprint, so an edited image or another encoder never reuses stale features.
    """

    def __init__(self, directory: str | os.PathLike, config: EncoderConfig, encoder) -> None:
        self.directory = Path(directory)
        self.config = config
        self.encoder = encoder
        self.fingerprint = encoder_fingerprint(config, encoder)
        self.computed = 0

    def key(self, path: str) -> str:
        try:
            stat = os.stat(path)
        except OSError:
            raise UserError(f"image not found: {path}") from None
        ident = f"{os.path.abspath(path)}|{stat.st_mtime_ns}|{stat.st_size}|{self.fingerprint}"
        return hashlib.sha1(ident.encode()).hexdigest()

    def features(self, paths: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Features of every image, computing (with a progress bar) only the missing ones."""
        dim = FEATURE_DIMS[self.config.vgg_layer]
        out = np.empty((len(paths), dim), np.float32)
        files = [self.directory / f"{self.key(p)}.npy" for p in paths]
        missing = []
        for i, file in enumerate(files):
            try:
                out[i] = np.load(file)
            except (OSError, ValueError):
                missing.append(i)
        if missing:
            self._compute(paths, files, missing, out, batch_size)
        return out

    def _compute(self, paths, files, missing, out, batch_size) -> None:
        from rich.progress import Progress

        self.directory.mkdir(parents=True, exist_ok=True)
        size = self.config.side
        with Progress(transient=True) as progress:
            task = progress.add_task(f"{self.config.image_encoder} features", total=len(missing))
            for start in range(0, len(missing), batch_size):
                chunk = missing[start : start + batch_size]
                batch = np.stack([load_image(paths[i], size) for i in chunk])
                feats = np.asarray(self.encoder(vgg_preprocess(batch), training=False))
                for i, feat in zip(chunk, feats):
                    out[i] = feat
                    tmp = files[i].with_suffix(".tmp.npy")
                    np.save(tmp, feat)
                    os.replace(tmp, files[i])
                self.computed += len(chunk)
                progress.advance(task, len(chunk))


def image_table(
    images: Sequence[str | os.PathLike | np.ndarray],
    config: EncoderConfig,
    image_encoder=None,
    cache_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """What the network's image input takes: pixels (trainable CNN) or frozen VGG features.

    Features of image files are cached on disk when ``cache_dir`` is given, so that a frozen
    encoder runs once per image, not once per training run or evaluation.
    """
    if not config.frozen:
        return load_images(images, config.side)
    if cache_dir is not None and not any(isinstance(im, np.ndarray) for im in images):
        return FeatureCache(cache_dir, config, image_encoder).features([str(im) for im in images])
    pixels = load_images(images, config.side)
    return np.asarray(image_encoder(vgg_preprocess(pixels), training=False))
