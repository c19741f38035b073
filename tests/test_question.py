"""rag.question: one analysis per question: kind, measure word, subjects, figures, keywords, script."""

from __future__ import annotations

import dataclasses
import time

import pytest

from rag.question import MAX_KEYWORDS, Question, QuestionKind, analyse_question, measure_word, question_kind


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("左云县不见面审批系统是哪天开始试运行的?", QuestionKind.DATE),
        ("唐太宗在哪一年登基?", QuestionKind.DATE),
        ("左权县有多少家活性炭企业?", QuestionKind.NUMBER),
        ("这座桥有多长?", QuestionKind.NUMBER),
        ("谁发明了电话?", QuestionKind.PERSON),
        ("该片的导演是哪位?", QuestionKind.PERSON),
        ("阿马里洛位于哪个州?", QuestionKind.PLACE),
        ("他出生在哪里?", QuestionKind.PLACE),
        ("《战国无双3》是由哪两个公司合作开发的?", QuestionKind.ORGANISATION),
        ("他毕业于哪所大学?", QuestionKind.ORGANISATION),
        ("她主演的哪部电影获奖了?", QuestionKind.TITLE),
        ("什么是量子力学?", QuestionKind.DEFINITION),
        ("显微镜学是什么?", QuestionKind.DEFINITION),
        ("为什么这座桥被鉴定为危桥?", QuestionKind.EXPLANATION),
        ("如何申请补贴?", QuestionKind.EXPLANATION),
        ("他几乎每天都做什么运动?", QuestionKind.OTHER),  # 几乎 is not 几
        ("乾隆的母亲姓什么", QuestionKind.OTHER),
    ],
)
def test_kind_of_answer_asked_for(question: str, kind: QuestionKind) -> None:
    assert analyse_question(question).kind is kind


def test_traditional_question_gets_the_same_kind_as_simplified() -> None:
    assert question_kind(analyse_question("為什麼這座橋被鑑定為危橋?").normalized) is QuestionKind.EXPLANATION


@pytest.mark.parametrize(
    ("question", "measure"),
    [
        ("左权县有几家活性炭企业", "家"),
        ("产值是多少万元", "万元"),
        ("面积有多少平方公里", "平方"),
        ("全县有多少人", "人"),
        ("有机作物种了多少亩", "亩"),
        ("地区生产总值有多少", ""),
        ("他几乎每天跑步", ""),
    ],
)
def test_measure_word_after_the_interrogative(question: str, measure: str) -> None:
    assert measure_word(question) == measure


def test_subjects_years_and_figures() -> None:
    q = analyse_question("2024年左权县的地区生产总值比2020年增加了多少亿元?")
    assert "左权县" in q.subjects
    assert q.years == ("2024", "2020")
    assert q.figures == ()
    assert q.measure == "亿元"
    assert analyse_question("第3届大会有多少人参加?").figures == ("3",)


@pytest.mark.parametrize(
    ("question", "interrogative", "before", "after"),
    [
        ("法国的首都是什么?", "什么", "法国的首都是", ""),
        ("请问哪个城市是中国的首都?", "哪个", "", "城市是中国的首都"),
        ("左权县有多少家活性炭企业?", "多少家", "左权县有", "活性炭企业"),
        ("《战国无双3》是由哪两个公司合作开发的?", "哪两个", "《战国无双3》是由", "公司合作开发的"),
        ("这是一个陈述句。", "", "这是一个陈述句", ""),
    ],
)
def test_context_around_the_interrogative(question: str, interrogative: str, before: str, after: str) -> None:
    q = analyse_question(question)
    assert (q.interrogative, q.before, q.after) == (interrogative, before, after)


def test_keywords_are_weighted_rarest_first_and_exclude_question_words() -> None:
    q = analyse_question("左权县有多少家活性炭企业?")
    words = [w for w, _ in q.keywords]
    assert words[:2] == ["左权县", "活性炭"]
    assert "企业" in words and "多少" not in words
    weights = [w for _, w in q.keywords]
    assert weights == sorted(weights, reverse=True)
    assert q.keyword_weight == pytest.approx(sum(weights))


def test_script_is_recorded_and_matching_form_is_simplified() -> None:
    q = analyse_question("左雲縣有多少家活性炭企業?")
    assert q.script == "traditional"
    assert "左云县" in q.normalized
    assert analyse_question("左云县有多少家活性炭企业?").script == "simplified"


def test_question_is_frozen() -> None:
    q = analyse_question("谁发明了电话?")
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.text = "x"  # type: ignore[misc]
    assert isinstance(q, Question)


def test_a_long_question_analyses_quickly_with_bounded_keywords() -> None:
    long = (
        "左云县的活性炭产业在十四五期间取得了长足的发展，企业数量和产值都有明显增长。" * 55
        + "请问有多少家企业?"
    )
    assert len(long) > 2000
    analyse_question("预热一下分词器?")
    started = time.perf_counter()
    q = analyse_question(long)
    assert time.perf_counter() - started < 0.5
    assert len(q.keywords) <= MAX_KEYWORDS
    assert q.kind is QuestionKind.NUMBER and q.measure == "家"
