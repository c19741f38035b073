"""The conversations a browser keeps (ui/stored_chat.py): what is kept, and what a tampered value turns into."""

from __future__ import annotations

from typing import Any

import pytest

from ui import stored_chat
from ui.stored_chat import Conversation, conversation_of, storage_key, trimmed, with_conversation


def turn(n: int) -> list[dict[str, str]]:
    return [
        {"role": "user", "content": f"问题{n}"},
        {"role": "assistant", "content": f'<div class="rag-answer" id="a{n}">回答{n}</div>'},
    ]


def conversation(turns: int) -> Conversation:
    messages = [m for n in range(turns) for m in turn(n)]
    history = [
        m
        for n in range(turns)
        for m in ({"role": "user", "content": f"问题{n}"}, {"role": "assistant", "content": f"回答{n}"})
    ]
    answers: dict[str, dict[str, Any]] = {
        f"a{n}": {"question": f"问题{n}", "answer": f"回答{n}", "cited": ["a.txt ¶1"], "history": []}
        for n in range(turns)
    }
    return Conversation(messages, history, answers)


def test_a_conversation_comes_back_as_it_was_kept() -> None:
    kept = with_conversation(stored_chat.empty("default"), "zuoquan", conversation(2))
    assert stored_chat.stored_collection(kept) == "zuoquan"
    back = conversation_of(kept, "zuoquan")
    assert back == conversation(2)
    assert conversation_of(kept, "default") == Conversation()


def test_only_the_last_turns_are_kept_with_their_answer_records() -> None:
    kept = trimmed(conversation(stored_chat.MAX_STORED_TURNS + 5))
    assert len(kept.messages) == 2 * stored_chat.MAX_STORED_TURNS
    assert kept.messages[0]["content"] == "问题5"
    assert kept.history[0]["content"] == "问题5"
    assert set(kept.answers) == {f"a{n}" for n in range(5, stored_chat.MAX_STORED_TURNS + 5)}


def test_each_collection_keeps_its_own_and_a_deleted_ones_is_dropped() -> None:
    stored = with_conversation(None, "one", conversation(1))
    stored = with_conversation(stored, "two", conversation(2))
    assert stored["collection"] == "two" and set(stored["chats"]) == {"one", "two"}
    assert len(conversation_of(stored, "one").messages) == 2
    forgotten = with_conversation(stored, "two", None)  # 新对话 on "two"
    assert set(forgotten["chats"]) == {"one"} and forgotten["collection"] == "two"
    assert set(with_conversation(stored, "two", conversation(1), known=["two"])["chats"]) == {"two"}


@pytest.mark.parametrize(
    "stored",
    [None, "junk", [], {"v": 99, "chats": {"c": {}}}, {"v": 1, "chats": "x"}, {"v": 1, "chats": {"c": 3}}],
)
def test_a_value_not_of_this_shape_is_an_empty_conversation(stored: Any) -> None:
    assert conversation_of(stored, "c") == Conversation()


def test_a_bad_pair_is_dropped_whole_and_the_rest_kept() -> None:
    good = turn(1)
    stored = {
        "v": 1,
        "chats": {
            "c": {
                "messages": [
                    {"role": "system", "content": "你是"},  # not a role of the chat
                    {"role": "assistant", "content": "x"},
                    *good,
                    {"role": "user", "content": 5},  # not text
                    {"role": "assistant", "content": "y"},
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "z" * (stored_chat.MAX_STORED_MESSAGE_CHARS + 1)},
                    {"role": "user", "content": "dangling"},
                ],
                "history": "not a list",
                "answers": {
                    "a1": {"question": "问题1", "cited": ["a.txt ¶1", 7]},
                    "a2": {"answer": "no question"},
                },
            }
        },
    }
    back = conversation_of(stored, "c")
    assert back.messages == good
    assert back.history == []
    assert back.answers == {"a1": {"question": "问题1", "answer": "", "cited": ["a.txt ¶1"], "history": []}}


def test_the_storage_key_is_stable_and_apart_per_data_folder() -> None:
    assert storage_key("/srv/index") == storage_key("/srv/index")
    assert storage_key("/srv/index")[0] != storage_key("/srv/other")[0]
    assert storage_key("/srv/index")[1] != storage_key("/srv/other")[1]
