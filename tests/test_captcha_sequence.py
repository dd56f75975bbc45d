"""The sequence reader (CNN + BiGRU + CTC) and the reader choice, on tiny generated folders."""

import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captcha import CaptchaSolver
from captcha.cli import main
from captcha.data import Sample, load_folder, split
from captcha.model import Reading, SegmentConfig
from captcha.readers import (
    CLEAN_CUT_ORDER,
    COST_ORDER,
    CaptchaReader,
    ChoiceConfig,
    ReaderConfig,
    VotingReader,
    choose,
    cost_order,
    judge,
    read_slice,
)
from captcha.sequence import (
    POOL_X,
    SequenceConfig,
    SequenceReader,
    build_network,
    choose_ink,
    dataset,
    fit_to_input,
    greedy_paths,
    inference_function,
    learning_rate,
    length_path,
    reading_network,
    reading_paths,
    too_short_to_settle,
)
from captcha.synth import generate
from recognisers.backend import native_bfloat16
from recognisers.contract import config_from_json
from recognisers.errors import UserError

CHARSET = "ABCDEFGH23"
TINY = SequenceConfig(
    height=24,
    filters=(16, 24, 32),
    convs_per_block=1,  # the default's two cost twice the time and are not what these tests test
    rnn_units=32,
    epochs=10,
    patience=10,
    augment=False,
    learning_rate=4e-3,
    batch_size=16,
    seed=0,
)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, match):
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("captcha: error:") and match in lines[0], err


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Variable-length (3 and 5 glyphs) simple-style training and test folders."""
    root = tmp_path_factory.mktemp("seq")
    for part, count, seed in (("train", 150, 1), ("test", 25, 3)):
        generate(root / part, count, 3, CHARSET, seed=seed)
        generate(root / part, count, 5, CHARSET, seed=seed + 1)
    return root


@pytest.fixture(scope="module")
def reader(folders):
    return SequenceReader(TINY).fit(load_folder(folders / "train"), log=lambda line: None)


def test_learns_a_variable_length_set_far_above_chance(reader, folders):
    report = reader.evaluate(load_folder(folders / "test"))
    metrics = report.metrics
    assert reader.lengths == [3, 5]
    assert metrics["char_accuracy"] > 0.6  # chance: 0.1 per character
    assert metrics["sequence_accuracy"] > 0.3  # chance: 0.001 or less
    assert {len(p["read"]) for p in report.predictions} >= {3, 5}
    assert metrics["reader"] == "sequence" and set(metrics["read_by"]) == {"sequence"}


def test_readings_carry_confidences_and_column_spans(reader, folders):
    reading = reader.predict(load_folder(folders / "test")[0].path)
    assert len(reading.char_confidences) == len(reading.text) == len(reading.boxes)
    assert len(reading.text) in reader.lengths and set(reading.text) <= set(CHARSET)
    assert reading.confidence == pytest.approx(float(np.prod(reading.char_confidences)))
    starts = [box[0] for box in reading.boxes]
    assert starts == sorted(starts) and reading.reader == "sequence"


@pytest.fixture(scope="module")
def test_inputs(reader, folders):
    """The network's input batch of the test folder."""
    paths = [s.path for s in load_folder(folders / "test")]
    return reader.inputs([np.asarray(Image.open(p).convert("RGB")) for p in paths])


def test_the_reading_copy_folds_batch_normalisation_and_computes_what_training_did(reader, test_inputs):
    """Folded into the convolutions, the trained normalisation gives the same logits in float32."""
    from keras import layers

    x = test_inputs
    trained = np.asarray(reader.model(x, training=False))
    copy = reading_network(reader.model, reader.config, reader.width, len(reader.charset), "float32")
    assert not any(isinstance(layer, layers.BatchNormalization) for layer in copy.layers)
    assert np.abs(trained).max() > 1  # a trained network: not all near 0
    np.testing.assert_allclose(np.asarray(copy(x)), trained, atol=1e-4)


