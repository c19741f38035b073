"""Evaluation metrics over values: question items and what the engine returned → numbers.

No file, model or engine I/O here (rag/eval_cli.py runs the engine and writes reports). Matching is
script-normalised: Traditional and Simplified, full- and half-width forms compare equal.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from rag.eval_calibration import balanced_weights, expected_calibration_error
from rag.eval_short import AnswerKind, answer_kind, candidates_hold_gold, short_em, short_f1
from rag.eval_short import short_right as short_answer_right  # the name short_right is the Outcome's here
from rag.text import CITATION_MARKER

UNANSWERABLE = "unanswerable"
ARTICLE_REMOVED = "article-removed"  # a SQuAD question asked of an index without its article (--negatives)
MRR_DEPTH = 10
SHORT_RIGHT_F1 = 0.5  # the definition: a short answer is right when its F1 against a gold is ≥ 0.5

_SPACE = re.compile(r"\s+")
_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d{3})")


@lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


@lru_cache(maxsize=65536)
def normalise(text: str) -> str:
    """Comparable form: Simplified, NFKC (full-width → ASCII), lower case, no spaces, no [n] markers."""
    text = unicodedata.normalize("NFKC", CITATION_MARKER.sub("", text))
    text = _t2s().convert(text)
    text = _DIGIT_COMMA.sub("", text)
    return _SPACE.sub("", text).lower()


@dataclass(frozen=True)
class QAItem:
    """One question of a set. `evidence` holds substrings of supporting paragraphs (any one suffices)."""

    id: str
    question: str
    answers: tuple[str, ...] = ()
    all_required: bool = False  # every answer must appear, not just one
    doc: str = "*"  # source file name, "*" for several
    evidence: tuple[str, ...] = ()
    type: str = ""
    history: tuple[str, ...] = ()  # earlier user questions
    paragraph: int = 0  # 1-based gold paragraph (SQuAD sets); 0 = use evidence substrings
    set: str = ""  # a tag whose questions are reported together as well ("colloquial", "no-subject")

    @property
    def unanswerable(self) -> bool:
        return self.type in (UNANSWERABLE, ARTICLE_REMOVED)

    @property
    def has_gold_paragraph(self) -> bool:
        return self.paragraph > 0 or bool(self.evidence)


def item_from_dict(obj: Mapping[str, Any], line: int = 0) -> QAItem:
    """Validate one JSON object of a question set; ValueError names the line and field."""
    where = f"line {line}" if line else "item"
    for key in ("id", "question"):
        if not isinstance(obj.get(key), str) or not obj[key].strip():
            raise ValueError(f"{where}: '{key}' must be a non-empty string")
    answers = obj.get("answers", [])
    history = obj.get("history", [])
    evidence = obj.get("evidence", "")
    if isinstance(evidence, str):
        evidence = [evidence] if evidence else []
    for key, value in (("answers", answers), ("history", history), ("evidence", evidence)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where} ({obj['id']}): '{key}' must be a list of strings")
    item = QAItem(
        id=obj["id"],
        question=obj["question"],
        answers=tuple(answers),
        all_required=bool(obj.get("all", False)),
        doc=str(obj.get("doc", "*") or "*"),
        evidence=tuple(e for e in evidence if e),
        type=str(obj.get("type", "")),
        history=tuple(history),
        paragraph=int(obj.get("paragraph", 0)),
        set=str(obj.get("set", "")),
    )
    if item.unanswerable and (item.answers or item.evidence):
        raise ValueError(f"{where} ({item.id}): an unanswerable question has no answers and no evidence")
    return item


@dataclass(frozen=True)
class Retrieved:
    """A paragraph the engine returned (a passage or a citation), reduced to what matching needs."""

    doc: str
    text: str
    paragraph: int = 0
    section: str = ""
    speaker: str = ""


@dataclass(frozen=True)
class Outcome:
    """What the engine did with one question."""

    item: QAItem
    retrieved: tuple[Retrieved, ...] = ()  # ranked, best first
    answer: str = ""
    found: bool = True
    cited: tuple[Retrieved, ...] = ()
    verified: bool | None = None
    ask_seconds: float = 0.0
    retrieve_seconds: float = 0.0
    short: str | None = None  # the short answer (span); None when the answerer gave none
    confidence: float | None = None  # None when the answerer does not give one
    short_confidence: float | None = None
    candidates: tuple[str, ...] | None = None  # candidate spans, when the answerer exposes them
    # the short answer was stated as the answer; None when the answerer does not say
    stated: bool | None = None


def _same_doc(expected: str, got: str) -> bool:
    return expected == "*" or got.rsplit("/", 1)[-1] == expected.rsplit("/", 1)[-1]


def holds_evidence(item: QAItem, para: Retrieved) -> bool:
    """True when `para` is a supporting paragraph of `item` (gold paragraph number or evidence substring)."""
    if not _same_doc(item.doc, para.doc):
        return False
    if item.paragraph:
        return para.paragraph == item.paragraph
    if not item.evidence:
        return False
    haystack = normalise(" ".join((para.text, para.section, para.speaker)))
    return any(normalise(e) in haystack for e in item.evidence)


def first_hit_rank(item: QAItem, ranked: Sequence[Retrieved]) -> int | None:
    """1-based rank of the first supporting paragraph, None when none was returned."""
    for rank, para in enumerate(ranked, start=1):
        if holds_evidence(item, para):
            return rank
    return None


def reciprocal_rank(rank: int | None, depth: int = MRR_DEPTH) -> float:
    return 1.0 / rank if rank is not None and rank <= depth else 0.0


_LATIN = "0-9A-Za-z"


def contains_answer(text: str, gold: str) -> bool:
    """Whether `text` holds `gold`, not as a piece of a longer figure or Latin word: 7家 is not in 17家, 5.1%
    not in 15.1%, II类 not in III类 (plain `in` counted each of these right)."""
    if not gold:
        return False
    # only an end that is a Latin letter or digit is checked; a digit's figure may also go on past . or ,
    before = rf"(?<![{_LATIN}])" + (r"(?<!\d[.,])" if gold[0].isascii() and gold[0].isdigit() else "")
    after = rf"(?![{_LATIN}])" + (r"(?![.,]\d)" if gold[-1].isascii() and gold[-1].isdigit() else "")
    pattern = (before if re.match(f"[{_LATIN}]", gold[0]) else "") + re.escape(gold)
    pattern += after if re.match(f"[{_LATIN}]", gold[-1]) else ""
    return re.search(pattern, text) is not None


def answer_correct(item: QAItem, answer: str, found: bool = True) -> bool:
    """Script-normalised containment of the expected answers (all of them when `all_required`), each as a
    whole figure or word (`contains_answer`)."""
    if not found or not item.answers:
        return False
    got = normalise(answer)
    hits = [contains_answer(got, normalise(a)) for a in item.answers]
    return all(hits) if item.all_required else any(hits)


def item_kind(item: QAItem) -> AnswerKind | None:
    """The kind of a question's first gold answer; None when it has none."""
    return answer_kind(item.answers[0]) if item.answers else None


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass
class Metrics:
    """Aggregate figures; a ratio is None when no question could count towards it."""

    n: int = 0
    answerable: int = 0
    unanswerable: int = 0
    hit_at_1: float | None = None
    hit_at_5: float | None = None
    mrr_at_10: float | None = None
    answer_accuracy: float | None = None
    citation_precision: float | None = None
    refusal_recall: float | None = None
    false_refusal_rate: float | None = None
    verification_rate: float | None = None
    answer_chars_median: float | None = None
    ask_ms_p50: float | None = None
    ask_ms_p95: float | None = None
    retrieve_ms_p50: float | None = None
    retrieve_ms_p95: float | None = None
    # short answers, CMRC 2018's metric as a share (EM 0.35 is the script's 35); refusals and None count 0
    short_em: float | None = None
    short_f1: float | None = None
    short_none: float | None = None  # share of answerable questions with no short answer (refusals included)
    short_em_number: float | None = None  # gold answer a number, date or amount
    short_f1_number: float | None = None
    short_em_other: float | None = None
    short_f1_other: float | None = None
    candidate_recall: float | None = None  # a gold answer among the candidate spans
    # short answers stated as the answer (answerable and unanswerable questions): their share of the questions,
    # and of them the share right (short_right; one stated for an unanswerable question is wrong)
    short_stated: float | None = None
    short_stated_right: float | None = None
    # calibration over answerable and unanswerable questions weighted 1:1 (None without both)
    ece_confidence: float | None = None
    ece_short_confidence: float | None = None
    failures: list[str] = field(default_factory=list)  # ids of answerable misses and wrong answers

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms(values: list[float], q: float) -> float | None:
    return round(percentile(values, q) * 1000.0, 2) if values else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def given_short(o: Outcome) -> str | None:
    """The short answer that counts: none for a refusal."""
    return o.short if o.found else None


