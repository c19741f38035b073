"""Span features: whether a candidate span of a sentence is the short answer to the question.

Each feature is a named function of (Question, SpanView) with a one-line docstring. The strongest ones
align the question around its interrogative with the sentence: for "X的Y是什么" and the sentence "X的Y是Z",
the text where the interrogative would sit (right after "X的Y是") is the answer Z.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from rag.features.sentence import SentenceView
from rag.question import Question, QuestionKind, word_weight
from rag.spans import COPULAS, Candidate, SpanType, Token, candidate_spans, tokens
from rag.text import CLAUSE_END

ENUMERATION_COMMA = "、"  # parts one clause's items: 产品5个、有机农产品45个
# Distances to the question's words beyond this many characters say nothing more (a clause is ~15 long).
MAX_DISTANCE = 30
# A question word this many characters from a span counts half as much as one right beside it (half a
# clause; a shape, not a weight: the span model weighs the feature).
PROXIMITY_HALF = 8
# Ranks among the sentence's spans of one type beyond this say nothing more.
MAX_RANK = 5
# Characters a span may stand away from where the question's context stops and still sit "right there"
# (a 了, 的 or 为 the question leaves out).
ALIGN_SLACK = 2
_NOUN_TAGS = frozenset({"n", "nr", "nrfg", "nrt", "ns", "nt", "nz", "ng", "vn", "an", "eng", "j", "l"})
_VERB_TAGS = frozenset({"v", "vd", "vg", "vi", "vq"})
_ASPECT_TAGS = frozenset({"ul", "uz", "ug"})  # jieba's tags of 了, 着, 过

# The span types that fit each kind of question (a number question is answered by a figure…).
FITTING_TYPES: dict[QuestionKind, frozenset[SpanType]] = {
    QuestionKind.NUMBER: frozenset({SpanType.NUMBER, SpanType.PERCENT, SpanType.AMOUNT}),
    QuestionKind.DATE: frozenset({SpanType.DATE}),
    QuestionKind.PERSON: frozenset({SpanType.PERSON, SpanType.NAME}),
    QuestionKind.PLACE: frozenset({SpanType.PLACE}),
    QuestionKind.ORGANISATION: frozenset({SpanType.ORGANISATION, SpanType.NAME}),
    QuestionKind.TITLE: frozenset({SpanType.TITLE, SpanType.QUOTED}),
    QuestionKind.DEFINITION: frozenset({SpanType.COPULA, SpanType.QUOTED}),
    QuestionKind.EXPLANATION: frozenset({SpanType.CLAUSE}),
    QuestionKind.OTHER: frozenset(),
}


@dataclass(frozen=True)
class Occurrence:
    """Where a question keyword stands in the sentence, its weight, and on which side of the interrogative
    the question has it."""

    word: str
    start: int
    end: int
    weight: float
    before: bool  # the question has it before the interrogative
    after: bool  # the question has it after the interrogative


class SentenceAlignment:
    """What every span of one sentence shares for one question: its words and where the question's words
    and the context around its interrogative occur. Computed once per sentence, read by each span."""

    def __init__(self, question: Question, sentence: SentenceView) -> None:
        self.question = question
        self.sentence = sentence
        self.norm = sentence.norm
        self.tokens: tuple[Token, ...] = tokens(sentence.text)
        self.occurrences: tuple[Occurrence, ...] = tuple(self._occurrences())
        self.before_run = _runs_ending(question.before, self.norm)
        self.after_run = _runs_opening(question.after, self.norm)
        self.gap = self._gap()

    def _occurrences(self) -> list[Occurrence]:
        q = self.question
        out = []
        for word, weight in q.keywords:
            at = self.norm.find(word)
            while at >= 0:
                out.append(Occurrence(word, at, at + len(word), weight, word in q.before, word in q.after))
                at = self.norm.find(word, at + 1)
        return out

    def _gap(self) -> tuple[int, int] | None:
        """Where the interrogative would sit: after the longest run that ends the question's context before
        it and before the longest run that opens the context after it."""
        n = len(self.norm)
        left = max(range(n + 1), key=lambda p: (self.before_run[p], -p)) if self.question.before else -1
        right = max(range(n + 1), key=lambda p: (self.after_run[p], p)) if self.question.after else -1
        has_left = left >= 0 and self.before_run[left] >= 2
        has_right = right >= 0 and self.after_run[right] >= 2
        if has_left and has_right and left < right:
            return left, right
        if has_left:
            return left, _clause_end(self.norm, left)
        if has_right:
            return _clause_start(self.norm, right), right
        return None

    @cached_property
    def token_starts(self) -> list[int]:
        """Where each word starts, in order."""
        return [t.start for t in self.tokens]

    @cached_property
    def token_ends(self) -> list[int]:
        """Where each word ends, in order."""
        return [t.end for t in self.tokens]

    @cached_property
    def boundaries(self) -> frozenset[int]:
        """Offsets where a jieba word starts or ends."""
        return frozenset(t.start for t in self.tokens) | frozenset(t.end for t in self.tokens)

    @cached_property
    def clause_bounds(self) -> list[tuple[int, int]]:
        """The sentence's clauses as (start, end)."""
        out, start = [], 0
        for i, c in enumerate(self.norm):
            if c in CLAUSE_END:
                out.append((start, i))
                start = i + 1
        out.append((start, len(self.norm)))
        return out

    def clause_of(self, at: int) -> tuple[int, int]:
        """The clause holding offset `at`."""
        return next(((a, b) for a, b in self.clause_bounds if a <= at <= b), (0, len(self.norm)))