@pytest.mark.skipif(not native_bfloat16(), reason="this CPU has no native bfloat16")
def test_bfloat16_reading_is_checked_on_validation_and_used_only_when_as_good(reader, test_inputs):
    checked = reader.training["bfloat16"]
    right = checked["validation_right"]
    assert set(right) == {"float32", "bfloat16"}
    assert 0 < right["float32"] <= reader.training["validation_images"]
    assert checked["as_good"] == (right["bfloat16"] >= right["float32"])
    assert reader.precision() == ("bfloat16" if checked["as_good"] else "float32")
    texts = {
        precision: reader.texts(
            reader.frame_probs(test_inputs, inference_function(reader.reading_copy(precision)))
        )
        for precision in ("float32", "bfloat16")
    }
    agree = np.mean([a == b for a, b in zip(texts["float32"], texts["bfloat16"])])
    assert agree >= 0.9, agree
    for record, config, expected in (
        ({"as_good": True}, reader.config, "bfloat16"),
        ({"as_good": False}, reader.config, "float32"),
        ({"as_good": True}, replace(reader.config, bfloat16=False), "float32"),
    ):
        other = SequenceReader(config)
        other.training = {"bfloat16": record}
        assert other.precision() == expected


def test_greedy_path_merges_repeats_and_drops_blanks():
    frames = np.eye(4)[[0, 2, 2, 0, 2, 3, 3, 0]] * 0.9 + 0.025
    runs = greedy_paths(frames[None])[0]
    assert [(k, a, b) for k, a, b, _ in runs] == [(2, 1, 2), (2, 4, 4), (3, 5, 6)]


def collapsed(path):
    """A frame path's characters by the CTC rule, written out here as the tests' own oracle."""
    return [k for i, k in enumerate(path) if k and (i == 0 or k != path[i - 1])]


def brute_force_best(probs, lengths):
    """The best path's probability among every path of every allowed length, by enumeration."""
    best = 0.0
    for path in itertools.product(range(probs.shape[1]), repeat=len(probs)):
        if len(collapsed(path)) in lengths:
            best = max(best, float(np.prod(probs[np.arange(len(probs)), path])))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_length_path_finds_the_best_path_of_an_allowed_length(seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(3) * 0.5, size=5)  # 5 frames, blank and two classes
    lengths = [[1], [2], [3], [2, 4]][seed % 4]
    path = length_path(probs, lengths)
    assert len(collapsed(path)) in lengths
    found = float(np.prod(probs[np.arange(5), path]))
    assert found == pytest.approx(brute_force_best(probs, lengths), rel=1e-9)


def test_reading_holds_the_text_to_the_lengths_seen_in_training():
    blank, a, b = np.eye(3)
    # greedy merges the two As (no blank between them) and reads "AB"; a blank at 0.3 parts them
    frames = np.array(
        [
            0.95 * a + 0.05 * blank,
            0.65 * a + 0.3 * blank + 0.05 * b,
            0.9 * a + 0.1 * blank,
            0.9 * b + 0.1 * blank,
        ]
    )
    text = lambda runs: "".join("-AB"[k] for k, *_ in runs)  # noqa: E731
    assert text(greedy_paths(frames[None])[0]) == "AB"
    assert text(reading_paths(frames[None], [2])[0]) == "AB"  # an allowed length stays as it is
    runs = reading_paths(frames[None], [3])[0]
    assert text(runs) == "AAB" and [(first, last) for _, first, last, _ in runs] == [(0, 0), (2, 2), (3, 3)]
    assert [round(p, 2) for *_, p in runs] == [0.95, 0.9, 0.9]
    # a glyph too many: the least sure goes
    assert text(reading_paths(frames[None], [1])[0]) == "A"
    # no allowed length fits in the frames: the best path as it is
    assert text(reading_paths(frames[None], [5])[0]) == "AB"


def test_save_and_load_give_identical_predictions(reader, folders, tmp_path):
    reader.save(tmp_path / "m")
    names = {p.name for p in (tmp_path / "m").iterdir()}
    assert {"meta.json", "sequence_ctc.keras", "history.csv", "history.png"} <= names
    loaded = SequenceReader.load(tmp_path / "m")
    assert isinstance(CaptchaReader.load(tmp_path / "m").chosen, SequenceReader)  # it dispatches
    with pytest.raises(Exception, match="holds a sequence reader"):
        CaptchaSolver.load(tmp_path / "m")
    paths = [s.path for s in load_folder(folders / "test")[:12]]
    before, after = reader.predict_batch(paths), loaded.predict_batch(paths)
    assert [r.text for r in before] == [r.text for r in after]
    np.testing.assert_allclose([r.confidence for r in before], [r.confidence for r in after], rtol=1e-5)
    with pytest.raises(Exception, match="already holds a model"):
        reader.save(tmp_path / "m")