def short_scores(o: Outcome) -> tuple[float, float]:
    """(EM, F1) of an outcome's short answer against its gold answers."""
    short = given_short(o)
    return short_em(short, o.item.answers), short_f1(short, o.item.answers)


def text_right(o: Outcome) -> bool:
    """What `confidence` predicts: an answer was given and its text holds a gold answer."""
    return not o.item.unanswerable and answer_correct(o.item, o.answer, o.found)


def short_right(o: Outcome) -> bool:
    """What `short_confidence` predicts: the short answer has F1 ≥ 0.5 against a gold answer whose figures
    it names (rag.eval_short.short_right)."""
    return not o.item.unanswerable and short_answer_right(given_short(o), o.item.answers, SHORT_RIGHT_F1)


CONFIDENCES: dict[str, Callable[[Outcome], bool]] = {
    "confidence": text_right,
    "short_confidence": short_right,
}


@dataclass(frozen=True)
class CalibrationPool:
    """One confidence over a set: values, what they predict, and 1:1 weights (answerable : unanswerable)."""

    confidences: list[float]
    labels: list[bool]
    weights: list[float]
    answerable: int
    unanswerable: int


def calibration_pool(outcomes: Iterable[Outcome], which: str) -> CalibrationPool | None:
    """The pool for `which` ("confidence" or "short_confidence"); None unless it has answerable and
    unanswerable questions and at least two distinct values (a constant tells nothing)."""
    rows = [o for o in outcomes if getattr(o, which) is not None]
    negative = [o.item.unanswerable for o in rows]
    values = [float(getattr(o, which)) for o in rows]
    if all(negative) or not any(negative) or len(set(values)) < 2:
        return None
    return CalibrationPool(
        confidences=values,
        labels=[CONFIDENCES[which](o) for o in rows],
        weights=balanced_weights(negative),
        answerable=negative.count(False),
        unanswerable=negative.count(True),
    )