def _runs_ending(part: str, text: str) -> list[int]:
    """For each offset p of text, the length of the longest piece of `part` that text[:p] ends with (the
    question's words next to its interrogative may be left out: 是由 | 哪两个公司 against 由光荣…)."""
    out = [0] * (len(text) + 1)
    if not part:
        return out
    at: dict[str, list[int]] = {}
    for j, c in enumerate(part):
        at.setdefault(c, []).append(j)
    for p in range(1, len(text) + 1):
        best = 0
        for j in at.get(text[p - 1], ()):
            k = 1
            while k <= j and k < p and text[p - 1 - k] == part[j - k]:
                k += 1
            best = max(best, k)
        out[p] = best
    return out


def _runs_opening(part: str, text: str) -> list[int]:
    """For each offset p of text, the length of the longest piece of `part` that text[p:] opens with (两个公司
    合作开发的 against …开发的动作游戏 opens with 开发的)."""
    out = [0] * (len(text) + 1)
    if not part:
        return out
    at: dict[str, list[int]] = {}
    for j, c in enumerate(part):
        at.setdefault(c, []).append(j)
    for p in range(len(text)):
        best = 0
        for j in at.get(text[p], ()):
            k = 1
            while j + k < len(part) and p + k < len(text) and text[p + k] == part[j + k]:
                k += 1
            best = max(best, k)
        out[p] = best
    return out


def _clause_end(norm: str, at: int) -> int:
    return next((i for i in range(at, len(norm)) if norm[i] in CLAUSE_END), len(norm))


def _clause_start(norm: str, at: int) -> int:
    return next((i + 1 for i in range(at - 1, -1, -1) if norm[i] in CLAUSE_END), 0)


@dataclass(frozen=True)
class SpanView:
    """One candidate span of a sentence, with the sentence's alignment to the question."""

    alignment: SentenceAlignment
    start: int
    end: int
    type: SpanType

    @classmethod
    def of(cls, question: Question, sentence: str, start: int, end: int, kind: SpanType) -> SpanView:
        """A span of a one-sentence passage (for tests)."""
        return cls(SentenceAlignment(question, SentenceView.alone(sentence)), start, end, kind)

    @cached_property
    def text(self) -> str:
        """The span's matching form."""
        return self.alignment.norm[self.start : self.end]

    @cached_property
    def inner_tokens(self) -> list[Token]:
        """The jieba words that overlap the span."""
        a = self.alignment
        first = bisect.bisect_right(a.token_ends, self.start)  # the first word ending after the start
        last = bisect.bisect_left(a.token_starts, self.end)  # past the last word starting before the end
        return list(a.tokens[first:last])


