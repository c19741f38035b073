"""The OpenAI-compatible endpoint with the official `openai` package against a real server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from api_support import SIMPLIFIED_SEED, TRADITIONAL_SEED, api_app, seeds_data_dir, serving

from rag.collections import Collections
from rag.engine import Engine
from ui.api import without_sources

pytestmark = pytest.mark.slow

QUESTION = "左云县有多少家活性炭企业?"


@pytest.fixture(scope="module")
def client(seeds_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    data = seeds_data_dir(seeds_engine, tmp_path_factory.mktemp("openai") / "data")
    with serving(api_app(Collections(data, seeds_engine.settings))) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="not-needed", max_retries=0, timeout=120)


def extra(message: Any) -> dict[str, Any]:
    return dict(message.model_extra or {})


def test_models_are_the_collections(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == ["default", "zuoquan", "zuoyun"]
    assert client.models.retrieve("zuoyun").id == "zuoyun"


def test_a_cited_answer_with_its_sources(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="default", messages=[{"role": "user", "content": QUESTION}])
    message = reply.choices[0].message
    assert reply.choices[0].finish_reason == "stop" and message.role == "assistant"
    content = message.content or ""
    assert "14" in content and "[1]" in content
    assert f"来源：\n[1] {TRADITIONAL_SEED} 第21段" in content  # a plain-text list for front ends
    fields = extra(message)
    assert fields["found"] is True and 0.0 <= fields["short_confidence"] <= 1.0
    ref = fields["references"][0]
    assert (ref["n"], ref["doc"], ref["paragraph"]) == (1, TRADITIONAL_SEED, 21)
    assert ref["quote"] and ref["quote"] in content
    start, end = ref["answer_offsets"][0]
    assert content[start:end] == "[1]"


def test_streaming_gives_the_same_reply_in_chunks(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="default", messages=[{"role": "user", "content": QUESTION}])
    chunks = list(
        client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
    )
    assert len(chunks) > 3
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert streamed == whole.choices[0].message.content
    last = chunks[-1].choices[0]
    assert last.finish_reason == "stop"
    assert extra(last.delta)["references"] == extra(whole.choices[0].message)["references"]
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_follow_up_questions_use_the_messages(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model="zuoyun", messages=[{"role": "user", "content": QUESTION}])
    messages: list[Any] = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first.choices[0].message.content},
        {"role": "user", "content": "其中规模以上的有几家?"},
    ]
    follow = client.chat.completions.create(model="zuoyun", messages=messages)
    content = follow.choices[0].message.content or ""
    assert "7家" in content
    assert extra(follow.choices[0].message)["references"][0]["doc"] == TRADITIONAL_SEED


def test_a_question_about_another_collection_is_refused(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="zuoquan", messages=[{"role": "user", "content": QUESTION}])
    message = reply.choices[0].message
    assert extra(message)["found"] is False and extra(message)["references"] == []
    assert "来源" not in (message.content or "")
    there = client.chat.completions.create(
        model="zuoquan", messages=[{"role": "user", "content": "2024年左权县的地区生产总值有多少？"}]
    )
    assert extra(there.choices[0].message)["references"][0]["doc"] == SIMPLIFIED_SEED


def test_errors_use_openais_envelope(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="nosuch", messages=[{"role": "user", "content": QUESTION}])
    assert unknown.value.code == "model_not_found" and "zuoquan" in unknown.value.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="nosuch", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
    with pytest.raises(openai.BadRequestError) as empty:
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": " "}])
    assert empty.value.code == "bad_question"
    with pytest.raises(openai.BadRequestError, match="last message"):
        client.chat.completions.create(model="default", messages=[{"role": "assistant", "content": "hi"}])


def test_content_parts_and_our_own_sources_in_the_history() -> None:
    text = "…集聚了14家活性炭企业[1]\n\n来源：\n[1] a.txt 第21段：“…”"
    assert without_sources(text) == "…集聚了14家活性炭企业[1]"
    assert without_sources("no sources here") == "no sources here"
