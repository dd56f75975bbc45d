"""The official VQA accuracy and its answer normalisation, on hand-worked cases."""

import pytest

from vqa.metrics import (exact_match, normalize_answer, per_type_accuracy, process_punctuation,
                         vqa_accuracy)


@pytest.mark.parametrize("matches, expected", [
    (10, 1.0),
    # 3 matching: leaving one of them out leaves 2 (2/3), leaving another out leaves 3 (1).
    (3, (3 * 2 / 3 + 7 * 1) / 10),
    # 2 matching: 2 subsets with 1 match (1/3), 8 subsets with 2 matches (2/3) -> 0.6.
    (2, (2 * 1 / 3 + 8 * 2 / 3) / 10),
    (1, 9 * (1 / 3) / 10),
    (0, 0.0),
])
def test_leave_one_out_average(matches, expected):
    answers = ["yes"] * matches + ["no"] * (10 - matches)
    assert vqa_accuracy("yes", answers) == pytest.approx(expected)


def test_prediction_is_normalised_digits_articles_punctuation_case():
    assert vqa_accuracy("Two", ["2"] * 10) == 1.0
    assert vqa_accuracy("a dog", ["dog"] * 10) == 1.0
    assert vqa_accuracy("  the Dog.\n", ["dog"] * 10) == 1.0
    assert vqa_accuracy("isnt", ["isn’t"] * 10) == 1.0


def test_human_answers_are_processed_only_when_they_differ():
    # All ten identical: left as they are, so "dog." never equals the cleaned "dog".
    assert vqa_accuracy("dog.", ["dog."] * 10) == 0.0
    # They differ: punctuation processing turns "dog." into "dog" for every human answer.
    assert vqa_accuracy("dog", ["dog."] * 9 + ["cat"]) == 1.0


def test_punctuation_rules():
    assert process_punctuation("yes, it is") == "yes it is"      # ", " -> removed
    assert process_punctuation("black/white") == "black white"   # no space near -> a space
    assert process_punctuation("1,000") == "1000"                # digit comma -> all removed
    assert process_punctuation("3.5") == "3.5"                   # decimal point kept
    assert normalize_answer("Ten") == "10"


def test_exact_match_and_per_type():
    assert exact_match("The Circle", "circle")
    assert not exact_match("circle", "square")
    table = per_type_accuracy([1, 0, 1, 1], ["shape", "shape", "colour", "colour"])
    assert table == {"colour": {"count": 2, "accuracy": 1.0},
                     "shape": {"count": 2, "accuracy": 0.5}}


def test_no_human_answers_is_an_error():
    with pytest.raises(ValueError):
        vqa_accuracy("yes", [])