def test_segment_with_a_sequence_model_says_to_read(reader, folders, tmp_path, capsys):
    from captcha.cli import main

    reader.save(tmp_path / "m")
    image = str(load_folder(folders / "test")[0].path)
    cut = ["segment", image, "--model", str(tmp_path / "m"), "--out", str(tmp_path / "b.png")]
    assert main(cut) == 1
    assert "holds a sequence reader" in capsys.readouterr().err and not (tmp_path / "b.png").exists()
    assert main([*cut, "--read"]) == 0 and (tmp_path / "b.png").is_file()


def test_transparent_background_reads_as_white(reader, folders):
    path = load_folder(folders / "test")[0].path
    rgb = np.asarray(Image.open(path).convert("RGB"))
    ink = rgb.min(axis=2) < 128
    rgba = np.dstack([np.where(ink[..., None], rgb, 0), np.where(ink, 255, 0)]).astype(np.uint8)
    transparent = path.with_name("transparent.png")
    Image.fromarray(rgba, "RGBA").save(transparent)
    assert reader.predict(transparent).text == reader.predict(path).text


class Fixed:
    """A stand-in reader that reads each path as a fixed text and remembers what it was asked."""

    def __init__(self, texts, confidence, case="keep"):
        self.texts, self.confidence, self.case, self.asked = texts, confidence, case, []

    def read_each(self, paths):
        self.asked += list(paths)
        conf = self.confidence if isinstance(self.confidence, list) else [self.confidence] * len(self.texts)
        return [Reading(self.texts[int(p)], c, [c]) for p, c in zip(paths, [conf[int(p)] for p in paths])]


def both(segment, sequence, held):
    return {"segment": read_slice(segment, held), "sequence": read_slice(sequence, held)}


def test_judge_keeps_the_cheaper_reader_unless_a_costlier_one_reads_clearly_more():
    """Sequence is the cheapest to read with: a one-image lead of the vote does not buy the vote."""
    labels = [f"A{i:02d}" for i in range(40)]
    held = [Sample(str(i), t) for i, t in enumerate(labels)]
    # the sequence reader: 30 right and sure; 9 wrong and sure; image 39 wrong and unsure
    sequence = Fixed(labels[:30] + ["XX"] * 10, [0.95] * 39 + [0.5])
    segment = Fixed(["YY"] * 39 + [labels[39]], 0.8)  # reads only image 39 (more surely): the vote gets it
    selection = judge(both(segment, sequence, held), held, "keep")
    assert selection["validation_sequence_accuracy"] == {"segment": 0.025, "sequence": 0.75, "vote": 0.775}
    assert selection["chosen"] == "sequence"
    assert "vote read 1 more net, under 2 standard errors" in selection["reason"]
    assert "costlier reader needs a net gain of 2 standard errors" in selection["rule"]
    # the segmenter reads 8 more images right and none fewer: 8 >= 2 * sqrt(8), a real margin
    segment = Fixed(labels[:38] + ["YY"] * 2, 0.8)
    selection = judge(both(segment, sequence, held), held, "keep")
    assert selection["chosen"] == "segment" and selection["reason"].startswith("95.00% of 40")
    # 3 of 3 disagreements is not yet a margin (3 < 2 * sqrt(3)); 4 of 4 is
    for extra, chosen in ((3, "sequence"), (4, "segment")):
        segment = Fixed(labels[: 30 + extra] + ["YY"] * (10 - extra), 0.3)
        assert judge(both(segment, sequence, held), held, "keep")["chosen"] == chosen


def stand_in(name, trained, texts=None, error=None):
    """A reader class for :func:`choose` whose fit notes ``name`` in ``trained``, then returns a
    :class:`Fixed` reading ``texts`` (or raises ``error``)."""

    class Trainer:
        def __init__(self, config):
            pass

        def fit(self, rest, log, verbose):
            trained.append(name)
            if error:
                raise error
            return Fixed(texts, 0.95)

    return Trainer


