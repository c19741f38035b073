"""Short answers scored with CMRC 2018's official metric, and the kind of a gold answer.

Written from the description of cmrc2018_evaluate.py (v5): lower-case and strip; every CJK character
(U+4E00–U+9FA5) and every listed punctuation mark is a token of its own, and what lies between them is
split as words (the script uses nltk.word_tokenize there; _RUN_TOKEN approximates it: a run of letters
and digits, with inner decimal points and thousands commas, is one token, any other mark is one token).
EM compares the texts with the punctuation removed; F1 is the best over the gold answers of the
precision/recall of the longest common *contiguous* run of tokens. One deviation, on purpose: both sides
are folded to Simplified first, because answers come back in the question's script.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from enum import Enum

from rag.text import to_simplified

# The script's `sp_char` list, sorted. Its "……" entry is two characters and so never equals the one
# character the script compares it with; a lone "…" is therefore kept, as there.
CMRC_PUNCTUATION = "*+-/:=\\^_`~·’“”、。《》「」『』！（），－：；？～"
_PUNCTUATION = frozenset(CMRC_PUNCTUATION)
_RUN_TOKEN = re.compile(r"\w+(?:[.,]\d+)*|\S")


def is_cjk(char: str) -> bool:
    """The official script's test for a character that is a token by itself (CJK Unified, U+4E00–U+9FA5)."""
    return "\u4e00" <= char <= "\u9fa5"


def _fold(text: str) -> str:
    return to_simplified(text).lower().strip()


def cmrc_tokens(text: str, drop_punctuation: bool = False) -> list[str]:
    """CMRC 2018's mixed segmentation: CJK characters and punctuation one by one, other runs as words.

    With `drop_punctuation` a mark is skipped without ending the run it stands in, as in the script:
    "10.7:36.9" becomes the single token "10.736.9".
    """
    tokens: list[str] = []
    run = ""
    for char in _fold(text):
        if drop_punctuation and char in _PUNCTUATION:
            continue
        if is_cjk(char) or char in _PUNCTUATION:
            tokens += _RUN_TOKEN.findall(run)
            run = ""
            tokens.append(char)
        else:
            run += char
    return tokens + _RUN_TOKEN.findall(run)


def cmrc_without_punctuation(text: str) -> str:
    """The text EM compares: folded, lower case, stripped, the listed punctuation removed (spaces kept)."""
    return "".join(c for c in _fold(text) if c not in _PUNCTUATION)


def longest_common_run(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest contiguous run of tokens that `a` and `b` share (not a subsequence)."""
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def short_em(prediction: str | None, golds: Sequence[str]) -> float:
    """1.0 when the prediction equals a gold answer after punctuation removal; None (no answer) scores 0."""
    if prediction is None:
        return 0.0
    got = cmrc_without_punctuation(prediction)
    return float(any(cmrc_without_punctuation(g) == got for g in golds))


def short_f1(prediction: str | None, golds: Sequence[str]) -> float:
    """Best F1 over the gold answers, from the longest common run of CMRC tokens; None scores 0."""
    if prediction is None:
        return 0.0
    got = cmrc_tokens(prediction, drop_punctuation=True)
    best = 0.0
    for gold in golds:
        want = cmrc_tokens(gold, drop_punctuation=True)
        common = longest_common_run(want, got)
        if common:
            precision, recall = common / len(got), common / len(want)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


_FIGURE = re.compile(r"\d+(?:[.,]\d+)*")


def _figures(text: str) -> frozenset[str]:
    """The Arabic figures of a text (any width), thousands commas dropped."""
    return frozenset(f.replace(",", "") for f in _FIGURE.findall(unicodedata.normalize("NFKC", text)))


def figures_agree(prediction: str, gold: str) -> bool:
    """Whether two answers name the same figures: one names none in Arabic digits (五年 and 5年 are left to F1),
    or they share one and one's figures hold all the other's (2000人 and 2000人(次), 1999年 and 1999年12月;
    not 5个 and 45个, 152公里 and 132公里)."""
    got, want = _figures(prediction), _figures(gold)
    if not got or not want:
        return True
    return bool(got & want) and (got <= want or want <= got)


def short_right(prediction: str | None, golds: Sequence[str], least_f1: float) -> bool:
    """A short answer is right when its F1 against a gold answer is at least `least_f1` (CMRC 2018's metric)
    and it names that gold's figures: F1 alone counts 5个 right against 45个 and 152公里 against 132公里,
    figures that share characters, not meaning."""
    if prediction is None:
        return False
    return any(short_f1(prediction, [g]) >= least_f1 and figures_agree(prediction, g) for g in golds)


class AnswerKind(Enum):
    """What a gold answer is, for EM/F1 split by kind (the issue's floor for numbers, dates and amounts)."""

    NUMBER = "number"  # a number, date or amount
    OTHER = "other"


_CHINESE_NUMERALS = "〇一七万三两九二五亿八六十千四百零"
_CHINESE_NUMBER = re.compile(f"[{_CHINESE_NUMERALS}]+.?")


def answer_kind(gold: str) -> AnswerKind:
    """NUMBER when the answer holds a digit (any width), or is Chinese numerals and at most one unit
    character (八成, 千场, 百亿元, 一九九八年); everything else (names, phrases, 四连跳) is OTHER."""
    text = unicodedata.normalize("NFKC", gold).strip()
    if any(c.isascii() and c.isdigit() for c in text) or _CHINESE_NUMBER.fullmatch(text):
        return AnswerKind.NUMBER
    return AnswerKind.OTHER


def candidates_hold_gold(candidates: Sequence[str], golds: Sequence[str]) -> bool:
    """True when one candidate span is a gold answer (EM after the official normalisation)."""
    return any(short_em(c, golds) == 1.0 for c in candidates)
