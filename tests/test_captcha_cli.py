"""The CLI without a trained model: generate, segment, and every bad input it must refuse."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from captcha.cli import main
from captcha.data import load_folder


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, match):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("captcha: error:") and match in lines[0], err


def test_generate_is_labelled_and_repeatable(tmp_path, capsys):
    code, out, _ = run(
        capsys, "generate", tmp_path / "a", "--count", 5, "--length", 3, "--style", "noisy", "--seed", 7
    )
    assert code == 0 and "wrote 5" in out
    run(capsys, "generate", tmp_path / "b", "--count", 5, "--length", 3, "--style", "noisy", "--seed", 7)
    a, b = load_folder(tmp_path / "a"), load_folder(tmp_path / "b")
    assert [s.label for s in a] == [s.label for s in b] and all(len(s.label) == 3 for s in a)
    assert (tmp_path / "a" / a[0].path.name).read_bytes() == (tmp_path / "b" / a[0].path.name).read_bytes()
    code, _, err = run(capsys, "generate", tmp_path / "a", "--count", 5)
    assert_one_line_error(code, err, "--force")


def test_forced_generate_keeps_the_old_images_until_the_new_are_written(tmp_path, capsys, monkeypatch):
    import captcha.synth

    run(capsys, "generate", tmp_path / "g", "--count", 4, "--seed", 1)
    before = sorted(p.name for p in (tmp_path / "g").iterdir())
    real, calls = captcha.synth.render, []

    def render_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(captcha.synth, "render", render_then_stop)
    assert main(["generate", str(tmp_path / "g"), "--count", "5", "--seed", "2", "--force"]) != 0
    assert "interrupted" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["g"]  # no staging folder left
    code, _, err = run(capsys, "generate", tmp_path / "h", "--charset", "AB\u00a0")
    assert_one_line_error(code, err, "--charset")


def test_segment_draws_boxes(tmp_path, capsys):
    run(capsys, "generate", tmp_path / "g", "--count", 1, "--length", 4, "--seed", 1)
    image = next((tmp_path / "g").iterdir())
    code, out, _ = run(capsys, "segment", image, "--out", tmp_path / "boxes.png", "--length", 4)
    assert code == 0 and "4 glyph boxes" in out
    drawn, source = Image.open(tmp_path / "boxes.png"), Image.open(image)
    scale = drawn.size[1] // source.size[1]  # upscaled by a whole factor to be readable
    assert scale >= 2 and drawn.size == (source.size[0] * scale, source.size[1] * scale)


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    Image.new("L", (60, 20), 230).save(tmp_path / "blank.png")
    return tmp_path


@pytest.mark.parametrize(
    "name, match",
    [
        ("missing.png", "not found"),
        ("empty.png", "empty file"),
        ("text.png", "not a readable image"),
        ("corrupt.png", "not a readable image"),
        ("blank.png", "no ink"),
    ],
)
def test_segment_bad_images(bad_files, capsys, name, match):
    code, _, err = run(capsys, "segment", bad_files / name, "--out", bad_files / "o.png")
    assert_one_line_error(code, err, match)


def test_train_refuses_bad_folders(tmp_path, capsys):
    code, _, err = run(capsys, "train", tmp_path / "nope", "--out", tmp_path / "m")
    assert_one_line_error(code, err, "not found")
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "train", tmp_path / "empty", "--out", tmp_path / "m")
    assert_one_line_error(code, err, "no images")
    (tmp_path / "nolabels").mkdir()
    Image.new("L", (60, 20), 255).save(tmp_path / "nolabels" / "_01.png")
    code, _, err = run(capsys, "train", tmp_path / "nolabels", "--out", tmp_path / "m")
    assert_one_line_error(code, err, "no usable labels")
    assert not (tmp_path / "m").exists()


def test_missing_or_incompatible_model_dir(tmp_path, capsys):
    Image.new("L", (60, 20), 255).save(tmp_path / "AB.png")
    code, _, err = run(capsys, "predict", tmp_path / "nomodel", tmp_path / "AB.png")
    assert_one_line_error(code, err, "not found")
    old = tmp_path / "old"
    old.mkdir()
    (old / "meta.json").write_text(json.dumps({"kind": "captcha", "format_version": 0}))
    code, _, err = run(capsys, "predict", old, tmp_path / "AB.png")
    assert_one_line_error(code, err, "format 0")
    (old / "meta.json").write_text(json.dumps({"kind": "vqa", "format_version": 1}))
    code, _, err = run(capsys, "evaluate", old, tmp_path, "--report", old / "r.json")
    assert_one_line_error(code, err, "not a captcha model")


def test_python_m_captcha_never_shows_a_traceback(tmp_path):
    (tmp_path / "x.png").write_text("not an image")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "captcha",
            "segment",
            str(tmp_path / "x.png"),
            "--out",
            str(tmp_path / "o.png"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("captcha: error:")


def test_train_defaults_are_the_configs_and_epochs_caps_both_readers():
    from captcha.cli import build_parser, train_config
    from captcha.readers import ReaderConfig

    parser = build_parser()
    assert train_config(parser.parse_args(["train", "d", "--out", "m"])) == ReaderConfig()
    args = parser.parse_args(["train", "d", "--out", "m", "--epochs", "3", "--seed", "7", "--case", "lower"])
    config = train_config(args)
    assert (config.segment.epochs, config.sequence.epochs) == (3, 3)
    assert (config.segment.seed, config.sequence.seed, config.sequence.case) == (7, 7, "lower")
    args = parser.parse_args(
        ["train", "d", "--out", "m", "--reader", "segment", "--width", "32", "--rnn-units", "8"]
    )
    config = train_config(args)
    assert (config.reader, config.segment.width, config.sequence.rnn_units) == ("segment", 32, 8)


def test_every_option_of_every_subcommand_has_help_text():
    from captcha.cli import build_parser

    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"captcha {name} {action.dest} has no help text"