def test_auto_trains_no_segmenter_where_the_sequence_reader_misses_too_few_to_lose(monkeypatch):
    """At 2 standard errors a costlier reader must win 4 images net: 3 misses cannot be beaten, 4 can."""
    labels = [f"A{i:02d}" for i in range(40)]
    samples = [Sample(str(i), t) for i, t in enumerate(labels)]
    config = ReaderConfig(choice=ChoiceConfig(choice_fraction=0.5))
    held = split(samples, 0.5, config.sequence.seed)[1]
    trained: list[str] = []
    monkeypatch.setattr("captcha.readers.CaptchaSolver", stand_in("segment", trained, labels))  # reads all
    for misses, chosen in ((3, "sequence"), (4, "segment")):
        texts = [("XX" if s in held[:misses] else s.label) for s in samples]
        monkeypatch.setattr("captcha.readers.SequenceReader", stand_in("sequence", trained, texts))
        trained.clear()
        model, selection = choose(samples, config, log=lambda line: None, verbose=False)
        assert selection["chosen"] == chosen and model.texts == (texts if chosen == "sequence" else labels)
        assert trained == (["sequence"] if misses == 3 else ["sequence", "segment"])
    assert selection["validation_sequence_accuracy"]["sequence"] == 0.8  # 16 of 20
    monkeypatch.setattr("captcha.readers.SequenceReader", stand_in("sequence", trained, labels))
    _, selection = choose(samples, config, log=lambda line: None, verbose=False)
    assert selection["validation_sequence_accuracy"] == {"sequence": 1.0}
    assert "0 missed, fewer than the 4 a costlier reader would have to win" in selection["reason"]
    assert selection["reason"].endswith("the segmenter was not trained")


def test_auto_keeps_the_sequence_reader_and_says_why_where_the_segmenter_cannot_train(monkeypatch):
    samples = [Sample(str(i), f"A{i:02d}") for i in range(40)]
    trained: list[str] = []
    reads_nothing = stand_in("sequence", trained, ["XX"] * 40)  # any segmenter could win
    cannot = UserError("too few images could be segmented to train on; check the labels")
    monkeypatch.setattr("captcha.readers.SequenceReader", reads_nothing)
    monkeypatch.setattr("captcha.readers.CaptchaSolver", stand_in("segment", trained, error=cannot))
    config = ReaderConfig(choice=ChoiceConfig(choice_fraction=0.5))
    model, selection = choose(samples, config, log=lambda line: None, verbose=False)
    assert trained == ["sequence", "segment"]
    assert selection["chosen"] == "sequence" and model.texts == ["XX"] * 40
    assert selection["validation_sequence_accuracy"] == {"sequence": 0.0}
    assert selection["reason"].endswith(
        "the segmenter: too few images could be segmented to train on; check the labels"
    )


def test_auto_trains_the_segmenter_first_where_it_is_the_cheaper_reader(monkeypatch):
    """Where shape cuts nearly every image, the sequence reader must beat the segmenter, not the
    other way round: 3 segmenter misses cannot be beaten (no sequence reader is trained), 4 can,
    and a sequence reader that misses the same 4 does not displace it."""
    labels = [f"A{i:02d}" for i in range(40)]
    samples = [Sample(str(i), t) for i, t in enumerate(labels)]
    config = ReaderConfig(choice=ChoiceConfig(choice_fraction=0.5))
    held = split(samples, 0.5, config.sequence.seed)[1]
    trained: list[str] = []
    monkeypatch.setattr("captcha.readers.cost_order", lambda held, segment, log: (CLEAN_CUT_ORDER, 1.0))

    def missing(misses):
        return [("XX" if s in held[:misses] else s.label) for s in samples]

    for seg_misses, seq_misses, chosen in ((3, 0, "segment"), (4, 0, "sequence"), (4, 4, "segment")):
        monkeypatch.setattr(
            "captcha.readers.CaptchaSolver", stand_in("segment", trained, missing(seg_misses))
        )
        monkeypatch.setattr(
            "captcha.readers.SequenceReader", stand_in("sequence", trained, missing(seq_misses))
        )
        trained.clear()
        model, selection = choose(samples, config, log=lambda line: None, verbose=False)
        assert selection["chosen"] == chosen and model.texts == missing(
            seg_misses if chosen == "segment" else 0
        )
        assert trained == (["segment"] if seg_misses == 3 else ["segment", "sequence"])
        assert selection["rule"].startswith("cheapest first (segment, sequence, vote)")
        assert selection["shape_cut_agreement"] == 1.0
    monkeypatch.setattr("captcha.readers.CaptchaSolver", stand_in("segment", trained, missing(3)))
    _, selection = choose(samples, config, log=lambda line: None, verbose=False)
    assert selection["reason"].endswith(
        "a costlier reader would have to win: the sequence reader was not trained"
    )


