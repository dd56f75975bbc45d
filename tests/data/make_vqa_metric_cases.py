"""Make ``vqa_metric_cases.json``: answers scored by the official VQA evaluation script.

The official script is not part of this project. To remake the file, fetch
``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` of GT-Vision-Lab/VQA at the commit recorded
below, change its two Python 2 ``print "..."`` statements to ``print("...")`` (nothing else),
and run:

    python tests/data/make_vqa_metric_cases.py PATH/TO/vqaEval.py tests/data/vqa_metric_cases.json

Each case is scored by a fresh ``VQAEval`` (``n=12`` decimals instead of 2) fed answers in the
official annotation layout (``answer``, ``answer_confidence``, ``answer_id``). ``accuracy`` is
the script's per-question accuracy (the mean over leave-one-out subsets, as in its overall
figure); ``last_subset`` is the ``acc`` it stores per question and averages per question and
answer type. ``set`` scores all cases in one run, case ``i`` having answer type
``answer_type_cycle[i % 3]``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import random
import sys

OFFICIAL = {"repo": "GT-Vision-Lab/VQA",
            "path": "PythonEvaluationTools/vqaEvaluation/vqaEval.py",
            "commit": "07aecec5a25de425d107f092906d6fee49513a43",
            "port": "Python 3: the two print statements became print() calls, nothing else"}
SEED = 8
ANSWER_TYPES = ("yes/no", "number", "other")

GROUPS = [
    ["dog", "Dog", "the dog", "a dog", "dog.", "dogs", "DOG", "dog!", " dog", "dog\n"],
    ["2", "two", "Two", "2.", "2 ", "two dogs", "2 dogs", "TWO", "2,"],
    ["10:30 am", "10:30", "10 30 am", "10:30am", "1030", "10:30 AM", "10.30 am", "10:30 a.m."],
    ["red car", "red, car", "red,car", "Red car", "a red car", "red-car", "red car.", "red ,car"],
    ["isn't", "isnt", "isn’t", "is not", "Isnt", "isn't.", "isn t"],
    ["1,000", "1000", "1 000", "1,000.", "1.000", "1,000,000", "1,2", "3 , 4"],
    ["yes", "Yes", "yes.", "yes!", "yeah", "no", "No", "nope", "yes?", "no;"],
    ["3.5", "3.50", "3,5", "3.5.", ".5", "1.", "5.0", "3. 5"],
    ["black/white", "black and white", "black / white", "black white", "white/black", "b/w"],
    ["(red)", "red", "red (dark)", "[red]", "red?", "red;", "<red>", "red_", "\"red\""],
    ["oclock", "o'clock", "o’clock", "5 oclock", "5 o'clock", "five oclock", "Oclock"],
    ["none", "0", "zero", "nothing", "None", "no one", "an apple", "the end"],
    ["t-shirt", "tshirt", "t shirt", "T-Shirt", "shirt", "t_shirt", "t+shirt"],
    ["whats", "what's", "what’s", "what is", "Whats", "thats", "that's"],
    ["youre", "you're", "you’re", "Im", "im", "I’m", "ive", "Ive", "dont", "don’t"],
    ["c++", "a+b", "x=1", "@home", "`quote`", "back\\slash", "mr. smith", "u.s.", "st. louis"],
    ["ice cream", "ice-cream", "icecream", "the ice cream", "Ice Cream", "ice  cream"],
    ["one", "1", "one.", "a one", "One", "eleven", "ten", "10", "nine", "9"],
]

HAND = [  # (prediction, answers): the examples and edge cases worth pinning
    ("10:30 am", ["10:30 am"] * 10),
    ("dog.", ["the dog", "Dog", "dog", "Dog", "No", "dog.", "a dog", "No", "a dog", "the dog"]),
    ("red, car", ["red car"] * 10),
    ("dog.", ["dog."] * 10),
    ("dog", ["dog."] * 9 + ["cat"]),
    ("Two", ["2"] * 10),
    ("two", ["two"] * 10),
    ("2", ["two"] * 10),
    ("yes", ["yes"] * 3 + ["no"] * 7),
    ("yes", ["yes"] * 2 + ["no"] * 8),
    ("yes", ["yes"] + ["no"] * 9),
    ("yes", ["no"] * 10),
    ("yes", ["yes"] * 4 + ["no"] * 6),
    ("yes", ["yes"]),
    ("yes", ["yes", "yes"]),
    ("yes", ["yes", "yes", "yes"]),
    ("yes", ["yes"] * 4),
    ("Yes", ["Yes"] * 10),
    ("yes", ["Yes"] * 10),
    ("isnt", ["isn’t"] * 10),
    ("isn't", ["isn't"] * 10),
    ("isn't", ["isn't"] * 9 + ["no"]),
    ("1,000", ["1000"] * 5 + ["1,000"] * 5),
    ("3.5", ["3.5"] * 6 + ["3,5"] * 4),
    ("black/white", ["black white"] * 6 + ["black/white"] * 4),
    ("", ["yes"] * 10),
    ("   ", [""] * 10),
    ("\tdog\n", ["dog"] * 10),
    ("a", ["a"] * 10),
    ("the", [""] * 5 + ["the"] * 5),
]


def load_official(path: str):
    spec = importlib.util.spec_from_file_location("vqaEval", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VQAEval


class _Annotations:
    """What ``VQAEval`` reads of the VQA API objects: ``qa`` and ``getQuesIds``."""

    def __init__(self, qa: dict) -> None:
        self.qa = qa

    def getQuesIds(self):  # noqa: N802 (the official API's name)
        return list(self.qa)


def _run(vqa_eval, cases: list[tuple[str, list[str]]], types: list[str]):
    gts, res = {}, {}
    for qid, ((pred, answers), kind) in enumerate(zip(cases, types)):
        gts[qid] = {"question_type": kind, "answer_type": kind, "answers": [
            {"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
            for j, a in enumerate(answers)]}
        res[qid] = {"question_id": qid, "answer": pred}
    scorer = vqa_eval(_Annotations(gts), _Annotations(res), n=12)
    with contextlib.redirect_stdout(io.StringIO()):
        scorer.evaluate()
    return scorer


def random_cases(count: int, rng: random.Random) -> list[tuple[str, list[str]]]:
    cases = []
    for _ in range(count):
        group = rng.choice(GROUPS)
        others = [a for g in GROUPS if g is not group for a in g]
        pred = rng.choice(group) if rng.random() < 0.8 else rng.choice(others)
        n = 10 if rng.random() < 0.9 else rng.choice([1, 2, 3, 5])
        if rng.random() < 0.3:
            answers = [rng.choice(group)] * n
        else:
            k = rng.randint(0, n)
            near = [pred if rng.random() < 0.4 else rng.choice(group) for _ in range(k)]
            answers = near + [rng.choice(others) for _ in range(n - k)]
            rng.shuffle(answers)
        cases.append((pred, answers))
    return cases


def main(official_path: str, out_path: str) -> None:
    vqa_eval = load_official(official_path)
    cases = HAND + random_cases(600, random.Random(SEED))
    records = []
    for pred, answers in cases:
        scorer = _run(vqa_eval, [(pred, list(answers))], ["other"])
        records.append({"prediction": pred, "answers": answers,
                        "accuracy": scorer.accuracy["overall"] / 100,
                        "last_subset": scorer.evalQA[0] / 100})
    types = [ANSWER_TYPES[i % len(ANSWER_TYPES)] for i in range(len(cases))]
    whole = _run(vqa_eval, [(p, list(a)) for p, a in cases], types)
    out = {"official_script": OFFICIAL, "made_by": "tests/data/make_vqa_metric_cases.py "
           f"(seed {SEED}; {len(HAND)} hand-written cases, the rest random)",
           "cases": records,
           "set": {"answer_type_cycle": list(ANSWER_TYPES),
                   "overall": whole.accuracy["overall"] / 100,
                   "per_answer_type": {k: v / 100 for k, v in
                                       whole.accuracy["perAnswerType"].items()}}}
    # one case per line: readable, and a diff shows which cases changed
    lines = [json.dumps(r, ensure_ascii=False) for r in out.pop("cases")]
    head = json.dumps(out, ensure_ascii=False, indent=1)
    text = head[:-2] + ',\n "cases": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"
    with open(out_path, "w", encoding="utf-8") as fh:
        fh.write(text)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
