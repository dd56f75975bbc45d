"""The three dataset formats, question types, answer vocabulary and the validation split."""

import json

import numpy as np
import pytest
from vqa_helpers import write_tiny_vqa2

from recognisers.errors import UserError
from vqa.data import answer_vocabulary, easy_vqa_type, read_easy_vqa, read_jsonl, read_vqa2, split_by_image


def test_vqa2_reader(tmp_path):
    q, a, images = write_tiny_vqa2(tmp_path)
    data = read_vqa2(str(q), str(a), str(images))
    assert len(data) == 3 and len(data.image_paths) == 2
    assert data.image_paths[0].endswith("COCO_val2014_000000000042.jpg")
    assert list(data.image_index) == [0, 0, 1]
    assert data.answers == ["red", "yes", "2"]
    assert data.types == ["other", "yes/no", "number"]
    assert len(data.human_answers[0]) == 10
    assert len(read_vqa2(str(q), str(a), str(images), max_questions=2)) == 2


def test_vqa2_reader_errors(tmp_path):
    q, a, images = write_tiny_vqa2(tmp_path)
    with pytest.raises(UserError, match="not found"):
        read_vqa2(str(tmp_path / "nope.json"), str(a), str(images))
    (tmp_path / "bad.json").write_text('{"questions": [{"question": "x"}]}')
    with pytest.raises(UserError, match="VQA v2 format"):
        read_vqa2(str(tmp_path / "bad.json"), str(a), str(images))


def test_jsonl_reader(tmp_path):
    (tmp_path / "imgs").mkdir()
    absolute = tmp_path / "abs.png"
    lines = [
        {"image": "imgs/a.png", "question": "What is it?", "answer": "cat", "type": "what"},
        {"image": str(absolute), "question": "Is it big?", "answers": ["yes", "yes", "no"]},
        {"image": "imgs/a.png", "question": "Colour?", "answer": "black"},
    ]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    data = read_jsonl(manifest)
    assert data.image_paths == [str(tmp_path / "imgs" / "a.png"), str(absolute)]
    assert data.answers == ["cat", "yes", "black"]  # most common human answer if none given
    assert data.types == ["what", "all", "all"]
    assert data.human_answers[1] == ["yes", "yes", "no"]
    assert data.human_answers[0] is None and data.human_answers[2] is None  # never invented


@pytest.mark.parametrize(
    "line, message",
    [
        ({"question": "q?", "answer": "a"}, "missing 'image'"),
        ({"image": "a.png", "question": "  ", "answer": "a"}, "missing 'question'"),
        ({"image": "a.png", "question": "q?"}, "missing 'answer'"),
        ("not json", "not a JSON object"),
        ("[" * 100_000 + "]" * 100_000, r"not a JSON object \(nested too deeply"),
        ({"image": "a.png", "question": "q?", "answers": ["", ""]}, "'answers' holds an empty answer"),
        ({"image": "a.png", "question": "q?", "answer": "a", "type": 3}, "'type' must be a string"),
    ],
)
def test_jsonl_bad_lines(tmp_path, line, message):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"image": "b.png", "question": "q", "answer": "a"})
        + "\n"
        + (line if isinstance(line, str) else json.dumps(line))
        + "\n"
    )
    with pytest.raises(UserError, match=rf"m.jsonl:2: {message}"):
        read_jsonl(manifest)


def test_jsonl_as_other_writers_write_it(tmp_path):
    # a BOM, U+2028 inside a string (json.dumps with ensure_ascii=False keeps it), "type": null
    lines = [
        {"image": "a.png", "question": "What\u2028is it?", "answer": "cat", "type": None},
        {"image": "a.png", "question": "Is it big?", "answer": "yes", "type": "size"},
    ]
    text = "\n".join(json.dumps(x, ensure_ascii=False) for x in lines)
    (tmp_path / "m.jsonl").write_text("\ufeff" + text, encoding="utf-8")
    data = read_jsonl(tmp_path / "m.jsonl")
    assert data.questions[0] == "What\u2028is it?" and data.types == ["all", "size"]


def test_vqa2_image_id_that_is_not_a_number(tmp_path):
    q, a, images = write_tiny_vqa2(tmp_path)
    questions = json.loads(q.read_text())
    questions["questions"][0]["image_id"] = "abc"
    q.write_text(json.dumps(questions))
    with pytest.raises(UserError, match="VQA v2 format"):
        read_vqa2(str(q), str(a), str(images))


def test_easy_vqa_reader_reads_a_few():
    data = read_easy_vqa("test", max_questions=30)
    assert len(data) == 30
    assert set(data.types) <= {"yes/no", "colour", "shape"}
    assert all(p.endswith(".png") for p in data.image_paths)
    with pytest.raises(UserError):
        read_easy_vqa("validation")


@pytest.mark.parametrize(
    "question, kind",
    [
        ("what color is the shape?", "colour"),
        ("what is the blue shape?", "shape"),
        ("what shape is present?", "shape"),
        ("is there a red shape?", "yes/no"),
        ("does the image not contain a circle?", "yes/no"),
    ],
)
def test_easy_vqa_types(question, kind):
    assert easy_vqa_type(question) == kind


def test_answer_vocabulary_top_k_stable():
    assert answer_vocabulary(["b", "a", "a", "c", "b", "d"], 3) == ["b", "a", "c"]


def test_split_by_image_keeps_images_apart():
    data = read_easy_vqa("train", max_questions=400)
    train, val = split_by_image(data, 0.25, seed=0)
    assert len(train) + len(val) == 400
    assert not set(train.image_paths) & set(val.image_paths)
    again, _ = split_by_image(data, 0.25, seed=0)
    assert again.questions == train.questions
    assert np.array_equal(again.image_index, train.image_index)


def test_unreadable_files_are_named_once(tmp_path):
    (tmp_path / "q.json").mkdir()
    (tmp_path / "m.jsonl").write_bytes(b"\xff\xfe")
    with pytest.raises(UserError) as info:
        read_vqa2(str(tmp_path / "q.json"), str(tmp_path / "q.json"), str(tmp_path))
    assert str(info.value).count("q.json") == 1 and "Is a directory" in str(info.value)
    with pytest.raises(UserError) as info:
        read_jsonl(tmp_path / "m.jsonl")
    assert str(info.value).count("m.jsonl") == 1 and "unreadable" in str(info.value)


def test_unknown_words_are_the_words_the_layer_reads_as_unknown():
    from vqa.text import QuestionEncoder

    encoder = QuestionEncoder.fit(["what color is the shape", "ist es grün"], max_length=8)
    for question in [
        "What\u00a0color is the shape?",
        "Ist es GRÜN?",
        "What COLOR is the shape?",
        "a\tb\u2003c",
    ]:
        words, ids = encoder.words(question), encoder([question])[0]
        assert len(words) == int(np.count_nonzero(ids))  # one id per word the helper names
        unknown = {w for w, i in zip(words, ids) if i == 1}
        assert set(encoder.unknown_words(question)) == unknown
    assert encoder.unknown_words("What\u00a0color is the shape?") == ["what\u00a0color"]
