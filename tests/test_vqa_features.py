"""Image loading in odd modes and sizes, the VGG encoder and the feature cache."""

import os

import numpy as np
import pytest
from PIL import Image

from recognisers.errors import UserError
from vqa.config import EncoderConfig
from vqa.features import FeatureCache, build_compact_cnn, build_vgg_encoder
from vqa.images import load_image


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "1", "CMYK"])
def test_odd_modes_become_rgb(tmp_path, mode):
    img = Image.new("RGB", (50, 40), (200, 10, 10)).convert(mode)
    path = tmp_path / f"x.{'tiff' if mode in ('I;16', 'CMYK') else 'png'}"
    img.save(path)
    arr = load_image(path, 32)
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8


def test_16_bit_levels_keep_their_brightness(tmp_path):
    # two greys of a 16-bit PNG read as their 8-bit values, not stretched by the image's maximum
    levels = np.array([[128 * 257] * 4 + [40 * 257] * 4] * 8, np.uint16)
    Image.fromarray(levels).save(tmp_path / "deep.png")
    arr = load_image(tmp_path / "deep.png", 8)
    assert abs(int(arr[0, 0, 0]) - 128) <= 1 and abs(int(arr[0, 7, 0]) - 40) <= 1


def test_exif_orientation_is_applied(tmp_path):
    # stored sideways with the tag a camera writes (6: rotate 90 degrees clockwise to view)
    upright = np.full((40, 40, 3), 255, np.uint8)
    upright[:10] = (0, 0, 255)  # blue band at the top, as a viewer shows it
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "photo.jpg", exif=exif, quality=95)
    arr = load_image(tmp_path / "photo.jpg", 40).astype(int)
    assert arr[:10, :, 2].mean() - arr[:10, :, 0].mean() > 150  # the band is at the top again
    assert arr[-10:].min() > 200


def test_transparent_pixels_go_white(tmp_path):
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(tmp_path / "t.png")
    assert load_image(tmp_path / "t.png", 8).min() == 255


def test_huge_image_is_shrunk(tmp_path):
    Image.new("RGB", (6000, 4000), "blue").save(tmp_path / "big.jpg", quality=50)
    arr = load_image(tmp_path / "big.jpg", 64)
    assert arr.shape == (64, 64, 3) and arr[..., 2].mean() > 200


def test_arrays_are_accepted():
    assert load_image(np.zeros((10, 12), np.uint8), 16).shape == (16, 16, 3)
    assert load_image(np.ones((10, 12, 3), np.float32), 16).max() == 255


@pytest.mark.parametrize("content, message", [(None, "not found"), (b"not an image", "not an image")])
def test_unreadable_images(tmp_path, content, message):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_image(path, 32)


def test_truncated_image(tmp_path):
    Image.new("RGB", (64, 64), "red").save(tmp_path / "full.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:60])
    with pytest.raises(UserError):
        load_image(tmp_path / "cut.png", 32)


def test_compact_cnn_pools_to_last_width_with_its_convolutions_per_block():
    for convs in (1, 3):
        cnn = build_compact_cnn(EncoderConfig(image_size=32, filters=(4, 8), convs_per_block=convs))
        assert tuple(cnn.output.shape) == (None, 8)
        assert sum(layer.name.startswith("conv") for layer in cnn.layers) == 2 * convs


def test_vgg16_without_weights_gives_documented_shape():
    config = EncoderConfig(image_encoder="vgg16", image_size=32, vgg_layer="pool", vgg_weights=None)
    encoder = build_vgg_encoder(config)
    assert not encoder.trainable
    feats = np.asarray(encoder(np.random.default_rng(0).normal(size=(2, 32, 32, 3)) * 50))
    assert feats.shape == (2, 512)
    assert np.allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-4)


def test_fc7_needs_224():
    with pytest.raises(UserError, match="224"):
        EncoderConfig(image_encoder="vgg16", image_size=64, vgg_layer="fc7").check()
    with pytest.raises(UserError, match="not found"):
        EncoderConfig(image_encoder="vgg19", vgg_weights="/nonexistent.h5").check()


def test_feature_cache_reuses_and_invalidates(tmp_path):
    config = EncoderConfig(image_encoder="vgg16", image_size=32, vgg_layer="pool")
    encoder = build_vgg_encoder(config)
    paths = []
    for i, colour in enumerate(["red", "green", "blue"]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", (40, 40), colour).save(paths[-1])
    cache = FeatureCache(tmp_path / "cache", config, encoder)
    first = cache.features(paths)
    assert first.shape == (3, 512) and cache.computed == 3

    again = FeatureCache(tmp_path / "cache", config, encoder)
    assert np.array_equal(again.features(paths), first) and again.computed == 0

    Image.new("RGB", (40, 40), "yellow").save(paths[1])
    os.utime(paths[1], ns=(1, 1))
    changed = FeatureCache(tmp_path / "cache", config, encoder)
    feats = changed.features(paths)
    assert changed.computed == 1 and np.array_equal(feats[0], first[0])
