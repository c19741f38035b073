"""The fitted refusal: the probability that an extractive answer's text holds a right answer, from values the
engine has at answer time (the Answer, its passages, the question, the documents' text and the embedder's
cosines of the question with the quoted and the closest sentences).

The extractive answerer's refusal rules (rag/answer.py) stay a precondition: a question they refuse keeps
confidence 0, and the model decides among the answers they give (`found = p >= threshold`, `confidence = p`).
Fitted with the rules as features instead (evals/fit_refusal.py, the same rows), the model answered 27 of the
1,290 CMRC/DRCD dev candidates the rules refuse, 0.63 of them right, and 2–3 more of the 22 unanswerable seed
questions: the rules' refusals were right 95 % of the time. Weights, feature names and threshold live in
rag/refusal.json, written by evals/fit_refusal.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.answer import PASSAGES_READ
from rag.errors import RagError
from rag.features.passage import holds
from rag.question import Question, QuestionKind
from rag.scoring import Model, model_from_json, sigmoid
from rag.text import char_pairs, normalize, sentences
from rag.types import Answer, Passage

REFUSAL_FILE = Path(__file__).with_name("refusal.json")
REFUSAL_FORMAT = 2  # 2: the model in rag.scoring's JSON forms (gradient-boosted trees since issue 12)
# Probabilities are clipped this far from 0 and 1 before taking log-odds: beyond ±9.2 a logit says no more.
PROBABILITY_CLIP = 1e-4
# A word in more than this share of a paragraph's sentences is its topic, not what picks one sentence out (a
# feature's cut, set by hand: the fitted trees weigh the feature itself).
TOPIC_SENTENCES = 0.5
# The leading passages whose sentences rival_sentence_cover compares with the quote: the ones the extractive
# rules read (rag/answer.py's PASSAGES_READ).
RIVAL_PASSAGES = PASSAGES_READ


@dataclass(frozen=True)
class Evidence:
    """What one feature row reads: the answer as the rules and the span model left it, the analysed
    question and the index's documents in matching form (Store.doc_text)."""

    answer: Answer
    question: Question
    doc_text: Mapping[str, str]
    # the other candidate answers it is chosen among (the other leading passages' that the rules give)
    others: tuple[Answer, ...] = ()


def _passage(e: Evidence, i: int) -> Passage | None:
    return e.answer.passages[i] if len(e.answer.passages) > i else None


def _cited_text(e: Evidence) -> str:
    """The cited paragraph in matching form ("" when the answer cites none)."""
    return normalize(e.answer.citations[0].text) if e.answer.citations else ""


def _cited_quote(e: Evidence) -> str:
    return normalize(e.answer.citations[0].quote) if e.answer.citations else ""


def sentence_confidence(e: Evidence) -> float:
    """The span model's probability that the supporting sentence holds the answer (fitted on gold only)."""
    return e.answer.confidence


def short_confidence(e: Evidence) -> float:
    """The span model's probability that the short answer is right."""
    return e.answer.short_confidence


def sentence_logit(e: Evidence) -> float:
    """The span model's sentence probability as log-odds (clipped): what a logistic model adds linearly."""
    return _logit(e.answer.confidence)


def short_logit(e: Evidence) -> float:
    """The span model's short-answer probability as log-odds (clipped)."""
    return _logit(e.answer.short_confidence)


def _logit(p: float) -> float:
    p = min(1.0 - PROBABILITY_CLIP, max(PROBABILITY_CLIP, p))
    return math.log(p / (1.0 - p))


def rival_answers(e: Evidence) -> float:
    """How many other leading passages give an answer this one is chosen among."""
    return float(len(e.others))


def _lead(e: Evidence, value: Callable[[Answer], float]) -> float:
    """This candidate's value minus the best other candidate's (0 without one)."""
    return value(e.answer) - max(value(o) for o in e.others) if e.others else 0.0


