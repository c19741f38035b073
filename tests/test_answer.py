"""Pure logic of the extractive answerer: windows, widening, coverage, runner-up parts, refusals."""

import pytest

from rag.answer import compose, coverage, fits, widened, windows
from rag.question import analyse_question as analyse
from rag.text import keywords, normalize
from rag.types import Passage


def weight(word: str) -> float:
    return 1.0


def test_interrogatives_do_not_glue_onto_their_neighbours():
    assert "规模" in keywords("左权要建一个多大规模的综合能源基地?")
    assert not {"一个多", "大规模"} & set(keywords("左权要建一个多大规模的综合能源基地?"))


@pytest.mark.parametrize(
    ("question", "text", "expected"),
    [
        ("全县有几家企业?", "全县集聚了14家企业", True),
        ("全县有几家企业?", "全县集聚了14个企业", False),  # a figure, but not with the measure word asked
        ("水质达到几类标准?", "国考断面水质稳定在Ⅱ类标准", True),  # a Roman numeral is a figure (Ⅱ类)
        ("水质达到几类标准?", "国考断面水质稳定达标", False),
    ],
)
def test_a_figure_with_the_measure_word_asked_fits(question: str, text: str, expected: bool) -> None:
    assert fits(analyse(question), normalize(text)) is expected


def test_widening_takes_clauses_on_both_sides_before_first():
    text = "甲甲甲甲，乙乙乙乙，丙丙丙丙，丁丁丁丁。"
    start = text.index("丙")
    assert widened(text, start, start + 5, limit=10) == (text.index("乙"), start + 5)
    assert widened(text, start, start + 5, limit=15) == (text.index("乙"), len(text))


def test_coverage_leaves_figures_to_their_own_check():
    query = analyse("2025年的生产总值是多少?")
    assert coverage(query, "2025年粮食产量增长", weight) == 0.0  # the year alone is no match
    assert coverage(analyse("那2025年呢?"), "其他内容", weight) == 1.0  # nothing but a figure to match


def test_a_word_in_every_sentence_weighs_less_than_one_in_a_single_sentence():
    text = "黑鱼分布于南海。黑鱼体长可达20公分。黑鱼以藻类为食。"
    found = windows(Passage("a.txt", 1, text, 1.0), 0, analyse("黑鱼的体长是多少?"), weight)
    assert "体长" in text[found[0].start : found[0].end]


def test_two_sentences_that_answer_about_equally_well_are_both_given_and_cited():
    middle = "该站于2001年启用，" + "，".join(["设有两个岛式月台与四条股道"] * 12) + "。"
    text = "该站位于江南区。" + middle + "站房位于广场东侧。"  # the two answers lie far apart
    answer = compose("车站位于哪里?", analyse("车站位于哪里?"), [Passage("a.txt", 1, text, 1.0)], weight, {})
    assert answer.found and len(answer.citations) == 2
    assert answer.text.index("江南区") < answer.text.index("广场东侧")  # in reading order
    assert {c.quote for c in answer.citations} == {"该站位于江南区。", "站房位于广场东侧。"}
    assert len(answer.text) < len(text)  # not the whole stretch between them


def test_two_answering_sentences_side_by_side_make_one_span():
    text = "该站位于江南区。该站于2001年启用。站房位于广场东侧。"
    answer = compose("车站位于哪里?", analyse("车站位于哪里?"), [Passage("a.txt", 1, text, 1.0)], weight, {})
    assert answer.text.count("江南区") == 1 and "广场东侧" in answer.text and len(answer.citations) == 1


def test_a_weak_match_is_refused_when_a_better_one_names_another_subject():
    question = "平遥县的不见面审批系统梳理了多少个事项?"
    other = Passage("太谷.txt", 3, "不见面审批系统梳理了300个事项。", 5.0)
    weak = Passage("平遥.txt", 7, "平遥县系统梳理红色文化资源,建成6个景区。", 2.0)
    docs = {
        "太谷.txt": "太谷县 不见面审批系统梳理了300个事项。",
        "平遥.txt": "平遥县系统梳理红色文化资源,建成6个景区。",
    }
    query = analyse(question)
    assert "平遥县" in query.entities
    assert not compose(question, query, [other, weak], weight, docs).found
    # the same weak passage alone, with nothing better about another subject, passes the lower bar
    assert compose(question, query, [weak], weight, docs).found


