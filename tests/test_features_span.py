"""rag.features.span: each span feature from a table of examples and counterexamples."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rag.features import span as f
from rag.features.sentence import SentenceView
from rag.features.span import SPAN_FEATURE_NAMES, SPAN_FEATURES, SpanView, span_matrix, span_views
from rag.question import Question, QuestionKind, analyse_question
from rag.spans import SpanType

Q_CAPITAL = "法国的首都是什么?"
S_CAPITAL = "法国的首都是巴黎，也是最大的城市。"
Q_GAME = "《战国无双3》是由哪两个公司合作开发的?"
S_GAME = "《战国无双3》是由光荣和ω-force开发的动作游戏。"
Q_COUNT = "左权县有多少家活性炭企业?"
S_COUNT = "左权县集聚了14家活性炭企业，产值3.94亿元。"
Q_YEAR = "该寺建于哪一年?"
S_YEAR = "该寺建于1368年，1999年重修。"

# (feature, question, sentence, span text, span type, expected value)
Row = tuple[Callable[[Question, SpanView], float], str, str, str, SpanType, float]
TABLE: list[Row] = [
    (f.type_fits_kind, Q_COUNT, S_COUNT, "14家", SpanType.NUMBER, 1.0),
    (f.type_fits_kind, Q_COUNT, S_COUNT, "活性炭企业", SpanType.CHUNK, 0.0),
    (f.type_fits_kind, Q_YEAR, S_YEAR, "1368年", SpanType.DATE, 1.0),
    (f.unit_matches_measure, Q_COUNT, S_COUNT, "14家", SpanType.NUMBER, 1.0),
    (f.unit_matches_measure, Q_COUNT, S_COUNT, "3.94亿元", SpanType.AMOUNT, 0.0),
    (f.measure_follows, Q_COUNT, S_COUNT, "14", SpanType.NUMBER, 1.0),
    (f.measure_follows, Q_COUNT, S_COUNT, "3.94", SpanType.NUMBER, 0.0),
    (f.before_context_adjacent, Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE, 1.0),
    (f.before_context_adjacent, Q_CAPITAL, S_CAPITAL, "最大的城市", SpanType.CHUNK, 1 / 6),  # only 是
    (
        f.after_context_adjacent,
        Q_GAME,
        S_GAME,
        "光荣和ω-force",
        SpanType.CHUNK,
        3 / 7,
    ),  # 开发的 of 公司合作开发的
    (f.after_context_adjacent, Q_GAME, S_GAME, "动作游戏", SpanType.CHUNK, 0.0),
    (f.before_context_chars, Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE, 6 / 30),
    (f.after_context_chars, Q_GAME, S_GAME, "光荣和ω-force", SpanType.CHUNK, 3 / 30),
    (f.gap_overlap, Q_GAME, S_GAME, "光荣和ω-force", SpanType.CHUNK, 1.0),
    (f.gap_overlap, Q_GAME, S_GAME, "光荣", SpanType.CHUNK, 2 * (1.0 * 2 / 10) / (1.0 + 2 / 10)),
    (f.gap_overlap, Q_GAME, S_GAME, "动作游戏", SpanType.CHUNK, 0.0),
    (f.gap_exact, Q_GAME, S_GAME, "光荣和ω-force", SpanType.CHUNK, 1.0),
    (f.gap_exact, Q_GAME, S_GAME, "光荣", SpanType.CHUNK, 0.0),
    (f.keywords_before_on_left, Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE, 1.0),
    (f.keywords_before_on_left, Q_CAPITAL, S_CAPITAL, "法国", SpanType.PLACE, 0.0),
    (
        f.keywords_after_on_right,
        "哪个城市是中国的首都?",
        "北京是中国的首都城市。",
        "北京",
        SpanType.PLACE,
        1.0,
    ),
    (
        f.keywords_on_wrong_side,
        "哪个城市是中国的首都?",
        "中国的首都城市是北京。",
        "北京",
        SpanType.PLACE,
        1.0,
    ),
    (f.keywords_on_wrong_side, "哪个城市是中国的首都?", "北京是中国的首都。", "北京", SpanType.PLACE, 0.0),
    (f.keywords_inside, Q_CAPITAL, S_CAPITAL, "法国的首都", SpanType.CHUNK, 1.0),
    (f.keywords_inside, Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE, 0.0),
    (f.question_char_share, Q_CAPITAL, S_CAPITAL, "首都是巴黎", SpanType.CHUNK, 3 / 5),
    (f.in_question, Q_CAPITAL, S_CAPITAL, "法国", SpanType.PLACE, 1.0),
    (f.in_question, Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE, 0.0),
    (f.left_keyword_distance, Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE, 1 / 30),  # 首都 then 是
    (f.left_keyword_distance, Q_CAPITAL, "巴黎是首都。", "巴黎", SpanType.PLACE, 1.0),  # none before it
    (f.right_keyword_distance, Q_CAPITAL, "巴黎是首都。", "巴黎", SpanType.PLACE, 1 / 30),
    (f.keyword_proximity, "首都是哪里?", "首都巴黎。", "巴黎", SpanType.PLACE, 1.0),  # right beside it
    (f.keyword_proximity, Q_CAPITAL, "巴黎很美。", "巴黎", SpanType.PLACE, 0.0),
    (f.clause_keyword_share, Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE, 1.0),
    (f.clause_keyword_share, Q_CAPITAL, S_CAPITAL, "最大的城市", SpanType.CHUNK, 0.0),
    # an enumeration's item: the figure belongs to the noun of its own item, not to the clause's other items
    (f.item_keyword_share, "有多少个示范村?", "建成示范村7个、提档升级村45个。", "7个", SpanType.NUMBER, 1.0),
    (
        f.item_keyword_share,
        "有多少个示范村?",
        "建成示范村7个、提档升级村45个。",
        "45个",
        SpanType.NUMBER,
        0.0,
    ),
    (f.item_keyword_share, "造林多少亩?", "完成造林3.6万亩,封山4.3万亩。", "4.3万亩", SpanType.NUMBER, 0.0),
    (f.follows_copula, Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE, 1.0),
    (f.follows_copula, Q_CAPITAL, S_CAPITAL, "法国", SpanType.PLACE, 0.0),
    (f.follows_verb, "谁发明了电话?", "贝尔发明了电话。", "电话", SpanType.CHUNK, 1.0),
    (f.follows_verb, "谁发明了电话?", "贝尔发明了电话。", "贝尔", SpanType.PERSON, 0.0),
    (f.follows_preposition, Q_YEAR, "该寺于1368年建成，1999年重修。", "1368年", SpanType.DATE, 1.0),
    (f.follows_preposition, Q_YEAR, "该寺于1368年建成，1999年重修。", "1999年", SpanType.DATE, 0.0),
    (f.precedes_verb, "谁发明了电话?", "贝尔发明了电话。", "贝尔", SpanType.PERSON, 1.0),
    (f.precedes_verb, "谁发明了电话?", "贝尔发明了电话。", "电话", SpanType.CHUNK, 0.0),
    (f.opens_clause, Q_CAPITAL, S_CAPITAL, "法国", SpanType.PLACE, 1.0),
    (f.opens_clause, Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE, 0.0),
    (f.closes_clause, Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE, 1.0),
    (f.closes_clause, Q_CAPITAL, S_CAPITAL, "法国", SpanType.PLACE, 0.0),
    (f.followed_by_de, Q_CAPITAL, S_CAPITAL, "法国", SpanType.PLACE, 1.0),
    (f.followed_by_de, Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE, 0.0),
    (f.on_word_boundaries, Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE, 1.0),
    (f.on_word_boundaries, Q_CAPITAL, S_CAPITAL, "巴", SpanType.CHUNK, 0.0),
    (f.opens_with_noun, Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE, 1.0),
    (f.opens_with_noun, Q_CAPITAL, S_CAPITAL, "是巴黎", SpanType.CHUNK, 0.0),
    (f.closes_with_noun, Q_CAPITAL, S_CAPITAL, "最大的城市", SpanType.CHUNK, 1.0),
    (f.closes_with_verb, Q_GAME, S_GAME, "光荣和ω-force开发", SpanType.CHUNK, 1.0),
    (f.closes_with_verb, Q_GAME, S_GAME, "动作游戏", SpanType.CHUNK, 0.0),
    (f.opens_with_verb, Q_COUNT, S_COUNT, "集聚了14家", SpanType.CHUNK, 1.0),
    (f.opens_with_verb, Q_COUNT, S_COUNT, "14家", SpanType.NUMBER, 0.0),
    (f.word_count, Q_CAPITAL, S_CAPITAL, "最大的城市", SpanType.CHUNK, 3.0),
    (f.share_of_sentence, Q_CAPITAL, "首都是巴黎", "巴黎", SpanType.PLACE, 2 / 5),
    (f.position_in_sentence, Q_CAPITAL, "首都是巴黎", "巴黎", SpanType.PLACE, 3 / 5),
    (f.holds_digit, Q_COUNT, S_COUNT, "14家", SpanType.NUMBER, 1.0),
    (f.holds_digit, Q_COUNT, S_COUNT, "活性炭企业", SpanType.CHUNK, 0.0),
    (f.holds_asked_figure, "1999年该寺做了什么?", S_YEAR, "1999年", SpanType.DATE, 1.0),
    (f.holds_asked_figure, "1999年该寺做了什么?", S_YEAR, "1368年", SpanType.DATE, 0.0),
    (f.repeats_in_passage, Q_CAPITAL, "巴黎很美。巴黎很大。", "巴黎", SpanType.PLACE, 2.0),
]


def _view(question: str, sentence: str, span: str, kind: SpanType) -> SpanView:
    start = sentence.index(span)
    return SpanView.of(analyse_question(question), sentence, start, start + len(span), kind)


@pytest.mark.parametrize(("feature", "question", "sentence", "span", "kind", "expected"), TABLE)
def test_span_feature_table(
    feature: Callable[[Question, SpanView], float],
    question: str,
    sentence: str,
    span: str,
    kind: SpanType,
    expected: float,
) -> None:
    assert feature(analyse_question(question), _view(question, sentence, span, kind)) == pytest.approx(
        expected, abs=0.01
    )


def test_rarity_prefers_a_name_to_a_common_word() -> None:
    q = analyse_question(Q_CAPITAL)
    assert f.rarity(q, _view(Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE)) > f.rarity(
        q, _view(Q_CAPITAL, S_CAPITAL, "最大的城市", SpanType.CHUNK)
    )


def test_longer_spans_score_longer() -> None:
    q = analyse_question(Q_CAPITAL)
    short = f.log_chars(q, _view(Q_CAPITAL, S_CAPITAL, "巴黎", SpanType.PLACE))
    assert f.log_chars(q, _view(Q_CAPITAL, S_CAPITAL, "最大的城市", SpanType.CHUNK)) > short


def test_type_and_kind_flags_are_one_hot() -> None:
    q = analyse_question(Q_COUNT)
    row = dict(
        zip(
            SPAN_FEATURE_NAMES,
            span_matrix(q, [_view(Q_COUNT, S_COUNT, "14家", SpanType.NUMBER)])[0],
            strict=True,
        )
    )
    assert row["type_number"] == 1.0 and sum(row[f"type_{t.value}"] for t in SpanType) == 1.0
    assert row["asks_number"] == 1.0 and sum(row[f"asks_{k.value}"] for k in QuestionKind) == 1.0


def test_proximity_halves_with_distance() -> None:
    q = analyse_question("首都是哪里?")
    near = f.keyword_proximity(q, _view("首都是哪里?", "首都巴黎。", "巴黎", SpanType.PLACE))
    far = f.keyword_proximity(q, _view("首都是哪里?", "首都在欧洲西部的巴黎。", "巴黎", SpanType.PLACE))
    assert near == pytest.approx(1.0) and far == pytest.approx(0.5 ** (6 / f.PROXIMITY_HALF))  # 在欧洲西部的


def test_rank_among_spans_of_the_same_type() -> None:
    q = analyse_question(Q_YEAR)
    views = span_views(q, SentenceView.alone(S_YEAR))
    rows = {v.text: r for v, r in zip(views, span_matrix(q, views), strict=True)}
    rank = SPAN_FEATURE_NAMES.index("keyword_proximity_rank_in_type")
    assert rows["1368年"][rank] == 0.0  # the date beside 该寺建于
    assert rows["1999年"][rank] >= 1.0


def test_every_feature_is_named_documented_and_tested() -> None:
    tested = {row[0].__name__ for row in TABLE} | {"rarity", "log_chars"}
    for feature in SPAN_FEATURES:
        assert feature.__doc__ and feature.__doc__.strip()
        assert feature.__name__ in tested or feature.__name__.startswith(("type_", "asks_"))
    assert len(set(SPAN_FEATURE_NAMES)) == len(SPAN_FEATURE_NAMES)


def test_the_aligned_answer_is_among_the_views_of_a_sentence() -> None:
    q = analyse_question(Q_GAME)
    views = span_views(q, SentenceView.alone(S_GAME))
    assert any(v.text == "光荣和ω-force" and f.gap_exact(q, v) == 1.0 for v in views)
