"""rag.refusal: each feature from a table of examples, the model read-out, and the shipped model file."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rag import refusal as r
from rag.errors import RagError
from rag.question import analyse_question
from rag.refusal import (
    FEATURE_NAMES,
    FEATURES,
    REFUSAL_FILE,
    Evidence,
    RefusalWeights,
    feature_row,
    found_probability,
    load_refusal_weights,
)
from rag.scoring import LogisticModel
from rag.text import normalize, sentences
from rag.types import Answer, Citation, Passage

Q_DATE = "左云县不见面审批系统是哪天开始试运行的?"
PARA = "我县于2023年1月10日开始进行事项梳理,系统于2023年3月15日进入试运行。"
OTHER = "左权县地区生产总值突破80亿元。"
Q_YEAR = "2023年左云县审批系统梳理了多少个事项?"


def passage(doc: str, n: int, text: str, score: float, dense: float, lexical: float) -> Passage:
    return Passage(doc, n, text, score, dense=dense, lexical=lexical)


def answer(
    cited: Passage | None, passages: list[Passage], short: str | None = "2023年3月15日", conf: float = 0.8
) -> Answer:
    citations = []
    if cited is not None:
        start = cited.text.index("系统") if "系统" in cited.text else 0
        citations = [Citation.quoting(1, cited, start, len(cited.text))]
    return Answer(
        question=Q_DATE,
        text="…",
        found=cited is not None,
        citations=citations,
        passages=passages,
        short=short,
        short_confidence=conf / 2,
        confidence=conf,
    )


P1 = passage("a.txt", 1, PARA, 3.0, 0.9, 12.0)
P2 = passage("b.txt", 4, OTHER, 1.0, 0.7, 3.0)
DOCS = {"a.txt": normalize("左云县不见面审批。" + PARA), "b.txt": normalize(OTHER)}
DOCS_SHORT_FORM = {"a.txt": normalize("左云不见面审批。" + PARA), "b.txt": normalize(OTHER)}
DOCS_WITHOUT = {"a.txt": normalize(PARA), "b.txt": normalize(OTHER)}


Q_COMPOUND = "左权县的人均GDP是多少?"
P_APART = passage("a.txt", 2, "农村居民人均可支配收入增长10.5%,连续4年跑赢GDP。", 2.0, 0.8, 9.0)
P_TOGETHER = passage("a.txt", 3, "系统统计全县人均GDP为5万元。", 2.0, 0.8, 9.0)


Q_FISH = "鹦嘴鱼分布于哪里?"
FISH = passage("f.txt", 1, "鹦嘴鱼是一种鱼。鹦嘴鱼分布于太平洋。鹦嘴鱼以藻类为食。", 2.0, 0.8, 9.0)


def quoting(p: Passage, sentence: int) -> Answer:
    """An answer quoting the passage's n-th sentence."""
    start, end = sentences(p.text)[sentence]
    cited = [Citation.quoting(1, p, start, end)]
    return Answer(question="", text="…", found=True, citations=cited, passages=[p], confidence=0.5)


def ev(
    a: Answer, docs: dict[str, str] = DOCS, question: str = Q_DATE, others: tuple[Answer, ...] = ()
) -> Evidence:
    return Evidence(a, analyse_question(question), docs, others)


# two candidate answers to Q_DATE: the right paragraph's and another passage's (a weaker one)
RIGHT = replace(answer(P1, [P1, P2]), quote_similarity=0.9)
OTHER_ONE = replace(answer(P2, [P1, P2], conf=0.5), quote_similarity=0.6)


