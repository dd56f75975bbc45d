"""Issue 9: nothing a user made is lost, no tracebacks, bounded work on hostile input."""

import json
import os
import signal
from pathlib import Path

import pytest

from recognisers.errors import UserError, run_cli
from recognisers.modeldir import lock_dir, read_meta, staged_model_dir, write_meta


def make_model(path: Path, kind: str = "demo", value: int = 1) -> None:
    with staged_model_dir(path, kind=kind, force=True) as tmp:
        write_meta(tmp, kind, 1, {"x": value})


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- D1: the final rename replaces only what was checked -----------------------------------------
def test_folder_made_at_out_during_training_is_kept(tmp_path):
    out = tmp_path / "m"
    with pytest.raises(UserError, match="changed by something else.*new model is in"):
        with staged_model_dir(out, kind="demo") as tmp:
            write_meta(tmp, "demo", 1, {"x": 2})
            out.mkdir()
            (out / "keep.txt").write_text("keep")
    assert (out / "keep.txt").read_text() == "keep"
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("m.new-")]
    assert len(kept) == 1 and read_meta(kept[0], "demo", 1)["x"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_two_trainings_into_one_new_out_do_not_overwrite_each_other(tmp_path):
    out = tmp_path / "m"
    with pytest.raises(UserError, match="new model is in"):
        with staged_model_dir(out, kind="demo") as first:
            write_meta(first, "demo", 1, {"x": 1})
            make_model(out, value=2)  # the second run finishes first
    assert read_meta(out, "demo", 1)["x"] == 2


def test_force_does_not_replace_a_folder_swapped_in_during_training(tmp_path):
    out = tmp_path / "m"
    make_model(out)
    with pytest.raises(UserError, match="changed by something else"):
        with staged_model_dir(out, kind="demo", force=True) as tmp:
            write_meta(tmp, "demo", 1, {"x": 2})
            for p in out.iterdir():
                p.unlink()
            out.rmdir()
            out.mkdir()
            (out / "keep.txt").write_text("keep")
    assert names(out) == ["keep.txt"]


def test_force_does_not_replace_a_model_emptied_during_training(tmp_path):
    out = tmp_path / "m"
    make_model(out)
    with pytest.raises(UserError, match="changed by something else"):
        with staged_model_dir(out, kind="demo", force=True) as tmp:
            write_meta(tmp, "demo", 1, {"x": 2})
            (out / "meta.json").write_text("{}")
            (out / "keep.txt").write_text("keep")
    assert "keep.txt" in names(out)


def test_an_empty_folder_at_out_is_used(tmp_path):
    (tmp_path / "m").mkdir()
    make_model(tmp_path / "m")
    assert read_meta(tmp_path / "m", "demo", 1)["x"] == 1


# -- D2: only a valid model of the same kind is replaceable --------------------------------------
@pytest.mark.parametrize(
    "meta", ["{}", '{"kind": "demo"}', '{"kind": "demo", "format_version": 1}', "[]", "not json"]
)
def test_force_never_replaces_a_folder_that_merely_holds_a_meta_json(tmp_path, meta):
    out = tmp_path / "x"
    out.mkdir()
    (out / "meta.json").write_text(meta)
    (out / "keep.txt").write_text("keep")
    with pytest.raises(UserError, match="not a model directory"):
        make_model(out)
    assert names(out) == ["keep.txt", "meta.json"]


def test_force_from_one_tool_refuses_the_other_tools_model(tmp_path):
    make_model(tmp_path / "m", kind="vqa")
    with pytest.raises(UserError, match="holds a vqa model, not a captcha model"):
        make_model(tmp_path / "m", kind="captcha")
    assert read_meta(tmp_path / "m", "vqa", 1)["x"] == 1


# -- D3: unique staging names; stale ones cleaned; SIGTERM like Ctrl-C ---------------------------
def test_force_keeps_a_user_folder_named_like_the_old_backup(tmp_path):
    make_model(tmp_path / "m")
    (tmp_path / ".m.old").mkdir()
    (tmp_path / ".m.old" / "keep.txt").write_text("keep")
    make_model(tmp_path / "m", value=2)
    assert (tmp_path / ".m.old" / "keep.txt").exists()
    assert names(tmp_path) == [".m.old", "m"]


def test_stale_staging_folders_are_cleaned_and_reported(tmp_path):
    (tmp_path / ".m.abcd1234.tmp").mkdir()
    (tmp_path / ".m.abcd1234.tmp" / "half.keras").write_text("x")
    notes = []
    with staged_model_dir(tmp_path / "m", kind="demo", log=notes.append) as tmp:
        write_meta(tmp, "demo", 1, {})
    assert names(tmp_path) == ["m"] and "interrupted run" in notes[0]


def test_a_backup_left_by_a_killed_replace_is_restored(tmp_path):
    make_model(tmp_path / "m")
    (tmp_path / "m").rename(tmp_path / ".m.zz9_abcd.old")  # killed between the two renames
    notes = []
    with pytest.raises(UserError, match="--force"):
        with staged_model_dir(tmp_path / "m", kind="demo", log=notes.append):
            pass
    assert read_meta(tmp_path / "m", "demo", 1)["x"] == 1
    assert names(tmp_path) == ["m"] and "restored" in notes[0]


def test_a_staging_folder_in_use_is_left_alone(tmp_path):
    busy = tmp_path / ".m.inuse123.tmp"
    busy.mkdir()
    fd = lock_dir(busy)
    try:
        make_model(tmp_path / "m")
        assert busy.exists()
    finally:
        os.close(fd)


def test_sigterm_cleans_up_like_ctrl_c(tmp_path, capsys):
    def main(argv):
        with staged_model_dir(tmp_path / "m", kind="demo"):
            os.kill(os.getpid(), signal.SIGTERM)
            raise AssertionError("SIGTERM did not interrupt")

    assert run_cli("captcha", main, []) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "captcha: terminated\n"
    assert names(tmp_path) == []


# -- D4, D5, D12: one pixel limit, checked from the header before decoding ------------------------
def png_claiming(path: Path, width: int, height: int, colour_type: int = 0) -> Path:
    """A PNG whose header claims ``width`` x ``height`` but holds only a few bytes of data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
    )
    return path


def bmp_claiming(path: Path, width: int, height: int) -> Path:
    """A real 8x8 BMP whose header is then edited to claim ``width`` x ``height``."""
    import struct

    from PIL import Image

    Image.new("L", (8, 8), 255).save(path)
    data = bytearray(path.read_bytes())
    data[18:26] = struct.pack("<ii", width, height)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda d: png_claiming(d / "bomb.png", 15000, 15000),  # truncated, 225 megapixels
        lambda d: png_claiming(d / "huge.png", 50000, 40000, 2),  # 2 billion pixels
        lambda d: bmp_claiming(d / "big.bmp", 8000, 8000),  # 64 megapixels: Pillow allows it
    ],
)
def test_images_over_the_pixel_limit_are_refused_before_decoding_in_both_tools(tmp_path, make):
    from captcha.data import read_image
    from recognisers.images import MAX_PIXELS
    from vqa.images import load_image

    path = make(tmp_path)
    for read in (read_image, lambda p: load_image(p, 32)):
        with pytest.raises(UserError, match=f"image too large.*the limit is {MAX_PIXELS:,}"):
            read(path)


def test_captcha_cli_refuses_a_bomb_in_one_line(tmp_path, capsys):
    from captcha.cli import main

    code = main(
        ["segment", str(png_claiming(tmp_path / "bomb.png", 15000, 15000)), "--out", str(tmp_path / "o.png")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "image too large" in err[0]


def test_large_legal_captchas_are_shrunk_before_segmentation(tmp_path):
    import cv2
    import numpy as np

    from captcha.data import MAX_SIDE, read_image
    from captcha.segment import SegmentSettings, segment

    image = np.full((1000, 3000), 255, np.uint8)
    for k in range(4):
        cv2.putText(image, "ABCD"[k], (300 + 600 * k, 700), cv2.FONT_HERSHEY_SIMPLEX, 18, 0, 60)
    cv2.imwrite(str(tmp_path / "big.png"), image)
    gray = read_image(tmp_path / "big.png")
    assert gray.shape == (round(1000 * MAX_SIDE / 3000), MAX_SIDE)
    assert len(segment(gray, SegmentSettings(gray.shape[0] / 2)).boxes) == 4


# -- D6: transparent backgrounds are white ----------------------------------------------------
@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_dark_text_on_a_transparent_background_is_read_as_ink(tmp_path, mode):
    from PIL import Image, ImageDraw

    from captcha.data import read_image
    from captcha.segment import SegmentSettings, segment

    img = Image.new("RGBA", (120, 40), (0, 0, 0, 0))  # transparent black
    ImageDraw.Draw(img).text((10, 10), "AB  CD", fill=(20, 20, 20, 255))
    if mode == "P":
        img.convert("P").save(tmp_path / "t.png", transparency=0)
    else:
        img.convert(mode).save(tmp_path / "t.png")
    gray = read_image(tmp_path / "t.png")
    assert gray[0, 0] == 255 and gray.min() < 60
    assert len(segment(gray, SegmentSettings(8.0)).boxes) >= 3


# -- D13: a truncated JPEG is refused in both tools ---------------------------------------------
def test_truncated_jpeg_is_refused_by_both_tools_and_a_whole_one_read(tmp_path):
    import numpy as np
    from PIL import Image

    from captcha.data import read_image
    from vqa.images import load_image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (60, 200), dtype=np.uint8)).save(tmp_path / "a.jpg")
    whole = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "padded.jpg").write_bytes(whole + b"\0" * 10)
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    assert read_image(tmp_path / "a.jpg").shape == (60, 200)
    assert read_image(tmp_path / "padded.jpg").shape == (60, 200)
    for read in (read_image, lambda p: load_image(p, 32)):
        with pytest.raises(UserError, match="truncated"):
            read(tmp_path / "cut.jpg")


# -- D8: bad output paths are one error line, before any work ---------------------------------
def one_error_line(capsys, prog: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{prog}: error:"), err
    return err[0]


@pytest.fixture
def places(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "{m}", "{d}", "--report", "{t}/folder"], "is a folder"),
        (["evaluate", "{m}", "{d}", "--report", "{t}/file/r.json"], "is not a folder"),
        (
            ["evaluate", "{m}", "{d}", "--report", "{t}/r.json", "--worst", "{t}/file/w.png"],
            "is not a folder",
        ),
        (["segment", "{t}/file", "--out", "{t}/folder"], "is a folder"),
        (["segment", "{t}/file", "--out", "{t}/file/deeper/o.png"], "is not a folder"),
        (["train", "{d}", "--out", "{t}/file/m"], "is not a folder"),
        (["generate", "{t}/file/g"], "is not a folder"),
        (["generate", "{t}/file"], "exists and is not a folder"),
        # outputs that would destroy or join what the command reads
        (["evaluate", "{t}/model", "{d}", "--report", "{t}/model/meta.json"], "model's own files"),
        (["evaluate", "{m}", "{d}", "--report", "{d}/r.json"], "the input"),
        (["evaluate", "{m}", "{d}", "--report", "{t}/r.json", "--worst", "{t}/r.json"], "same file"),
        (["segment", "{d}/AB12.png", "--out", "{d}/AB12.png"], "the input"),
        (["segment", "{d}/AB12.png", "--out", "{t}/o.png", "--length", "100000"], "--length"),
    ],
)
def test_captcha_bad_output_paths(places, capsys, argv, message):
    from captcha.cli import main

    data = places / "data"
    data.mkdir()
    png_claiming(data / "AB12.png", 40, 20)
    (places / "model").mkdir()
    (places / "model" / "meta.json").write_text("{}")
    argv = [a.format(t=places, m=places / "no-model", d=data) for a in argv]
    assert main(argv) == 1
    assert message in one_error_line(capsys, "captcha")


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["evaluate", "{t}/no-model", "--dataset", "jsonl", "--data", "x", "--report", "{t}/folder"],
            "is a folder",
        ),
        (
            ["evaluate", "{t}/no-model", "--dataset", "jsonl", "--data", "x", "--report", "{t}/file/r.json"],
            "is not a folder",
        ),
        (
            [
                "evaluate",
                "{t}/no-model",
                "--dataset",
                "jsonl",
                "--data",
                "x",
                "--report",
                "{t}/r.json",
                "--confusion",
                "{t}/folder",
            ],
            "is a folder",
        ),
        (["train", "--dataset", "jsonl", "--train", "x", "--out", "{t}/file/m"], "is not a folder"),
        (
            ["train", "--dataset", "jsonl", "--train", "x", "--out", "{t}/m", "--cache-dir", "{t}/file"],
            "--cache-dir",
        ),
        (
            ["evaluate", "{t}/no-model", "--dataset", "jsonl", "--data", "{t}/file", "--report", "{t}/file"],
            "the input",
        ),
        (
            ["evaluate", "{t}/model", "--dataset", "jsonl", "--data", "x", "--report", "{t}/model/meta.json"],
            "model's own files",
        ),
    ],
)
def test_vqa_bad_output_paths(places, capsys, argv, message):
    from vqa.cli import main

    (places / "model").mkdir()
    (places / "model" / "meta.json").write_text("{}")

    assert main([a.format(t=places) for a in argv]) == 1
    assert message in one_error_line(capsys, "vqa")


@pytest.mark.parametrize(
    "options, message",
    [
        (["--reader", "segment", "--glyph-size", "6"], "glyph-size must be at least 8"),
        (["--reader", "sequence", "--height", "6"], "height must be at least 8"),
        (["--reader", "sequence", "--filters", "8,8,8,8,8,8"], "height must be at least 64"),
        (["--reader", "sequence", "--max-width", "1"], "max-width"),
        (["--choice-fraction", "1.5"], "choice-fraction"),
        (["--min-z", "nan"], "min-z"),
        (["--seed", "-1"], "seed must lie in"),
    ],
)
def test_train_options_no_network_can_take_are_refused_first(tmp_path, capsys, options, message):
    from captcha.cli import main

    data = tmp_path / "data"
    data.mkdir()
    png_claiming(data / "AB12.png", 40, 20)
    assert main(["train", str(data), "--out", str(tmp_path / "m"), *options]) == 1
    assert message in one_error_line(capsys, "captcha") and not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (["--val-fraction", "nan"], "--val-fraction"),
        (["--model", "cnn-lstm", "--dropout", "1.5"], "--dropout"),
        (["--image-size", "75"], "72 or 80"),
        (["--filters", "8,8,8,8,8,8,8"], "too small for 7 blocks"),
        (["--seed", "-1"], "--seed must lie in"),
    ],
)
def test_vqa_train_options_no_network_can_take_are_refused_first(tmp_path, capsys, options, message):
    from vqa.cli import main

    argv = ["train", "--dataset", "jsonl", "--train", "no-such.jsonl", "--out", str(tmp_path / "m"), *options]
    assert main(argv) == 1
    assert message in one_error_line(capsys, "vqa") and not (tmp_path / "m").exists()


def test_labels_longer_than_the_sequence_reader_can_read_are_refused():
    from captcha.sequence import check_frames

    check_frames(["ABCDEFGH"], 32)  # 8 frames for 8 characters
    with pytest.raises(UserError, match="--input-width 40"):
        check_frames(["ABCDEFGHH"], 32)  # 9 characters and a blank between the two Hs: 10


def test_folders_replaced_whole_are_checked_first(places, capsys, monkeypatch):
    from vqa.cli import main
    from vqa.shapes import MANIFEST

    assert main(["generate", "shapes", str(places / "file"), "--images", "2"]) == 1
    assert "is not a folder" in one_error_line(capsys, "vqa")
    assert main(["generate", "shapes", str(places / "set"), "--images", "2"]) == 0
    capsys.readouterr()
    before = (places / "set" / MANIFEST).read_text()
    monkeypatch.chdir(places / "set")  # replacing the current folder would strand the shell in it
    assert main(["generate", "shapes", ".", "--images", "3", "--force"]) == 1
    assert "current folder" in one_error_line(capsys, "vqa")
    assert (places / "set" / MANIFEST).read_text() == before
    (places / "empty").mkdir()
    monkeypatch.chdir(places / "empty")
    assert main(["train", "--dataset", "jsonl", "--train", "x", "--out", "."]) == 1
    assert "current folder" in one_error_line(capsys, "vqa")
    monkeypatch.chdir(places)
    assert main(["generate", "shapes", "set", "--images", "3", "--force"]) == 0
    assert (places / "set" / MANIFEST).read_text() != before
    assert sorted(p.name for p in places.iterdir()) == ["empty", "file", "folder", "set"]  # no leftovers


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_report_folder_is_refused(places, capsys):
    from captcha.cli import main

    locked = places / "locked"
    locked.mkdir(mode=0o500)
    assert main(["evaluate", "m", "d", "--report", str(locked / "r.json")]) == 1
    assert "no permission" in one_error_line(capsys, "captcha")


# -- with a tiny trained model ------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A labelled folder and a model trained on it for one epoch (seconds, not minutes)."""
    from captcha.cli import main

    root = tmp_path_factory.mktemp("tiny")
    assert (
        main(
            [
                "generate",
                str(root / "data"),
                "--count",
                "150",
                "--length",
                "4",
                "--charset",
                "ABCDEF23",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                str(root / "data"),
                "--out",
                str(root / "model"),
                "--epochs",
                "1",
                "--align-rounds",
                "0",
                "--reader",
                "segment",  # the tests edit its segmentation settings
                "--quiet",
            ]
        )
        == 0
    )
    return root


def test_evaluate_counts_unreadable_files_and_still_writes_the_report(tiny, tmp_path, capsys):
    from captcha.cli import main

    data = tmp_path / "data"
    data.mkdir()
    for path in sorted((tiny / "data").iterdir())[:6]:
        (data / path.name).write_bytes(path.read_bytes())
    (data / "AAAA_empty.png").write_bytes(b"")
    (data / "BBBB_cut.png").write_bytes((data / path.name).read_bytes()[:60])
    code = main(["evaluate", str(tiny / "model"), str(data), "--report", str(tmp_path / "r.json")])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["count"] == 8 and report["unreadable"] == 2
    assert sorted(report["unreadable_files"]) == ["AAAA_empty.png", "BBBB_cut.png"]
    assert (tmp_path / "r.worst.png").stat().st_size > 0


# -- D14: labels.csv with a byte-order mark ------------------------------------------------------
@pytest.mark.parametrize("header", ["", "filename,label\r\n"])
def test_labels_csv_with_a_byte_order_mark_keeps_its_first_row(tmp_path, header):
    from captcha.data import load_folder

    for name in ("img1.png", "img2.png"):
        png_claiming(tmp_path / name, 40, 20)
    (tmp_path / "labels.csv").write_bytes(
        ("\ufeff" + header + "img1.png,AB12\r\nimg2.png,CD34\r\n").encode("utf-8")
    )
    assert [s.label for s in load_folder(tmp_path)] == ["AB12", "CD34"]


# -- D10: every meta.json field validated on load -----------------------------------------------
def edited_copy(model: Path, dest: Path, edit) -> Path:
    import shutil

    shutil.copytree(model, dest)
    meta = json.loads((dest / "meta.json").read_text())
    edit(meta)
    (dest / "meta.json").write_text(json.dumps(meta))
    return dest


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["segmentation"].update(glyph_size="abc"), "segmentation.glyph_size must be an integer"),
        (lambda m: m["segmentation"].update(glyph_width=-3), "sizes must be positive"),
        (lambda m: m["segmentation"].update(lattice="zigzag"), "lattice must be one of"),
        (lambda m: m["segmentation"].update(colour=1), "unknown field(s) segmentation.colour"),
        (lambda m: m.update(lengths="4"), "lengths must be a list of integers"),
        (lambda m: m.update(charset=["A"]), "charset must be a string"),
        (lambda m: m.update(charset=m["charset"] + "XY"), "characters + 1 junk class"),
        (lambda m: m["segmentation"].update(glyph_size=32), "32-pixel glyphs"),
        (lambda m: m.update(model_file="../elsewhere.keras"), "not valid"),
    ],
)
def test_hand_edited_captcha_meta_is_one_clear_error(tiny, tmp_path, capsys, edit, message):
    from captcha.cli import main

    damaged = edited_copy(tiny / "model", tmp_path / "damaged", edit)
    image = sorted((tiny / "data").iterdir())[0]
    assert main(["predict", str(damaged), str(image)]) == 1
    line = one_error_line(capsys, "captcha")
    assert "meta.json" in line and message in line, line


