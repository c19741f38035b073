"""Metrics on a tiny hand-made set whose right figures are worked out by hand (no model)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest

from rag.evaluation import (
    ARTICLE_REMOVED,
    GATED,
    Outcome,
    QAItem,
    Retrieved,
    answer_correct,
    calibration_pool,
    compare,
    contains_answer,
    first_hit_rank,
    floor_violations,
    floors_from_metrics,
    holds_evidence,
    item_from_dict,
    normalise,
    percentile,
    reciprocal_rank,
    summarise,
    summarise_by_type,
)
from rag.text import normalize

ROOT = Path(__file__).resolve().parent.parent
A, B = "a.txt", "b.txt"
P_GDP = Retrieved(A, "2024年左权县地区生产总值突破80亿元。", paragraph=1)
P_OTHER = Retrieved(A, "森林覆盖率达28.9%。", paragraph=2)
P_CARBON = Retrieved(B, "集聚了14家活性炭企業。", paragraph=1, speaker="副縣長 高鵬")
P_FAR = Retrieved(B, "完成84個老舊小區改造。", paragraph=2)

Q1 = QAItem("q1", "GDP?", answers=("80亿",), doc=A, evidence=("地区生产总值突破80亿元",), type="num")
Q2 = QAItem("q2", "炭?", answers=("14家",), doc=B, evidence=("14家活性炭企业",), type="num")
Q3 = QAItem("q3", "两者?", answers=("甲", "乙"), all_required=True, doc="*", evidence=("不存在",), type="cmp")
Q4 = QAItem("q4", "人口?", type="unanswerable")
Q5 = QAItem("q5", "机场?", type="unanswerable")
Q6 = QAItem("q6", "小区?", answers=("84个",), doc=B, evidence=("84個老舊小區",), type="num")

OUTCOMES = [
    # hit at rank 2; right answer written in the other script; one of two citations holds the evidence
    Outcome(Q1, (P_OTHER, P_GDP), "左權縣GDP突破80億元[1]", True, (P_GDP, P_OTHER), True, 0.01, 0.001),
    # hit at rank 1; right; the one citation holds the evidence
    Outcome(Q2, (P_CARBON, P_FAR), "14家[1]", True, (P_CARBON,), False, 0.02, 0.002),
    # no hit; only one of two required answers; a wrong citation
    Outcome(Q3, (P_OTHER, P_FAR), "甲[1]", True, (P_OTHER,), None, 0.03, 0.003),
    Outcome(Q4, (P_OTHER,), "", False, (), None, 0.04, 0.004),  # refused, as it should
    Outcome(Q5, (P_OTHER,), "28.9%[1]", True, (P_OTHER,), None, 0.05, 0.005),  # answered, wrongly
    # hit at rank 3, but refused (a false refusal)
    Outcome(Q6, (P_GDP, P_CARBON, P_FAR), "", False, (), None, 0.06, 0.006),
]


def test_normalise_folds_script_width_markers_and_digit_commas() -> None:
    assert normalise("左雲縣 １４家[2]") == normalise("左云县14家")
    assert normalise("1,047個") == "1047个"
    assert normalise("Ⅱ類") == normalise("II类")


def test_holds_evidence_checks_doc_text_and_speaker() -> None:
    assert holds_evidence(Q1, P_GDP)
    assert not holds_evidence(Q1, P_OTHER)
    moved = QAItem("x", "?", doc=B, evidence=("地区生产总值突破80亿元",))
    assert not holds_evidence(moved, P_GDP)  # right text, wrong document
    speaker = QAItem("x", "?", doc=B, evidence=("高鹏",))
    assert holds_evidence(speaker, P_CARBON)  # speaker line counts as part of the paragraph
    gold = QAItem("x", "?", doc=B, paragraph=2)
    assert first_hit_rank(gold, [P_CARBON, P_FAR]) == 2


def test_answer_correct_any_and_all() -> None:
    assert answer_correct(Q1, "突破80億元")
    assert not answer_correct(Q1, "突破80億元", found=False)
    assert not answer_correct(Q3, "甲")
    assert answer_correct(Q3, "甲和乙")
    assert answer_correct(QAItem("x", "?", answers=("甲", "乙")), "乙")


@pytest.mark.parametrize(
    ("text", "gold", "held"),
    [
        ("集聚了14家活性炭企业", "14家", True),
        ("集聚了114家活性炭企业", "14家", False),  # a piece of a longer figure
        ("年均增长15.1%", "5.1%", False),
        ("年均增长5.1%", "5.1%", True),
        ("产值3.94亿元", "3", False),  # the figure goes on past the decimal point
        ("2024年", "2024", True),
        ("1,234人", "234", False),
        ("达到iii类标准", "ii类", False),  # NFKC folds Ⅲ to III
        ("达到ii类标准", "ii类", True),
        ("八成以上", "八成", True),  # Chinese figures are compared as before
        ("17家和7家", "7家", True),  # a later occurrence stands whole
        ("", "7家", False),
    ],
)
def test_contains_answer_whole_figures(text: str, gold: str, held: bool) -> None:
    assert contains_answer(text, gold) is held


def test_answer_correct_needs_whole_figures() -> None:
    both = QAItem("x", "?", answers=("Ⅱ类", "Ⅲ类"), all_required=True)
    assert not answer_correct(both, "水质达到Ⅲ类标准")
    assert answer_correct(both, "水质稳定在Ⅱ类标准；水质达到Ⅲ类标准")
    assert not answer_correct(QAItem("x", "?", answers=("7家",)), "其中规模以上企业17家")


def test_reciprocal_rank_depth() -> None:
    assert reciprocal_rank(2) == 0.5
    assert reciprocal_rank(None) == 0.0
    assert reciprocal_rank(11) == 0.0


def test_percentile_interpolates() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert math.isnan(percentile([], 50))


def test_summarise_on_hand_made_set() -> None:
    m = summarise(OUTCOMES)
    assert (m.n, m.answerable, m.unanswerable) == (6, 4, 2)
    assert m.hit_at_1 == pytest.approx(1 / 4)  # ranks 2, 1, none, 3
    assert m.hit_at_5 == pytest.approx(3 / 4)
    assert m.mrr_at_10 == pytest.approx((1 / 2 + 1 + 0 + 1 / 3) / 4)
    assert m.answer_accuracy == pytest.approx(2 / 4)  # q1, q2 right; q3 partial; q6 refused
    assert m.citation_precision == pytest.approx(2 / 4)  # q1 1/2, q2 1/1, q3 0/1
    assert m.refusal_recall == pytest.approx(1 / 2)
    assert m.false_refusal_rate == pytest.approx(1 / 4)
    assert m.verification_rate == pytest.approx(1 / 2)
    assert m.ask_ms_p50 == pytest.approx(35.0)
    assert m.ask_ms_p95 == pytest.approx(57.5)
    assert m.retrieve_ms_p50 == pytest.approx(3.5)
    assert m.failures == ["q3", "q5", "q6"]


def test_summarise_by_type_and_empty_groups() -> None:
    groups = summarise_by_type(OUTCOMES)
    assert list(groups) == ["all", "num", "cmp", "unanswerable"]
    assert groups["num"].hit_at_1 == pytest.approx(1 / 3)
    assert groups["num"].answer_accuracy == pytest.approx(2 / 3)
    assert groups["unanswerable"].hit_at_1 is None  # nothing to retrieve
    assert groups["unanswerable"].refusal_recall == pytest.approx(1 / 2)
    assert groups["cmp"].refusal_recall is None


def test_compare_reports_changes() -> None:
    old = {"hit_at_1": 0.5, "ask_ms_p50": 40.0, "verification_rate": None}
    new = {"hit_at_1": 0.75, "ask_ms_p50": 30.0, "verification_rate": None}
    diff = compare(new, old)
    assert diff["hit_at_1"]["delta"] == pytest.approx(0.25)
    assert diff["ask_ms_p50"]["delta"] == pytest.approx(-10.0)
    assert "verification_rate" not in diff


def test_item_from_dict_validates() -> None:
    item = item_from_dict({"id": "a", "question": "?", "answers": ["1"], "all": True, "evidence": "x"})
    assert item.evidence == ("x",) and item.all_required and item.doc == "*"
    with pytest.raises(ValueError, match="line 3"):
        item_from_dict({"id": "a", "question": ""}, line=3)
    with pytest.raises(ValueError, match="unanswerable"):
        item_from_dict({"id": "a", "question": "?", "answers": ["1"], "type": "unanswerable"})


def _seed_paragraphs() -> dict[str, list[str]]:
    """Each seed's paragraphs in its original script, with the two page-break joins the reader makes."""
    seeds = {p.name: p.read_text(encoding="utf-8") for p in (ROOT / "seeds").glob("*.txt")}
    joins = {"精细化管理,完\n\n成21条": "精细化管理,完成21条", "县中医院独立\n\n办院": "县中医院独立办院"}
    paragraphs: dict[str, list[str]] = {}
    for name, text in seeds.items():
        for broken, joined in joins.items():
            text = text.replace(broken, joined)
        paragraphs[name] = text.split("\n")
    return paragraphs