def _share(total: float, held: float) -> float:
    return held / total if total > 0 else 0.0


def _held_share(q: Question, text: str) -> float:
    """Weighted share of the question's words that a text holds."""
    return _share(q.keyword_weight, sum(w for k, w in q.keywords if k in text))


def type_fits_kind(q: Question, s: SpanView) -> float:
    """Whether the span is of a type that answers this kind of question (a date for 哪一年)."""
    return float(s.type in FITTING_TYPES[q.kind])


def unit_matches_measure(q: Question, s: SpanView) -> float:
    """Whether the span ends in the measure word or unit the question asks for (几家 → 14家)."""
    return float(bool(q.measure) and s.text.rstrip().endswith(q.measure))


def measure_follows(q: Question, s: SpanView) -> float:
    """Whether the measure word asked for follows the span right away (几家 → 14 in 14家)."""
    norm = s.alignment.norm
    return float(bool(q.measure) and norm.startswith(q.measure, s.end))


def before_context_adjacent(q: Question, s: SpanView) -> float:
    """Longest piece of the question's context before the interrogative that the sentence says right before
    the span, as a share of that context."""
    run = max(s.alignment.before_run[max(0, s.start - ALIGN_SLACK) : s.start + 1])
    return _share(len(q.before), run)


def after_context_adjacent(q: Question, s: SpanView) -> float:
    """Longest piece of the question's context after the interrogative that the sentence says right after
    the span, as a share of that context."""
    run = max(s.alignment.after_run[s.end : s.end + ALIGN_SLACK + 1])
    return _share(len(q.after), run)


def before_context_chars(q: Question, s: SpanView) -> float:
    """Characters (at most MAX_DISTANCE) of a piece of the question's context that ends right before the span."""
    return (
        min(MAX_DISTANCE, max(s.alignment.before_run[max(0, s.start - ALIGN_SLACK) : s.start + 1]))
        / MAX_DISTANCE
    )


def after_context_chars(q: Question, s: SpanView) -> float:
    """Characters (at most MAX_DISTANCE) of a piece of the question's context that opens right after the span."""
    return min(MAX_DISTANCE, max(s.alignment.after_run[s.end : s.end + ALIGN_SLACK + 1])) / MAX_DISTANCE


def gap_overlap(q: Question, s: SpanView) -> float:
    """Character F1 between the span and where the interrogative would sit in the sentence."""
    gap = s.alignment.gap
    if gap is None:
        return 0.0
    inter = max(0, min(gap[1], s.end) - max(gap[0], s.start))
    if not inter:
        return 0.0
    precision, recall = inter / (s.end - s.start), inter / max(1, gap[1] - gap[0])
    return 2 * precision * recall / (precision + recall)


def gap_exact(q: Question, s: SpanView) -> float:
    """Whether the span is exactly where the interrogative would sit."""
    return float(s.alignment.gap == (s.start, s.end))


def keywords_before_on_left(q: Question, s: SpanView) -> float:
    """Weighted share of the question's words before its interrogative that the sentence has before the span."""
    occ = s.alignment.occurrences
    total = sum(w for k, w in q.keywords if k in q.before)
    held = {o.word: o.weight for o in occ if o.before and o.end <= s.start}
    return _share(total, sum(held.values()))


def keywords_after_on_right(q: Question, s: SpanView) -> float:
    """Weighted share of the question's words after its interrogative that the sentence has after the span."""
    occ = s.alignment.occurrences
    total = sum(w for k, w in q.keywords if k in q.after)
    held = {o.word: o.weight for o in occ if o.after and o.start >= s.end}
    return _share(total, sum(held.values()))