# (feature, evidence, expected value)
TABLE: list[tuple[Callable[[Evidence], float], Evidence, float]] = [
    (r.sentence_confidence, ev(answer(P1, [P1, P2])), 0.8),
    (r.short_confidence, ev(answer(P1, [P1, P2])), 0.4),
    (r.has_short, ev(answer(P1, [P1, P2])), 1.0),
    (r.has_short, ev(answer(P1, [P1, P2], short=None)), 0.0),
    (r.top_score, ev(answer(P1, [P1, P2])), 3.0),
    (r.top_score, ev(answer(None, [])), 0.0),
    (r.score_margin, ev(answer(P1, [P1, P2])), 2.0),
    (r.score_margin, ev(answer(P1, [P1])), 0.0),  # one passage: no runner-up
    (r.top_dense, ev(answer(P1, [P1, P2])), 0.9),
    (r.dense_margin, ev(answer(P1, [P1, P2])), 0.2),
    (r.top_lexical, ev(answer(P1, [P1, P2])), math.log1p(12.0)),
    (r.lexical_ratio, ev(answer(P1, [P1, P2])), 0.25),
    (r.lexical_ratio, ev(answer(P1, [P1])), 1.0),
    (r.cited_rank, ev(answer(P1, [P1, P2])), 0.0),
    (r.cited_rank, ev(answer(P1, [P2, P1])), 1.0),
    (r.cited_rank, ev(answer(P1, [P2])), 1.0),  # cited paragraph not among the passages
    (r.keyword_cover_paragraph, ev(answer(P2, [P2])), 0.0),
    (r.pair_cover_paragraph, ev(answer(P2, [P2])), 0.0),
    (r.rival_sentence_cover, ev(answer(P1, [P1, P2])), 0.0),  # the other passage holds less
    (r.rival_sentence_cover, ev(answer(P2, [P2])), 0.0),  # no other passage
    (r.rival_sentence_cover, ev(answer(P2, [P2, P1])), r.keyword_cover_quote(ev(quoting(P1, 0)))),
    (r.has_subjects, ev(answer(P1, [P1])), 1.0),
    (r.has_subjects, ev(answer(P1, [P1]), question="系统是哪天开始试运行的?"), 0.0),
    (r.subjects_missing_cited, ev(answer(P1, [P1, P2])), 0.0),
    (r.subjects_missing_cited, ev(answer(P2, [P2, P1])), 1.0),  # b.txt never names 左云县
    (r.subjects_missing_cited, ev(answer(P1, [P1]), DOCS_SHORT_FORM), 0.0),  # 左云 stands for 左云县
    (r.subjects_missing_everywhere, ev(answer(P1, [P1])), 0.0),
    (r.subjects_missing_everywhere, ev(answer(P1, [P1]), DOCS_SHORT_FORM), 0.0),
    (r.subjects_missing_everywhere, ev(answer(P1, [P1]), DOCS_WITHOUT), 1.0),
    (r.figures_missing_cited, ev(answer(P1, [P1]), question=Q_YEAR), 0.0),
    (r.figures_missing_cited, ev(answer(P2, [P2]), question=Q_YEAR), 1.0),
    (r.figures_missing_cited, ev(answer(P1, [P1])), 0.0),  # names no figure
    # 人均 and GDP said together in the question, only apart in the quote: another quantity
    (r.compounds_apart, ev(answer(P_APART, [P_APART]), question=Q_COMPOUND), 1.0),
    (r.compounds_apart, ev(answer(P_TOGETHER, [P_TOGETHER]), question=Q_COMPOUND), 0.0),
    (r.compounds_apart, ev(answer(P2, [P2]), question=Q_COMPOUND), 0.0),  # GDP alone: not held apart
    (r.compounds_apart, ev(answer(P1, [P1])), 0.0),  # no two keywords said together
    # the fish is named in every sentence: only 分布 tells the sentences apart
    (r.rival_answers, ev(RIGHT), 0.0),
    (r.rival_answers, ev(RIGHT, others=(OTHER_ONE,)), 1.0),
    (r.sentence_confidence_lead, ev(RIGHT), 0.0),  # alone: no lead
    (r.sentence_confidence_lead, ev(RIGHT, others=(OTHER_ONE,)), 0.8 - 0.5),
    (r.sentence_confidence_lead, ev(OTHER_ONE, others=(RIGHT,)), 0.5 - 0.8),
    (r.short_confidence_lead, ev(RIGHT, others=(OTHER_ONE,)), 0.4 - 0.25),
    (r.quote_similarity_lead, ev(RIGHT, others=(OTHER_ONE,)), 0.9 - 0.6),
    (r.keyword_cover_quote_lead, ev(RIGHT), 0.0),
    (r.keyword_cover_quote_lead, ev(OTHER_ONE, others=(RIGHT,)), -r.keyword_cover_quote(ev(RIGHT))),
    (r.coverage_margin, ev(answer(P1, [P1])), 0.0),  # none recorded: at the gate
    (r.coverage_margin, ev(replace(answer(P1, [P1]), coverage_margin=-0.15)), -0.15),
    (r.distinct_cover_quote, ev(quoting(FISH, 0), question=Q_FISH), 0.0),
    (r.distinct_cover_quote, ev(quoting(FISH, 1), question=Q_FISH), 1.0),
    (r.distinct_cover_quote, ev(quoting(FISH, 1), question="鹦嘴鱼是什么?"), 1.0),  # no other word: 1
    (FEATURES["kind_date"], ev(answer(P1, [P1])), 1.0),
    (FEATURES["kind_number"], ev(answer(P1, [P1])), 0.0),
    (FEATURES["kind_number"], ev(answer(P1, [P1]), question=Q_YEAR), 1.0),
]


