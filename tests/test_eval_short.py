"""CMRC 2018's official short-answer metric and the kind of a gold answer, from tables of examples."""

from __future__ import annotations

import pytest

from rag.eval_short import (
    CMRC_PUNCTUATION,
    AnswerKind,
    answer_kind,
    candidates_hold_gold,
    cmrc_tokens,
    cmrc_without_punctuation,
    figures_agree,
    longest_common_run,
    short_em,
    short_f1,
    short_right,
)


@pytest.mark.parametrize(
    ("text", "drop", "tokens"),
    [
        ("左云县14家", False, ["左", "云", "县", "14", "家"]),  # CJK one by one, a digit run whole
        ("左雲縣", False, ["左", "云", "县"]),  # folded to Simplified
        ("10.5%", False, ["10.5", "%"]),  # a decimal stays whole; % is not in the list, a token of its own
        ("60kW直流快充", False, ["60kw", "直", "流", "快", "充"]),  # lower case; letters and digits one run
        ("Hello World", False, ["hello", "world"]),  # spaces split a run
        ("25,106人", False, ["25,106", "人"]),  # a thousands comma inside a number
        ("甲,乙", False, ["甲", ",", "乙"]),  # an ASCII comma is not in the list: kept as a token
        ("10.7:36.9", False, ["10.7", ":", "36.9"]),
        (
            "10.7:36.9:52.4",
            True,
            ["10.736.952.4"],
        ),  # a dropped mark does not end the run (the script's quirk)
        ("《太行奶娘》", True, ["太", "行", "奶", "娘"]),
        ("“四连跳”。", True, ["四", "连", "跳"]),
        ("…", True, ["…"]),  # the list's "……" is two characters: a lone "…" is never removed
        ("  ", False, []),
    ],
)
def test_cmrc_tokens(text: str, drop: bool, tokens: list[str]) -> None:
    assert cmrc_tokens(text, drop_punctuation=drop) == tokens


@pytest.mark.parametrize(
    ("text", "stripped"),
    [
        ("《中国民歌盛典》", "中国民歌盛典"),
        (" 80億元。 ", "80亿元"),
        ("3-5个工作日", "35个工作日"),
        ("14 家", "14 家"),  # inner spaces are kept, so EM differs
        ("ABC", "abc"),
    ],
)
def test_cmrc_without_punctuation(text: str, stripped: str) -> None:
    assert cmrc_without_punctuation(text) == stripped


def test_punctuation_list_is_sorted_without_duplicates() -> None:
    assert list(CMRC_PUNCTUATION) == sorted(set(CMRC_PUNCTUATION))


@pytest.mark.parametrize(
    ("a", "b", "length"),
    [
        ("甲乙丙丁", "甲乙丙丁", 4),
        ("甲乙丙丁", "乙丙", 2),
        ("甲乙丙丁", "甲丙丁乙", 2),  # contiguous: the subsequence 甲丙丁 does not count
        ("甲乙", "丙丁", 0),
        ("", "甲", 0),
    ],
)
def test_longest_common_run(a: str, b: str, length: int) -> None:
    assert longest_common_run(list(a), list(b)) == length


@pytest.mark.parametrize(
    ("prediction", "golds", "em"),
    [
        ("80亿元", ["80亿元"], 1.0),
        ("80亿元。", ["80亿元"], 1.0),  # punctuation removed
        ("80億元", ["80亿元"], 1.0),  # the question's script against the document's
        ("80亿", ["80亿元"], 0.0),
        (" 14家 ", ["14家"], 1.0),  # stripped
        ("14 家", ["14家"], 0.0),  # an inner space is kept
        ("2023年3月15日", ["3月15日", "2023年3月15日"], 1.0),  # any one gold
        (None, ["14家"], 0.0),  # no short answer
        ("14家", [], 0.0),
    ],
)
def test_short_em(prediction: str | None, golds: list[str], em: float) -> None:
    assert short_em(prediction, golds) == em


