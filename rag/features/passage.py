"""Passage features: how well one paragraph (or its document) matches the question, for the ranking stages.

Each feature is a named function with a one-line docstring; the fitted fusion weights (rag/weights.json
"fusion", evals/fit_fusion.py) combine them in rag/retrieval.py. `restatement` is the second stage's
feature matrix: one row per paragraph, its columns the named shares below (RESTATEMENT_FEATURES).

Sibling paragraphs of one article share the question's words; what tells the answering one apart is a
sentence that says what the question asks, in the same words and order (由于…，X被鉴定为危桥 for
X为何被鉴定为危桥). Character pairs need no segmenter, so they also meet where jieba cut the question and
the paragraph differently; rare pairs weigh more (pair_weight: idf over the indexed paragraphs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

import jieba
import numpy as np
from rapidfuzz.distance import LCSseq

from rag.question import PLACE_SUFFIX, Question
from rag.text import char_pairs, normalize, sentences

PairWeight = Callable[[str], float]


def holds(doc_text: str, entity: str) -> bool:
    """Whether a document (its matching form) names a subject; 左云县 is also met by a bare 左云."""
    return entity in doc_text or _contained(entity, doc_text)


def _contained(entity: str, text: str) -> bool:
    stem = entity[:-1] if len(entity) >= 3 and PLACE_SUFFIX.match(entity) else ""
    if stem and stem in text:
        return True
    # A longer word jieba's dictionary does not know is its own guess at a word boundary (宋将名 out of
    # 宋将名为): any two of its characters in a row stand for it.
    if len(entity) >= 3 and entity not in jieba.dt.FREQ:
        return any(entity[i : i + 2] in text for i in range(len(entity) - 1))
    return False


def subject_coverage(entities: Sequence[str], doc_text: Mapping[str, str], docs: Sequence[str]) -> np.ndarray:
    """Per row, the fraction of the question's subject words that its document contains (1 when none)."""
    cover = np.ones(len(docs), dtype=np.float32)
    if not entities:
        return cover
    per_doc = {
        doc: sum(1 for e in entities if holds(text, e)) / len(entities) for doc, text in doc_text.items()
    }
    return np.array([per_doc.get(d, 0.0) for d in docs], dtype=np.float32)


def unknown_share(question: Question, vocabulary: Mapping[str, float]) -> float:
    """The share of the question's keyword weight that the index's vocabulary (its paragraphs' words) lacks."""
    total = question.keyword_weight
    if total <= 0:
        return 0.0
    return sum(w for word, w in question.keywords if word not in vocabulary) / total


def held_pairs(asked: frozenset[str], norm: str, pair_weight: PairWeight) -> float:
    """The weight of the asked character pairs that a matching-form text holds."""
    return math.fsum(pair_weight(b) for b in asked & char_pairs(norm))


@lru_cache(maxsize=64)
def _parts(norm: str) -> tuple[str, ...]:
    """The sentences of a matching-form paragraph, cut once for the features that read them."""
    return tuple(norm[a:b] for a, b in sentences(norm)) or (norm,)


def pair_share(question: Question, norm: str, pair_weight: PairWeight) -> float:
    """The share of the question's character pairs (rarity-weighted) that the paragraph holds anywhere."""
    total = math.fsum(pair_weight(b) for b in question.standalone_pairs)
    return held_pairs(question.standalone_pairs, norm, pair_weight) / total if total else 0.0


def sentence_pair_share(question: Question, norm: str, pair_weight: PairWeight) -> float:
    """The same share held by the paragraph's best single sentence: a restatement, not scattered words."""
    total = math.fsum(pair_weight(b) for b in question.standalone_pairs)
    if not total:
        return 0.0
    return max(held_pairs(question.standalone_pairs, p, pair_weight) for p in _parts(norm)) / total


def in_order_share(question: Question, norm: str, pair_weight: PairWeight) -> float:
    """The share of the question's characters that its best sentence holds in the same order."""
    chars = question.standalone_chars
    if not chars:
        return 0.0
    return max(LCSseq.similarity(chars, p) for p in _parts(norm)) / len(chars)


RESTATEMENT_FEATURES: tuple[Callable[[Question, str, PairWeight], float], ...] = (
    pair_share,
    sentence_pair_share,
    in_order_share,
)


def restatement(question: Question, texts: Sequence[str], pair_weight: PairWeight) -> np.ndarray:
    """How closely each paragraph restates the question: one row per text, one column per feature of
    RESTATEMENT_FEATURES, each in [0, 1]; all zero when the question has no character pairs to match."""
    out = np.zeros((len(texts), len(RESTATEMENT_FEATURES)), dtype=np.float32)
    if not question.standalone_pairs or not question.standalone_chars:
        return out
    for row, text in enumerate(texts):
        norm = normalize(text)
        out[row] = [feature(question, norm, pair_weight) for feature in RESTATEMENT_FEATURES]
    return out


def restating_sentences(
    question: Question, text: str, pair_weight: PairWeight, n: int
) -> list[tuple[int, int]]:
    """Spans of the n sentences of a paragraph that hold most of the question's character pairs (rarity-
    weighted), in reading order: the ones worth embedding to compare with the question."""
    spans = sentences(text) or [(0, len(text))]
    if len(spans) <= n:
        return spans
    asked = question.standalone_pairs
    norm = normalize(text)
    held = [held_pairs(asked, norm[a:b], pair_weight) for a, b in spans]
    best = sorted(range(len(spans)), key=lambda i: (-held[i], i))[:n]
    return [spans[i] for i in sorted(best)]