def sentence_confidence_lead(e: Evidence) -> float:
    """The span model's sentence probability minus the best other candidate's (0 without one)."""
    return _lead(e, lambda a: a.confidence)


def short_confidence_lead(e: Evidence) -> float:
    """The span model's short-answer probability minus the best other candidate's (0 without one)."""
    return _lead(e, lambda a: a.short_confidence)


def quote_similarity_lead(e: Evidence) -> float:
    """The quoted sentence's cosine with the question minus the best other candidate's quote's (0 without one)."""
    return _lead(e, lambda a: a.quote_similarity)


def keyword_cover_quote_lead(e: Evidence) -> float:
    """The quote's share of the question's keyword weight minus the best other candidate quote's (0 without one)."""
    return _lead(
        e, lambda a: _keyword_cover(e.question, normalize(a.citations[0].quote) if a.citations else "")
    )


def has_short(e: Evidence) -> float:
    """1 when the span model proposed a short answer at all."""
    return 1.0 if e.answer.short else 0.0


def top_score(e: Evidence) -> float:
    """The fused score of the leading passage."""
    p = _passage(e, 0)
    return p.score if p else 0.0


def score_margin(e: Evidence) -> float:
    """How far the leading passage's fused score is ahead of the second's (0 with one passage)."""
    first, second = _passage(e, 0), _passage(e, 1)
    return first.score - second.score if first and second else 0.0


def top_dense(e: Evidence) -> float:
    """The leading passage's dense cosine with the question."""
    p = _passage(e, 0)
    return p.dense if p else 0.0


def dense_margin(e: Evidence) -> float:
    """The leading passage's dense cosine minus the second's."""
    first, second = _passage(e, 0), _passage(e, 1)
    return first.dense - second.dense if first and second else 0.0


def top_lexical(e: Evidence) -> float:
    """log(1 + BM25) of the leading passage (BM25 grows with the question's length and rarity)."""
    p = _passage(e, 0)
    return math.log1p(max(0.0, p.lexical)) if p else 0.0


def lexical_ratio(e: Evidence) -> float:
    """The second passage's BM25 over the first's: near 1 when nothing stands out lexically."""
    first, second = _passage(e, 0), _passage(e, 1)
    if not first or not second or first.lexical <= 0:
        return 1.0
    return min(1.0, max(0.0, second.lexical) / first.lexical)


def cited_rank(e: Evidence) -> float:
    """The 0-based rank among the passages of the paragraph the answer cites (the count when absent)."""
    if not e.answer.citations:
        return float(len(e.answer.passages))
    c = e.answer.citations[0]
    for i, p in enumerate(e.answer.passages):
        if (p.doc, p.paragraph) == (c.doc, c.paragraph):
            return float(i)
    return float(len(e.answer.passages))


def _cited_passage(e: Evidence) -> Passage | None:
    if not e.answer.citations:
        return None
    c = e.answer.citations[0]
    return next((p for p in e.answer.passages if (p.doc, p.paragraph) == (c.doc, c.paragraph)), None)


def cited_score_gap(e: Evidence) -> float:
    """How far the cited paragraph's fused score is below the leading passage's (0 when it leads)."""
    first, cited = _passage(e, 0), _cited_passage(e)
    return first.score - cited.score if first and cited else 0.0


def cited_dense(e: Evidence) -> float:
    """The cited paragraph's dense cosine with the question (0 when it is not among the passages)."""
    cited = _cited_passage(e)
    return cited.dense if cited else 0.0


def runner_up_same_document(e: Evidence) -> float:
    """1 when the second passage comes from the leading passage's document (siblings compete)."""
    first, second = _passage(e, 0), _passage(e, 1)
    return 1.0 if first and second and first.doc == second.doc else 0.0


def keyword_cover_paragraph(e: Evidence) -> float:
    """The share of the question's keyword weight found in the cited paragraph (1 when it has none)."""
    return _keyword_cover(e.question, _cited_text(e))