@pytest.mark.parametrize(
    ("prediction", "golds", "f1"),
    [
        ("80亿元", ["80亿元"], 1.0),
        ("80亿元", ["80亿"], 0.8),  # P 2/3, R 1
        ("2023年3月15日", ["3月15日"], 0.8),  # P 4/6, R 1
        ("甲乙丙丁", ["甲丙丁乙"], 0.5),  # longest common *substring* 丙丁: P 1/2, R 1/2
        ("14家", ["15家", "14家"], 1.0),  # the best gold
        ("《太行奶娘》", ["太行奶娘"], 1.0),
        ("10.7:36.9:52.4", ["10.7"], 0.0),  # the joined run "10.736.952.4" shares no token with "10.7"
        ("森林覆盖率", ["58%"], 0.0),
        (None, ["58%"], 0.0),
        ("", ["58%"], 0.0),
    ],
)
def test_short_f1(prediction: str | None, golds: list[str], f1: float) -> None:
    assert short_f1(prediction, golds) == pytest.approx(f1)


@pytest.mark.parametrize(
    ("gold", "kind"),
    [
        ("80亿元", AnswerKind.NUMBER),
        ("2023年3月15日", AnswerKind.NUMBER),
        ("１４家", AnswerKind.NUMBER),  # full-width digits
        ("10.5%", AnswerKind.NUMBER),
        ("八成", AnswerKind.NUMBER),
        ("千场", AnswerKind.NUMBER),
        ("百亿元", AnswerKind.NUMBER),
        ("一九九八年", AnswerKind.NUMBER),
        ("四连跳", AnswerKind.OTHER),  # a numeral and two more characters: a name
        ("五星级幸福河", AnswerKind.OTHER),
        ("高鹏", AnswerKind.OTHER),
        ("中国民歌盛典", AnswerKind.OTHER),
        ("Ⅱ类", AnswerKind.OTHER),
    ],
)
def test_answer_kind(gold: str, kind: AnswerKind) -> None:
    assert answer_kind(gold) is kind


@pytest.mark.parametrize(
    ("candidates", "golds", "held"),
    [
        (["2023年1月10日", "2023年3月15日"], ["2023年3月15日"], True),
        (["2023年3月15日进入试运行"], ["2023年3月15日"], False),  # containing is not being
        ([], ["14家"], False),
    ],
)
def test_candidates_hold_gold(candidates: list[str], golds: list[str], held: bool) -> None:
    assert candidates_hold_gold(candidates, golds) is held


@pytest.mark.parametrize(
    ("prediction", "gold", "agree"),
    [
        ("2000人", "2000人(次)", True),  # the same figure, more or less unit
        ("1999年12月", "1999年", True),  # a date more exact than the gold
        ("5个", "45个", False),  # a figure that is a piece of the gold's
        ("152公里", "132公里", False),  # digits in common, another figure
        ("12.6%", "38.7%", False),
        ("25,106人", "25106人", True),  # thousands comma
        ("５年", "5年", True),  # full-width digits
        ("5年", "五年", True),  # no Arabic figure on one side: left to F1
        ("省人民医院", "省人民医院", True),
    ],
)
def test_figures_agree(prediction: str, gold: str, agree: bool) -> None:
    assert figures_agree(prediction, gold) is agree


@pytest.mark.parametrize(
    ("prediction", "golds", "right"),
    [
        ("45个", ["45个"], True),
        ("5个", ["45个"], False),  # F1 0.8 by the official metric, and wrong
        ("152公里", ["132公里"], False),
        ("2000人", ["2000", "2000人(次)"], True),
        ("新学道教育集团", ["北京新学道教育集团"], True),  # F1 ≥ 0.5 without figures
        ("教育", ["北京新学道教育集团"], False),  # F1 below 0.5
        (None, ["45个"], False),
    ],
)
def test_short_right_needs_f1_and_the_gold_figures(
    prediction: str | None, golds: list[str], right: bool
) -> None:
    assert short_right(prediction, golds, 0.5) is right
