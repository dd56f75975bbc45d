"""The CLI and the Python API: predict, save/load, and every bad input a user can cause."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from vqa_helpers import write_tiny_vqa2

from vqa.cli import main
from vqa.model import VQAModel


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith("vqa: error: ")
    return err[0]


def test_predict_text_and_json(vqa_model_dir, vqa_sample, capsys):
    assert (
        main(
            [
                "predict",
                str(vqa_model_dir),
                "--image",
                str(vqa_sample),
                "--question",
                "What color is the shape?",
                "--top",
                "2",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("\t" in line for line in lines)
    assert (
        main(
            [
                "predict",
                str(vqa_model_dir),
                "--image",
                str(vqa_sample),
                "--question",
                "what shape is in the image?",
                "--json",
            ]
        )
        == 0
    )
    answers = json.loads(capsys.readouterr().out)["answers"]
    assert len(answers) == 3 and set(answers[0]) == {"answer", "probability"}
    expected = VQAModel.load(vqa_model_dir).predict(vqa_sample, "what shape is in the image?", top=3)
    assert [a["answer"] for a in answers] == [a for a, _ in expected]  # the CLI says what the API says
    assert [a["probability"] for a in answers] == pytest.approx([p for _, p in expected], abs=1e-5)


def test_api_load_predict_and_batch_agree(vqa_model_dir, vqa_sample, tmp_path):
    model = VQAModel.load(vqa_model_dir)
    again = VQAModel.load(vqa_model_dir)
    single = model.predict(vqa_sample, "what color is the shape?", top=3)
    assert single == again.predict(vqa_sample, "what color is the shape?", top=3)
    batch = model.predict_batch(
        [vqa_sample, vqa_sample, np.asarray(Image.open(vqa_sample))],
        ["what color is the shape?", "what shape is in the image?", "what color is the shape?"],
        top=3,
    )
    for got in (batch[0], batch[2]):
        assert [a for a, _ in got] == [a for a, _ in single]
        assert [p for _, p in got] == pytest.approx([p for _, p in single], abs=1e-5)
    # Unknown words are mapped to the OOV token, not an error.
    assert len(model.predict(vqa_sample, "zorglub blarf colour?")) == 1


def test_one_array_asked_several_questions_is_encoded_once(vqa_model_dir, vqa_sample, monkeypatch):
    import vqa.model

    model, seen = VQAModel.load(vqa_model_dir), []
    real = vqa.model.image_table

    def counting(images, *args, **kwargs):
        seen.append(len(images))
        return real(images, *args, **kwargs)

    monkeypatch.setattr(vqa.model, "image_table", counting)
    pixels = np.asarray(Image.open(vqa_sample))
    model.predict_batch([pixels] * 3 + [pixels.copy()], ["what color is the shape?"] * 4)
    assert seen == [2]  # the one array once, its copy once


def train_args(manifest, out) -> list[str]:
    return ["train", "--dataset", "jsonl", "--train", str(manifest), "--out", str(out)]


def test_vgg_model_saves_and_loads_identically(vqa_sets, tmp_path):
    train, test = vqa_sets
    out = tmp_path / "vgg"
    assert (
        main(
            [
                *train_args(train, out),
                "--image-encoder",
                "vgg16",
                "--vgg-layer",
                "pool",
                "--image-size",
                "32",
                "--epochs",
                "1",
                "--hidden",
                "16",
                "--lstm-units",
                "8",
                "--embed-dim",
                "8",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--quiet",
                "--max-questions",
                "80",
            ]
        )
        == 0
    )
    assert (out / "encoder.weights.h5").is_file()
    images = [test.parent / f"img{i:04d}.png" for i in range(4)]
    questions = ["what color is the shape?"] * 4
    first = VQAModel.load(out).probabilities(images, questions)
    second = VQAModel.load(out).probabilities(images, questions, cache_dir=tmp_path / "cache")
    assert np.allclose(first, second, atol=1e-6)


def test_existing_model_needs_force(vqa_model_dir, vqa_sets, capsys):
    assert main([*train_args(vqa_sets[0], vqa_model_dir), "--epochs", "1"]) == 1
    assert "--force" in error_line(capsys)


@pytest.mark.parametrize(
    "image, question, message",
    [
        ("missing.png", "what color?", "image not found"),
        (".", "what color?", "is a folder, not an image"),
        ("garbage.png", "what color?", "not an image"),
        ("ok.png", "   ", "empty question"),
        ("ok.png", "what color is \ud800?", "not valid text"),
    ],
)
def test_predict_bad_input(vqa_model_dir, tmp_path, capsys, image, question, message):
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG nope")
    Image.new("P", (3000, 2000)).save(tmp_path / "ok.png")
    assert (
        main(["predict", str(vqa_model_dir), "--image", str(tmp_path / image), "--question", question]) == 1
    )
    assert message in error_line(capsys)


def test_palette_and_huge_images_are_answered(vqa_model_dir, tmp_path, capsys):
    Image.new("P", (3000, 2000)).save(tmp_path / "big.png")
    Image.new("LA", (20, 20)).save(tmp_path / "gray.png")
    for name in ("big.png", "gray.png"):
        assert (
            main(
                [
                    "predict",
                    str(vqa_model_dir),
                    "--image",
                    str(tmp_path / name),
                    "--question",
                    "what shape is in the image?",
                    "--json",
                ]
            )
            == 0
        )
        assert json.loads(capsys.readouterr().out)["answers"]


def test_bad_model_dirs(vqa_model_dir, tmp_path, vqa_sample, capsys):
    args = ["--image", str(vqa_sample), "--question", "what?"]
    assert main(["predict", str(tmp_path / "nowhere"), *args]) == 1
    assert "not found" in error_line(capsys)
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), *args]) == 1
    assert "not a model directory" in error_line(capsys)
    old = tmp_path / "old"
    old.mkdir()
    meta = json.loads((vqa_model_dir / "meta.json").read_text())
    # format 1: before the config was saved whole
    (old / "meta.json").write_text(json.dumps({**meta, "format_version": 1}))
    assert main(["predict", str(old), *args]) == 1
    assert "retrain" in error_line(capsys)
    (old / "meta.json").write_text(json.dumps(meta))
    assert main(["predict", str(old), *args]) == 1
    assert "model.weights.h5 is missing" in error_line(capsys)
    # hand-edited: a repeated word (Keras refuses it deep inside), an image size the CNN cannot take
    (old / "model.weights.h5").write_bytes((vqa_model_dir / "model.weights.h5").read_bytes())
    words = meta["question_encoder"]["vocabulary"]
    edited = {**meta, "question_encoder": {**meta["question_encoder"], "vocabulary": [*words, words[0]]}}
    (old / "meta.json").write_text(json.dumps(edited))
    assert main(["predict", str(old), *args]) == 1
    assert "is damaged" in error_line(capsys)
    config = meta["config"]
    edited = {**meta, "config": {**config, "encoder": {**config["encoder"], "image_size": 16}}}
    (old / "meta.json").write_text(json.dumps(edited))
    assert main(["predict", str(old), *args]) == 1
    assert "is damaged" in error_line(capsys)


def test_bad_manifest_and_dataset_args(vqa_model_dir, tmp_path, capsys):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"question": "what?", "answer": "red"}) + "\n")
    assert (
        main(
            [
                "evaluate",
                str(vqa_model_dir),
                "--dataset",
                "jsonl",
                "--data",
                str(manifest),
                "--report",
                str(tmp_path / "r.json"),
            ]
        )
        == 1
    )
    assert "missing 'image'" in error_line(capsys)
    assert main(["evaluate", str(vqa_model_dir), "--dataset", "vqa2"]) == 1
    assert "--questions" in error_line(capsys)
    assert main(["evaluate", str(vqa_model_dir), "--dataset", "jsonl"]) == 1
    assert "--data" in error_line(capsys)
    assert not (tmp_path / "r.json").exists()


def test_evaluate_vqa2_reports_official_accuracy(vqa_model_dir, tmp_path, capsys):
    q, a, images = write_tiny_vqa2(tmp_path)
    report = tmp_path / "r.json"
    assert (
        main(
            [
                "evaluate",
                str(vqa_model_dir),
                "--dataset",
                "vqa2",
                "--questions",
                str(q),
                "--annotations",
                str(a),
                "--images",
                str(images),
                "--report",
                str(report),
            ]
        )
        == 0
    )
    data = json.loads(report.read_text())
    from vqa.data import read_vqa2
    from vqa.metrics import vqa_accuracy

    dataset = read_vqa2(str(q), str(a), str(images))
    said = VQAModel.load(vqa_model_dir).predict_batch(
        [dataset.image_paths[i] for i in dataset.image_index], dataset.questions, top=1
    )
    humans = {420: ["red"] * 8 + ["orange"] * 2, 421: ["yes"] * 10, 70: ["2"] * 6 + ["two"] * 4}
    expected = np.mean([vqa_accuracy(s[0][0], h) for s, h in zip(said, humans.values())])
    assert data["count"] == 3 and data["vqa_accuracy"] == pytest.approx(expected)
    assert set(data["per_type"]) == {"number", "other", "yes/no"}
    assert "vqa evaluate" in capsys.readouterr().out


def test_python_m_vqa_never_shows_a_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vqa",
            "predict",
            str(tmp_path / "none"),
            "--image",
            "x.png",
            "--question",
            "why?",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("vqa: error: model directory")


def test_explain_path_is_checked_first_and_long_questions_are_named(
    vqa_model_dir, vqa_sample, tmp_path, capsys
):
    ask = ["predict", str(vqa_model_dir), "--image", str(vqa_sample), "--question"]
    assert main([*ask, "what color is the shape?", "--explain", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "--explain" in captured.err and "is a folder" in captured.err
    long = "what color is the shape " + " ".join(["please"] * 40) + " thanks"
    assert main([*ask, long]) == 0
    err = capsys.readouterr().err
    assert "reads the first" in err and err.rstrip().endswith("please thanks")


def test_several_questions_one_image_and_unknown_words(vqa_model_dir, vqa_sample, capsys):
    assert (
        main(
            [
                "predict",
                str(vqa_model_dir),
                "--image",
                str(vqa_sample),
                "--question",
                "what color is the shape?",
                "--question",
                "What colour is the shape?",
                "--question",
                "zorglub blarf?",
                "--json",
                "--top",
                "1",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert [x["question"] for x in lines] == [
        "what color is the shape?",
        "What colour is the shape?",
        "zorglub blarf?",
    ]
    assert [x["unknown_words"] for x in lines] == [[], ["colour"], ["zorglub", "blarf"]]
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("vqa: warning: ") for w in warnings)
    assert "colour" in warnings[0] and "no word of the question" in warnings[1]
    # The same answers as one question at a time (the image is encoded once for all three).
    assert (
        main(
            [
                "predict",
                str(vqa_model_dir),
                "--image",
                str(vqa_sample),
                "--question",
                "what color is the shape?",
                "--json",
                "--top",
                "1",
            ]
        )
        == 0
    )
    alone = json.loads(capsys.readouterr().out)
    assert alone["answers"][0]["answer"] == lines[0]["answers"][0]["answer"]
    assert (
        main(
            [
                "predict",
                str(vqa_model_dir),
                "--image",
                str(vqa_sample),
                "--question",
                "what color?",
                "--question",
                "what shape is in the image?",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 6 and out[0].startswith("what color?\t") and out[5].count("\t") == 2


def test_the_score_sub_model_is_built_once_per_network_and_goes_with_it():
    import gc

    import keras

    from vqa.explain import _ANSWER_FEATURES, answer_features

    pixels, tokens, index = keras.Input((4,)), keras.Input((3,)), keras.Input((), dtype="int32")
    hidden = keras.layers.Dense(5)(keras.layers.Concatenate()([pixels, tokens]))
    network = keras.Model([pixels, tokens, index], keras.layers.Dense(2, name="answers")(hidden))
    features = answer_features(network)
    assert features is answer_features(network) and features.output.shape == (None, 5)
    held = len(_ANSWER_FEATURES)
    del network, features
    gc.collect()
    assert len(_ANSWER_FEATURES) == held - 1


def test_explain_baseline_with_gradient_saliency(vqa_model_dir, vqa_sample, tmp_path, capsys):
    model = VQAModel.load(vqa_model_dir)
    explanation = model.explain(vqa_sample, "what color is the shape?")
    assert explanation.method == "saliency"
    assert explanation.maps.shape == (1, 32, 32) and explanation.maps.max() == pytest.approx(1.0)
    # the map is the answer's sensitivity: nudging the hottest pixel moves the answer's score
    # more than nudging the coldest one
    from vqa.explain import answer_score
    from vqa.images import load_image

    network, top = model._float_network(), model.answers.index(explanation.answers[0][0])
    pixels = load_image(vqa_sample, 32).astype(np.float32)
    tokens = model.questions(["what color is the shape?"])

    def score(image):
        return float(answer_score(network, image[None], tokens, top))

    def change(y, x):
        moved = []
        for step in (-8.0, 8.0):
            bumped = pixels.copy()
            bumped[y, x] = np.clip(bumped[y, x] + step, 0, 255)
            moved.append(abs(score(bumped) - score(pixels)))
        return max(moved)

    heat = explanation.maps[0]
    hot = np.unravel_index(np.argmax(heat), heat.shape)
    cold = np.unravel_index(np.argmin(heat), heat.shape)
    assert change(*hot) > change(*cold)
    # the score's sub-model was built once for this network (not once per score), and goes with it
    from vqa.explain import _ANSWER_FEATURES, answer_features

    assert answer_features(network) is answer_features(network) and network in _ANSWER_FEATURES
    png = tmp_path / "heat.png"
    assert (
        main(
            [
                "predict",
                str(vqa_model_dir),
                "--image",
                str(vqa_sample),
                "--question",
                "what color is the shape?",
                "--explain",
                str(png),
            ]
        )
        == 0
    )
    assert Image.open(png).size[0] > 200


def test_confusion_counts_and_chart(tmp_path):
    from vqa.evaluate import confusion_counts, plot_confusion

    truth = ["yes"] * 8 + ["red", "red", "blue"]
    predicted = ["yes"] * 7 + ["no", "red", "blue", "blue"]
    labels, matrix = confusion_counts(truth, predicted)
    assert labels[0] == "yes" and set(labels) == {"yes", "no", "red", "blue"}
    assert matrix.sum() == len(truth)
    assert matrix[labels.index("red"), labels.index("blue")] == 1
    png = tmp_path / "c.png"
    plot_confusion(
        truth,
        predicted,
        {"yes/no": {"count": 8, "accuracy": 0.875}, "colour": {"count": 3, "accuracy": 2 / 3}},
        png,
        "t",
    )
    assert Image.open(png).size[0] > Image.open(png).size[1]  # the bar chart sits beside it


def test_every_option_of_every_command_has_help():
    import argparse

    from vqa.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {"train", "evaluate", "generate", "predict"}
    for name, parser in commands.choices.items():
        for action in parser._actions:
            assert action.help and action.help.strip(), f"vqa {name} {action.dest} has no help"
    train_help = " ".join(commands.choices["train"].format_help().split())
    assert "the same model) (default: 0)" in train_help  # --seed: a default of 0 is shown too
    assert "(default: 0.002 for cnn-lstm, 0.001 for attention, 0.001 for relation)" in train_help


def test_evaluate_writes_its_report_into_the_model_dir_by_default(vqa_model_dir, vqa_sets, tmp_path, capsys):
    import shutil

    model = tmp_path / "m"
    shutil.copytree(vqa_model_dir, model)
    assert main(["evaluate", str(model), "--dataset", "jsonl", "--data", str(vqa_sets[1])]) == 0
    report = json.loads((model / "report.json").read_text())
    assert report["count"] == 120 and report["confusion_png"] == str(model / "report.confusion.png")
    assert (model / "report.confusion.png").is_file()
    assert f"report: {model / 'report.json'}" in capsys.readouterr().out
    assert VQAModel.load(model).answers == VQAModel.load(vqa_model_dir).answers  # still a model


def test_evaluate_says_when_too_few_human_answers_cap_the_official_metric(
    vqa_model_dir, vqa_sample, tmp_path, capsys
):
    lines = [
        {"image": str(vqa_sample), "question": "what color is the shape?", "answers": ["red"]},
        {"image": str(vqa_sample), "question": "what shape is in the image?", "answers": ["circle"] * 10},
        {"image": str(vqa_sample), "question": "is there a red shape?", "answer": "yes"},
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    report = tmp_path / "r.json"
    argv = ["evaluate", str(vqa_model_dir), "--dataset", "jsonl", "--data", str(tmp_path / "m.jsonl")]
    assert main([*argv, "--report", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["vqa_accuracy_count"] == 2 and data["vqa_accuracy_under_four_answers"] == 1
    assert "1 question(s) carry fewer than four human answers" in capsys.readouterr().err
