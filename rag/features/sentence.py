"""Sentence features: how well one sentence of a leading passage restates the question and could answer it.

Each feature is a named function of (Question, SentenceView) with a one-line docstring; the fitted
sentence model (rag/weights.json) weighs them. Cheap on purpose: every sentence of every leading
passage is scored, so nothing here segments with part-of-speech tags.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

from rapidfuzz.distance import LCSseq

from rag.question import Question, QuestionKind
from rag.spans import matching_form
from rag.text import ROMAN_NUMERALS, char_pairs, sentences


@dataclass(frozen=True)
class SentenceView:
    """One sentence of a passage as the features see it."""

    text: str  # the sentence, original script
    norm: str  # its matching form (same length as text)
    start: int  # offsets inside the passage
    end: int
    index: int  # 0-based position among the passage's sentences
    count: int  # sentences in the passage
    passage: int  # 0-based rank of the passage among those given
    passage_score: float  # the retrieval score the passage came with
    passage_norm: str  # the passage's matching form
    previous_norm: str = ""  # matching form of the sentence before, "" for the first
    next_norm: str = ""
    similarity: float = 0.0  # the embedder's cosine of the question with the sentence; 0 when not known

    @classmethod
    def alone(cls, sentence: str) -> SentenceView:
        """A sentence as a one-sentence passage (for tests and single-sentence inputs)."""
        norm = matching_form(sentence)
        return cls(sentence, norm, 0, len(sentence), 0, 1, 0, 0.0, norm)

    @cached_property
    def pairs(self) -> frozenset[str]:
        """The sentence's character pairs."""
        return frozenset(char_pairs(self.norm))


# Per passage: the embedder's cosine of the question with each sentence, by the sentence's (start, end) in the
# passage's text (the index stores one vector per rag.text.sentences span; rag.store.sentence_spans).
Similarities = Sequence[Mapping[tuple[int, int], float]]


def sentence_views(
    passages: Sequence[tuple[str, float]], similarities: Similarities | None = None
) -> list[SentenceView]:
    """Every sentence of the given passages (text, retrieval score), best passage first, in reading order,
    with its cosine to the question where `similarities` gives one."""
    views: list[SentenceView] = []
    for rank, (text, score) in enumerate(passages):
        norm = matching_form(text)
        spans = sentences(text) or [(0, len(text))]
        cosines = similarities[rank] if similarities is not None and rank < len(similarities) else {}
        for i, (a, b) in enumerate(spans):
            views.append(
                SentenceView(
                    text=text[a:b],
                    norm=norm[a:b],
                    start=a,
                    end=b,
                    index=i,
                    count=len(spans),
                    passage=rank,
                    passage_score=score,
                    passage_norm=norm,
                    previous_norm=norm[spans[i - 1][0] : spans[i - 1][1]] if i else "",
                    next_norm=norm[spans[i + 1][0] : spans[i + 1][1]] if i + 1 < len(spans) else "",
                    similarity=float(cosines.get((a, b), 0.0)),
                )
            )
    return views


def _weighted_share(question: Question, text: str) -> float:
    total = question.keyword_weight
    if not total:
        return 0.0
    return sum(w for k, w in question.keywords if k in text) / total


_DIGITS = re.compile(r"\d")
_NUMERAL = re.compile(rf"\d|[一二两三四五六七八九十百千万亿{ROMAN_NUMERALS}]")
_DATE_MARK = re.compile(r"\d{1,4}\s*年|\d{1,2}\s*月|世纪|年代|朝|时期|年间")
_PERSON_MARK = re.compile(r"[\u4e00-\u9fff]{2,4}(?:说|表示|指出|认为|提出|发明|创立|担任|出生)")


def keyword_share(q: Question, s: SentenceView) -> float:
    """Rarity-weighted share of the question's keywords that the sentence holds."""
    return _weighted_share(q, s.norm)


def keyword_share_with_previous(q: Question, s: SentenceView) -> float:
    """Weighted keyword share of the sentence together with the one before it (a subject named earlier)."""
    return _weighted_share(q, s.previous_norm + s.norm)


def keyword_share_with_next(q: Question, s: SentenceView) -> float:
    """Weighted keyword share of the sentence together with the one after it."""
    return _weighted_share(q, s.norm + s.next_norm)


def passage_keyword_share(q: Question, s: SentenceView) -> float:
    """Weighted keyword share of the sentence's whole passage."""
    return _weighted_share(q, s.passage_norm)


def char_pair_share(q: Question, s: SentenceView) -> float:
    """Share of the question's character pairs (interrogatives cut out) that the sentence holds."""
    asked = q.pairs
    return len(asked & s.pairs) / len(asked) if asked else 0.0


@lru_cache(maxsize=64)
def _pair_counts(passage_norm: str) -> tuple[int, dict[str, int]]:
    """How many sentences a passage has, and in how many of them each character pair occurs."""
    spans = sentences(passage_norm) or [(0, len(passage_norm))]
    counts: dict[str, int] = {}
    for a, b in spans:
        for pair in char_pairs(passage_norm[a:b]):
            counts[pair] = counts.get(pair, 0) + 1
    return len(spans), counts


def rare_pair_share(q: Question, s: SentenceView) -> float:
    """Share of the question's character pairs the sentence holds, each weighted by how few sentences of its
    passage hold it (idf within the passage: the article's topic, in every sentence, tells none apart)."""
    n, counts = _pair_counts(s.passage_norm)

    def weight(pair: str) -> float:
        return math.log((n + 1) / (counts.get(pair, 0) + 0.5))

    # fsum: a set's order changes with the process's hash seed, and a float sum's last bit with the order
    total = math.fsum(weight(p) for p in q.pairs)
    return math.fsum(weight(p) for p in q.pairs & s.pairs) / total if total > 0 else 0.0