def keywords_on_wrong_side(q: Question, s: SpanView) -> float:
    """Weighted share of the question's words that the sentence has on the other side of the span than the
    question has them on its interrogative."""
    occ = s.alignment.occurrences
    held = {
        o.word: o.weight
        for o in occ
        if (o.before and not o.after and o.start >= s.end) or (o.after and not o.before and o.end <= s.start)
    }
    return _share(q.keyword_weight, sum(held.values()))


def keywords_inside(q: Question, s: SpanView) -> float:
    """Weighted share of the question's words inside the span (an answer rarely repeats the question)."""
    return _held_share(q, s.text)


def question_char_share(q: Question, s: SpanView) -> float:
    """Share of the span's characters that the question also has."""
    text = s.text
    return sum(1 for c in text if c in q.normalized) / len(text) if text else 0.0


def in_question(q: Question, s: SpanView) -> float:
    """Whether the whole span is written in the question."""
    return float(s.text in q.normalized)


def left_keyword_distance(q: Question, s: SpanView) -> float:
    """Characters from the nearest question word before the span to the span, over MAX_DISTANCE (1 if none)."""
    ends = [s.start - o.end for o in s.alignment.occurrences if o.end <= s.start]
    return min([MAX_DISTANCE, *ends]) / MAX_DISTANCE


def right_keyword_distance(q: Question, s: SpanView) -> float:
    """Characters from the span to the nearest question word after it, over MAX_DISTANCE (1 if none)."""
    starts = [o.start - s.end for o in s.alignment.occurrences if o.start >= s.end]
    return min([MAX_DISTANCE, *starts]) / MAX_DISTANCE


def keyword_proximity(q: Question, s: SpanView) -> float:
    """Weighted share of the question's words near the span: each word counts by how close its nearest
    occurrence stands (halving every PROXIMITY_HALF characters), 0 for a word the sentence lacks."""
    near: dict[str, float] = {}
    for o in s.alignment.occurrences:
        if o.start < s.end and o.end > s.start:
            continue  # inside the span: not context
        gap = s.start - o.end if o.end <= s.start else o.start - s.end
        near[o.word] = max(near.get(o.word, 0.0), o.weight * 0.5 ** (gap / PROXIMITY_HALF))
    return _share(q.keyword_weight, sum(near.values()))


def clause_keyword_share(q: Question, s: SpanView) -> float:
    """Weighted share of the question's words in the span's clause outside the span."""
    a, b = s.alignment.clause_of(s.start)
    norm = s.alignment.norm
    return _held_share(q, norm[a : s.start] + "|" + norm[s.end : max(b, s.end)])


def item_keyword_share(q: Question, s: SpanView) -> float:
    """Weighted share of the question's words in the span's item of an enumeration (its clause cut further at
    、) outside the span: in 产品5个、有机农产品45个 the 45个 is the 有机农产品's."""
    a, b = s.alignment.clause_of(s.start)
    norm = s.alignment.norm
    end = max(b, s.end)
    left = max(a, norm.rfind(ENUMERATION_COMMA, a, s.start) + 1)
    right = norm.find(ENUMERATION_COMMA, s.end, end)
    return _held_share(q, norm[left : s.start] + "|" + norm[s.end : right if right >= 0 else end])


def follows_copula(q: Question, s: SpanView) -> float:
    """Whether the span opens right after 是/为/叫/称."""
    return float(any(t.end == s.start and t.word in COPULAS for t in s.alignment.tokens))


def opens_clause(q: Question, s: SpanView) -> float:
    """Whether the span opens its clause (right after punctuation or at the sentence start)."""
    return float(s.start == 0 or s.alignment.norm[s.start - 1] in CLAUSE_END)


def closes_clause(q: Question, s: SpanView) -> float:
    """Whether the span closes its clause (right before punctuation or at the sentence end)."""
    norm = s.alignment.norm
    return float(s.end >= len(norm) or norm[s.end] in CLAUSE_END)