def vqa_meta(tmp_path: Path) -> Path:
    """A vqa model directory with a valid meta.json (weights are not reached by these checks)."""
    from recognisers.contract import config_to_json
    from vqa.config import VQAConfig
    from vqa.model import FORMAT_VERSION, KIND

    write_meta(
        tmp_path,
        KIND,
        FORMAT_VERSION,
        {
            "config": config_to_json(VQAConfig().resolved()),
            "answers": ["yes", "no"],
            "question_encoder": {"vocabulary": ["what", "is"], "max_length": 4, "max_tokens": 100},
        },
    )
    return tmp_path


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda m: m["config"]["encoder"].update(image_size="abc"),
            "config.encoder.image_size must be an integer",
        ),
        (lambda m: m["config"]["encoder"].update(filters=[]), "--filters must be positive"),
        (
            lambda m: m["config"]["network"].update(lstm_units=[64, "x"]),
            "config.network.lstm_units must be a list of integers",
        ),
        (lambda m: m["config"]["network"].update(fusion="sum"), "--fusion must be one of"),
        (
            lambda m: m["question_encoder"].update(vocabulary="what is"),
            "vocabulary must be a list of strings",
        ),
        (lambda m: m.update(answers=[]), "not positive"),
        (lambda m: m.pop("config"), "no config field"),
    ],
)
def test_hand_edited_vqa_meta_is_one_clear_error(tmp_path, edit, message):
    from vqa.model import VQAModel

    model = vqa_meta(tmp_path)
    meta = json.loads((model / "meta.json").read_text())
    edit(meta)
    (model / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="meta.json is damaged") as info:
        VQAModel.load(model)
    assert message in str(info.value)


