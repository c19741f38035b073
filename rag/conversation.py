"""What a question arrives with, checked and bounded before any analysis: the text, the history, k.

Every caller (Python, CLI, web chat, HTTP) passes through here, so a malformed input becomes a QuestionError
that says what to send instead of a traceback deep in the pipeline, and no input can cost more than a
bounded amount of work.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rag.errors import QuestionError

# Only the last turns of a conversation are read, newest first, until their text reaches this many
# characters: a follow-up leans on the turn before it, and 40,000 characters of history cost 51 s a question.
HISTORY_BUDGET_CHARS = 2000
ROLES = ("user", "assistant", "system")

Turn = dict[str, str]


def checked_question(question: Any, max_chars: int) -> str:
    """The question stripped, or a QuestionError saying what is wrong with it."""
    if isinstance(question, bytes):
        raise QuestionError("the question is bytes; pass text (str), decoded from UTF-8")
    if not isinstance(question, str) or not question.strip():
        raise QuestionError("the question is empty; type a question about the documents")
    question = question.strip()
    if len(question) > max_chars:
        raise QuestionError(
            f"the question has {len(question)} characters; the limit is {max_chars}. Shorten it."
        )
    bad = _first_unencodable(question)
    if bad is not None:
        raise QuestionError(
            f"the question holds an invalid character (U+{ord(bad):04X} at position {question.index(bad) + 1}): "
            "it was not decoded correctly; send the question as UTF-8 text"
        )
    return question


def checked_history(history: Any) -> list[Turn]:
    """The conversation's last turns within HISTORY_BUDGET_CHARS, oldest first, each {"role", "content"}.

    Accepts any sequence of mappings with a role and a text content (the OpenAI message shape); anything else
    is a QuestionError that shows the expected shape.
    """
    if history is None:
        return []
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise QuestionError(_history_shape(f"history is a {type(history).__name__}"))
    turns: list[Turn] = []
    for i, turn in enumerate(history):
        if not isinstance(turn, Mapping):
            raise QuestionError(_history_shape(f"turn {i + 1} of the history is a {type(turn).__name__}"))
        role, content = turn.get("role", "user"), turn.get("content", "")
        if role not in ROLES:
            raise QuestionError(_history_shape(f"turn {i + 1} has role {role!r}"))
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise QuestionError(_history_shape(f"turn {i + 1} has content of type {type(content).__name__}"))
        if _first_unencodable(content) is not None:
            content = content.encode("utf-8", "replace").decode("utf-8")
        turns.append({"role": str(role), "content": content})
    return last_turns(turns, HISTORY_BUDGET_CHARS)


def last_turns(turns: Sequence[Turn], budget: int) -> list[Turn]:
    """The newest turns whose text fits in budget characters (the newest one cut to its end if it alone
    is longer), oldest first."""
    kept: list[Turn] = []
    used = 0
    for turn in reversed(turns):
        room = budget - used
        if room <= 0:
            break
        content = turn["content"]
        if len(content) > room:
            kept.append({**turn, "content": content[-room:]})
            break
        kept.append(turn)
        used += len(content)
    return kept[::-1]


def checked_k(k: Any, default: int) -> int:
    """How many passages to return: a whole number of at least 1 (None means the default)."""
    if k is None:
        return default
    if isinstance(k, bool) or not isinstance(k, int):
        raise QuestionError(f"k must be a whole number of passages (1 or more), not {k!r}")
    if k < 1:
        raise QuestionError(f"k must be at least 1 (got {k}): it is how many passages to return")
    return k


def _first_unencodable(text: str) -> str | None:
    """The first character UTF-8 cannot carry (a lone surrogate, e.g. from undecodable command-line bytes)."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        return text[exc.start]


def _history_shape(problem: str) -> str:
    return (
        f"{problem}; history must be a list of turns like "
        '[{"role": "user", "content": "左云县有多少家活性炭企业?"}, {"role": "assistant", "content": "…"}]'
    )