def _token_before(s: SpanView) -> Token | None:
    """The word before the span, past an aspect particle (发明 了 | 电话)."""
    a = s.alignment
    i = bisect.bisect_right(a.token_ends, s.start) - 1  # the last word ending at or before the start
    while i >= 0 and a.tokens[i].tag in _ASPECT_TAGS:
        i -= 1
    return a.tokens[i] if i >= 0 else None


def _token_after(s: SpanView) -> Token | None:
    """The word after the span."""
    a = s.alignment
    i = bisect.bisect_left(a.token_starts, s.end)  # the first word starting at or after the end
    return a.tokens[i] if i < len(a.tokens) else None


def follows_verb(q: Question, s: SpanView) -> float:
    """Whether the word before the span is a verb (its object: 发明了 | 电话)."""
    t = _token_before(s)
    return float(t is not None and t.tag in _VERB_TAGS)


def follows_preposition(q: Question, s: SpanView) -> float:
    """Whether the word before the span is a preposition (于 | 1368年, 在 | 北京)."""
    t = _token_before(s)
    return float(t is not None and t.tag == "p")


def precedes_verb(q: Question, s: SpanView) -> float:
    """Whether the word after the span is a verb (its subject: 贝尔 | 发明了)."""
    t = _token_after(s)
    return float(t is not None and t.tag in _VERB_TAGS)


def followed_by_de(q: Question, s: SpanView) -> float:
    """Whether 的 follows the span (it modifies what comes next)."""
    return float(s.alignment.norm.startswith("的", s.end))


def on_word_boundaries(q: Question, s: SpanView) -> float:
    """Whether the span starts and ends where jieba words do."""
    b = s.alignment.boundaries
    return float(s.start in b and s.end in b)


def opens_with_noun(q: Question, s: SpanView) -> float:
    """Whether the span's first word is a noun or a name."""
    toks = s.inner_tokens
    return float(bool(toks) and toks[0].tag in _NOUN_TAGS)


def closes_with_noun(q: Question, s: SpanView) -> float:
    """Whether the span's last word is a noun or a name."""
    toks = s.inner_tokens
    return float(bool(toks) and toks[-1].tag in _NOUN_TAGS)


def opens_with_verb(q: Question, s: SpanView) -> float:
    """Whether the span's first word is a verb (达8万亩: the figure is what follows it)."""
    toks = s.inner_tokens
    return float(bool(toks) and toks[0].tag in _VERB_TAGS)


def closes_with_verb(q: Question, s: SpanView) -> float:
    """Whether the span's last word is a verb."""
    toks = s.inner_tokens
    return float(bool(toks) and toks[-1].tag in _VERB_TAGS)


def word_count(q: Question, s: SpanView) -> float:
    """The number of jieba words the span overlaps."""
    return float(len(s.inner_tokens))


def log_chars(q: Question, s: SpanView) -> float:
    """The natural log of the span's length in characters."""
    return math.log(max(1, s.end - s.start))


def share_of_sentence(q: Question, s: SpanView) -> float:
    """The span's length as a share of its sentence's."""
    return (s.end - s.start) / max(1, len(s.alignment.norm))


def position_in_sentence(q: Question, s: SpanView) -> float:
    """Where the span starts in its sentence, 0 at the start and 1 at the end."""
    return s.start / max(1, len(s.alignment.norm))


def holds_digit(q: Question, s: SpanView) -> float:
    """Whether the span holds an Arabic digit."""
    return float(any(c.isdigit() for c in s.text))


def holds_asked_figure(q: Question, s: SpanView) -> float:
    """Whether the span holds a year or figure the question names (then it is not what is asked)."""
    return float(any(x in s.text for x in q.years + q.figures))


def rarity(q: Question, s: SpanView) -> float:
    """The mean rarity (jieba idf) of the span's words: a name or term rather than a common word."""
    toks = [t for t in s.inner_tokens if not t.word.isspace()]
    return sum(word_weight(t.word) for t in toks) / len(toks) if toks else 0.0


