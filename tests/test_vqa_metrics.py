"""The official VQA accuracy: against cases scored by the official script, and by hand.

``data/vqa_metric_cases.json`` holds 630 cases scored by GT-Vision-Lab/VQA's ``vqaEval.py``
(the repository, path and commit are recorded in the file, which
``data/make_vqa_metric_cases.py`` made; the official script itself is not in this project).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from vqa.data import VQASet
from vqa.evaluate import official_metric
from vqa.metrics import (
    exact_match,
    normalize_answer,
    official_type_score,
    per_type_accuracy,
    process_punctuation,
    vqa_accuracy,
)

OFFICIAL = json.loads((Path(__file__).parent / "data" / "vqa_metric_cases.json").read_text(encoding="utf-8"))


def test_cases_come_from_the_recorded_official_script():
    assert OFFICIAL["official_script"]["commit"] == "07aecec5a25de425d107f092906d6fee49513a43"
    assert len(OFFICIAL["cases"]) >= 300


def test_matches_the_official_script_on_every_case():
    wrong = [
        (c["prediction"], c["answers"], c["accuracy"], got)
        for c in OFFICIAL["cases"]
        if abs((got := vqa_accuracy(c["prediction"], c["answers"])) - c["accuracy"]) > 1e-9
    ]
    assert not wrong, f"{len(wrong)} cases differ, e.g. {wrong[:3]}"
    wrong = [
        c
        for c in OFFICIAL["cases"]
        if abs(official_type_score(c["prediction"], c["answers"]) - c["last_subset"]) > 1e-9
    ]
    assert not wrong, f"{len(wrong)} per-type scores differ, e.g. {wrong[:3]}"


def test_set_figures_match_the_official_script():
    cases, expected = OFFICIAL["cases"], OFFICIAL["set"]
    cycle = expected["answer_type_cycle"]
    data = VQASet(
        image_paths=["x.png"],
        image_index=np.zeros(len(cases), np.int64),
        questions=["q?"] * len(cases),
        answers=[c["answers"][0] for c in cases],
        types=[cycle[i % len(cycle)] for i in range(len(cases))],
        human_answers=[c["answers"] for c in cases],
    )
    got = official_metric([c["prediction"] for c in cases], data)
    assert got["vqa_accuracy"] == pytest.approx(expected["overall"], abs=1e-9)
    assert got["vqa_accuracy_count"] == len(cases)
    for kind, value in expected["per_answer_type"].items():
        assert got["per_type_vqa_accuracy"][kind]["accuracy"] == pytest.approx(value, abs=1e-9)


def test_official_metric_only_over_questions_with_human_answers():
    data = VQASet(
        image_paths=["x.png"],
        image_index=np.zeros(3, np.int64),
        questions=["q?"] * 3,
        answers=["yes", "red", "no"],
        types=["a", "b", "a"],
        human_answers=[None, ["red"] * 10, None],
    )
    got = official_metric(["yes", "red", "no"], data)
    assert got["vqa_accuracy"] == 1.0 and got["vqa_accuracy_count"] == 1
    assert set(got["per_type_vqa_accuracy"]) == {"b"}
    assert (
        official_metric(["yes"], VQASet(["x.png"], np.zeros(1, np.int64), ["q?"], ["y"], ["a"], None)) == {}
    )


@pytest.mark.parametrize(
    "matches, expected",
    [
        (10, 1.0),
        # 3 matching: leaving one of them out leaves 2 (2/3), leaving another out leaves 3 (1).
        (3, (3 * 2 / 3 + 7 * 1) / 10),
        # 2 matching: 2 subsets with 1 match (1/3), 8 subsets with 2 matches (2/3) -> 0.6.
        (2, (2 * 1 / 3 + 8 * 2 / 3) / 10),
        (1, 9 * (1 / 3) / 10),
        (0, 0.0),
    ],
)
def test_leave_one_out_average(matches, expected):
    answers = ["yes"] * matches + ["no"] * (10 - matches)
    assert vqa_accuracy("yes", answers) == pytest.approx(expected)


def test_prediction_is_normalised_digits_articles_punctuation_case():
    assert vqa_accuracy("Two", ["2"] * 10) == 1.0
    assert vqa_accuracy("a dog", ["dog"] * 10) == 1.0
    assert vqa_accuracy("  the Dog.\n", ["dog"] * 10) == 1.0
    assert vqa_accuracy("isnt", ["isn’t"] * 10) == 1.0


def test_issue_examples_score_as_the_official_script_does():
    # The official script (run on these): the prediction's ":" becomes a space, the ten
    # identical human answers are left alone; "Dog"/"the dog" from humans are not cleaned.
    assert vqa_accuracy("10:30 am", ["10:30 am"] * 10) == 0.0
    assert vqa_accuracy(
        "dog.", ["the dog", "Dog", "dog", "Dog", "No", "dog.", "a dog", "No", "a dog", "the dog"]
    ) == pytest.approx(0.6)
    assert vqa_accuracy("red, car", ["red car"] * 10) == 1.0


def test_human_answers_are_processed_only_when_they_differ():
    # All ten identical: left as they are, so "dog." never equals the cleaned "dog".
    assert vqa_accuracy("dog.", ["dog."] * 10) == 0.0
    # They differ: punctuation processing turns "dog." into "dog" for every human answer.
    assert vqa_accuracy("dog", ["dog."] * 9 + ["cat"]) == 1.0


def test_punctuation_rules():
    assert process_punctuation("yes, it is") == "yes it is"  # ", " -> removed
    assert process_punctuation("black/white") == "black white"  # no space near -> a space
    assert process_punctuation("1,000") == "1000"  # digit comma -> all removed
    assert process_punctuation("3.5") == "3.5"  # decimal point kept
    assert normalize_answer("Ten") == "10"


def test_exact_match_and_per_type():
    assert exact_match("The Circle", "circle")
    assert not exact_match("circle", "square")
    table = per_type_accuracy([1, 0, 1, 1], ["shape", "shape", "colour", "colour"])
    assert table == {"colour": {"count": 2, "accuracy": 1.0}, "shape": {"count": 2, "accuracy": 0.5}}


def test_no_human_answers_is_an_error():
    with pytest.raises(ValueError):
        vqa_accuracy("yes", [])