def test_the_word_a_paragraph_opens_with_does_not_pull_the_window_to_the_opening():
    text = (
        "阿马里洛是美国德克萨斯州西北部的一个城市，是波特县县治。面积233.9平方公里。1887年开埠，原名奥奈达。"
    )
    query = analyse("阿马里洛的原名是什么?")
    found = windows(Passage("a.txt", 1, text, 1.0), 0, query, weight)
    assert "原名" in text[found[0].start : found[0].end]
    opening = next(e for e in found if e.start == 0)
    assert found[0].strength > opening.score  # between passages the topic word counts in full


def test_a_figure_for_the_head_of_the_asked_compound_alone_is_refused():
    text = (
        "全县农作物播种面积稳定在34万亩左右,粮食产量超1亿斤。"
        "滚动推进高标准农田建设,建设特色示范片区提升单产,发展优质杂粮、沙棘、苦荞等优势产品,打响葵花籽品牌。"
        "开展超2万亩有机旱作膜下滴灌应用。"
    )
    docs = {"a.txt": text}
    passage = Passage("a.txt", 1, text, 1.0)
    asked = "有机作物种植面积是多少?"  # 作物 only inside 农作物; 有机 only in another sentence
    assert not compose(asked, analyse(asked), [passage], weight, docs).found
    plain = "农作物播种面积是多少?"
    answer = compose(plain, analyse(plain), [passage], weight, docs)
    assert answer.found and "34万亩" in answer.text


def test_a_journalists_turn_never_answers_but_names_who_asked():
    asking = Passage(
        "a.txt", 4, "据了解十四五期间造林超过3万亩,能否为我们解读?", 5.0, speaker="山西农民报记者"
    )
    reply = Passage("a.txt", 5, "十四五全县完成造林3.6万亩。", 4.0, speaker="副县长 高鹏")
    question = "十四五期间造林多少亩?"
    answer = compose(question, analyse(question), [asking, reply], weight, {})
    assert answer.found and "3.6万亩" in answer.text
    assert [c.paragraph for c in answer.citations] == [5]
    who = "哪家媒体问了造林的问题?"
    assert compose(who, analyse(who), [asking, reply], weight, {}).citations[0].paragraph == 4


def test_the_coverage_allowance_lets_a_shortfall_through_with_its_margin(monkeypatch):
    from rag import answer as rules

    question = "左云县的煤矿、电厂、水泥厂和砖厂有多少家企业?"
    text = "全县共有活性炭企业14家。"  # holds part of the question's words only
    query = analyse(question)
    ranked = [Passage("a.txt", 1, text, 1.0)]
    share = coverage(query, text, weight, query.entities)
    assert 0.0 < share < rules.MIN_COVERAGE
    assert not compose(question, query, ranked, weight, {"a.txt": "左云县 " + text}).found
    monkeypatch.setattr(rules, "COVERAGE_ALLOWANCE", rules.MIN_COVERAGE)
    given = compose(question, query, ranked, weight, {"a.txt": "左云县 " + text})
    assert given.found and given.coverage_margin < 0


def test_a_preferred_passage_is_answered_from_when_it_passes_the_gates():
    question = "左云县有多少家活性炭企业?"
    query = analyse(question)
    strong = Passage("a.txt", 1, "左云县活性炭企业共有14家。", 5.0)
    weaker = Passage("a.txt", 2, "其中活性炭规模以上企业7家。", 3.0)
    unrelated = Passage("a.txt", 3, "全县新建公厕4座。", 2.0)
    docs = {"a.txt": "左云县 " + strong.text + weaker.text + unrelated.text}
    ranked = [strong, weaker, unrelated]
    assert compose(question, query, ranked, weight, docs).citations[0].paragraph == 1
    assert compose(question, query, ranked, weight, docs, prefer=("a.txt", 2)).citations[0].paragraph == 2
    assert not compose(
        question, query, ranked, weight, docs, prefer=("a.txt", 3)
    ).found  # fails the coverage gate
