"""rag.question: one analysis per question: kind, measure word, subjects, figures, keywords, script."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import pytest

from rag.question import (
    MAX_KEYWORDS,
    Question,
    QuestionKind,
    analyse_question,
    elliptical_question,
    measure_word,
    question_kind,
    subject_words,
    unglued,
)


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
        ("这几天开了什么会?", QuestionKind.OTHER),  # 这几天 is "these days": not a count
        ("有几十个人参加了?", QuestionKind.NUMBER),  # 几十 asks how many tens
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
        ("左权的工业这几年每年平均涨多少", ""),  # 这几年 is "these years": 多少 asks, with no measure
        ("前几名", "名"),  # 前几 may ask (世界前几名)
        ("好几个部门共用几座楼", "座"),
        ("那几个项目一年能产多少吨", "吨"),  # 那几个 is "those": the measure is the one after 多少
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
    ("question", "unit"),
    [
        ("五年花了多少钱办民生实事?", "元"),  # a sum of money is stated in 元, never 钱
        ("五年花了多少錢辦民生實事?", "元"),
        ("投资了多少亿元?", "亿元"),
        ("有几家企业?", "家"),
    ],
)
def test_the_measure_is_the_unit_an_answer_states(question: str, unit: str) -> None:
    assert analyse_question(question).measure == unit


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


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("津蓟铁路沿线设置了哪几个站点?", QuestionKind.OTHER),  # 哪几 asks for names, not a count
        ("左云县有几家专精特新企业?", QuestionKind.NUMBER),
    ],
)
def test_which_few_is_not_a_count(question: str, kind: QuestionKind) -> None:
    assert analyse_question(question).kind is kind


@pytest.mark.parametrize(
    ("question", "subjects"),
    [
        ("左權縣財政每年拿出多少錢花在老百姓身上?", ["左权县"]),  # not 钱花: the measure glued to 花
        ("左云县有多少家活性炭企业?", ["左云县"]),
        ("高鹏有几个孩子?", ["高鹏"]),  # a name elsewhere in the question stays
    ],
)
def test_the_measure_word_glued_to_the_next_character_is_no_subject(
    question: str, subjects: list[str]
) -> None:
    assert subject_words(question) == subjects


@pytest.mark.parametrize(
    ("found", "vocabulary", "kept"),
    [
        # jieba's HMM glued 城 (of 县城) to 新修
        (["左云县", "城新修", "厕所"], {"县城": 1.0}, ["左云县", "城", "新", "修", "厕所"]),
        (["社零", "总额"], {}, ["社", "零", "总额"]),  # an abbreviation the documents spell out
        (["城新修"], {"城新修": 3.0}, ["城新修"]),  # a word the index knows stays whole
        (["厕所"], {}, ["厕所"]),  # a dictionary word stays whole
        (["高小鹏"], {}, ["高小鹏"]),  # a subject (a name) stays whole: see below
        (["gdp"], {}, ["gdp"]),  # one piece only
    ],
)
def test_a_word_jiebas_hmm_guessed_that_no_one_knows_stands_as_its_dictionary_words(
    found: list[str], vocabulary: dict[str, float], kept: list[str]
) -> None:
    assert unglued(found, ["高小鹏"], vocabulary) == kept


def test_the_analysis_takes_a_glued_guess_apart_only_against_an_index() -> None:
    question = "左云县城新修了几个厕所?"
    assert "城新修" in analyse_question(question).words
    q = analyse_question(question, vocabulary={"县城": 1.0, "厕所": 2.0})
    assert "城新修" not in q.words and {"城", "新", "修"} <= set(q.words)


LAST = [{"role": "user", "content": "左云县有多少家活性炭企业?"}, {"role": "assistant", "content": "14家"}]


@pytest.mark.parametrize(
    ("question", "follows", "carried"),
    [
        ("其中规模以上的有几家?", True, "左云县"),  # opens with a pointing word
        ("人均呢?", True, "左云县"),  # a fragment ending in 呢 that stands for no word of the last turn
        ("左权县的地区生产总值是多少?", False, None),  # a complete question stands alone
    ],
)
def test_a_follow_up_is_folded_after_the_last_user_turn(
    question: str, follows: bool, carried: str | None
) -> None:
    q = analyse_question(question, LAST)
    assert q.is_follow_up is follows
    assert q.text == question and q.standalone.endswith(question)
    if follows:
        assert q.standalone.startswith("左云县有多少家活性炭企业?")
        assert carried in q.entities and carried not in q.subjects  # carried, not named in the turn
        assert "活性炭" in q.context_keywords and "活性炭" in q.terms
        assert q.standalone_pairs > q.pairs  # the ranking looks for the folded question's pairs
    else:
        assert q.entities == q.subjects and not q.context and not q.context_keywords
    # the turn's own analysis is the same with or without history
    alone = analyse_question(question)
    assert (q.kind, q.subjects, q.keywords, q.pairs) == (
        alone.kind,
        alone.subjects,
        alone.keywords,
        alone.pairs,
    )


@pytest.mark.parametrize(
    ("last", "turn", "whole"),
    [
        ("左权县森林覆盖率是多少?", "林木覆盖率呢?", "左权县林木覆盖率是多少?"),  # the head 覆盖率
        ("左云县有多少家活性炭企业?", "那生产企业呢?", "左云县有多少家生产企业?"),  # 企业: 活性炭企业 goes
        ("左权县2024年地区生产总值是多少?", "左云县呢?", "左云县2024年地区生产总值是多少?"),
        ("左权中学2022年二本达线多少人?", "那2025年呢?", "左权中学2025年二本达线多少人?"),
        (
            "鵲盛活性炭公司產量是多少?",
            "產值呢?",
            "鵲盛活性炭公司產值是多少?",
        ),  # the start 产; the turn's script
        (
            "左雲縣的GDP是多少?",
            "左权县呢?",
            "左权县的GDP是多少?",
        ),  # the Simplified turn's script, GDP as written
        ("左权县有多少个有机农产品?", "名特优新产品呢?", "左权县有多少个名特优新产品?"),  # 多少个 stays
        ("左权县GDP是多少?", "左云县的呢?", "左云县GDP是多少?"),  # 左云县's: the 的 is dropped
        ("左权县森林覆盖率是多少?", "左云县的情况呢?", None),  # 左 starts no word as long as 左云县的情况
        ("李征宇担任什么职务?", "王永军呢?", "王永军担任什么职务?"),  # one subject for another
        ("左雲縣的GDP是多少?", "人均呢?", None),  # nothing of the last turn it stands for: folded as before
        ("左云县有多少家活性炭企业?", "其中规模以上的有几家?", None),  # a question of its own
    ],
)
def test_an_elliptical_follow_up_asks_the_last_question_again_of_what_it_names(
    last: str, turn: str, whole: str | None
) -> None:
    assert elliptical_question(last, turn) == whole


def test_an_elliptical_follow_up_is_analysed_as_the_whole_question() -> None:
    q = analyse_question("林木覆盖率呢?", [{"role": "user", "content": "左权县森林覆盖率是多少?"}])
    assert q.kind is QuestionKind.NUMBER and q.interrogative == "多少"  # the turn alone has neither
    assert q.text == "林木覆盖率呢?" and q.standalone == "左权县林木覆盖率是多少?" and q.is_follow_up
    assert "森林" not in q.keywords_in_order and "林木" in q.keywords_in_order


def test_a_bare_place_stem_is_a_subject_when_the_index_knows_it_with_a_suffix() -> None:
    assert "左权" not in analyse_question("左权有啥出名的小米?").entities
    q = analyse_question("左权有啥出名的小米?", vocabulary={"左权县": 9.0, "小米": 5.0})
    assert "左权" in q.entities
    assert "左权" not in q.subjects  # the turn's own subjects stay what it names
    # a common word that happens to stand before a suffix in the index (发展区) names no place
    assert "发展" not in analyse_question("发展的目标是什么?", vocabulary={"发展区": 1.0}).entities


def test_press_conference_shapes_are_read_from_the_folded_question() -> None:
    assert analyse_question("哪家媒体问了造林的问题?").asks_who_asked
    assert analyse_question("关于造林的提问是谁回答的?").asks_who_answered
    assert not analyse_question("造林面积是多少?").asks_who_asked


def test_the_first_question_of_a_process_reads_the_filled_dictionary() -> None:
    # jieba fills its word frequencies on first use: read before segmenting, the first question saw an empty
    # dictionary and took the common word 城市 for a place
    code = "from rag.question import subject_words; print(subject_words('这个城市的人口有多少?'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
