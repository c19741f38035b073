"""Inputs a question arrives with: malformed ones are QuestionErrors, and history is bounded."""

from __future__ import annotations

import re
from typing import Any

import pytest

from rag.conversation import HISTORY_BUDGET_CHARS, checked_history, checked_k, checked_question, last_turns
from rag.errors import QuestionError


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("  左云县有多少家活性炭企业?  ", "左云县有多少家活性炭企业?"),
        ("左雲縣有多少家企業？", "左雲縣有多少家企業？"),
    ],
)
def test_good_questions_pass_stripped(question: str, expected: str) -> None:
    assert checked_question(question, 2000) == expected


@pytest.mark.parametrize(
    ("question", "says"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        (None, "empty"),
        (b"\xe5\xb7\xa6", "bytes"),
        ("左云县\udcff有几家?", "U+DCFF"),  # what Python makes of a non-UTF-8 command-line byte
        ("左云县\ud800", "U+D800"),  # a lone surrogate from a JSON client
        ("问" * 2001, "limit is 2000"),
    ],
)
def test_bad_questions_say_what_is_wrong(question: Any, says: str) -> None:
    with pytest.raises(QuestionError, match=re.escape(says)):
        checked_question(question, 2000)


@pytest.mark.parametrize(
    ("history", "says"),
    [
        (["左云县有多少家活性炭企业?"], "turn 1 of the history is a str"),
        ("左云县有多少家活性炭企业?", "history is a str"),
        ({"role": "user", "content": "x"}, "history is a dict"),
        ([{"role": "robot", "content": "x"}], "role 'robot'"),
        ([{"role": "user", "content": 3}], "content of type int"),
        (42, "history is a int"),
    ],
)
def test_malformed_history_shows_the_expected_shape(history: Any, says: str) -> None:
    with pytest.raises(QuestionError, match=says) as info:
        checked_history(history)
    assert '"role": "user"' in str(info.value)


def test_history_keeps_only_the_last_turns_within_the_budget() -> None:
    old = [{"role": "user", "content": "旧" * 1500}, {"role": "assistant", "content": "答" * 1500}]
    recent = [{"role": "user", "content": "左云县有多少家活性炭企业?"}]
    kept = checked_history(old * 30 + recent)
    assert kept[-1] == recent[0]
    assert sum(len(t["content"]) for t in kept) <= HISTORY_BUDGET_CHARS
    # the newest two turns whole, then the tail of the user turn before them
    assert [len(t["content"]) for t in kept] == [
        HISTORY_BUDGET_CHARS - 1500 - len(recent[0]["content"]),
        1500,
        len(recent[0]["content"]),
    ]


@pytest.mark.parametrize(
    ("turns", "budget", "kept"),
    [
        (["ab", "cd", "ef"], 10, ["ab", "cd", "ef"]),
        (["ab", "cd", "ef"], 4, ["cd", "ef"]),
        (["ab", "cd", "ef"], 3, ["d", "ef"]),
        (["abcdef"], 2, ["ef"]),
        ([], 5, []),
    ],
)
def test_last_turns(turns: list[str], budget: int, kept: list[str]) -> None:
    got = last_turns([{"role": "user", "content": t} for t in turns], budget)
    assert [t["content"] for t in got] == kept


def test_history_role_defaults_to_user_and_none_content_is_empty() -> None:
    assert checked_history([{"content": "甲"}, {"role": "assistant", "content": None}]) == [
        {"role": "user", "content": "甲"},
        {"role": "assistant", "content": ""},
    ]


@pytest.mark.parametrize(("k", "expected"), [(None, 5), (1, 1), (12, 12)])
def test_k(k: Any, expected: int) -> None:
    assert checked_k(k, 5) == expected


@pytest.mark.parametrize("k", [0, -3, 2.5, "5", True])
def test_bad_k(k: Any) -> None:
    with pytest.raises(QuestionError, match="k must"):
        checked_k(k, 5)
