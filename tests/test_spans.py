"""rag.spans: typed candidate answer spans inside a sentence."""

from __future__ import annotations

import pytest

from rag.spans import (
    COPULAS,
    CURRENCY_UNITS,
    EDGE_WORDS,
    ORGANISATION_SUFFIXES,
    PERIOD_WORDS,
    PLACE_SUFFIXES,
    SpanType,
    candidate_spans,
    matching_form,
)


def _spans(sentence: str) -> dict[str, SpanType]:
    return {sentence[c.start : c.end]: c.type for c in candidate_spans(sentence)}


@pytest.mark.parametrize(
    "words", [ORGANISATION_SUFFIXES, PLACE_SUFFIXES, EDGE_WORDS, COPULAS, CURRENCY_UNITS, PERIOD_WORDS]
)
def test_word_lists_are_sorted_without_duplicates(words: tuple[str, ...]) -> None:
    assert list(words) == sorted(set(words))


@pytest.mark.parametrize(
    ("sentence", "span", "kind"),
    [
        ("全县集聚了14家活性炭企业。", "14家", SpanType.NUMBER),
        ("全县集聚了14家活性炭企业。", "14", SpanType.NUMBER),
        ("约1.5万人参加了活动。", "1.5万人", SpanType.NUMBER),
        ("国考断面水质稳定在Ⅱ类标准。", "Ⅱ类", SpanType.NUMBER),  # a Roman numeral: a class or grade
        ("产值完成3.94亿元。", "3.94亿元", SpanType.AMOUNT),
        ("打造500万千瓦级能源基地。", "500万千瓦", SpanType.NUMBER),  # 千 opens the unit 千瓦
        ("新建道路3千米。", "3千米", SpanType.NUMBER),
        ("同比增长16.45%。", "16.45%", SpanType.PERCENT),
        ("结构优化为10.7:36.9:52.4,更趋合理。", "10.7:36.9:52.4", SpanType.NUMBER),  # a ratio across colons
        ("巴西以1比3输给西班牙。", "1比3", SpanType.NUMBER),
        ("节目每周一21:00播出。", "21:00", SpanType.NUMBER),
        ("系统于2023年3月15日进入试运行。", "2023年3月15日", SpanType.DATE),
        ("系统于2023年3月15日进入试运行。", "2023年", SpanType.DATE),
        ("这座寺庙建于明朝时期。", "明朝时期", SpanType.DATE),
        ("这座寺庙建于唐代。", "唐代", SpanType.DATE),
        ("他在电影《我与艺妓》的片场工作。", "我与艺妓", SpanType.TITLE),
        ("他在电影《我与艺妓》的片场工作。", "《我与艺妓》", SpanType.TITLE),
        ("两线换乘采用“站厅+通道”方式。", "站厅+通道", SpanType.QUOTED),
        ("国家统计局发布了数据。", "国家统计局", SpanType.ORGANISATION),
        ("该剧由木村拓哉主演。", "木村拓哉", SpanType.PERSON),
        ("他出生于山西省太原市。", "山西省", SpanType.PLACE),
        ("他的职业是一名律师，住在城里。", "一名律师", SpanType.COPULA),
        # a long noun phrase that ends its clause (the rest of the clause from a word on)
        (
            "大槐树位于洪洞县城西北二公里的贾村西侧的大槐树公园内，是移民基地。",
            "洪洞县城西北二公里的贾村西侧的大槐树公园内",
            SpanType.TAIL,
        ),
        ("因为连日暴雨，大桥被鉴定为危桥。", "因为连日暴雨", SpanType.CLAUSE),
        ("他在北京大学读书多年。", "读书", SpanType.CHUNK),
        ("他在北京大学读书多年。", "北京大学", SpanType.ORGANISATION),
    ],
)
def test_candidate_of_each_type(sentence: str, span: str, kind: SpanType) -> None:
    assert _spans(sentence).get(span) is kind


@pytest.mark.parametrize(
    ("sentence", "not_a_span"),
    [
        ("系统于2023年3月15日进入试运行。", "年3月"),  # a run of words never cuts into a date
        ("系统于2023年3月15日进入试运行。", "3月15日进入"),
        ("我们一起去公园。", "一"),  # a numeral inside a word is not a count
        ("他的书很好看。", "的书"),  # no span opens with a function word
        ("他的书很好看。", "他的"),  # nor closes with one
        ("系统于2023年进入试运行。", "试运行。"),  # nor with a sentence mark
        ("打造500万千瓦级能源基地。", "500万千"),  # 千瓦 is not cut in two
        ("5.统一电子档案系统:对已办结的业务进行统一归档。", "5."),  # a list number's dot is no unit
        ("结构优化为10.7:36.9:52.4,更趋合理。", "10.7"),  # a term of a ratio is not cut out of it
        ("结构优化为10.7:36.9:52.4,更趋合理。", "36.9:52.4"),
    ],
)
def test_spans_that_are_not_proposed(sentence: str, not_a_span: str) -> None:
    assert not_a_span not in _spans(sentence)


def test_an_organisation_name_is_made_of_nouns() -> None:
    spans = _spans("他在北京大学读书。")
    assert spans.get("北京大学") is SpanType.ORGANISATION
    assert spans.get("他在北京大学") is not SpanType.ORGANISATION


def test_offsets_are_those_of_the_sentence_as_given_in_either_script() -> None:
    traditional = "全縣集聚了14家活性炭企業，產值完成3.94億元。"
    spans = _spans(traditional)
    assert spans.get("3.94億元") is SpanType.AMOUNT
    assert "活性炭企業" in spans
    assert len(matching_form(traditional)) == len(traditional)


def test_each_span_once_in_reading_order() -> None:
    found = [(c.start, c.end) for c in candidate_spans("全县集聚了14家活性炭企业，产值3.94亿元。")]
    assert found == sorted(set(found))
