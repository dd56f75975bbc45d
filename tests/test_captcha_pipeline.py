"""End to end on generated CAPTCHAs: a tiny model trained for a few steps, through CLI and API."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import CAPTCHA_CHARSET as CHARSET
from PIL import Image

from captcha import CaptchaReader, CaptchaSolver
from captcha.cli import main
from captcha.data import load_folder


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def trained(captcha_data):
    """Train/test sets generated once per session (tests/conftest.py)."""
    return captcha_data


@pytest.fixture()
def model_dir(captcha_model_dir):
    """The tiny model trained once per session (tests/conftest.py), shared with the server tests."""
    return captcha_model_dir


def test_model_directory_is_complete(model_dir):
    names = {p.name for p in model_dir.iterdir()}
    assert {"meta.json", "glyph_cnn.keras", "history.csv", "history.png"} <= names
    meta = json.loads((model_dir / "meta.json").read_text())
    assert meta["charset"] == "".join(sorted(CHARSET)) and meta["lengths"] == [4]
    assert meta["training"]["segmented_to_label_count"] > 300
    assert {"glyph_width", "line_kernel", "glyph_size"} <= set(meta["segmentation"])


def test_tiny_model_reads_far_better_than_chance(model_dir, trained):
    report = CaptchaSolver.load(model_dir).evaluate(load_folder(trained / "test")).metrics
    assert report["char_accuracy"] > 0.8  # chance: 0.1
    assert report["sequence_accuracy"] > 0.5  # chance: 0.0001


def test_save_and_load_give_identical_predictions(model_dir, trained, tmp_path):
    solver = CaptchaSolver.load(model_dir)
    solver.save(tmp_path / "copy")
    again = CaptchaSolver.load(tmp_path / "copy")
    assert again.config == solver.config and again.settings == solver.settings
    assert (tmp_path / "copy" / "history.csv").read_text() == (model_dir / "history.csv").read_text()
    paths = [s.path for s in load_folder(trained / "test")][:20]
    a, b = solver.predict_batch(paths), again.predict_batch(paths)
    assert [r.text for r in a] == [r.text for r in b]
    assert np.allclose([r.char_confidences for r in a], [r.char_confidences for r in b], atol=1e-6)


def test_api_reads_paths_and_arrays_alike(model_dir, trained):
    solver = CaptchaSolver.load(model_dir)
    path = load_folder(trained / "test")[0].path
    rgb = np.asarray(Image.open(path).convert("RGB"))
    by_path, by_array = solver.predict(path), solver.predict(rgb)
    assert by_path.text == by_array.text and len(by_path.char_confidences) == 4
    assert by_path.char_confidences == pytest.approx(by_array.char_confidences, abs=1e-6)
    assert by_path.confidence == pytest.approx(float(np.prod(by_path.char_confidences)))


def test_cli_predict_reads_good_images_and_fails_on_bad_ones(model_dir, trained, capsys):
    good = [s.path for s in load_folder(trained / "test")][:2]
    bad = trained / "bad.png"
    bad.write_text("no image")
    code, out, err = run(capsys, "predict", model_dir, good[0], bad, good[1])
    assert code == 1
    assert [line.split("\t")[0] for line in out.splitlines()] == [str(good[0]), str(good[1])]
    assert err.count("captcha: error:") == 1 and err.count(str(bad)) == 1  # the path named once
    code, out, _ = run(capsys, "predict", model_dir, good[0], "--json")
    record = json.loads(out)
    assert code == 0 and set(record) == {"path", "text", "confidence", "char_confidences", "reader"}


def test_cli_refuses_damaged_model_and_blank_image(model_dir, tmp_path, capsys):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "meta.json").write_bytes((model_dir / "meta.json").read_bytes())
    (damaged / "glyph_cnn.keras").write_bytes(b"PK\x03\x04 not really a zip")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (120, 40), (200, 220, 240)).save(blank)
    code, _, err = run(capsys, "predict", damaged, blank)
    assert code == 1 and err.count("\n") == 1 and "cannot load the model" in err
    code, out, err = run(capsys, "predict", model_dir, blank)
    assert code == 1 and out == "" and "no ink" in err and err.count("\n") == 1


def test_cli_evaluate_writes_report_and_worst_cases(model_dir, trained, capsys, tmp_path):
    report_path = tmp_path / "report.json"
    code, out, _ = run(capsys, "evaluate", model_dir, trained / "test", "--report", report_path)
    assert code == 0 and "sequence_accuracy" in out
    report = json.loads(report_path.read_text())
    for key in (
        "count",
        "sequence_accuracy",
        "char_accuracy",
        "segmentation_failure_rate",
        "images_per_second",
        "per_character_accuracy",
        "top_confusions",
        "dataset",
        "model_dir",
        "time",
    ):
        assert key in report
    assert report["count"] == 60 and (tmp_path / "report.worst.png").is_file()


def test_cli_evaluate_writes_its_report_into_the_model_directory_by_default(
    model_dir, trained, tmp_path, capsys
):
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    code, out, _ = run(capsys, "evaluate", copy, trained / "test")
    report = json.loads((copy / "report.json").read_text())
    assert code == 0 and f"report: {copy / 'report.json'}" in out and (copy / "report.worst.png").is_file()
    assert len(report["predictions"]) == 60 and not [k for k in report if k.startswith("_")]
    first = report["predictions"][0]
    assert set(first) == {"path", "label", "read", "confidence", "boxes"}
    reading = CaptchaSolver.load(copy).predict(first["path"])
    assert (first["read"], first["confidence"]) == (reading.text, pytest.approx(reading.confidence, abs=1e-5))


def test_existing_model_needs_force(model_dir, trained, capsys):
    code, _, err = run(capsys, "train", trained / "train", "--out", model_dir)
    assert code == 1 and "--force" in err and (model_dir / "meta.json").is_file()


def test_seed_repeats_and_case_option(trained, tmp_path, capsys):
    small = tmp_path / "small"
    small.mkdir()
    for sample in load_folder(trained / "train")[:120]:
        (small / sample.path.name).write_bytes(sample.path.read_bytes())
    readings = []
    for name in ("a", "b"):
        code, out, _ = run(
            capsys,
            "train",
            small,
            "--out",
            tmp_path / name,
            "--epochs",
            "1",
            "--reader",
            "segment",
            "--align-rounds",
            "0",
            "--seed",
            "5",
            "--case",
            "lower",
            "--quiet",
        )
        assert code == 0 and "segmented to their label's glyph count" in out
        solver = CaptchaSolver.load(tmp_path / name)
        readings.append(solver.predict_batch([s.path for s in load_folder(trained / "test")]))
    assert [r.text for r in readings[0]] == [r.text for r in readings[1]]  # same seed, same model
    assert np.allclose(
        [c for r in readings[0] for c in r.char_confidences],
        [c for r in readings[1] for c in r.char_confidences],
        atol=1e-6,
    )
    assert json.loads((tmp_path / "a" / "meta.json").read_text())["charset"] == "".join(
        sorted(CHARSET.lower())
    )


def test_damaged_meta_and_unknown_output_type_are_one_line_errors(model_dir, tmp_path, capsys):
    damaged = tmp_path / "no-segmentation"
    damaged.mkdir()
    meta = json.loads((model_dir / "meta.json").read_text())
    del meta["segmentation"]
    (damaged / "meta.json").write_text(json.dumps(meta))
    image = next(p for p in (model_dir.parent / "test").iterdir() if p.suffix == ".png")
    for argv in (
        ("predict", damaged, image),
        ("segment", image, "--out", tmp_path / "b.png", "--model", damaged),
    ):
        code, _, err = run(capsys, *argv)
        assert code == 1 and err.count("\n") == 1 and "meta.json is damaged" in err, err
    code, _, err = run(capsys, "segment", image, "--out", tmp_path / "boxes.txt")
    assert code == 1 and err.count("\n") == 1 and "cannot write" in err, err
    assert not (tmp_path / "boxes.txt").exists()


def test_an_image_no_lattice_can_cut_reads_as_empty_with_zero_confidence(model_dir):
    from captcha.segment import Segmentation

    solver = CaptchaSolver.load(model_dir)
    ink = np.zeros((40, 120), np.float32)
    ink[10:30, 60] = 1.0  # one pixel column of ink: no cut into 4 glyphs is wide enough
    mask = ink > 0
    seg = Segmentation(ink=ink, mask=mask, boxes=[], clean=False, components=[(60, 10, 61, 30)])
    reading = solver.read_by_recognition([seg])[0]
    assert reading.text == "" and reading.confidence == 0.0


def test_report_lists_wrong_readings_and_flags_mislabelled_files(model_dir, trained, tmp_path, capsys):
    solver = CaptchaSolver.load(model_dir)
    folder = tmp_path / "relabelled"
    folder.mkdir()
    samples = load_folder(trained / "test")
    readings = solver.predict_batch([s.path for s in samples])
    sure = [s for s, r in zip(samples, readings) if r.text == s.label and r.confidence > 0.99][:3]
    assert len(sure) == 3
    mislabelled = set()
    for s in samples:
        name = s.path.name
        if s in sure:  # a user's typo: the first character replaced by another one
            name = ("A" if s.label[0] != "A" else "B") + name[1:]
            mislabelled.add(name)
        (folder / name).write_bytes(s.path.read_bytes())
    report_path = tmp_path / "r.json"
    code, out, _ = run(capsys, "evaluate", model_dir, folder, "--report", report_path)
    assert code == 0 and "suspected_label_errors" in out
    report = json.loads(report_path.read_text())
    wrong = report["wrong_readings"]
    assert len(wrong) == report["wrong_count"] == round(60 * (1 - report["sequence_accuracy"]))
    assert all(w["read"] != w["label"] for w in wrong)
    again = solver.predict_batch([w["path"] for w in wrong])  # the report holds what predict reads
    assert [w["confidence"] for w in wrong] == pytest.approx([r.confidence for r in again], abs=1e-5)
    flagged = {Path(w["path"]).name for w in report["suspected_label_errors"]}
    assert mislabelled <= flagged and mislabelled <= {Path(w["path"]).name for w in wrong}
    assert all(w["confidence"] >= report["label_error_confidence"] for w in report["suspected_label_errors"])
    assert len(flagged) < len(wrong) or len(wrong) == 3  # not every error is blamed on the label
    assert (tmp_path / "r.worst.png").is_file()


def test_segment_read_draws_the_readers_boxes_large(model_dir, trained, tmp_path, capsys):
    image = sorted((trained / "test").iterdir())[0]
    reading = CaptchaSolver.load(model_dir).predict(image)
    out = tmp_path / "read.png"
    code, printed, _ = run(capsys, "segment", image, "--out", out, "--model", model_dir, "--read")
    assert code == 0 and f"read {reading.text!r}" in printed and str(reading.boxes) in printed
    assert Image.open(out).size[1] >= 160
    code, _, err = run(capsys, "segment", image, "--out", out, "--read")
    assert code == 1 and "--read needs --model" in err and err.count("\n") == 1


def test_a_folder_of_variable_length_captchas_trains_and_reads(tmp_path, capsys):
    for name, count, seed in (("train", 300, 11), ("test", 40, 12)):
        assert (
            main(
                [
                    "generate",
                    str(tmp_path / name),
                    "--count",
                    str(count),
                    "--length",
                    "3-5",
                    "--charset",
                    CHARSET,
                    "--seed",
                    str(seed),
                ]
            )
            == 0
        )
    # the segmenting reader's lengths (auto now keeps the sequence reader on this folder; its
    # variable lengths are tested in test_captcha_sequence.py)
    code, out, _ = run(
        capsys,
        "train",
        tmp_path / "train",
        "--out",
        tmp_path / "m",
        "--reader",
        "segment",
        "--epochs",
        "4",
        "--quiet",
    )
    assert code == 0 and "clean-up" in out
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["lengths"] == [3, 4, 5]
    assert {"ink", "opening", "stroke_width"} <= set(meta["segmentation"])
    assert meta["training"]["cleanup_agreement"]
    solver = CaptchaReader.load(tmp_path / "m")
    report = solver.evaluate(load_folder(tmp_path / "test")).metrics
    assert report["segmentation_failure_rate"] < 0.1 and report["char_accuracy"] > 0.7
    read_lengths = {
        len(r.text) for r in solver.predict_batch([s.path for s in load_folder(tmp_path / "test")])
    }
    assert read_lengths <= {3, 4, 5} and len(read_lengths) >= 2