def test_a_valid_vqa_meta_passes_the_checks_and_reaches_the_weights(tmp_path):
    from vqa.model import VQAModel

    with pytest.raises(UserError, match="model.weights.h5 is missing"):
        VQAModel.load(vqa_meta(tmp_path))


# -- D11: a closed output pipe ends the command quietly ----------------------------------------
def test_closed_output_pipe_is_quiet(tiny):
    import subprocess
    import sys

    images = [str(p) for p in sorted((tiny / "data").iterdir())[:3]]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "captcha", "predict", str(tiny / "model"), *images, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    proc.stdout.close()  # like `| head -0`: the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait() == 128 + signal.SIGPIPE and err == "", err


# -- D9: a symbolic link loop is one clear error ----------------------------------------------
def test_vqa_predict_on_a_symlink_loop_is_a_clear_error(tmp_path, vqa_model_dir):
    from vqa.model import VQAModel

    model = VQAModel.load(vqa_model_dir)
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    with pytest.raises(UserError, match="looping symbolic link"):
        model.predict(tmp_path / "loop.png", "what colour")


# -- doubtful list, decided ------------------------------------------------------------------
def test_a_truncated_keras_file_is_called_damaged_not_missing(tiny, tmp_path, capsys):
    import shutil

    from captcha.cli import main

    shutil.copytree(tiny / "model", tmp_path / "m")
    keras_file = tmp_path / "m" / "glyph_cnn.keras"
    keras_file.write_bytes(keras_file.read_bytes()[:5000])
    assert main(["predict", str(tmp_path / "m"), str(sorted((tiny / "data").iterdir())[0])]) == 1
    assert "damaged or truncated" in one_error_line(capsys, "captcha")


