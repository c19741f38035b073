"""The verifier: numbers normalised and held to the cited paragraphs, citations checked."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rag.verify import answer_sentences, citation_numbers, quantities, verify

# Paragraph 61 of seeds/004 (Traditional), shortened.
WANGBAN = "截至目前,我縣可網辦事項1034個,可網辦率98.75%,已通過系統高效辦理各類業務33799件,平均辦理時限較以往壓縮51%以上。"
CARBON = "集聚了14家活性炭企業,其中生產企業12家。2024年活性炭產量達5.52萬噸,同比增長16.45%;產值完成3.94億元。"
GDP = "全縣GDP由106億元增長到151億元,人均GDP由88594元增長到136122元,年均增長9.4%。"


def values(text: str) -> list[tuple[Decimal, bool]]:
    return [(q.value, q.percent) for q in quantities(text)]


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.5亿元", "15000万元"),
        ("十四家", "14家"),
        ("９８．７５％", "98.75%"),
        ("百分之九十八点七五", "98.75%"),
        ("二〇二五年", "2025年"),
        ("3.94億元", "39400万元"),
        ("两亿三千万元", "2.3亿元"),
        ("1,034个", "1034個"),
        ("一点五亿", "1.5億"),
    ],
)
def test_normalised_forms_are_equal(a: str, b: str) -> None:
    assert values(a) == values(b)
    assert values(a), a


def test_words_that_look_numeric_are_not_numbers() -> None:
    assert quantities("“十四五”期间，统一部署，一般公共预算，全市第一方阵") == []
    assert quantities("详见[1][2]。") == []  # markers are not numbers
    assert quantities("1. 全县企业增加") == []  # a list item's number


def test_citations_and_sentences() -> None:
    assert citation_numbers("甲[1]乙[2,3]丙［4］丁【5】") == [1, 2, 3, 4, 5]
    assert answer_sentences("甲98.75%。[1][2]乙[3]。") == ["甲98.75%。[1][2]", "乙[3]。"]


def test_supported_number_passes() -> None:
    ok, reasons, kept = verify("左云县可网办率为98.75%[1]。", [WANGBAN])
    assert ok, reasons
    assert kept == [1]


def test_changed_number_fails() -> None:
    ok, reasons, _ = verify("左云县可网办率为87%[1]。", [WANGBAN])
    assert not ok
    assert any("87%" in r for r in reasons)
    ok, _, _ = verify("左云县可网办率为98.57%[1]。", [WANGBAN])
    assert not ok


def test_added_bound_fails() -> None:
    """ "可网办率98.75%以上" where the source says exactly 98.75% is a change of claim."""
    ok, reasons, _ = verify("可网办率98.75%以上[1]。", [WANGBAN])
    assert not ok
    assert any("98.75%" in r for r in reasons)
    # the bound the source does state is fine
    ok, reasons, _ = verify("平均办理时限压缩51%以上[1]。", [WANGBAN])
    assert ok, reasons


def test_percentage_must_stay_a_percentage() -> None:
    ok, _, _ = verify("产量同比增长16.45%[1]。", [CARBON])
    assert ok
    ok, _, _ = verify("企业有12%[1]。", [CARBON])  # 12 is in the source, 12% is not
    assert not ok


def test_normalised_answer_matches_source_forms() -> None:
    sources = [CARBON, GDP]
    ok, reasons, kept = verify(
        "全县集聚了十四家活性炭企业，产值完成39400万元[1]。GDP达到一百五十一亿元[2]。", sources
    )
    assert ok, reasons
    assert kept == [1, 2]
    ok, reasons, _ = verify("可网办率为９８．７５％［1］。", [WANGBAN])
    assert ok, reasons


def test_number_must_be_in_a_source_the_same_sentence_cites() -> None:
    # 98.75% is in source 1, but this sentence cites source 2
    ok, reasons, _ = verify("全县集聚了14家企业[2]。可网办率为98.75%[2]。", [WANGBAN, CARBON])
    assert not ok
    assert any("[2]" in r for r in reasons)
    # a sentence with a number and no citation is not supported
    ok, _, _ = verify("全县集聚了14家企业[2]。可网办率为98.75%。", [WANGBAN, CARBON])
    assert not ok


def test_citation_to_a_missing_source_is_dropped() -> None:
    ok, reasons, kept = verify("可网办率为98.75%[1]，企业14家[2][7]。", [WANGBAN, CARBON, GDP])
    assert ok, reasons
    assert kept == [1, 2]
    assert any("[7]" in r and "dropped" in r for r in reasons)


def test_only_missing_citations_fail() -> None:
    ok, reasons, kept = verify("可网办率为98.75%[7]。", [WANGBAN, CARBON, GDP])
    assert not ok
    assert kept == []
    assert any("cites none" in r for r in reasons)


def test_answer_without_citations_fails() -> None:
    ok, _, kept = verify("我是机器人", [WANGBAN])
    assert not ok
    assert kept == []


def test_cited_sentence_must_share_its_wording_with_the_source() -> None:
    ok, reasons, _ = verify("左云县已经成为国家级旅游度假区[1]。", [WANGBAN])
    assert not ok
    assert any("wording" in r for r in reasons)
    # a paraphrase that keeps the source's words passes; numerals do not count as wording
    ok, reasons, _ = verify("全县集聚了十四家活性炭企业，产值完成39400万元[1]。", [CARBON])
    assert ok, reasons


def test_every_seed_paragraph_supports_itself() -> None:
    import re
    from pathlib import Path

    seeds = Path(__file__).resolve().parent.parent / "seeds"
    for path in sorted(seeds.glob("*.txt")):
        for para in path.read_text(encoding="utf-8").splitlines():
            if para.strip():
                cited = re.sub(r"([。！？!?])", r"[1]\1", para) + "[1]"
                ok, reasons, _ = verify(cited, [para])
                assert ok, (path.name, para[:40], reasons)