def test_auto_keeps_the_segmenter_and_says_why_where_the_sequence_reader_cannot_train(monkeypatch):
    samples = [Sample(str(i), f"A{i:02d}") for i in range(40)]
    trained: list[str] = []
    cannot = UserError("no label fits in the frames")
    monkeypatch.setattr("captcha.readers.SequenceReader", stand_in("sequence", trained, error=cannot))
    monkeypatch.setattr(
        "captcha.readers.CaptchaSolver", stand_in("segment", trained, [s.label for s in samples])
    )
    config = ReaderConfig(choice=ChoiceConfig(choice_fraction=0.5))
    model, selection = choose(samples, config, log=lambda line: None, verbose=False)
    assert trained == ["sequence", "segment"] and selection["chosen"] == "segment"
    assert selection["reason"].endswith("the sequence reader: no label fits in the frames")
    monkeypatch.setattr("captcha.readers.CaptchaSolver", stand_in("segment", trained, error=cannot))
    with pytest.raises(UserError, match="no label fits"):  # neither could train: the first error
        choose(samples, config, log=lambda line: None, verbose=False)


def test_the_segmenter_is_the_cheaper_reader_only_where_shape_cuts_nearly_every_image(tmp_path):
    """Shape-only glyph counts on a plain style agree with the labels (the segmenter first);
    on touching glyphs they do not (the sequence reader first); unreadable files: the default."""
    for style, order in (("simple", CLEAN_CUT_ORDER), ("touching", COST_ORDER)):
        generate(tmp_path / style, 60, 3, "ABCDEFGH", style=style, seed=5)
        found, agreement = cost_order(load_folder(tmp_path / style), SegmentConfig(), log=lambda line: None)
        assert found == order and (agreement >= 0.99) == (style == "simple"), agreement
    assert cost_order([Sample("missing.png", "AB")], SegmentConfig(), log=lambda line: None) == (
        COST_ORDER,
        None,
    )


def test_auto_keeps_the_segmenter_where_the_sequence_reader_had_no_time(folders, tmp_path):
    """One epoch of the sequence reader reads nothing; the segmenter reads most: auto keeps it."""
    samples = [s for s in load_folder(folders / "train") if len(s.label) == 3]
    config = ReaderConfig(
        segment=SegmentConfig(align_rounds=0),
        sequence=replace(TINY, filters=(8, 8, 8), epochs=1),
        choice=ChoiceConfig(choice_fraction=0.2),
    )
    model = CaptchaReader(config).fit(samples, log=lambda line: None, verbose=False)
    assert not (tmp_path / "m").exists()  # fit writes nothing
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["reader"] == "segment" and isinstance(model.chosen, CaptchaSolver)
    assert meta["selection"] == model.selection and CaptchaReader.load(tmp_path / "m").config == config
    accuracy = meta["selection"]["validation_sequence_accuracy"]
    assert accuracy["segment"] > accuracy["sequence"] + 0.3
    assert not (tmp_path / "m" / "sequence").exists() and (tmp_path / "m" / "glyph_cnn.keras").exists()


