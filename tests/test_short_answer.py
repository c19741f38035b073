"""The exact answer inside an extractive answer: span, supporting sentence, offsets, confidence in words."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rag.question import analyse_question
from rag.short_answer import confidence_words, speaker_answer, stated_only_if_likely
from rag.spans import SpanType
from rag.text import normalize
from rag.types import Answer, Citation
from ui.render import highlighted_paragraph


@pytest.mark.parametrize(
    ("found", "stated", "confidence", "words"),
    [
        (True, True, 0.9, "把握较高"),
        (True, False, 0.5, "把握一般"),  # as likely right as wrong
        (True, False, 0.49, "把握较低"),  # more likely wrong: the refusal's threshold lets some through
        # the words follow short_stated; stated_only_if_likely keeps a stated answer from falling under one half
        (True, True, 0.3, "把握较高"),
        (False, False, 0.0, ""),
    ],
)
def test_confidence_words(found: bool, stated: bool, confidence: float, words: str) -> None:
    answer = Answer("左云县有几家?", "t", found, short_stated=stated, confidence=confidence)
    assert confidence_words(answer) == words
    traditional = confidence_words(replace(answer, question="左雲縣有幾家?"))
    assert traditional == words.replace("较", "較")


@pytest.mark.parametrize(("confidence", "stated"), [(0.9, True), (0.5, True), (0.43, False)])
def test_a_short_answer_is_stated_only_when_the_answer_is_as_likely_right_as_wrong(
    confidence: float, stated: bool
) -> None:
    quote = "实现食品小经营店备案等26项事项“马上办”。"
    c = Citation(
        1, "b.txt", 37, quote, quote, quote_start=0, quote_end=len(quote), answer_start=11, answer_end=14
    )
    answer = Answer("网上能办的事有多少项?", f"26项[1]\n{quote}", True, citations=[c], short="26项")
    got = stated_only_if_likely(
        replace(answer, short_stated=True, short_confidence=0.87, confidence=confidence)
    )
    assert got.short_stated is stated and got.short == "26项" and got.short_confidence == 0.87
    assert got.text == (f"26项[1]\n{quote}" if stated else f"{quote}[1]")
    assert confidence_words(got) == ("把握较高" if stated else "把握较低")


def test_the_short_answer_is_highlighted_inside_the_quoted_sentence() -> None:
    text = "第一句。集聚了14家活性炭企业。第三句。"
    c = Citation(
        1,
        "a.txt",
        1,
        text,
        "集聚了14家活性炭企业。",
        quote_start=4,
        quote_end=16,
        answer_start=3,
        answer_end=6,
    )
    html = highlighted_paragraph(c)
    assert '<mark>集聚了<strong class="rag-span">14家</strong>活性炭企业。</mark>' in html
    no_span = Citation(1, "a.txt", 1, text, "集聚了14家活性炭企业。", quote_start=4, quote_end=16)
    assert "<strong" not in highlighted_paragraph(no_span)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "short"),
    [
        ("左云县不见面审批系统是哪天开始试运行的?", "2023年3月15日"),
        ("左雲縣一共有多少家活性炭企業？", "14家"),
        ("2024年左权县的地区生产总值有多少？", "80亿元"),
    ],
)
def test_stated_short_answers_from_the_seeds(seeds_engine, question: str, short: str) -> None:
    answer = seeds_engine.ask(question)
    assert answer.found and answer.short_stated
    assert normalize(answer.short) == normalize(short)
    assert answer.text.startswith(f"{answer.short}[1]\n")  # the answer, then its whole sentence
    c = answer.citations[0]
    assert c.quote == c.text[c.quote_start : c.quote_end]
    assert c.quote[c.answer_start : c.answer_end] == c.text[c.quote_start :][c.answer_start : c.answer_end]
    assert normalize(c.quote[c.answer_start : c.answer_end]) == normalize(short)
    assert c.quote.rstrip().endswith(("。", "；", ";", "!", "！", "?", "？"))  # never cut mid-sentence
    assert 0.5 <= answer.short_confidence <= 1.0 and 0.0 < answer.confidence <= 1.0


@pytest.mark.slow
def test_follow_up_gets_its_own_short_answer(seeds_engine) -> None:
    history = [{"role": "user", "content": "左云县有多少家活性炭企业?"}]
    answer = seeds_engine.ask("其中规模以上的有几家?", history=history)
    assert answer.found and answer.short == "7家"


@pytest.mark.slow
def test_an_explanation_has_no_short_answer(seeds_engine) -> None:
    answer = seeds_engine.ask("左权县为什么要发展有机农业?")
    assert answer.short is None and answer.short_confidence == 0.0


@pytest.mark.parametrize(
    ("question", "speaker", "span_type", "expected"),
    [
        ("谁回答了这个提问?", "大同市左云县行政审批服务管理局副局长 王永军", SpanType.CHUNK, "王永军"),
        ("是哪家媒体问的?", "山西市場導報記者", SpanType.QUOTED, "山西市場導報"),  # the outlet, its script
        (
            "谁回答了这个提问?",
            "副局长 王永军",
            SpanType.PERSON,
            "",
        ),  # the sentence names someone: the model's
        ("修了多少公里?", "副局长 王永军", SpanType.CHUNK, ""),  # not a question about who
        # an organisation asked about what the turn says: the official's name is not one
        ("哪个单位被评为核心育种场?", "副县长、新闻发言人 高鹏", SpanType.CHUNK, ""),
        ("谁回答了这个提问?", "", SpanType.CHUNK, ""),  # no speaker
    ],
)
def test_who_speaks_answers_a_who_question_when_the_sentence_names_no_one(
    question: str, speaker: str, span_type: SpanType, expected: str
) -> None:
    assert speaker_answer(analyse_question(question), speaker, span_type) == expected


HOST = "主持人:中共大同市委宣传部副部长 王瑶"


@pytest.mark.parametrize(
    ("question", "span", "expected"),
    [
        # the host's turn names the official: the model's span
        ("左云县专场新闻发布会是谁主持的?", "新闻发言人高鹏同志", ""),
        # a name the question says (jieba tags 左云县 as one) is no one else; 主持 is what the label says
        ("左云县专场新闻发布会是谁主持的?", "左云县专场", "王瑶"),
        ("左云县专场新闻发布会是谁主持的?", "“放管服”", "王瑶"),  # names no one: who speaks
        ("左云县县长是谁?", "“放管服”", ""),  # the host's label says nothing of 县长
        ("左云县新闻发言人是谁?", "“放管服”", ""),
    ],
)
def test_a_speaker_answers_for_what_its_label_says_and_not_over_a_named_person(
    question: str, span: str, expected: str
) -> None:
    assert speaker_answer(analyse_question(question), HOST, SpanType.TAIL, span) == expected


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "short"),
    [("谁回答了关于“不见面审批”的提问?", "王永军"), ("是哪家媒体问了“不见面审批”的问题?", "山西市场导报")],
)
def test_a_press_conference_turn_answers_who_with_its_speaker(
    seeds_engine, question: str, short: str
) -> None:
    answer = seeds_engine.ask(question)
    assert answer.found and answer.short == short
    c = answer.citations[0]
    assert short in answer.text.split("\n")[-1]  # the sentence is given with its speaker's label
    assert c.answer_start == c.answer_end == 0  # nothing to highlight inside the quote