def _items_with_evidence_in_the_seeds(name: str) -> list[QAItem]:
    """A seed question set's items, each evidence checked as an exact substring of one seed paragraph."""
    paragraphs = _seed_paragraphs()
    lines = (ROOT / "evals" / name).read_text(encoding="utf-8").splitlines()
    items = [item_from_dict(json.loads(line), n) for n, line in enumerate(lines, start=1)]
    assert len({i.id for i in items}) == len(items)
    for item in items:
        docs = list(paragraphs) if item.doc == "*" else [item.doc]
        for evidence in item.evidence:
            assert any(evidence in p for d in docs for p in paragraphs[d]), (item.id, evidence)
    return items


def test_seed_question_set_is_well_formed() -> None:
    """Every evidence is an exact substring of one paragraph of its seed, in the original script."""
    items = _items_with_evidence_in_the_seeds("seeds_qa.jsonl")
    assert len(items) >= 60
    assert sum(i.unanswerable for i in items) >= 8
    colloquial = [i for i in items if i.set == "colloquial"]
    no_subject = [i for i in items if i.set == "no-subject"]
    assert len(colloquial) >= 30 and all(i.answers and i.evidence for i in colloquial)
    assert len(no_subject) >= 10 and all(i.unanswerable for i in no_subject)
    assert sum(bool(i.history) for i in items) >= 5