def keyword_cover_quote(e: Evidence) -> float:
    """The share of the question's keyword weight found in the quoted sentence (1 when it has none)."""
    return _keyword_cover(e.question, _cited_quote(e))


def _keyword_cover(question: Question, text: str) -> float:
    total = question.keyword_weight
    if total <= 0:
        return 1.0
    return sum(w for word, w in question.keywords if word in text) / total


def rival_sentence_cover(e: Evidence) -> float:
    """How much more of the question's keyword weight another leading passage's best sentence holds than the quote."""
    cited = _cited_passage(e)
    quote = _keyword_cover(e.question, _cited_quote(e))
    best = 0.0
    for p in e.answer.passages[:RIVAL_PASSAGES]:
        if p is cited:
            continue
        norm = normalize(p.text)
        best = max([best, *(_keyword_cover(e.question, norm[a:b]) for a, b in sentences(norm))])
    return max(0.0, best - quote)


def pair_cover_paragraph(e: Evidence) -> float:
    """The share of the question's character pairs found in the cited paragraph (1 when it has none)."""
    if not e.question.pairs:
        return 1.0
    return len(e.question.pairs & char_pairs(_cited_text(e))) / len(e.question.pairs)


def has_subjects(e: Evidence) -> float:
    """1 when the question names a place, organisation or person."""
    return 1.0 if e.question.subjects else 0.0


def subjects_missing_cited(e: Evidence) -> float:
    """The share of the question's subjects that the cited document does not name (short forms count)."""
    subjects = e.question.subjects
    if not subjects or not e.answer.citations:
        return 0.0
    text = e.doc_text.get(e.answer.citations[0].doc, "")
    return sum(1 for s in subjects if not holds(text, s)) / len(subjects)


def subjects_missing_everywhere(e: Evidence) -> float:
    """The share of the question's subjects that no document names (short forms count)."""
    subjects = e.question.subjects
    if not subjects:
        return 0.0
    return sum(1 for s in subjects if not any(holds(t, s) for t in e.doc_text.values())) / len(subjects)


def figures_missing_cited(e: Evidence) -> float:
    """The share of the years and figures the question names that the cited paragraph lacks."""
    named = e.question.years + e.question.figures
    if not named:
        return 0.0
    text = _cited_text(e)
    return sum(1 for f in named if f not in text) / len(named)


def compounds_apart(e: Evidence) -> float:
    """The share of the question's compounds (人均GDP) whose words the quote holds only apart (人均…GDP)."""
    # a compound is two neighbouring keywords said together; held apart, they name another quantity
    asked = e.question.normalized
    words = e.question.keywords_in_order
    compounds = [(a, b) for a, b in zip(words, words[1:], strict=False) if a + b in asked]
    if not compounds:
        return 0.0
    quote = _cited_quote(e)
    return sum(1 for a, b in compounds if a in quote and b in quote and a + b not in quote) / len(compounds)


def distinct_cover_quote(e: Evidence) -> float:
    """The quote's share of the question's keyword weight, over words in at most half the paragraph's sentences."""
    # the paragraph's topic, in every sentence, picks no sentence out; 1 when the question has no other word
    paragraph, quote = _cited_text(e), _cited_quote(e)
    spans = sentences(paragraph) or [(0, len(paragraph))]
    parts = [paragraph[a:b] for a, b in spans]
    most = TOPIC_SENTENCES * len(parts)
    distinct = [(k, w) for k, w in e.question.keywords if sum(1 for p in parts if k in p) <= most]
    total = sum(w for _, w in distinct)
    return sum(w for k, w in distinct if k in quote) / total if total > 0 else 1.0


def quote_similarity(e: Evidence) -> float:
    """The embedder's cosine of the question with the quoted sentence."""
    return e.answer.quote_similarity


def best_similarity(e: Evidence) -> float:
    """The embedder's cosine of the question with the closest sentence of the leading passages."""
    return e.answer.best_similarity


def similarity_shortfall(e: Evidence) -> float:
    """How far the quoted sentence's cosine falls below the closest sentence's (0 when it is the closest)."""
    return max(0.0, e.answer.best_similarity - e.answer.quote_similarity)