@pytest.mark.parametrize(("feature", "evidence", "expected"), TABLE, ids=[t[0].__name__ for t in TABLE])
def test_feature_table(feature: Callable[[Evidence], float], evidence: Evidence, expected: float) -> None:
    assert feature(evidence) == pytest.approx(expected)


def test_keyword_cover_is_higher_in_the_answering_paragraph() -> None:
    good = r.keyword_cover_paragraph(ev(answer(P1, [P1])))
    assert 0.3 < good < 1.0  # 系统, 试运行, 开始 are there; 左云县, 审批 are not in the paragraph itself
    assert r.keyword_cover_quote(ev(answer(P1, [P1]))) <= good


def test_every_feature_is_named_and_documented() -> None:
    assert tuple(FEATURES) == FEATURE_NAMES
    for name, feature in FEATURES.items():
        assert feature.__name__ == name
        assert feature.__doc__ and "\n" not in feature.__doc__.strip()


def test_found_probability_is_the_sigmoid_of_the_models_log_odds() -> None:
    logistic = LogisticModel(
        ("a", "b"), np.array([1.0, 0.0]), np.array([2.0, 1.0]), np.array([1.0, -1.0]), 0.5
    )
    w = RefusalWeights(model=logistic, threshold=0.5)
    z = 0.5 + (3.0 - 1.0) / 2.0 - 1.0 * 2.0
    assert found_probability([3.0, 2.0], w) == pytest.approx(1 / (1 + math.exp(-z)))
    assert found_probability([1e6, -1e6], w) == pytest.approx(1.0)  # no overflow either way
    assert found_probability([-1e6, 1e6], w) == pytest.approx(0.0)


def test_shipped_model_loads_and_names_the_code_features() -> None:
    data = json.loads(REFUSAL_FILE.read_text(encoding="utf-8"))
    w = load_refusal_weights()
    assert w.names == tuple(data["model"]["features"]) == FEATURE_NAMES == w.model.features
    assert 0.0 < w.threshold < 1.0
    assert len(data["data_sha256"]) == 64 and data["date"]
    p = found_probability(feature_row(ev(answer(P1, [P1, P2])), w.names), w)
    assert 0.0 <= p <= 1.0


def test_a_model_naming_unknown_features_says_to_refit(tmp_path: Path) -> None:
    data = json.loads(REFUSAL_FILE.read_text(encoding="utf-8"))
    data["model"]["features"][0] = "no_such_feature"
    path = tmp_path / "refusal.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(RagError, match="fit_refusal"):
        load_refusal_weights(path)


def test_a_model_of_an_earlier_format_says_to_refit(tmp_path: Path) -> None:
    data = json.loads(REFUSAL_FILE.read_text(encoding="utf-8"))
    data["format"] = 1
    path = tmp_path / "refusal.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(RagError, match="fit_refusal"):
        load_refusal_weights(path)


