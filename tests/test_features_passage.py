"""rag.features.passage: each passage feature from a table of examples and counterexamples."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from rag.features import passage as f
from rag.features.passage import (
    RESTATEMENT_FEATURES,
    holds,
    restatement,
    restating_sentences,
    subject_coverage,
    unknown_share,
)
from rag.question import Question, analyse_question
from rag.text import normalize

Q_SERVE = "网球比赛在什么时候交换发球权?"
Q_SWAP = "交换发球权是什么时候?"


def uniform(pair: str) -> float:
    return 1.0


# (feature, question, paragraph, expected value): a row per example and counterexample. The question's
# character pairs: 交换 换发 发球 球权 权是 时候 (6); its characters: 交换发球权是时候 (8).
TABLE: list[tuple[Callable[[Question, str, f.PairWeight], float], str, str, float]] = [
    (f.pair_share, Q_SWAP, "交换发球权是在一局结束的时候。", 1.0),
    (f.pair_share, Q_SWAP, "交换场地。发球权的规定很细。", 3 / 6),  # 交换 发球 球权, in two sentences
    (f.pair_share, Q_SWAP, "今天天气很好。", 0.0),
    (f.sentence_pair_share, Q_SWAP, "网球是运动。比赛结束时交换发球权。", 4 / 6),  # one sentence says it
    (f.sentence_pair_share, Q_SWAP, "交换场地。发球权的规定很细。", 2 / 6),  # scattered: the best sentence
    (f.in_order_share, Q_SWAP, "比赛结束之后交换发球权。", 5 / 8),  # 交换发球权 in the question's order
    (f.in_order_share, Q_SWAP, "发球权交换。", 3 / 8),  # 发球权, with 交换 after it
    (f.in_order_share, Q_SWAP, "天气很好。", 0.0),
]


@pytest.mark.parametrize(("feature", "question", "paragraph", "expected"), TABLE)
def test_passage_feature_table(
    feature: Callable[[Question, str, f.PairWeight], float], question: str, paragraph: str, expected: float
) -> None:
    assert feature(analyse_question(question), normalize(paragraph), uniform) == pytest.approx(
        expected, abs=0.01
    )


@pytest.mark.parametrize(
    ("document", "subject", "expected"),
    [
        ("左云县位于山西省北部。", "左云县", True),
        ("左云位于山西省北部。", "左云县", True),  # a short form of the place names it
        ("左权县位于山西省东部。", "左云县", False),
        ("大同市辖左云县。", "右玉县", False),
    ],
)
def test_a_document_names_a_subject_also_in_its_short_form(
    document: str, subject: str, expected: bool
) -> None:
    assert holds(normalize(document), subject) is expected


def test_subject_coverage_is_the_share_of_subjects_each_document_names() -> None:
    docs = {"a.txt": "左云县和大同市", "b.txt": "左权县"}
    cover = subject_coverage(["左云县", "大同市"], docs, ["a.txt", "b.txt", "c.txt"])
    assert cover.tolist() == [1.0, 0.0, 0.0]
    assert subject_coverage([], docs, ["a.txt", "b.txt"]).tolist() == [1.0, 1.0]  # none named: none missing


def test_the_restatement_matrix_has_one_column_per_named_feature() -> None:
    texts = ["网球是运动。比赛结束时交换发球权。", "今天天气很好。"]
    rows = restatement(analyse_question(Q_SWAP), texts, uniform)
    assert rows.shape == (2, len(RESTATEMENT_FEATURES))
    assert rows[0].tolist() == pytest.approx([4 / 6, 4 / 6, 5 / 8])
    assert rows[1].tolist() == [0.0, 0.0, 0.0]


def test_the_sibling_that_restates_the_question_in_one_sentence_scores_higher():
    question = "网球比赛在什么时候交换发球权?"
    restating = "网球选手站在球网两边。一局比赛结束之后交换发球权。发球手站在发球线后面。"
    scattered = "网球是一项运动。比赛规则多年未变。发球权的规定很细。交换场地在单数局。"
    f = restatement(analyse_question(question), [restating, scattered], uniform)
    assert f.shape == (2, 3)
    assert (f[0] > f[1]).all()  # paragraph pairs, best sentence pairs, in-order characters
    assert f[1, 1] < f[1, 0]  # spread over sentences: no one sentence holds them all


def test_restatement_is_script_blind_and_weighs_rare_pairs_more():
    simplified = restatement(
        analyse_question("交换发球权是什么时候?"), ["一局比赛结束之后交换发球权。"], uniform
    )
    traditional = restatement(
        analyse_question("交換發球權是什麼時候?"), ["一局比賽結束之後交換發球權。"], uniform
    )
    assert np.allclose(simplified, traditional)

    def rare_first(pair: str) -> float:
        return 5.0 if pair == "球权" else 1.0

    question = "交换发球权"
    plain = restatement(analyse_question(question), ["发球权"], uniform)[0, 0]
    weighted = restatement(analyse_question(question), ["发球权"], rare_first)[0, 0]
    assert weighted > plain


def test_the_sentences_worth_embedding_hold_most_of_the_question():
    text = "发球手站在线后。交换发球权在一局结束之后。网球是一项运动。每局结束交换场地。"
    spans = restating_sentences(analyse_question("什么时候交换发球权?"), text, uniform, 2)
    assert [text[a:b] for a, b in spans] == [
        "发球手站在线后。",
        "交换发球权在一局结束之后。",
    ]  # reading order
    assert len(restating_sentences(analyse_question("什么时候交换发球权?"), text, uniform, 9)) == 4


def test_the_share_of_the_question_the_documents_do_not_word_their_way() -> None:
    q = analyse_question("左云县固投现在有多少?")
    vocabulary = {"左云县": 1.0, "固定资产": 1.0, "投资": 1.0}
    share = unknown_share(q, vocabulary)
    assert 0.0 < share < 1.0  # 固投 is not the documents' word; 左云县 is
    assert unknown_share(q, {w: 1.0 for w in q.words}) == 0.0
    assert unknown_share(analyse_question("?"), vocabulary) == 0.0  # no keywords, nothing unknown
