"""Labels from file names and labels.csv, case handling, image reading, splits."""

import numpy as np
import pytest
from PIL import Image

from captcha.data import label_from_name, load_folder, read_image, read_pixels, split, to_gray, to_pixels
from recognisers.errors import UserError


def touch_png(path, size=(30, 12)):
    Image.new("L", size, 255).save(path)


@pytest.mark.parametrize(
    "name, label", [("2A2X.png", "2A2X"), ("2A2X_0007.png", "2A2X"), ("002p_0123456789abcdef.jpg", "002p")]
)
def test_label_is_the_stem_before_the_first_underscore(tmp_path, name, label):
    assert label_from_name(tmp_path / name) == label


def test_folder_labels_case_and_csv_override(tmp_path):
    for name in ("abC1_1.png", "XYZ9.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"") if name.endswith(".txt") else touch_png(tmp_path / name)
    assert [s.label for s in load_folder(tmp_path)] == ["XYZ9", "abC1"]
    assert [s.label for s in load_folder(tmp_path, "upper")] == ["XYZ9", "ABC1"]
    assert [s.label for s in load_folder(tmp_path, "lower")] == ["xyz9", "abc1"]
    (tmp_path / "labels.csv").write_text("filename,label\nXYZ9.png,Q7Q7\n")
    assert [s.label for s in load_folder(tmp_path)] == ["Q7Q7", "abC1"]


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_folder(tmp_path / "missing")
    with pytest.raises(UserError, match="no images"):
        load_folder(tmp_path)
    touch_png(tmp_path / "_0001.png")
    with pytest.raises(UserError, match="no usable labels"):
        load_folder(tmp_path)


def test_read_image_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(UserError, match="not a readable image"):
        read_image(tmp_path / "text.png")
    Image.new("RGB", (20, 10), (10, 20, 30)).save(tmp_path / "x.gif")
    assert read_image(tmp_path / "x.gif").shape == (10, 20)


def test_arrays_of_any_common_layout_become_grey():
    rgb = np.zeros((10, 20, 3), np.uint8)
    assert to_gray(rgb).shape == (10, 20)
    assert to_gray(np.zeros((10, 20, 4), np.uint8)).shape == (10, 20)
    assert to_gray(np.ones((10, 20), np.float32)).max() == 255
    with pytest.raises(UserError):
        to_gray(np.zeros((3,), np.uint8))


def test_array_levels_read_as_a_file_of_their_depth(tmp_path):
    levels = np.array([[128] * 8 + [40] * 8] * 8, np.uint8)
    Image.fromarray(levels.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    from_file = read_pixels(tmp_path / "deep.png")
    assert np.array_equal(to_pixels(levels.astype(np.uint16) * 257), from_file)
    assert abs(int(from_file[0, 0]) - 128) <= 1
    assert to_pixels(levels.astype(np.int64))[0, 0] == 128  # plain Python numbers: 0 to 255
    assert to_pixels(np.ones((8, 8), bool)).min() == 255


def test_labels_csv_rows_that_name_no_image_are_noted(tmp_path, capsys):
    touch_png(tmp_path / "AB1.png")
    (tmp_path / "labels.csv").write_text("AB1.png,XY\n./AB1.png,ZZ\n")
    assert [s.label for s in load_folder(tmp_path)] == ["XY"]
    assert "1 row(s) of labels.csv name no image" in capsys.readouterr().err


def test_split_is_by_file_and_repeatable(tmp_path):
    for i in range(10):
        touch_png(tmp_path / f"AB{i}.png")
    samples = load_folder(tmp_path)
    a = split(samples, 0.2, seed=3)
    assert a == split(samples, 0.2, seed=3)
    assert len(a[1]) == 2 and not set(a[0]) & set(a[1])


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_pixels_read_as_white_and_colour_is_kept(tmp_path, mode):
    image = Image.new("RGBA", (30, 12), (0, 0, 0, 0))  # transparent black, as many CAPTCHAs store it
    image.paste((200, 30, 30, 255), (10, 3, 20, 9))
    path = tmp_path / "t.png"
    if mode == "P":  # palette entry 0, black, marked transparent (like cc-digits)
        image = Image.new("P", (30, 12), 0)
        image.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
        image.paste(1, (10, 3, 20, 9))
        image.save(path, transparency=0)
    else:
        image.convert(mode).save(path)
    grey = read_image(path)
    assert grey[0, 0] == 255 and grey[5, 15] < 200
    pixels = read_pixels(path)
    if mode == "RGBA":
        assert pixels.shape == (12, 30, 3) and tuple(pixels[5, 15]) == (200, 30, 30)
        assert tuple(to_pixels(np.asarray(image))[0, 0]) == (255, 255, 255)
