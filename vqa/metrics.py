"""Accuracy measures: exact match after the official answer normalisation, per-type
accuracy, and the official VQA accuracy of GT-Vision-Lab's ``vqaEval.py``.

The normalisation reproduces the official script, quirks included (its period regex is a
look-ahead where a look-behind was meant, and ``re.UNICODE`` lands in ``count``), so that
figures from here compare with published ones.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache

_PUNCT = [";", ":", "/", "'", "[", "]", '"', "(", ")", "=", "+", "\\", "_", ">", "<", "@", "`", ",", "?"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")
_DIGITS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = {"a", "an", "the"}

# The official contraction table, as ``key=value`` pairs (its curly and straight
# apostrophes are kept as the script has them, since they decide what matches).
_CONTRACTIONS_TEXT = """
aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn’t’ve
couldnt’ve=couldn’t’ve didnt=didn’t doesnt=doesn’t dont=don’t hadnt=hadn’t hadnt’ve=hadn’t’ve
hadn'tve=hadn’t’ve hasnt=hasn’t havent=haven’t hed=he’d hed’ve=he’d’ve he’dve=he’d’ve hes=he’s
howd=how’d howll=how’ll hows=how’s Id’ve=I’d’ve I’dve=I’d’ve Im=I’m Ive=I’ve isnt=isn’t itd=it’d
itd’ve=it’d’ve it’dve=it’d’ve itll=it’ll let’s=let’s maam=ma’am mightnt=mightn’t
mightnt’ve=mightn’t’ve mightn’tve=mightn’t’ve mightve=might’ve mustnt=mustn’t mustve=must’ve
neednt=needn’t notve=not’ve oclock=o’clock oughtnt=oughtn’t ow’s’at=’ow’s’at ’ows’at=’ow’s’at
’ow’sat=’ow’s’at shant=shan’t shed’ve=she’d’ve she’dve=she’d’ve she’s=she’s shouldve=should’ve
shouldnt=shouldn’t shouldnt’ve=shouldn’t’ve shouldn’tve=shouldn’t’ve somebody’d=somebodyd
somebodyd’ve=somebody’d’ve somebody’dve=somebody’d’ve somebodyll=somebody’ll
somebodys=somebody’s someoned=someone’d someoned’ve=someone’d’ve someone’dve=someone’d’ve
someonell=someone’ll someones=someone’s somethingd=something’d somethingd’ve=something’d’ve
something’dve=something’d’ve somethingll=something’ll thats=that’s thered=there’d
thered’ve=there’d’ve there’dve=there’d’ve therere=there’re theres=there’s theyd=they’d
theyd’ve=they’d’ve they’dve=they’d’ve theyll=they’ll theyre=they’re theyve=they’ve
twas=’twas wasnt=wasn’t wed’ve=we’d’ve we’dve=we’d’ve weve=we've werent=weren’t
whatll=what’ll whatre=what’re whats=what’s whatve=what’ve whens=when’s whered=where’d
wheres=where's whereve=where’ve whod=who’d whod’ve=who’d’ve who’dve=who’d’ve wholl=who’ll
whos=who’s whove=who've whyll=why’ll whyre=why’re whys=why’s wont=won’t wouldve=would’ve
wouldnt=wouldn’t wouldnt’ve=wouldn’t’ve wouldn’tve=wouldn’t’ve yall=y’all yall’ll=y’all’ll
y’allll=y’all’ll yall’d’ve=y’all’d’ve y’alld’ve=y’all’d’ve y’all’dve=y’all’d’ve youd=you’d
youd’ve=you’d’ve you’dve=you’d’ve youll=you’ll youre=you’re youve=you’ve
"""
_CONTRACTIONS = dict(pair.split("=", 1) for pair in _CONTRACTIONS_TEXT.split())


@lru_cache(maxsize=65536)  # evaluation meets the same few answers again and again
def process_punctuation(text: str) -> str:
    """The official ``processPunctuation``: drop or space out punctuation, strip periods."""
    out = text
    has_digit_comma = _COMMA_STRIP.search(text) is not None
    for p in _PUNCT:
        if p + " " in text or " " + p in text or has_digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=int(re.UNICODE))


def process_digit_article(text: str) -> str:
    """The official ``processDigitArticle``: number words to digits, no articles, contractions."""
    words = [_DIGITS.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in _ARTICLES]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words)


@lru_cache(maxsize=65536)
def normalize_answer(answer: str) -> str:
    """How the official script cleans a predicted answer before comparing it."""
    answer = answer.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(answer))


def leave_one_out_scores(prediction: str, answers: Sequence[str]) -> list[float]:
    """The official per-subset scores: human answer ``i`` left out, min(1, matches / 3).

    Follows ``vqaEval.py`` exactly, quirks included:

    * the prediction is cleaned in full (:func:`normalize_answer`: whitespace, punctuation,
      lower case, number words, articles, contractions), but the human answers only get
      :func:`process_punctuation`, and only when they are not all the same: ten times
      ``"dog."`` never matches (the prediction ``"dog."`` becomes ``"dog"``), ``"Dog"`` or
      ``"the dog"`` from a human never matches ``"dog"``, ten times ``"10:30 am"`` never
      matches (``":"`` becomes a space in the prediction only);
    * punctuation next to a space is deleted, elsewhere replaced by a space (``"red, car"``
      -> ``"red car"``, ``"black/white"`` -> ``"black white"``), and a digit-comma-digit
      anywhere makes every punctuation mark deleted; its period regex is a look-ahead where
      a look-behind was meant, so ``"1."`` loses its period but ``"3.5"`` keeps it;
    * exactly one answer is left out per subset (the official answers carry distinct
      ``answer_id`` s, so its dict comparison never drops two equal answers at once).
    """
    if not answers:
        raise ValueError("vqa_accuracy needs at least one human answer")
    pred = normalize_answer(prediction)
    gts = list(answers)
    if len(set(gts)) > 1:
        gts = [process_punctuation(a) for a in gts]
    matches = sum(1 for a in gts if a == pred)
    return [min(1.0, (matches - (a == pred)) / 3) for a in gts]


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Official VQA accuracy of one prediction against the human answers (usually ten).

    The mean of :func:`leave_one_out_scores`, as in the official script's overall figure.
    Its per-type figures differ: see :func:`official_type_score`.
    """
    scores = leave_one_out_scores(prediction, answers)
    return sum(scores) / len(scores)


def official_type_score(prediction: str, answers: Sequence[str]) -> float:
    """The score ``vqaEval.py`` averages per question type and per answer type.

    A quirk of the script: its per-type tables (and ``evalQA``) use the loop variable left
    over from the leave-one-out loop, i.e. the score with the *last* human answer left out,
    not the mean over subsets. Kept so that per-type figures compare with published ones.
    """
    return leave_one_out_scores(prediction, answers)[-1]


def exact_match(prediction: str, answer: str) -> bool:
    """Exact match after the official normalisation of both sides."""
    return normalize_answer(prediction) == normalize_answer(answer)


def per_type_accuracy(correct: Iterable[float], types: Iterable[str]) -> dict[str, dict]:
    """Mean score and count per question type, types sorted by name."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for score, kind in zip(correct, types):
        sums[kind] += float(score)
        counts[kind] += 1
    return {k: {"count": counts[k], "accuracy": sums[k] / counts[k]} for k in sorted(counts)}
