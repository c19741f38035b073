"""rag.features.sentence: each sentence feature from a table of examples and counterexamples."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from rag.features import sentence as f
from rag.features.sentence import (
    SENTENCE_FEATURE_NAMES,
    SENTENCE_FEATURES,
    SentenceView,
    sentence_matrix,
    sentence_views,
)
from rag.question import Question, analyse_question

Q_COUNT = "左权县有多少家活性炭企业?"
Q_CAPITAL = "法国的首都是什么?"
Q_YEAR = "2024年左权县的地区生产总值是多少?"

# (feature, question, sentence, expected value): a row per example and counterexample
TABLE: list[tuple[Callable[[Question, SentenceView], float], str, str, float]] = [
    (f.keyword_share, Q_COUNT, "左权县集聚了14家活性炭企业。", 1.0),
    (f.keyword_share, Q_COUNT, "今天天气很好。", 0.0),
    (f.char_pair_share, Q_CAPITAL, "法国的首都是巴黎。", 1.0),
    (f.char_pair_share, Q_CAPITAL, "德国的首府在柏林。", 0.4),  # 国的 and 的首 of five pairs
    (f.char_pair_share, Q_CAPITAL, "柏林很美。", 0.0),
    (f.lcs_ratio, Q_CAPITAL, "法国的首都是巴黎。", 1.0),
    (f.lcs_ratio, Q_CAPITAL, "巴黎是首都。", 1 / 3),  # 首都 in order: 2 of 6 characters
    (f.context_before_held, Q_CAPITAL, "法国的首都是巴黎。", 1.0),
    (f.context_before_held, Q_CAPITAL, "巴黎是法国首都。", 2 / 6),  # 法国 or 首都, not 法国的首都是
    (f.context_after_held, "哪个城市是中国的首都?", "北京是中国的首都。", 6 / 8),  # 是中国的首都, not 城市
    (f.context_after_held, Q_CAPITAL, "法国的首都是巴黎。", 0.0),  # nothing after the interrogative
    (f.subject_share, Q_COUNT, "左权县集聚了14家企业。", 1.0),
    (f.subject_share, Q_COUNT, "左云县集聚了14家企业。", 0.0),
    (f.subject_share, "谁发明了电话?", "贝尔发明了电话。", 1.0),  # no subject named: nothing missing
    (f.figure_share, Q_YEAR, "2024年地区生产总值80亿元。", 1.0),
    (f.figure_share, Q_YEAR, "2023年地区生产总值75亿元。", 0.0),
    (f.holds_asked_type, Q_COUNT, "集聚了十四家企业。", 1.0),
    (f.holds_asked_type, Q_COUNT, "集聚了许多企业。", 0.0),
    (f.holds_asked_type, "该寺建于哪一年?", "该寺建于1368年。", 1.0),
    (f.holds_asked_type, "该寺建于哪一年?", "该寺规模很大。", 0.0),
    (f.holds_measure, Q_COUNT, "集聚了14家企业。", 1.0),
    (f.holds_measure, Q_COUNT, "产值14亿元。", 0.0),
    (f.holds_digits, Q_COUNT, "产值14亿元。", 1.0),
    (f.holds_digits, Q_COUNT, "产值很高。", 0.0),
    (f.asks, Q_COUNT, "你知道有多少家企业吗？", 1.0),
    (f.asks, Q_COUNT, "全县有14家企业。", 0.0),
]


@pytest.mark.parametrize(("feature", "question", "sentence", "expected"), TABLE)
def test_sentence_feature_table(
    feature: Callable[[Question, SentenceView], float], question: str, sentence: str, expected: float
) -> None:
    assert feature(analyse_question(question), SentenceView.alone(sentence)) == pytest.approx(
        expected, abs=0.01
    )


def test_every_feature_has_a_docstring_and_a_table_row() -> None:
    tested = {row[0].__name__ for row in TABLE} | {"keyword_share_with_previous", "keyword_share_with_next"}
    tested |= {
        "passage_keyword_share",
        "position",
        "is_first",
        "passage_rank",
        "log_length",
        "rare_pair_share",
        "similarity",
    }
    for feature in SENTENCE_FEATURES:
        assert feature.__doc__ and feature.__doc__.strip()
        assert feature.__name__ in tested


def test_position_rank_and_neighbours_come_from_the_passages() -> None:
    q = analyse_question(Q_COUNT)
    views = sentence_views([("左权县位于山西。全县集聚了14家活性炭企业。", 2.0), ("另一段。", 1.0)])
    assert [v.text for v in views] == ["左权县位于山西。", "全县集聚了14家活性炭企业。", "另一段。"]
    second = views[1]
    assert (f.position(q, second), f.is_first(q, second), f.passage_rank(q, second)) == (1.0, 0.0, 0.0)
    assert f.passage_rank(q, views[2]) == 1.0
    # the subject named in the sentence before counts with it
    assert f.keyword_share_with_previous(q, second) > f.keyword_share(q, second)
    assert f.keyword_share_with_next(q, views[0]) > f.keyword_share(q, views[0])
    assert f.passage_keyword_share(q, views[0]) == pytest.approx(1.0)
    assert views[0].passage_norm[second.start : second.end] == second.norm


def test_rare_pairs_count_more_than_the_topic_of_every_sentence() -> None:
    q = analyse_question("活性炭企业的产值是多少?")
    passage = "活性炭企业很多。活性炭企业产值3.94亿元。活性炭企业分布广。"
    views = sentence_views([(passage, 0.0)])
    assert f.char_pair_share(q, views[0]) > 0.4  # 活性炭企业 alone holds much of the question
    assert f.rare_pair_share(q, views[1]) > 2 * f.rare_pair_share(
        q, views[0]
    )  # 产值 is what tells them apart
    assert f.rare_pair_share(q, views[1]) <= 1.0


def test_matrix_adds_the_distance_behind_the_best_sentence() -> None:
    q = analyse_question(Q_COUNT)
    views = sentence_views([("左权县集聚了14家活性炭企业。今天天气很好。", 0.0)])
    rows = sentence_matrix(q, views)
    assert len(rows[0]) == len(SENTENCE_FEATURE_NAMES)
    behind = SENTENCE_FEATURE_NAMES.index("keyword_share_behind_best")
    assert rows[0][behind] == 0.0 and rows[1][behind] == pytest.approx(1.0)


def test_similarity_comes_from_the_index_by_sentence_span_and_is_0_when_unknown() -> None:
    q = analyse_question(Q_COUNT)
    text = "左权县位于山西。全县集聚了14家活性炭企业。"
    views = sentence_views([(text, 1.0), ("另一段。", 0.5)], [{(8, len(text)): 0.91, (0, 8): 0.8}])
    assert [f.similarity(q, v) for v in views] == [0.8, 0.91, 0.0]
    rows = sentence_matrix(q, views)
    behind = SENTENCE_FEATURE_NAMES.index("similarity_behind_best")
    assert [round(r[behind], 2) for r in rows] == [0.11, 0.0, 0.91]


_SEED_SCRIPT = """
import math
from rag.features.passage import pair_share
from rag.features.sentence import sentence_matrix, sentence_views
from rag.question import analyse_question
passage = ("2024年左权县地区生产总值突破80亿元，较十三五末增加22.5亿元，年均增长8.6%。"
           "左权县集聚了14家活性炭企业，其中规模以上企业7家。全县空气优良天数达310天。")
for text in ("左权县地区生产总值年均增长多少?", "左权县规模以上活性炭企业有几家?", "全县空气优良天数是多少?"):
    q = analyse_question(text)
    rows = sentence_matrix(q, sentence_views([(passage, 1.0)]))
    print([v.hex() for row in rows for v in map(float, row)])
    print(pair_share(q, passage, lambda b: math.log(3 + ord(b[0]) % 11) / 7).hex())
"""


def test_features_are_the_same_under_any_hash_seed() -> None:
    # a set's order follows the process's hash seed; a float sum over it must not (math.fsum), or the same
    # question gets other features, answers and confidences after a restart, and fitting is not repeatable
    outputs = {
        subprocess.run(
            [sys.executable, "-c", _SEED_SCRIPT],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2, 3, 4)
    }
    assert len(outputs) == 1