def test_the_fitted_choice_gives_the_most_probable_candidate_or_refuses() -> None:
    from rag import short_answer

    # a model that reads how far the quote's cosine leads the other candidates'
    model = LogisticModel(("quote_similarity_lead",), np.array([0.0]), np.array([1.0]), np.array([10.0]), 0.0)
    w = RefusalWeights(model=model, threshold=0.5)
    question = analyse_question(Q_DATE)
    chosen = short_answer.with_fitted_choice([OTHER_ONE, RIGHT], question, DOCS, w)
    assert chosen.found and chosen.citations[0].paragraph == P1.paragraph
    assert chosen.confidence == pytest.approx(1 / (1 + math.exp(-10.0 * 0.3)))
    # a rules' refusal first does not stop a candidate from another passage
    refused = replace(OTHER_ONE, found=False, citations=[])
    assert short_answer.with_fitted_choice([refused, RIGHT], question, DOCS, w).found
    # the choice is the refusal's: below the threshold, a refusal with that probability
    strict = RefusalWeights(model=model, threshold=0.99)
    assert not short_answer.with_fitted_choice([OTHER_ONE, RIGHT], question, DOCS, strict).found


def test_a_comparison_joins_its_sides_in_the_questions_order_with_the_product_of_their_confidences() -> None:
    from rag.short_answer import joined_sides

    asked = "左权县和左云县哪个GDP更高?"
    zq, zy = (
        replace(analyse_question(asked), entities=("左权县",)),
        replace(analyse_question(asked), entities=("左云县",)),
    )

    def side(doc: str, n: int, paragraph: str, text: str, confidence: float) -> Answer:
        cited = passage(doc, n, paragraph, 3.0, 0.9, 12.0)
        quote = [Citation.quoting(1, cited, 0, len(paragraph))]
        return Answer(asked, text, True, quote, [cited], confidence=confidence)

    side_zq = side(
        "zq.txt", 2, "左权县地区生产总值突破80亿元。", "80亿元[1]\n左权县地区生产总值突破80亿元。", 0.9
    )
    side_zy = side("zy.txt", 9, "全县GDP由106亿元增长到151亿元。", "全县GDP由106亿元增长到151亿元。[1]", 0.5)
    w = RefusalWeights(
        model=LogisticModel(("quote_similarity",), np.zeros(1), np.ones(1), np.ones(1), 0.0), threshold=0.3
    )
    joined = joined_sides(asked, [(zy, side_zy), (zq, side_zq)], w)
    assert joined.found and joined.confidence == pytest.approx(0.45) and joined.short is None
    assert (
        joined.text
        == "左权县：80亿元[1]\n左权县地区生产总值突破80亿元。\n左云县：全县GDP由106亿元增长到151亿元。[2]"
    )
    assert [(c.n, c.doc) for c in joined.citations] == [(1, "zq.txt"), (2, "zy.txt")]
    # a side the documents do not answer is said so, right when its best candidate was not (p 0.1)
    missing = replace(side_zy, text="…", found=False, citations=[], confidence=0.1)
    partial = joined_sides(asked, [(zq, side_zq), (zy, missing)], w)
    assert partial.found and partial.confidence == pytest.approx(0.9 * 0.9)
    assert partial.text.endswith("左云县：文档中没有找到这个问题的答案。")
    # a side per document (两个县分别…: no subject named) that the documents do not answer names its document
    each = analyse_question("两个县的GDP分别是多少?")
    unnamed = joined_sides(
        each.text, [(each, side_zq), (each, replace(missing, passages=side_zy.passages))], w
    )
    assert unnamed.text.endswith("\nzy.txt：文档中没有找到这个问题的答案。")
    assert unnamed.text.startswith("80亿元[1]")  # an answered side: its citation names the document
    # below the threshold the whole comparison is refused, keeping its confidence
    weak = replace(side_zy, confidence=0.2)
    refused = joined_sides(asked, [(zq, side_zq), (zy, weak)], w)
    assert not refused.found and refused.confidence == pytest.approx(0.18) and not refused.citations