def lcs_ratio(q: Question, s: SentenceView) -> float:
    """Share of the question's characters the sentence holds in the same order (longest common subsequence)."""
    chars = q.chars
    return LCSseq.similarity(chars, s.norm) / len(chars) if chars else 0.0


def context_before_held(q: Question, s: SentenceView) -> float:
    """Longest run of characters of the question's part before the interrogative that the sentence holds, as
    a share of that part (X的首都是 | 什么 → a sentence that says X的首都是)."""
    return _longest_run(q.before, s.norm) / len(q.before) if q.before else 0.0


def context_after_held(q: Question, s: SentenceView) -> float:
    """Longest run of characters of the question's part after the interrogative that the sentence holds, as
    a share of that part."""
    return _longest_run(q.after, s.norm) / len(q.after) if q.after else 0.0


def _longest_run(part: str, text: str) -> int:
    """Length of the longest run of characters of `part` found in `text` (a run of length n implies one of
    every shorter length, so the length is searched by halves)."""
    low, high = 0, len(part)
    while low < high:
        mid = (low + high + 1) // 2
        if any(part[i : i + mid] in text for i in range(len(part) - mid + 1)):
            low = mid
        else:
            high = mid - 1
    return low


def subject_share(q: Question, s: SentenceView) -> float:
    """Share of the question's subjects (places, organisations, people) named in the sentence; 1 when none."""
    return sum(1 for x in q.subjects if x in s.norm) / len(q.subjects) if q.subjects else 1.0


def figure_share(q: Question, s: SentenceView) -> float:
    """Share of the question's years and figures the sentence holds; 1 when it names none."""
    named = q.years + q.figures
    return sum(1 for x in named if x in s.norm) / len(named) if named else 1.0


def holds_asked_type(q: Question, s: SentenceView) -> float:
    """Whether the sentence holds a thing of the kind asked for (a figure, a date, a title…), cheaply."""
    if q.kind is QuestionKind.NUMBER:
        return float(bool(_NUMERAL.search(s.norm)))
    if q.kind is QuestionKind.DATE:
        return float(bool(_DATE_MARK.search(s.norm)))
    if q.kind is QuestionKind.TITLE:
        return float("《" in s.norm or "“" in s.norm or "「" in s.norm)
    if q.kind is QuestionKind.PERSON:
        return float(bool(_PERSON_MARK.search(s.norm)))
    return 0.0


def holds_measure(q: Question, s: SentenceView) -> float:
    """Whether a figure in the sentence is followed by the measure word asked for (几家 → 14家)."""
    if not q.measure:
        return 0.0
    return float(bool(re.search(r"[\d一二两三四五六七八九十百千万亿]\s*" + re.escape(q.measure), s.norm)))


def holds_digits(q: Question, s: SentenceView) -> float:
    """Whether the sentence holds an Arabic digit."""
    return float(bool(_DIGITS.search(s.norm)))


def position(q: Question, s: SentenceView) -> float:
    """The sentence's place in its passage, 0 for the first and 1 for the last."""
    return s.index / (s.count - 1) if s.count > 1 else 0.0


def is_first(q: Question, s: SentenceView) -> float:
    """Whether the sentence opens its passage (where an article names its topic)."""
    return float(s.index == 0)


def passage_rank(q: Question, s: SentenceView) -> float:
    """The rank of the sentence's passage among those given, 0 for the best."""
    return float(s.passage)


def log_length(q: Question, s: SentenceView) -> float:
    """The natural log of the sentence's length in characters (plus one)."""
    return math.log1p(len(s.norm))


def similarity(q: Question, s: SentenceView) -> float:
    """The embedder's cosine of the question with the sentence: meaning where the words differ (GDP/地区生产总值)."""
    return s.similarity


def asks(q: Question, s: SentenceView) -> float:
    """Whether the sentence itself asks (ends with a question mark): it rarely answers."""
    return float(s.norm.rstrip("”」』’\"' ").endswith(("?", "？")))


SentenceFeature = Callable[[Question, SentenceView], float]

SENTENCE_FEATURES: tuple[SentenceFeature, ...] = (
    keyword_share,
    keyword_share_with_previous,
    keyword_share_with_next,
    passage_keyword_share,
    char_pair_share,
    rare_pair_share,
    lcs_ratio,
    context_before_held,
    context_after_held,
    subject_share,
    figure_share,
    holds_asked_type,
    holds_measure,
    holds_digits,
    position,
    is_first,
    passage_rank,
    log_length,
    asks,
    similarity,
)
# Features also given as the distance behind the best sentence of the same question: whether a sentence
# wins depends on its rivals, which a per-row model cannot otherwise see.
RELATIVE_FEATURES = (
    "keyword_share",
    "char_pair_share",
    "lcs_ratio",
    "context_before_held",
    "context_after_held",
    "similarity",
)
SENTENCE_FEATURE_NAMES: tuple[str, ...] = tuple(f.__name__ for f in SENTENCE_FEATURES) + tuple(
    f"{name}_behind_best" for name in RELATIVE_FEATURES
)


def sentence_matrix(question: Question, views: Sequence[SentenceView]) -> list[list[float]]:
    """One row of SENTENCE_FEATURE_NAMES values per sentence."""
    rows = [[f(question, s) for f in SENTENCE_FEATURES] for s in views]
    names = [f.__name__ for f in SENTENCE_FEATURES]
    columns = [names.index(n) for n in RELATIVE_FEATURES]
    best = [max((r[c] for r in rows), default=0.0) for c in columns]
    return [r + [b - r[c] for c, b in zip(columns, best, strict=True)] for r in rows]