def coverage_margin(e: Evidence) -> float:
    """The cited paragraph's weighted share of the question's words minus the share the rules' gate asks for."""
    return e.answer.coverage_margin


def question_length(e: Evidence) -> float:
    """log of the question's length in characters."""
    return math.log1p(len(e.question.text))


def _kind_feature(kind: QuestionKind) -> Callable[[Evidence], float]:
    def feature(e: Evidence) -> float:
        return 1.0 if e.question.kind is kind else 0.0

    feature.__doc__ = f"1 when the question asks for a {kind.value}."
    feature.__name__ = f"kind_{kind.value}"
    return feature


FEATURES: dict[str, Callable[[Evidence], float]] = {
    f.__name__: f
    for f in (
        sentence_confidence,
        short_confidence,
        sentence_logit,
        short_logit,
        has_short,
        top_score,
        score_margin,
        top_dense,
        dense_margin,
        top_lexical,
        lexical_ratio,
        cited_rank,
        cited_score_gap,
        cited_dense,
        runner_up_same_document,
        keyword_cover_paragraph,
        keyword_cover_quote,
        rival_sentence_cover,
        pair_cover_paragraph,
        has_subjects,
        subjects_missing_cited,
        subjects_missing_everywhere,
        figures_missing_cited,
        compounds_apart,
        distinct_cover_quote,
        question_length,
        quote_similarity,
        best_similarity,
        similarity_shortfall,
        coverage_margin,
        rival_answers,
        sentence_confidence_lead,
        short_confidence_lead,
        quote_similarity_lead,
        keyword_cover_quote_lead,
        *(_kind_feature(k) for k in QuestionKind if k is not QuestionKind.OTHER),
    )
}
FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES)


def feature_row(evidence: Evidence, names: Sequence[str] = FEATURE_NAMES) -> list[float]:
    """The named features of one answer, in the order given."""
    return [float(FEATURES[n](evidence)) for n in names]


@dataclass(frozen=True)
class RefusalWeights:
    """The fitted model (gradient-boosted trees or a logistic regression, rag.scoring's forms) over the named
    features, and the threshold chosen for a stated precision."""

    model: Model
    threshold: float

    @property
    def names(self) -> tuple[str, ...]:
        """The features the model reads, in its order."""
        return self.model.features


def load_refusal_weights(path: str | Path = REFUSAL_FILE) -> RefusalWeights:
    """Read the fitted refusal model; a file that is missing or from another format says how to refit it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RagError(f"cannot read the refusal model {path}: {e}; run evals/fit_refusal.py") from e
    if data.get("format") != REFUSAL_FORMAT:
        raise RagError(
            f"{path} has format {data.get('format')!r}, not {REFUSAL_FORMAT}: run evals/fit_refusal.py"
        )
    names = tuple(data["model"]["features"])
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise RagError(
            f"{path} names features this code lacks ({', '.join(unknown)}): run evals/fit_refusal.py"
        )
    try:
        model = model_from_json(data["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise RagError(f"{path} holds no readable model ({e}): run evals/fit_refusal.py") from e
    return RefusalWeights(model=model, threshold=float(data["threshold"]))


@lru_cache(maxsize=1)
def shipped_refusal_weights() -> RefusalWeights:
    """The refusal model that ships in the package, read once per process."""
    return load_refusal_weights()


def found_probability(row: Sequence[float], weights: RefusalWeights) -> float:
    """The fitted probability that the answer text holds a right answer, for a row in weights.names order."""
    return float(sigmoid(weights.model.logits(np.asarray([row], dtype=np.float64)))[0])


def answer_probability(evidence: Evidence, weights: RefusalWeights | None = None) -> float:
    """found_probability of an answer's own feature row (the shipped model unless weights are given)."""
    w = weights or shipped_refusal_weights()
    return found_probability(feature_row(evidence, w.names), w)