def test_probe_question_set_is_well_formed_and_apart_from_the_fitted_one() -> None:
    """evals/seeds_probe.jsonl: evidence as above, and no question the fitted set (seeds_qa.jsonl) also asks."""
    probe = _items_with_evidence_in_the_seeds("seeds_probe.jsonl")
    fitted = _items_with_evidence_in_the_seeds("seeds_qa.jsonl")
    assert len(probe) >= 60 and all(i.answers or i.unanswerable for i in probe)
    assert not {normalize(i.question) for i in probe} & {normalize(i.question) for i in fitted}
    assert not {i.id for i in probe} & {i.id for i in fitted}


def test_everyday_question_set_is_answerable_and_apart_from_the_others() -> None:
    """evals/seeds_everyday.jsonl: everyday wording, each with an answer and its evidence, asked in no other set."""
    everyday = _items_with_evidence_in_the_seeds("seeds_everyday.jsonl")
    others = _items_with_evidence_in_the_seeds("seeds_qa.jsonl") + _items_with_evidence_in_the_seeds(
        "seeds_probe.jsonl"
    )
    assert len(everyday) >= 15 and all(i.answers and i.evidence and i.set == "colloquial" for i in everyday)
    assert not {normalize(i.question) for i in everyday} & {normalize(i.question) for i in others}
    assert not {i.id for i in everyday} & {i.id for i in others}


def test_set_tag_and_article_removed() -> None:
    item = item_from_dict({"id": "c", "question": "?", "answers": ["1"], "set": "colloquial"})
    assert item.set == "colloquial"
    assert QAItem("n", "?", type=ARTICLE_REMOVED).unanswerable


SHORTS = [
    # right span: EM 1, F1 1; a number
    Outcome(
        Q2,
        (P_CARBON,),
        "集聚了14家[1]",
        True,
        (P_CARBON,),
        short="14家",
        confidence=0.9,
        short_confidence=0.8,
        candidates=("14家", "7家"),
    ),
    # span with its unit against a gold without: EM 0, F1 0.8; a number
    Outcome(
        Q1,
        (P_GDP,),
        "突破80亿元[1]",
        True,
        (P_GDP,),
        short="80亿元",
        confidence=0.7,
        short_confidence=0.6,
        candidates=("80亿元",),
    ),
    # refused although a short answer was kept: scores 0 and counts as None
    Outcome(
        QAItem("f", "?", answers=("五星级幸福河",), doc=A, evidence=("x",)),
        (),
        "",
        False,
        short="五星级幸福河",
        confidence=0.2,
        short_confidence=0.1,
    ),
    # an unanswerable question answered with confidence
    Outcome(
        Q4, (P_OTHER,), "28.9%[1]", True, (P_OTHER,), short="28.9%", confidence=0.6, short_confidence=0.5
    ),
]


