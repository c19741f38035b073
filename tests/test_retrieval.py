import numpy as np

from rag.retrieval import (
    FusionWeights,
    documents_compared,
    restatement,
    restatement_gain,
    restating_sentences,
    settled_order,
)
from rag.text import char_pairs, question_chars, question_pairs


def uniform(pair: str) -> float:
    return 1.0


def test_character_pairs_skip_punctuation_and_interrogatives():
    assert char_pairs("80亿元,gdp") == {"80", "0亿", "亿元", "gd", "dp"}
    assert question_pairs("左权县有多少家企业?") == {"左权", "权县", "县有", "家企", "企业"}
    assert question_chars("左權縣有多少家企業?") == "左权县有家企业"


def test_the_sibling_that_restates_the_question_in_one_sentence_scores_higher():
    question = "网球比赛在什么时候交换发球权?"
    restating = "网球选手站在球网两边。一局比赛结束之后交换发球权。发球手站在发球线后面。"
    scattered = "网球是一项运动。比赛规则多年未变。发球权的规定很细。交换场地在单数局。"
    f = restatement(question, [restating, scattered], uniform)
    assert f.shape == (2, 3)
    assert (f[0] > f[1]).all()  # paragraph pairs, best sentence pairs, in-order characters
    assert f[1, 1] < f[1, 0]  # spread over sentences: no one sentence holds them all


def test_restatement_is_script_blind_and_weighs_rare_pairs_more():
    simplified = restatement("交换发球权是什么时候?", ["一局比赛结束之后交换发球权。"], uniform)
    traditional = restatement("交換發球權是什麼時候?", ["一局比賽結束之後交換發球權。"], uniform)
    assert np.allclose(simplified, traditional)

    def rare_first(pair: str) -> float:
        return 5.0 if pair == "球权" else 1.0

    question = "交换发球权"
    plain = restatement(question, ["发球权"], uniform)[0, 0]
    weighted = restatement(question, ["发球权"], rare_first)[0, 0]
    assert weighted > plain


def test_the_gain_is_the_weighted_sum_of_the_features():
    features = np.array([[1.0, 0.5, 0.25], [0.0, 0.0, 0.0]], dtype=np.float32)
    w = FusionWeights(pairs=2.0, sentence_pairs=4.0, order=8.0)
    assert restatement_gain(features, w).tolist() == [6.0, 0.0]
    assert restatement("?", ["任何文字"], uniform).tolist() == [[0.0, 0.0, 0.0]]  # nothing asked: no gain


def test_comparisons_of_unnamed_documents_are_recognised():
    assert documents_compared("两个县分别修了哪条旅游公路?") == 2
    assert documents_compared("兩個縣各有哪個單位被評為核心育種場?") == 2
    assert documents_compared("三份文件都提到了哪些项目?") == 3
    assert documents_compared("交战双方分别是哪些人?") == 0  # the sides of one story, not documents
    assert documents_compared("左云县有多少家活性炭企业?") == 0


def test_close_calls_are_settled_by_the_closest_sentence_and_the_evidence():
    w = FusionWeights(sentence_dense=50.0, evidence=2.0)
    even = np.array([3.0, 3.0, 3.0])
    scores = np.array([10.0, 9.8, 9.0])
    # the runner-up's closest sentence says what the question asks (cosine 0.85 against 0.80)
    assert settled_order(scores, np.array([0.80, 0.85, 0.82]), even, w) == [1, 0, 2]
    # the leader's best evidence window is weak: the answerer would not cite it
    assert settled_order(scores, np.array([0.8, 0.8, 0.8]), np.array([1.0, 3.0, 3.0]), w) == [1, 2, 0]
    # nothing tells them apart: the order stands
    assert settled_order(scores, np.array([0.8, 0.8, 0.8]), even, w) == [0, 1, 2]


def test_the_sentences_worth_embedding_hold_most_of_the_question():
    text = "发球手站在线后。交换发球权在一局结束之后。网球是一项运动。每局结束交换场地。"
    spans = restating_sentences("什么时候交换发球权?", text, uniform, 2)
    assert [text[a:b] for a, b in spans] == [
        "发球手站在线后。",
        "交换发球权在一局结束之后。",
    ]  # reading order
    assert len(restating_sentences("什么时候交换发球权?", text, uniform, 9)) == 4