def test_cli_train_sequence_and_predict_json_name_the_reader(folders, tmp_path, capsys):
    code, out, _ = run(
        capsys,
        "train",
        folders / "train",
        "--out",
        tmp_path / "m",
        "--reader",
        "sequence",
        "--epochs",
        1,
        "--quiet",
    )
    assert code == 0 and "best epoch" in out
    code, out, _ = run(
        capsys, "predict", tmp_path / "m", *[s.path for s in load_folder(folders / "test")[:2]], "--json"
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 2 and all(line["reader"] == "sequence" for line in lines)
    code, _, err = run(capsys, "train", folders / "train", "--out", tmp_path / "m", "--reader", "sequence")
    assert_one_line_error(code, err, "--force")
    (tmp_path / "bad.png").write_text("not an image")
    code, _, err = run(capsys, "predict", tmp_path / "m", tmp_path / "bad.png")
    assert_one_line_error(code, err, "not a readable image")
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    (tmp_path / "m" / "meta.json").write_text(json.dumps({**meta, "config": None}))
    code, _, err = run(capsys, "predict", tmp_path / "m", tmp_path / "bad.png")
    assert_one_line_error(code, err, "damaged")
    (tmp_path / "m" / "meta.json").write_text(json.dumps({**meta, "reader": "oracle"}))
    code, _, err = run(capsys, "evaluate", tmp_path / "m", folders / "test", "--report", tmp_path / "r.json")
    assert_one_line_error(code, err, "unknown reader")


def test_vote_asks_the_segmenter_only_where_the_sequence_reader_is_unsure():
    sequence = Fixed(["AB", "XX", "CD"], [0.99, 0.3, 0.6])
    segment = Fixed(["ZZ", "EF", "YY"], [0.5, 0.8, 0.4])
    readings = VotingReader(sequence, segment).predict_batch(["0", "1", "2"])
    assert [r.text for r in readings] == ["AB", "EF", "CD"] and segment.asked == ["1", "2"]


def test_a_voting_model_saves_and_loads_through_the_reader_choice(reader, folders, tmp_path):
    samples = load_folder(folders / "train")
    segmenter = CaptchaSolver(SegmentConfig(epochs=2, align_rounds=0)).fit(
        samples, log=lambda _: None, verbose=False
    )
    model = CaptchaReader()
    model.chosen, model.selection = VotingReader(reader, segmenter), {"chosen": "vote"}  # what auto keeps
    model.save(tmp_path / "vote")
    assert {"segment", "sequence", "meta.json"} <= {p.name for p in (tmp_path / "vote").iterdir()}
    loaded = CaptchaReader.load(tmp_path / "vote")
    assert (
        loaded.reader == "vote" and loaded.selection == {"chosen": "vote"} and loaded.config == model.config
    )
    paths = [s.path for s in load_folder(folders / "test")[:12]]
    before, after = model.predict_batch(paths), loaded.predict_batch(paths)
    assert [(r.text, r.reader) for r in before] == [(r.text, r.reader) for r in after]
    np.testing.assert_allclose([r.confidence for r in before], [r.confidence for r in after], rtol=1e-5)


def test_the_step_budget_sets_the_epochs_and_a_seeded_training_repeats_exactly(folders):
    """The budget is counted in optimizer steps, not seconds: the same seed trains the same weights."""
    samples = load_folder(folders / "train")[:60]  # 54 to train on: 4 steps of 16 per epoch
    config = replace(TINY, filters=(8, 8), rnn_units=8, augment=True, max_steps=12, step_cap=12, epochs=5)
    first, second = (SequenceReader(config).fit(samples, log=lambda _: None) for _ in range(2))
    assert first.training["planned_epochs"] == 3 and first.training["steps"] == 12
    assert first.training["stopped_by"] == "step budget" and len(first.history) == 3
    for a, b in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [dict(row, seconds=0) for row in first.history] == [dict(row, seconds=0) for row in second.history]


def test_the_learning_rate_holds_its_peak_on_the_ctc_plateau_then_settles_to_zero():
    config = SequenceConfig(learning_rate=0.01)
    assert [learning_rate(config, epoch, 10, None) for epoch in range(3)] == [0.01] * 3
    rates = [learning_rate(config, epoch, 10, 4) for epoch in range(4, 10)]
    assert rates[0] == 0.01 and all(a > b for a, b in itertools.pairwise(rates))
    assert 0 < rates[-1] < 0.001  # the last planned epoch trains at a small rate


def test_models_saved_with_the_retired_wall_clock_settings_still_load():
    """Older models saved lr_patience (sequence) and time budgets (auto): read and ignored, nothing else.

    They were saved before colour input, two convolutions per block and band ink, so they read
    grey pixels with one."""
    old = {
        "sequence": {"lr_patience": 3, "seed": 4},
        "choice": {"time_budget": 540.0, "min_sequence_seconds": 360},
    }
    config = config_from_json(ReaderConfig, old, "m/meta.json")
    assert config.sequence == SequenceConfig(seed=4, colour=False, convs_per_block=1, ink="none")
    assert config.choice == ChoiceConfig()
    with pytest.raises(UserError, match="unknown field.*config.sequence.lr_halving"):
        config_from_json(ReaderConfig, {"sequence": {"lr_halving": 3}}, "m/meta.json")


def test_a_cycle_mostly_on_the_ctc_plateau_earns_another_at_half_the_rate(folders):
    """The tiny network first reads in the fifth of 6 epochs, too late to settle: 3 more follow."""
    samples = load_folder(folders / "train")  # 270 to train on: 17 steps of 16 per epoch
    config = replace(TINY, max_steps=17 * 6, step_cap=17 * 12, epochs=20)
    reader = SequenceReader(config).fit(samples, log=lambda _: None)
    rates = [row["learning_rate"] for row in reader.history]
    assert rates[:6] == [config.learning_rate] * 6  # the peak: no image read right before epoch 5
    assert reader.training["cycles"] == 2 and len(rates) == 9 and reader.training["most_epochs"] == 12
    assert rates[6] == pytest.approx(config.learning_rate / 2) and rates[6] > rates[7] > rates[8]  # cosine
    assert reader.training["best_epoch"] > 6  # the second cycle read the slice better


def test_a_cycle_is_too_short_to_settle_when_most_of_it_sat_on_the_ctc_plateau():
    assert too_short_to_settle(0.5, 10, 10)  # read first in the cycle's last epoch: no cosine yet
    assert too_short_to_settle(0.5, 6, 10)  # read from epoch 6 of 0..9: a cosine of 4 epochs
    assert not too_short_to_settle(0.5, 5, 10)  # half the cycle's epochs on the cosine: settled
    assert not too_short_to_settle(0.5, 2, 10)  # a best epoch late in a cosine is no sign of more
    assert not too_short_to_settle(0.5, 6, 10, first=6)  # a whole second cycle of cosine
    assert not too_short_to_settle(1.0, 10, 10)  # nothing left to read better
    assert not too_short_to_settle(0.0, None, 10)  # never read anything: more of the same will not help


def test_colour_reaches_the_network_and_grey_models_still_read(folders, tmp_path):
    """Red and green of one grey level differ in the RGB input; a grey model reads grey input."""
    red, green = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)
    red[..., 0], green[..., 1] = 255, 128  # luminance 76 and 75
    (r, _), (g, _) = fit_to_input(red, 8, 16, 3), fit_to_input(green, 8, 16, 3)
    assert r.shape == (8, 16, 3) and np.abs(r - g)[:, :8].max(axis=2).min() > 0.4 and not r[:, 8:].any()
    (r1, _), (g1, _) = fit_to_input(red, 8, 16, 1), fit_to_input(green, 8, 16, 1)
    assert r1.shape == (8, 16, 1) and np.abs(r1 - g1).max() < 0.01
    grey_image = np.full((8, 8), 200, np.uint8)
    assert np.allclose(fit_to_input(grey_image, 8, 8, 3)[0], 1 - 200 / 255)  # a grey image, repeated
    config = replace(TINY, colour=False, filters=(8, 8), rnn_units=8, epochs=1)
    reader = SequenceReader(config).fit(load_folder(folders / "train")[:40], log=lambda _: None)
    reader.save(tmp_path / "grey")
    meta = json.loads((tmp_path / "grey" / "meta.json").read_text())
    del meta["config"]["colour"], meta["config"]["ink"], meta["ink"]  # as a model saved before
    # colour input and band ink: it read grey pixels
    (tmp_path / "grey" / "meta.json").write_text(json.dumps(meta))
    loaded = SequenceReader.load(tmp_path / "grey")
    assert loaded.model.input_shape[-1] == 1 and not loaded.config.colour and loaded.ink == "none"
    image = load_folder(folders / "test")[0].path
    assert loaded.predict(image).text == reader.predict(image).text