def _ece(rows: Sequence[Outcome], which: str) -> float | None:
    pool = calibration_pool(rows, which)
    return expected_calibration_error(pool.confidences, pool.labels, pool.weights) if pool else None


def summarise(outcomes: Iterable[Outcome]) -> Metrics:
    """Figures over a list of outcomes (see evals/README.md for each definition)."""
    rows = list(outcomes)
    answerable = [o for o in rows if not o.item.unanswerable]
    unanswerable = [o for o in rows if o.item.unanswerable]
    with_gold = [o for o in answerable if o.item.has_gold_paragraph]
    ranks = [first_hit_rank(o.item, o.retrieved) for o in with_gold]
    correct = [answer_correct(o.item, o.answer, o.found) for o in answerable if o.item.answers]
    answered = [o for o in answerable if o.found and o.item.has_gold_paragraph]
    cited_total = sum(len(o.cited) for o in answered)
    cited_good = sum(holds_evidence(o.item, c) for o in answered for c in o.cited)
    checked = [o.verified for o in rows if o.verified is not None]
    lengths = [float(len(CITATION_MARKER.sub("", o.answer).strip())) for o in rows if o.found]
    scored = [o for o in answerable if o.item.answers]
    scores = {o.item.id: short_scores(o) for o in scored}
    kinds = {kind: [scores[o.item.id] for o in scored if item_kind(o.item) == kind] for kind in AnswerKind}
    offered = [o for o in scored if o.candidates is not None]
    says = [o for o in rows if o.stated is not None]
    stated = [o for o in says if o.stated and o.found]
    return Metrics(
        n=len(rows),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        hit_at_1=_ratio(sum(r == 1 for r in ranks), len(ranks)),
        hit_at_5=_ratio(sum(r is not None and r <= 5 for r in ranks), len(ranks)),
        mrr_at_10=sum(reciprocal_rank(r) for r in ranks) / len(ranks) if ranks else None,
        answer_accuracy=_ratio(sum(correct), len(correct)),
        citation_precision=_ratio(cited_good, cited_total),
        refusal_recall=_ratio(sum(not o.found for o in unanswerable), len(unanswerable)),
        false_refusal_rate=_ratio(sum(not o.found for o in answerable), len(answerable)),
        verification_rate=_ratio(sum(bool(v) for v in checked), len(checked)),
        answer_chars_median=percentile(lengths, 50) if lengths else None,
        ask_ms_p50=_ms([o.ask_seconds for o in rows], 50),
        ask_ms_p95=_ms([o.ask_seconds for o in rows], 95),
        retrieve_ms_p50=_ms([o.retrieve_seconds for o in rows], 50),
        retrieve_ms_p95=_ms([o.retrieve_seconds for o in rows], 95),
        short_em=_mean([em for em, _ in scores.values()]),
        short_f1=_mean([f1 for _, f1 in scores.values()]),
        short_none=_ratio(sum(given_short(o) is None for o in scored), len(scored)),
        short_em_number=_mean([em for em, _ in kinds[AnswerKind.NUMBER]]),
        short_f1_number=_mean([f1 for _, f1 in kinds[AnswerKind.NUMBER]]),
        short_em_other=_mean([em for em, _ in kinds[AnswerKind.OTHER]]),
        short_f1_other=_mean([f1 for _, f1 in kinds[AnswerKind.OTHER]]),
        candidate_recall=_ratio(
            sum(candidates_hold_gold(o.candidates or (), o.item.answers) for o in offered), len(offered)
        ),
        short_stated=_ratio(len(stated), len(says)),
        short_stated_right=_ratio(sum(short_right(o) for o in stated), len(stated)),
        ece_confidence=_ece(rows, "confidence"),
        ece_short_confidence=_ece(rows, "short_confidence"),
        failures=[o.item.id for o in rows if not outcome_ok(o)],
    )