@pytest.mark.parametrize("prog", ["captcha", "vqa"])
def test_usage_errors_say_what_was_wrong_first(prog, capsys):
    import importlib

    main = importlib.import_module(f"{prog}.cli").main
    with pytest.raises(SystemExit) as info:
        main(["predict"])
    err = capsys.readouterr().err.splitlines()
    assert info.value.code == 2
    assert err[0].startswith(f"{prog} predict: error: the following arguments are required")
    assert err[1].startswith(f"usage: {prog} predict")


@pytest.mark.parametrize(
    "question, unknown",
    [("what color?", []), ("??? !!", None), ("🙂", ["🙂"]), ("zebra quantum", ["zebra", "quantum"])],
)
def test_a_question_with_no_known_word_is_flagged(tmp_path, vqa_model_dir, capsys, question, unknown):
    from PIL import Image

    from vqa.cli import main

    Image.new("RGB", (40, 40), "red").save(tmp_path / "red.png")
    code = main(
        [
            "predict",
            str(vqa_model_dir),
            "--image",
            str(tmp_path / "red.png"),
            "--question",
            question,
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out)["unknown_words"] == (unknown or [])
    assert ("no word of the question" in err) == (unknown != [])  # None: no words at all


def test_evaluate_names_the_characters_the_model_never_saw(tiny, tmp_path, capsys):
    from captcha.cli import main

    data = tmp_path / "data"
    data.mkdir()
    source = sorted((tiny / "data").iterdir())[0]
    (data / "WXYZ_1.png").write_bytes(source.read_bytes())
    (data / source.name).write_bytes(source.read_bytes())
    assert main(["evaluate", str(tiny / "model"), str(data), "--report", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["unknown_characters"] == "WXYZ"
    assert "never saw" in capsys.readouterr().err


def test_labels_with_spaces_are_refused_and_empty_ones_reported(tmp_path, capsys):
    from captcha.data import load_folder

    for name in ("a.png", "b.png", "_0001.png"):
        png_claiming(tmp_path / name, 40, 20)
    (tmp_path / "labels.csv").write_text("a.png,AB12\nb.png,CD 34\n")
    with pytest.raises(UserError, match="holds a space"):
        load_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("a.png,AB12\nb.png,CD34\n")
    assert [s.label for s in load_folder(tmp_path)] == ["AB12", "CD34"]
    assert "skipped 1 image(s) with an empty label" in capsys.readouterr().err


def test_segment_length_zero_is_refused(tmp_path, capsys):
    from captcha.cli import main

    png_claiming(tmp_path / "a.png", 40, 20)
    assert main(["segment", str(tmp_path / "a.png"), "--out", str(tmp_path / "o.png"), "--length", "0"]) == 1
    assert "--length must lie in 1 to 64" in one_error_line(capsys, "captcha")


def test_generate_force_never_deletes_images_it_did_not_write(tmp_path, capsys):
    from captcha.cli import main

    out = tmp_path / "g"
    assert main(["generate", str(out), "--count", "3"]) == 0
    assert main(["generate", str(out), "--count", "2", "--force"]) == 0
    assert len(list(out.iterdir())) == 2  # its own images are replaced
    png_claiming(out / "holiday.png", 40, 20)
    capsys.readouterr()
    assert main(["generate", str(out), "--count", "2", "--force"]) == 1
    assert "did not write (holiday.png" in one_error_line(capsys, "captcha")
    assert (out / "holiday.png").exists()