def test_short_answer_metrics() -> None:
    m = summarise(SHORTS)
    assert m.short_em == pytest.approx(1 / 3)  # over the three answerable questions
    assert m.short_f1 == pytest.approx((1 + 0.8 + 0) / 3)
    assert m.short_none == pytest.approx(1 / 3)  # the refusal
    assert (m.short_em_number, m.short_f1_number) == (pytest.approx(0.5), pytest.approx(0.9))
    assert (m.short_em_other, m.short_f1_other) == (0.0, 0.0)
    assert m.candidate_recall == pytest.approx(1 / 2)  # "14家" among q2's; "80亿元" is not "80亿"


def test_stated_short_answers_and_how_many_are_right() -> None:
    stated = [True, False, True, True]  # q2 right; q1 not stated; the refusal's kept span; q4 unanswerable
    m = summarise([dataclasses.replace(o, stated=s) for o, s in zip(SHORTS, stated, strict=True)])
    assert m.short_stated == pytest.approx(2 / 4)  # a refusal states nothing
    assert m.short_stated_right == pytest.approx(1 / 2)  # one stated for an unanswerable question is wrong
    assert summarise(SHORTS).short_stated is None  # the answerer does not say what it states


def test_calibration_pool_weighs_answerable_and_unanswerable_equally() -> None:
    pool = calibration_pool(SHORTS, "confidence")
    assert pool is not None and (pool.answerable, pool.unanswerable) == (3, 1)
    assert pool.labels == [True, True, False, False]  # text holds a gold; the refusal and q4 do not
    assert pool.weights == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 2])
    short = calibration_pool(SHORTS, "short_confidence")
    assert short is not None and short.labels == [True, True, False, False]  # F1 1.0 and 0.8 ≥ 0.5
    m = summarise(SHORTS)
    assert m.ece_confidence is not None and 0.0 < m.ece_confidence < 1.0


def test_no_calibration_without_both_sides_or_with_a_constant() -> None:
    assert calibration_pool(SHORTS[:3], "confidence") is None  # no unanswerable question
    flat = [dataclasses.replace(o, short_confidence=0.0) for o in SHORTS]
    assert calibration_pool(flat, "short_confidence") is None  # a constant says nothing
    assert calibration_pool(OUTCOMES, "confidence") is None  # the answerer gives no confidence
    assert summarise(OUTCOMES).ece_confidence is None


def test_groups_by_type_and_by_set() -> None:
    tagged = [
        dataclasses.replace(o, item=dataclasses.replace(o.item, set="colloquial")) for o in OUTCOMES[:2]
    ]
    groups = summarise_by_type(tagged + OUTCOMES[2:])
    assert list(groups) == ["all", "num", "cmp", "unanswerable", "set:colloquial"]
    assert groups["set:colloquial"].n == 2 and groups["set:colloquial"].answer_accuracy == 1.0


METRICS: dict[str, dict[str, Any]] = {
    "all": {"hit_at_1": 0.9, "answer_accuracy": 0.8, "false_refusal_rate": 0.1, "short_em": 0.0},
    "set:no-subject": {"refusal_recall": 0.005},
}


def test_floors_are_the_measured_figures_less_the_margin() -> None:
    floors = {(f["group"], f["metric"]): f for f in floors_from_metrics(METRICS)}
    assert floors["all", "hit_at_1"] == {"group": "all", "metric": "hit_at_1", "measured": 0.9, "min": 0.89}
    assert floors["all", "false_refusal_rate"]["max"] == pytest.approx(0.11)  # a ceiling
    assert floors["all", "short_em"]["min"] == 0.0  # kept within [0, 1]
    assert floors["set:no-subject", "refusal_recall"]["min"] == 0.0
    assert ("all", "citation_precision") not in floors  # not measured, no floor
    assert set(floors) <= {(g, k) for g, keys in GATED.items() for k in keys}


@pytest.mark.parametrize(
    ("changes", "broken"),
    [
        ({}, []),
        ({"hit_at_1": 0.895}, []),  # within the margin
        ({"hit_at_1": 0.88}, ["all hit_at_1: 0.8800 < floor 0.89 (measured 0.9)"]),
        ({"false_refusal_rate": 0.12}, ["all false_refusal_rate: 0.1200 > ceiling 0.11 (measured 0.1)"]),
        ({"answer_accuracy": None}, ["all answer_accuracy: not measured (floor recorded at 0.8)"]),
    ],
)
def test_floor_violations(changes: dict[str, float | None], broken: list[str]) -> None:
    floors = floors_from_metrics(METRICS)
    run = {**METRICS, "all": {**METRICS["all"], **changes}}
    assert floor_violations(run, floors) == broken