def outcome_ok(o: Outcome) -> bool:
    """A refusal for an unanswerable question; otherwise a correct answer (or a top-5 hit if none given)."""
    if o.item.unanswerable:
        return not o.found
    if o.item.answers:
        return answer_correct(o.item, o.answer, o.found)
    rank = first_hit_rank(o.item, o.retrieved)
    return rank is not None and rank <= 5


SET_PREFIX = "set:"  # the group name of a question set's tag, apart from the types' names


def summarise_by_type(outcomes: Iterable[Outcome]) -> dict[str, Metrics]:
    """{"all": overall, "<type>": per type, "set:<tag>": per tag}, each in first-seen order."""
    rows = list(outcomes)
    groups: dict[str, list[Outcome]] = {}
    for o in rows:
        groups.setdefault(o.item.type or "untyped", []).append(o)
    for o in rows:
        if o.item.set:
            groups.setdefault(SET_PREFIX + o.item.set, []).append(o)
    return {"all": summarise(rows), **{t: summarise(g) for t, g in groups.items()}}


COMPARED = (
    "hit_at_1",
    "hit_at_5",
    "mrr_at_10",
    "answer_accuracy",
    "citation_precision",
    "refusal_recall",
    "false_refusal_rate",
    "verification_rate",
    "short_em",
    "short_f1",
    "candidate_recall",
    "short_stated",
    "short_stated_right",
    "ece_confidence",
    "ece_short_confidence",
    "ask_ms_p50",
    "ask_ms_p95",
    "retrieve_ms_p50",
    "retrieve_ms_p95",
)


def compare(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per metric: old value, new value and the change, for the keys both summaries have."""
    out: dict[str, dict[str, float | None]] = {}
    for key in COMPARED:
        a, b = old.get(key), new.get(key)
        if a is None and b is None:
            continue
        delta = b - a if isinstance(a, int | float) and isinstance(b, int | float) else None
        out[key] = {"old": a, "new": b, "delta": delta}
    return out


# ---------------------------------------------------------------- quality floors (tests/test_quality_gate.py)

FLOOR_MARGIN = 0.01  # the rule: a floor is the measured figure minus 0.01 (a ceiling plus 0.01)
# What the gate holds, per group: metric → "min" (a floor) or "max" (a ceiling).
GATED: dict[str, dict[str, str]] = {
    "all": {
        "hit_at_1": "min",
        "answer_accuracy": "min",
        "citation_precision": "min",
        "refusal_recall": "min",
        "false_refusal_rate": "max",
        "short_em": "min",
        "short_f1": "min",
        "short_stated_right": "min",
    },
    SET_PREFIX + "colloquial": {"hit_at_1": "min", "answer_accuracy": "min"},
    SET_PREFIX + "no-subject": {"refusal_recall": "min"},
}


def floors_from_metrics(
    metrics: Mapping[str, Mapping[str, Any]], gated: Mapping[str, Mapping[str, str]] = GATED
) -> list[dict[str, Any]]:
    """One floor (or ceiling) per gated figure that was measured: the figure less (plus) the margin,
    kept within [0, 1]."""
    floors = []
    for group, keys in gated.items():
        for key, bound in keys.items():
            value = metrics.get(group, {}).get(key)
            if value is None:
                continue
            limit = value - FLOOR_MARGIN if bound == "min" else value + FLOOR_MARGIN
            floors.append(
                {
                    "group": group,
                    "metric": key,
                    "measured": round(value, 4),
                    bound: round(min(1.0, max(0.0, limit)), 4),
                }
            )
    return floors


def floor_violations(
    metrics: Mapping[str, Mapping[str, Any]], floors: Iterable[Mapping[str, Any]]
) -> list[str]:
    """One line per floor a run falls below (or ceiling it rises above); a missing figure is a violation."""
    out = []
    for f in floors:
        value = metrics.get(f["group"], {}).get(f["metric"])
        where = f"{f['group']} {f['metric']}"
        if value is None:
            out.append(f"{where}: not measured (floor recorded at {f['measured']})")
        elif "min" in f and value < f["min"]:
            out.append(f"{where}: {value:.4f} < floor {f['min']} (measured {f['measured']})")
        elif "max" in f and value > f["max"]:
            out.append(f"{where}: {value:.4f} > ceiling {f['max']} (measured {f['measured']})")
    return out