def test_each_conv_block_stacks_its_convolutions_and_keeps_one_frame_per_four_columns():
    """Two 3x3 convolutions a block by default (the shapes they learn, not more pooling)."""
    from keras import layers

    for per_block in (1, 2):
        network = build_network(replace(SequenceConfig(), convs_per_block=per_block), 96, 3, 10)
        convs = [layer for layer in network.layers if isinstance(layer, layers.Conv2D)]
        assert len(convs) == 3 * per_block and [c.filters for c in convs[::per_block]] == [32, 64, 128]
        assert network.output_shape == (None, 96 // POOL_X, 11)
    with pytest.raises(UserError, match="convs_per_block"):
        SequenceReader(replace(TINY, convs_per_block=0)).fit([Sample(Path("x.png"), "AB")] * 2)


def test_band_ink_drops_noise_darker_than_the_letters_from_the_input():
    """A mid-grey glyph (an n of 4-pixel strokes) under black lines: band ink keeps the glyph.

    Grey models read grey and band ink."""
    image = np.full((40, 120, 3), 235, np.uint8)
    image[8:34, 20:24] = image[8:34, 36:40] = image[8:12, 20:40] = 100
    image[4, :] = 0  # a thin black line above it ...
    image[20, :] = 0  # ... and one through it
    pixels, _ = fit_to_input(image, 40, 128, 3)
    both, _ = fit_to_input(image, 40, 128, 4, ink="band")
    assert both.shape == (40, 128, 4) and np.array_equal(both[..., :3], pixels)  # the pixels, and
    band = both[..., 3]  # the band ink beside them
    assert pixels[4, 60:110].min() > 0.9 and band[4, 60:110].max() < 0.1  # the line is gone
    assert pixels[20, 60:110].min() > 0.9 and band[20, 60:110].max() < 0.1
    assert band[8:34, 20:24].min() > 0.9 and band[8:12, 20:40].min() > 0.9  # the glyph stays whole
    assert band[:, 120:].max() == 0  # the padding is background
    grey_band, _ = fit_to_input(image, 40, 128, 2, ink="band")
    assert np.array_equal(grey_band[..., 1], band) and grey_band[8:34, 20:24, 0].min() > 0.5


def test_auto_reads_band_ink_where_the_segmenter_chose_it(tmp_path):
    """arcs-dots (an arc and dots darker than the letters) gets band ink, the simple style pixels."""
    chosen = {}
    for style in ("arcs-dots", "simple"):
        generate(tmp_path / style, 40, 4, CHARSET, style=style, seed=5)
        samples = load_folder(tmp_path / style)
        validation = [(np.asarray(Image.open(s.path).convert("RGB")), s.label) for s in samples]
        chosen[style] = choose_ink("auto", validation, log=lambda _: None)
        assert choose_ink("none", validation, log=lambda _: None) == "none"  # asked for: no tuning
    assert chosen == {"arcs-dots": "band", "simple": "none"}


def test_a_band_ink_model_saves_and_reads_and_a_meta_json_that_does_not_fit_is_refused(folders, tmp_path):
    config = replace(TINY, ink="band", filters=(8, 8), rnn_units=8, epochs=1)
    reader = SequenceReader(config).fit(load_folder(folders / "train")[:40], log=lambda _: None)
    assert reader.ink == "band" and reader.model.input_shape[-1] == 4  # RGB and band ink
    reader.save(tmp_path / "band")
    loaded = SequenceReader.load(tmp_path / "band")
    paths = [s.path for s in load_folder(folders / "test")[:6]]
    assert loaded.ink == "band"
    np.testing.assert_allclose(
        [r.confidence for r in loaded.predict_batch(paths)],
        [r.confidence for r in reader.predict_batch(paths)],
        rtol=1e-5,
    )
    meta = json.loads((tmp_path / "band" / "meta.json").read_text())
    meta["ink"] = "colour"
    (tmp_path / "band" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="damaged"):
        SequenceReader.load(tmp_path / "band")
    del meta["ink"]  # as if it read the pixels alone: three channels, not the network's four
    (tmp_path / "band" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="does not fit"):
        SequenceReader.load(tmp_path / "band")
    assert "ink must be one of" in replace(config, ink="Band").problem()


def test_dataset_reshuffles_each_epoch_with_its_seed_and_no_autotune():
    x, y = np.zeros((20, 2), np.float32), np.arange(20)

    def epoch(data) -> list[int]:
        return [int(v) for _, labels in data for v in labels.numpy()]

    shuffled = dataset(x, y, 8, seed=3)
    batches = [labels.numpy().tolist() for _, labels in shuffled]
    assert [len(labels) for labels in batches] == [8, 8, 4]
    first, second = sum(batches, []), epoch(shuffled)
    assert sorted(first) == sorted(second) == list(range(20))  # every row once an epoch
    assert first != second  # a new order every epoch
    assert epoch(dataset(x, y, 8, seed=3)) == first  # the seed decides it
    # an autotuned iterator's end waits out its tuning thread's sleep (up to 60 s an epoch)
    assert shuffled.options().autotune.enabled is False  # unset (None) means on


def test_a_sequence_model_whose_meta_disagrees_with_its_weights_is_refused(reader, tmp_path):
    import json

    from captcha.readers import CaptchaReader

    reader.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    for edit in ({"charset": "AB"}, {"ink": ["band"]}):  # fewer classes than the logits; a list
        (tmp_path / "m" / "meta.json").write_text(json.dumps({**meta, **edit}))
        with pytest.raises(UserError, match="does not fit|must be"):
            CaptchaReader.load(tmp_path / "m")
