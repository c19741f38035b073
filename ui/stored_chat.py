"""The conversations a browser keeps for the web chat (gr.BrowserState, in its localStorage), so a page
reload shows them again and follow-up questions keep working.

    {"v": 1, "collection": "zuoquan",                  the collection the page was on
     "chats": {"zuoquan": {"messages": [...],          what the chat showed: {"role", "content"} pairs
                           "history": [...],           the plain turns the engine reads for follow-ups
                           "answers": {id: {...}}}}}   per answer: what a "答案有误" report records

Pure values in and out. What comes back from a browser is checked like any other input: anything not of
this shape is dropped, and at most MAX_STORED_TURNS answered questions per collection are kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

FORMAT = 1
# Answered questions kept per collection: a rendered answer with its source cards is 2-8 KB, and a
# browser gives a site about 5 MB of localStorage, shared by every collection's conversation.
MAX_STORED_TURNS = 30
# A rendered answer is at most a few tens of KB (three closest paragraphs of 160 characters, or the cited
# paragraphs in full); anything longer did not come from this server.
MAX_STORED_MESSAGE_CHARS = 100_000
ROLES = ("user", "assistant")

Message = dict[str, str]


@dataclass
class Conversation:
    """One collection's conversation as the browser keeps it."""

    messages: list[Message] = field(default_factory=list)
    history: list[Message] = field(default_factory=list)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)


def storage_key(data_dir: str) -> tuple[str, str]:
    """(localStorage key, encryption secret) for a server's data folder: stable across restarts, so a reload
    after one still finds the conversation, and apart for two servers behind one host name."""
    digest = hashlib.sha256(f"rag-chat:{data_dir}".encode()).hexdigest()
    return f"rag-chat-{digest[:12]}", digest[12:44]


def empty(collection: str) -> dict[str, Any]:
    return {"v": FORMAT, "collection": collection, "chats": {}}


def stored_collection(stored: Any) -> str | None:
    """The collection the page was on, when the stored value says one."""
    if isinstance(stored, Mapping) and isinstance(stored.get("collection"), str):
        return str(stored["collection"])
    return None


def _message(item: Any) -> Message | None:
    if not isinstance(item, Mapping):
        return None
    role, content = item.get("role"), item.get("content")
    if role not in ROLES or not isinstance(content, str) or len(content) > MAX_STORED_MESSAGE_CHARS:
        return None
    return {"role": str(role), "content": content}


def _pairs(items: Any) -> list[Message]:
    """Question/answer pairs in order; a pair with anything wrong in it is dropped whole."""
    if not isinstance(items, list):
        return []
    out: list[Message] = []
    for i in range(0, len(items) - 1, 2):
        q, a = _message(items[i]), _message(items[i + 1])
        if q is not None and a is not None and q["role"] == "user" and a["role"] == "assistant":
            out += [q, a]
    return out


def _strings(items: Any) -> list[str]:
    return [s for s in items if isinstance(s, str)] if isinstance(items, list) else []


def _answer_record(item: Any) -> dict[str, Any] | None:
    if not isinstance(item, Mapping) or not isinstance(item.get("question"), str):
        return None
    answer = item.get("answer", "")
    return {
        "question": item["question"],
        "answer": answer if isinstance(answer, str) else "",
        "cited": _strings(item.get("cited")),
        "history": _strings(item.get("history")),
    }


def trimmed(conversation: Conversation, turns: int = MAX_STORED_TURNS) -> Conversation:
    """The last `turns` questions of a conversation, and only the answer records they still show."""
    messages = conversation.messages[-2 * turns :] if turns > 0 else []
    history = conversation.history[-2 * turns :] if turns > 0 else []
    shown = "".join(m["content"] for m in messages if m["role"] == "assistant")
    answers = {k: v for k, v in conversation.answers.items() if f'id="{k}"' in shown}
    return Conversation(list(messages), list(history), answers)


def conversation_of(stored: Any, collection: str) -> Conversation:
    """A collection's conversation from a stored value (an empty one when there is none or it is not ours)."""
    if (
        not isinstance(stored, Mapping)
        or stored.get("v") != FORMAT
        or not isinstance(stored.get("chats"), Mapping)
    ):
        return Conversation()
    chat = stored["chats"].get(collection)
    if not isinstance(chat, Mapping):
        return Conversation()
    raw_answers = chat.get("answers")
    answers = {
        str(k): record
        for k, v in (raw_answers.items() if isinstance(raw_answers, Mapping) else ())
        if isinstance(k, str) and (record := _answer_record(v)) is not None
    }
    return trimmed(Conversation(_pairs(chat.get("messages")), _pairs(chat.get("history")), answers))


def with_conversation(
    stored: Any, collection: str, conversation: Conversation | None, known: Iterable[str] | None = None
) -> dict[str, Any]:
    """The stored value with the page on `collection` and its conversation replaced (None: forgotten);
    conversations of collections not in `known` (deleted since) are dropped."""
    keep = set(known) if known is not None else None
    chats: dict[str, Any] = {}
    if isinstance(stored, Mapping) and stored.get("v") == FORMAT and isinstance(stored.get("chats"), Mapping):
        for name in stored["chats"]:
            if isinstance(name, str) and name != collection and (keep is None or name in keep):
                kept = conversation_of(stored, name)
                if kept.messages:
                    chats[name] = _as_dict(kept)
    if conversation is not None and conversation.messages:
        chats[collection] = _as_dict(trimmed(conversation))
    return {"v": FORMAT, "collection": collection, "chats": chats}


def _as_dict(conversation: Conversation) -> dict[str, Any]:
    return {
        "messages": [dict(m) for m in conversation.messages],
        "history": [dict(m) for m in conversation.history],
        "answers": {k: dict(v) for k, v in conversation.answers.items()},
    }