def repeats_in_passage(q: Question, s: SpanView) -> float:
    """How often the span's text occurs in its passage, at most 5 (the article's topic recurs)."""
    text = s.text
    return float(min(5, s.alignment.sentence.passage_norm.count(text))) if text else 0.0


def _type_flag(kind: SpanType) -> Callable[[Question, SpanView], float]:
    def flag(q: Question, s: SpanView) -> float:
        return float(s.type is kind)

    flag.__name__ = f"type_{kind.value}"
    flag.__doc__ = f"Whether the span's type is {kind.value}."
    return flag


def _kind_flag(kind: QuestionKind) -> Callable[[Question, SpanView], float]:
    def flag(q: Question, s: SpanView) -> float:
        return float(q.kind is kind)

    flag.__name__ = f"asks_{kind.value}"
    flag.__doc__ = f"Whether the question asks for a {kind.value}."
    return flag


SpanFeature = Callable[[Question, SpanView], float]

SPAN_FEATURES: tuple[SpanFeature, ...] = (
    type_fits_kind,
    unit_matches_measure,
    measure_follows,
    before_context_adjacent,
    after_context_adjacent,
    before_context_chars,
    after_context_chars,
    gap_overlap,
    gap_exact,
    keywords_before_on_left,
    keywords_after_on_right,
    keywords_on_wrong_side,
    keywords_inside,
    question_char_share,
    in_question,
    left_keyword_distance,
    right_keyword_distance,
    keyword_proximity,
    clause_keyword_share,
    item_keyword_share,
    follows_copula,
    follows_verb,
    follows_preposition,
    precedes_verb,
    opens_clause,
    closes_clause,
    followed_by_de,
    on_word_boundaries,
    opens_with_noun,
    closes_with_noun,
    opens_with_verb,
    closes_with_verb,
    word_count,
    log_chars,
    share_of_sentence,
    position_in_sentence,
    holds_digit,
    holds_asked_figure,
    rarity,
    repeats_in_passage,
    *(_type_flag(t) for t in SpanType),
    *(_kind_flag(k) for k in QuestionKind),
)
# Features also given as the span's rank among the sentence's spans of its type (0 for the best, at most
# MAX_RANK): "the date nearest the question's words" depends on the other dates, which a row cannot see.
RANKED_FEATURES = (
    "keyword_proximity",
    "gap_overlap",
    "before_context_chars",
    "after_context_chars",
    "item_keyword_share",
)
SPAN_FEATURE_NAMES: tuple[str, ...] = tuple(f.__name__ for f in SPAN_FEATURES) + tuple(
    f"{name}_rank_in_type" for name in RANKED_FEATURES
)


def span_views(question: Question, sentence: SentenceView) -> list[SpanView]:
    """Every candidate span of a sentence, as the span features see it."""
    alignment = SentenceAlignment(question, sentence)
    return [SpanView(alignment, c.start, c.end, c.type) for c in candidate_spans(sentence.text)]


def span_matrix(question: Question, views: Sequence[SpanView]) -> list[list[float]]:
    """One row of SPAN_FEATURE_NAMES values per span."""
    rows = [[f(question, v) for f in SPAN_FEATURES] for v in views]
    names = [f.__name__ for f in SPAN_FEATURES]
    ranks: list[list[float]] = [[] for _ in rows]
    for name in RANKED_FEATURES:
        c = names.index(name)
        by_type: dict[SpanType, list[float]] = {}
        for v, r in zip(views, rows, strict=True):
            by_type.setdefault(v.type, []).append(r[c])
        for values in by_type.values():
            values.sort()
        for v, r, out in zip(views, rows, ranks, strict=True):
            values = by_type[v.type]  # how many of its type score higher: those after it in sorted order
            out.append(float(min(MAX_RANK, len(values) - bisect.bisect_right(values, r[c]))))
    return [r + extra for r, extra in zip(rows, ranks, strict=True)]


def candidates_of(views: Sequence[SpanView]) -> list[Candidate]:
    """The candidates behind the views."""
    return [Candidate(v.start, v.end, v.type) for v in views]
