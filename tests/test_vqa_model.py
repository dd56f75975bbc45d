"""VQAModel and its config: the contract (fit, predict, evaluate, save, load), the one home of
every default, seeded repeats, the quiet import, and the README's Python example."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from vqa_helpers import make_shapes_set

from recognisers.contract import config_from_args
from recognisers.errors import UserError
from vqa.batches import GroupedQuestions, training_dataset
from vqa.config import KIND_DEFAULTS, EncoderConfig, NetworkConfig, TrainConfig, VQAConfig
from vqa.data import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
TINY = VQAConfig(
    EncoderConfig(image_size=32, filters=(4, 8)),
    NetworkConfig(embed_dim=8, lstm_units=(8,), hidden=16),
    TrainConfig(epochs=2, batch_size=16, val_fraction=0.25),
)


@pytest.fixture(scope="module")
def little_set(tmp_path_factory):
    """16 images of the tiny shapes task (32 questions)."""
    return read_jsonl(make_shapes_set(tmp_path_factory.mktemp("little"), 16, seed=7))


@pytest.fixture(scope="module")
def fitted(little_set, tmp_path_factory):
    """A model fitted on ``little_set`` with seed 0, and the folder it was fitted in."""
    from vqa.model import VQAModel

    where = tmp_path_factory.mktemp("fitted-here")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(where)
        return VQAModel(TINY, cache_dir=where / "cache").fit(little_set, verbose=0), where


def test_cli_defaults_are_the_configs():
    from vqa.cli import build_parser

    args = build_parser().parse_args(["train", "--dataset", "easy-vqa", "--out", "m"])
    assert config_from_args(VQAConfig, args) == VQAConfig()


def test_kind_defaults_are_filled_in_from_the_one_table():
    for kind, defaults in KIND_DEFAULTS.items():
        config = VQAConfig(network=NetworkConfig(model=kind)).resolved()
        assert config.encoder.filters == defaults.filters
        assert config.encoder.convs_per_block == defaults.convs_per_block
        assert config.encoder.image_size == defaults.image_size
        assert config.training.learning_rate == defaults.learning_rate
        assert config.training.learning_rate_decay == defaults.learning_rate_decay
    assert VQAConfig().resolved().network.model == "attention"
    vgg = VQAConfig(EncoderConfig(image_encoder="vgg16")).resolved()
    assert (vgg.encoder.image_size, vgg.encoder.vgg_layer, vgg.network.model) == (224, "pool", "cnn-lstm")
    given = VQAConfig(
        EncoderConfig(image_size=48, filters=(2,)),
        NetworkConfig(model="relation"),
        TrainConfig(learning_rate=0.1),
    ).resolved()
    assert (given.encoder.image_size, given.encoder.filters, given.training.learning_rate) == (48, (2,), 0.1)
    assert VQAConfig(EncoderConfig(vgg_weights="None")).resolved().encoder.vgg_weights is None


def test_cosine_decay_falls_from_the_rate_to_zero_over_the_most_epochs():
    from vqa.train import _learning_rate

    settings = TrainConfig(epochs=4, learning_rate=0.01, learning_rate_decay="cosine")
    rate = _learning_rate(settings, steps_per_epoch=25)
    assert [round(float(rate(step)), 6) for step in (0, 50, 100)] == [0.01, 0.005, 0.0]
    assert _learning_rate(replace(settings, learning_rate_decay="none"), 25) == 0.01


@pytest.mark.parametrize(
    "config, message",
    [
        (VQAConfig(training=TrainConfig(epochs=0)), "--epochs must be at least 1"),
        (VQAConfig(training=TrainConfig(learning_rate=0.0)), "--learning-rate must be positive"),
        (VQAConfig(training=TrainConfig(max_length=0)), "--max-length must be positive"),
        (VQAConfig(training=TrainConfig(learning_rate_decay="step")), "--learning-rate-decay must be one of"),
        (VQAConfig(EncoderConfig(image_size=0)), "--image-size must be at least 32"),
        (VQAConfig(EncoderConfig(convs_per_block=0)), "--convs-per-block must be 1 to 8"),
        (VQAConfig(EncoderConfig(image_encoder="vgg16", vgg_layer="fc7", image_size=64)), "224"),
        (VQAConfig(network=NetworkConfig(model="nope")), "--model must be one of"),
    ],
)
def test_bad_settings_are_refused_when_the_model_is_made(config, message):
    from vqa.model import VQAModel

    with pytest.raises(UserError, match=message):
        VQAModel(config)


def test_fit_writes_nothing_and_save_load_round_trips(fitted, little_set, tmp_path):
    from vqa.model import VQAModel

    with pytest.raises(RuntimeError, match="not trained"):
        VQAModel(TINY).predict(little_set.image_paths[0], "what shape is in the image?")
    model, where = fitted
    assert list(where.iterdir()) == []  # nothing on disk: the caller saves
    assert len(model.history) == model.info["epochs_run"] and model.kept_epoch.startswith("kept epoch")

    model.save(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {
        "model.weights.h5",
        "meta.json",
        "history.csv",
        "history.png",
    }
    with pytest.raises(UserError, match="--force"):
        model.save(tmp_path / "m")
    loaded = VQAModel.load(tmp_path / "m")
    assert loaded.config == model.config == TINY.resolved()
    assert loaded.history == model.history
    images, questions = little_set.image_paths[:3], little_set.questions[:3]
    assert np.allclose(
        loaded.probabilities(images, questions), model.probabilities(images, questions), atol=1e-6
    )

    report = loaded.evaluate(little_set)
    assert report.metrics["count"] == len(little_set) == len(report.predictions)
    assert report.metrics["model"] == str(tmp_path / "m")
    first = report.predictions[0]
    assert first == {
        "image": little_set.image_paths[0],
        "question": little_set.questions[0],
        "predicted": loaded.predict(little_set.image_paths[0], little_set.questions[0])[0][0],
        "truth": little_set.answers[0],
        "type": little_set.types[0],
    }


def test_same_seed_same_predictions_other_seed_others(fitted, little_set):
    from vqa.model import VQAModel

    images, questions = little_set.image_paths[:4], little_set.questions[:4]

    def probabilities(seed: int) -> np.ndarray:
        config = replace(TINY, training=replace(TINY.training, seed=seed))
        return VQAModel(config).fit(little_set, verbose=0).probabilities(images, questions)

    first = fitted[0].probabilities(images, questions)  # seed 0
    assert np.array_equal(first, probabilities(0))
    assert not np.allclose(first, probabilities(1), atol=1e-4)


def test_grouped_questions_cut_batches_of_whole_images():
    image_index = np.array([2, 0, 1, 2, 0, 2, 3, 3])
    groups = GroupedQuestions(image_index, 4)
    assert groups.images_per_batch(4) == 2  # 2 questions per image on average
    chunks = groups.image_chunks(4, None)
    assert [c.tolist() for c in chunks] == [[0, 1], [2, 3]]
    ids, index = groups.questions_of(np.array([2, 0]))
    assert ids.tolist() == [0, 3, 5, 1, 4]  # image 2's questions, then image 0's, in order
    assert index.tolist() == [0, 0, 0, 1, 1]  # each question's image within the batch
    shuffled = groups.image_chunks(4, np.random.default_rng(0))
    assert sorted(np.concatenate(shuffled).tolist()) == [0, 1, 2, 3]
    assert [c.tolist() for c in shuffled] != [c.tolist() for c in chunks] or len(chunks) == 1
    every = np.concatenate([groups.questions_of(c)[0] for c in shuffled])
    assert sorted(every.tolist()) == list(range(len(image_index)))  # each question exactly once


def test_training_batches_keep_images_whole_and_skip_autotune():
    image_index = np.array([2, 0, 1, 2, 0, 2, 3, 3])
    table = np.arange(4)[:, None] * np.ones((4, 3), np.uint8)  # row i holds i
    tokens, labels = np.arange(8)[:, None].astype(np.int32), np.arange(8, dtype=np.int32)
    dataset = training_dataset(table, image_index, tokens, labels, 4, seed=0)
    seen = []
    for (images, questions, index), answers in dataset:
        # each question is about the image its index points at, and the answers stay with it
        assert images.numpy()[index.numpy(), 0].tolist() == image_index[questions.numpy()[:, 0]].tolist()
        assert answers.numpy().tolist() == questions.numpy()[:, 0].tolist()
        seen += answers.numpy().tolist()
    assert sorted(seen) == list(range(8))
    assert dataset.options().autotune.enabled is False  # unset (None) means on


def test_import_and_predict_print_nothing_on_stderr(vqa_model_dir, vqa_sample):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "CUDA_"))}
    env["PYTHONPATH"] = str(ROOT)
    ask = f"predict({str(vqa_sample)!r}, 'what shape is in the image?')"
    code = f"import vqa; from vqa.model import VQAModel; print(VQAModel.load({str(vqa_model_dir)!r}).{ask})"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert re.fullmatch(r"\[\('(circle|square|triangle)', 0\.\d+\)\]\n", result.stdout), result.stdout


def test_readme_python_example_runs(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    example = next(b for b in blocks if "VQAModel().fit(" in b)
    my = tmp_path / "my"
    make_shapes_set(my, 12, seed=1).rename(my / "train.jsonl")
    shutil.copy(my / "train.jsonl", my / "test.jsonl")  # the example only has to run
    shutil.copy(my / "img0000.png", my / "photo.png")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(example, "README.md", "exec"), scope)
    assert (tmp_path / "runs" / "mine" / "meta.json").is_file()
    assert scope["report"].metrics["count"] == 24


# Validation accuracy (%) per epoch of real runs with the default model and flags (seed 0):
# easy-VQA (16 epochs: at 99.9% from the sixth), and the shapes bench under the cosine decay
# and under a constant rate (still rising at the end, dipping on the way).
EASY_VQA = [86.813, 98.587, 98.639, 99.843, 99.660, 99.948, 99.974, 99.922, 99.974, 99.895, 99.974]
EASY_VQA += [100.0] * 5
SHAPES_COSINE = [68.061, 84.464, 93.755, 96.291, 98.500, 98.173, 99.168, 99.383, 99.520, 99.679]
SHAPES_COSINE += [99.735, 99.806, 99.781, 99.872, 99.857, 99.857]
SHAPES_CONSTANT = [33.087, 81.235, 92.990, 97.985, 99.112, 98.658, 99.224, 99.347, 99.617, 99.526]
SHAPES_CONSTANT += [98.959, 99.653, 99.653, 99.719, 99.750, 99.750]


class _Weights:
    """Stands in for a Keras model: its "weights" are the epoch that made them."""

    stop_training = False
    epoch = -1

    def get_weights(self):
        return [self.epoch]

    def set_weights(self, weights):
        self.epoch = weights[0]


def _replay(accuracies: list[float], losses: list[float] | None = None, start: int = 0) -> tuple[int, int]:
    """(epochs run, epoch whose weights end up in the model), both 1-based, under the default
    stop rule of ``vqa train`` (its early-stopping callback fed this validation history),
    watching from epoch ``start`` (0-based)."""
    from recognisers.training import training_callbacks
    from vqa.config import STOP_MONITOR

    patience = TrainConfig().patience
    stop = training_callbacks(Path("unused"), patience, STOP_MONITOR, start_from_epoch=start)[-1]
    model = _Weights()
    stop.set_model(model)
    stop.on_train_begin()
    for epoch, accuracy in enumerate(accuracies):
        model.epoch = epoch
        loss = 1.0 if losses is None else losses[epoch]
        stop.on_epoch_end(epoch, {STOP_MONITOR: accuracy / 100, "val_loss": loss})
        if model.stop_training:
            break
    stop.on_train_end()
    return epoch + 1, model.epoch + 1


def test_the_stop_rule_ends_a_settled_run_and_lets_a_rising_one_finish():
    # easy-VQA: no higher validation accuracy after epoch 7 for three epochs: 10 of 16 run
    assert _replay(EASY_VQA) == (10, 7)
    assert _replay(SHAPES_COSINE) == (16, 14)  # the highest, not the last
    assert _replay(SHAPES_CONSTANT) == (16, 15)
    # of equally accurate epochs the lowest validation loss is kept; a tie resets no patience
    assert _replay([50, 80, 80, 70, 60, 55], [0.9, 0.5, 0.4, 0.6, 0.7, 0.8]) == (5, 3)
    assert _replay([50, 80, 80, 70, 60, 55], [0.9, 0.4, 0.5, 0.6, 0.7, 0.8]) == (5, 2)


# A shapes run under the cosine over 24 epochs that stopped on a dip (seed 0, distance slope).
SHAPES_DIP = [68.710, 90.070, 96.190, 97.060, 97.650, 96.500, 98.560, 99.250, 99.200, 98.800, 99.180]


def test_under_a_cosine_decay_the_first_half_is_neither_watched_nor_kept():
    from recognisers.training import best_epoch
    from vqa.config import STOP_MONITOR, VQAConfig

    settings = VQAConfig().resolved().training  # the default model: attention, cosine decay
    start = settings.stop_watch_from
    assert settings.learning_rate_decay == "cosine" and start == settings.most_epochs // 2 > 0
    assert TrainConfig(learning_rate_decay="none", epochs=24).stop_watch_from == 0
    assert _replay(SHAPES_DIP) == (11, 8)  # watched from the start: the dip ends the run
    later = SHAPES_DIP + [99.0] * (start - len(SHAPES_DIP)) + [99.3, 99.6, 99.5, 99.55, 99.6, 99.58]
    assert _replay(later, start=start) == (start + 5, start + 2)
    rows = [{STOP_MONITOR: a / 100, "val_loss": 1.0} for a in later[: start + 5]]
    assert best_epoch(rows, STOP_MONITOR, start_from_epoch=start) == start + 1  # the same, 0-based
    assert best_epoch(rows[:start], STOP_MONITOR, start_from_epoch=start) is None  # none watched yet


def test_training_stops_on_validation_accuracy_and_keeps_the_best_weights(little_set):
    from recognisers.training import best_epoch
    from vqa.config import STOP_MONITOR
    from vqa.data import split_by_image
    from vqa.model import VQAModel

    config = replace(TINY, training=replace(TINY.training, epochs=40, patience=2, learning_rate=0.01))
    model = VQAModel(config).fit(little_set, verbose=0)
    accuracies = [float(row["val_accuracy"]) for row in model.history]
    kept, start = model.info["best_epoch"], model.info["stop_watch_from"]
    watched = accuracies[start:]  # a cosine decay's second half (all epochs at a constant rate)
    assert len(accuracies) < 40  # the 8 validation questions stop changing long before
    assert accuracies[kept - 1] == max(watched)
    assert kept - 1 == best_epoch(model.history, STOP_MONITOR, start_from_epoch=start)
    assert len(accuracies) == start + watched.index(max(watched)) + 1 + 2  # patience after the first best
    assert model.kept_epoch.startswith(f"kept epoch {kept} of {len(accuracies)}: highest val_accuracy")
    # the model holds the kept epoch's weights, not the last epoch's
    _, validation = split_by_image(little_set, config.training.val_fraction, config.training.seed)
    assert model.evaluate(validation).metrics["accuracy"] == pytest.approx(max(watched))


@pytest.mark.parametrize(("kind", "few_images"), [("attention", 32), ("attention", 0), ("cnn-lstm", 32)])
def test_an_answer_does_not_depend_on_what_else_shares_its_batch(kind, few_images, monkeypatch):
    """The attention reads each question's cells by one matmul over every image of a batch
    of few images (``few_images``: 0 makes it gather them instead) and a repeated question
    is encoded once: neither may let another image or another copy of the question in, so
    each answer of a mixed batch is its answer alone."""
    import vqa.network
    from vqa.network import answers_view, build_vqa_model

    monkeypatch.setattr(vqa.network, "FEW_IMAGES", few_images)

    config = replace(TINY, network=replace(TINY.network, model=kind)).resolved()
    network = answers_view(build_vqa_model(config.encoder, config.network, 12, 5, 7))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    asked = rng.integers(1, 12, (3, 5)).astype(np.int32)
    tokens, index = asked[[0, 1, 0, 2, 0, 1, 2]], np.array([0, 0, 1, 1, 2, 3, 3], np.int32)
    together = network([images, tokens, index], training=False).numpy()
    for i in range(len(tokens)):
        alone = network(
            [images[index[i] : index[i] + 1], tokens[i : i + 1], np.zeros(1, np.int32)], training=False
        )
        np.testing.assert_allclose(together[i], alone.numpy()[0], atol=1e-5)
