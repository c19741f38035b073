"""The fitted answer scorer: choose the supporting sentence and the short answer span, with two calibrated
probabilities, from the leading passages of a question.

The weights (rag/weights.json) come from evals/fit_answer.py, which builds its rows with the tables below,
so fitting and answering share one path. Applying them needs numpy only: the logistic models are a dot
product and the gradient-boosted trees are walked here. Pure: values in, values out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import RagError
from rag.eval_short import figures_agree
from rag.features.sentence import (
    SENTENCE_FEATURE_NAMES,
    SentenceView,
    Similarities,
    sentence_matrix,
    sentence_views,
)
from rag.features.span import SPAN_FEATURE_NAMES, SpanView, span_matrix, span_views
from rag.question import Question
from rag.spans import SpanType

WEIGHTS_FILE = Path(__file__).with_name("weights.json")
WEIGHTS_FORMAT = 1

# Sentences whose candidate spans are ranked, best first by the sentence model: given the gold paragraph, a
# sentence holding a gold answer is among the leading three for ~95 % of CMRC 2018 / DRCD dev questions
# (held-out), and each more sentence costs ~8 ms of span features on 2 cores.
SENTENCES_FOR_SPANS = 3

# Sentence-level values each span row also carries (the span model weighs a span by its sentence).
CARRIED_SENTENCE_FEATURES = ("keyword_share", "lcs_ratio", "context_before_held", "context_after_held")
SPAN_MODEL_FEATURES: tuple[str, ...] = (
    SPAN_FEATURE_NAMES
    + ("sentence_probability", "sentence_rank", "sentence_passage_rank")
    + tuple(f"sentence_{n}" for n in CARRIED_SENTENCE_FEATURES)
)
# A lead in log-odds beyond this says nothing more (and a lone candidate has no runner-up).
MAX_MARGIN = 10.0
# What the two confidence models (gradient-boosted trees) see of one question's ranking. The short-answer
# confidence reads the chosen span's score and leads, then every feature the span model read of it: which span
# features make a likely span wrong differs by kind of question (a figure beside another count's noun, a name
# cut short), which a logistic model over seven of them could not weigh (it stated fewer answers at lower
# precision held out: see the CHANGELOG's issue 12 entries).
SHORT_CONFIDENCE_FEATURES: tuple[str, ...] = (
    "span_score",
    "span_margin",
    "rival_margin",
    "sentence_margin",
) + SPAN_MODEL_FEATURES
# The sentence confidence reads the chosen sentence's log-odds and lead, its features, and the short answer's
# row: how sure the span model is of a span in the sentence says whether the sentence answers at all.
SENTENCE_CONFIDENCE_FEATURES: tuple[str, ...] = (
    ("sentence_logit", "sentence_margin")
    + tuple(f"sentence.{n}" for n in SENTENCE_FEATURE_NAMES)
    + tuple(f"span.{n}" for n in SHORT_CONFIDENCE_FEATURES)
)


class WeightsError(RagError):
    """The weights file is missing, corrupt or of another format."""


@dataclass(frozen=True)
class LogisticModel:
    """A logistic regression over standardised features."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The log-odds of each row."""
        return np.asarray(((x - self.mean) / self.scale) @ self.coef + self.intercept, dtype=np.float64)


@dataclass(frozen=True)
class TreeEnsemble:
    """Gradient-boosted regression trees (scikit-learn's HistGradientBoostingClassifier, binary), flattened:
    one node table for all trees, each tree's root at `roots[t]`. A leaf is its own left and right child,
    so every row can take `depth` steps in every tree at once without asking where it stands."""

    features: tuple[str, ...]
    baseline: float
    roots: np.ndarray
    feature: np.ndarray  # the split feature; 0 at a leaf (read, never used)
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray  # the leaf value; 0 inside a tree
    depth: int  # the longest path from a root to a leaf

    @cached_property
    def _children(self) -> np.ndarray:
        """Each node's left child at 2 * node and its right child at 2 * node + 1: one gather per step."""
        out = np.empty(2 * len(self.left), dtype=np.intp)
        out[0::2], out[1::2] = self.left, self.right
        return out

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The log-odds of each row: the baseline plus one leaf value per tree."""
        if not len(x):
            return np.zeros(0)
        x = np.ascontiguousarray(x, dtype=np.float64)
        flat = x.ravel()
        base = (np.arange(len(x), dtype=np.intp) * x.shape[1])[:, None]
        node = np.repeat(self.roots.astype(np.intp)[None, :], len(x), axis=0)
        missing = bool(np.isnan(flat).any())
        children = self._children
        # take() on flat arrays: about twice as fast as fancy indexing over (rows × trees) each step
        for _ in range(self.depth):
            v = flat.take(base + self.feature.take(node))
            right = ~(v <= self.threshold.take(node))  # a missing value goes right unless the fit said left
            if missing:
                right &= ~(np.isnan(v) & self.missing_left.take(node))
            node = children.take(2 * node + right)
        return np.asarray(self.baseline + self.value.take(node).sum(axis=1), dtype=np.float64)


Model = LogisticModel | TreeEnsemble


@dataclass(frozen=True)
class Weights:
    """The fitted models and thresholds, with where they came from."""

    sentence: Model
    span: Model
    sentence_confidence: Model
    short_confidence: Model
    sentence_weight: float  # share of a sentence's log-odds added to its spans' when choosing among sentences
    short_threshold: float  # state the short answer at or above this short_confidence (0.9 precision in CV)
    provenance: Mapping[str, Any]


def model_from_json(obj: Mapping[str, Any]) -> Model:
    """A model from its JSON form (see evals/fit_answer.py for the writer)."""
    features = tuple(str(f) for f in obj["features"])
    if obj["kind"] == "logistic":
        return LogisticModel(
            features,
            np.asarray(obj["mean"], dtype=np.float64),
            np.asarray(obj["scale"], dtype=np.float64),
            np.asarray(obj["coef"], dtype=np.float64),
            float(obj["intercept"]),
        )
    if obj["kind"] == "trees":
        trees = obj["trees"]
        roots, offset = [], 0
        cols: dict[str, list[Any]] = {
            k: [] for k in ("feature", "threshold", "left", "right", "missing_left", "value")
        }
        for tree in trees:
            roots.append(offset)
            leaf = [f < 0 for f in tree["feature"]]
            cols["feature"] += [0 if is_leaf else f for f, is_leaf in zip(tree["feature"], leaf, strict=True)]
            for k in ("threshold", "missing_left", "value"):
                cols[k] += tree[k]
            for k in ("left", "right"):
                cols[k] += [
                    offset + (i if is_leaf else c)
                    for i, (c, is_leaf) in enumerate(zip(tree[k], leaf, strict=True))
                ]
            offset += len(tree["feature"])
        return TreeEnsemble(
            features,
            float(obj["baseline"]),
            np.asarray(roots, dtype=np.int64),
            np.asarray(cols["feature"], dtype=np.int64),
            np.asarray(cols["threshold"], dtype=np.float64),
            np.asarray(cols["left"], dtype=np.int64),
            np.asarray(cols["right"], dtype=np.int64),
            np.asarray(cols["missing_left"], dtype=bool),
            np.asarray(cols["value"], dtype=np.float64),
            int(obj["depth"]),
        )
    raise WeightsError(
        f"unknown model kind {obj['kind']!r}; run evals/fit_answer.py to write {WEIGHTS_FILE.name}"
    )


def rounded(value: float) -> float:
    """A fitted number as written to the weights file: seven significant digits."""
    return float(f"{float(value):.7g}")


def logistic_to_json(
    features: Sequence[str],
    mean: Sequence[float],
    scale: Sequence[float],
    coef: Sequence[float],
    intercept: float,
) -> dict[str, Any]:
    """A logistic model's JSON form (the inverse of model_from_json)."""
    return {
        "kind": "logistic",
        "features": list(features),
        "mean": [rounded(v) for v in mean],
        "scale": [rounded(v) for v in scale],
        "coef": [rounded(v) for v in coef],
        "intercept": rounded(intercept),
    }


def trees_to_json(model: Any, features: Sequence[str]) -> dict[str, Any]:
    """A fitted binary HistGradientBoostingClassifier's JSON form (the inverse of model_from_json): per node
    its feature (-1 for a leaf), threshold, children, where a missing value goes and the leaf value."""
    trees = []
    depth = 0
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise WeightsError("categorical splits cannot be written: fit with numeric features only")
        leaf = nodes["is_leaf"].astype(bool)
        depth = max(depth, int(nodes["depth"].max()))
        trees.append(
            {
                "feature": [-1 if f else int(i) for f, i in zip(leaf, nodes["feature_idx"], strict=True)],
                # exact: a split can fall on a value seen in fitting, which rounding would move past
                "threshold": [
                    0.0 if f else float(t) for f, t in zip(leaf, nodes["num_threshold"], strict=True)
                ],
                "left": [int(v) for v in nodes["left"]],
                "right": [int(v) for v in nodes["right"]],
                "missing_left": [bool(v) for v in nodes["missing_go_to_left"]],
                "value": [rounded(v) if f else 0.0 for f, v in zip(leaf, nodes["value"], strict=True)],
            }
        )
    baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
    return {
        "kind": "trees",
        "features": list(features),
        "baseline": rounded(baseline),
        "depth": depth,
        "trees": trees,
    }


def averaged_trees_to_json(models: Sequence[Any], features: Sequence[str]) -> dict[str, Any]:
    """The JSON form of the mean log-odds of several fitted binary HistGradientBoostingClassifiers (bagged
    span models): every tree of each, its leaf values divided by their number, and the mean baseline."""
    parts = [trees_to_json(m, features) for m in models]
    if len(parts) == 1:
        return parts[0]
    k = len(parts)
    trees = [
        {**tree, "value": [rounded(v / k) for v in tree["value"]]} for part in parts for tree in part["trees"]
    ]
    return {
        "kind": "trees",
        "features": list(features),
        "baseline": rounded(sum(p["baseline"] for p in parts) / k),
        "depth": max(p["depth"] for p in parts),
        "trees": trees,
    }


def weights_from_json(obj: Mapping[str, Any]) -> Weights:
    """Weights from the parsed weights file; WeightsError when a model is missing or of another format."""
    if obj.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(
            f"weights format {obj.get('format')!r}, expected {WEIGHTS_FORMAT}: run evals/fit_answer.py again"
        )
    try:
        models = obj["models"]
        weights = Weights(
            sentence=model_from_json(models["sentence"]),
            span=model_from_json(models["span"]),
            sentence_confidence=model_from_json(models["sentence_confidence"]),
            short_confidence=model_from_json(models["short_confidence"]),
            sentence_weight=float(obj["choice"]["sentence_weight"]),
            short_threshold=float(obj["thresholds"]["short"]),
            provenance={k: v for k, v in obj.items() if k not in ("models",)},
        )
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"weights file lacks or garbles {e}: run evals/fit_answer.py again") from e
    for name, model, expected in (
        ("sentence", weights.sentence, SENTENCE_FEATURE_NAMES),
        ("span", weights.span, SPAN_MODEL_FEATURES),
        ("sentence_confidence", weights.sentence_confidence, SENTENCE_CONFIDENCE_FEATURES),
        ("short_confidence", weights.short_confidence, SHORT_CONFIDENCE_FEATURES),
    ):
        if model.features != tuple(expected):
            raise WeightsError(
                f"the {name} model was fitted on other features than the code computes: run evals/fit_answer.py"
            )
    return weights


@lru_cache(maxsize=4)
def load_weights(path: Path = WEIGHTS_FILE) -> Weights:
    """The weights file, read once."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise WeightsError(f"{path} is missing: run evals/fit_answer.py to fit it") from e
    except json.JSONDecodeError as e:
        raise WeightsError(f"{path} is not valid JSON ({e}): run evals/fit_answer.py to fit it again") from e
    return weights_from_json(obj)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, elementwise."""
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0))), dtype=np.float64)


@dataclass(frozen=True)
class SentenceTable:
    """Every sentence of the given passages with its feature row."""

    views: tuple[SentenceView, ...]
    features: np.ndarray  # one row per view, columns SENTENCE_FEATURE_NAMES


def sentence_table(
    question: Question, passages: Sequence[tuple[str, float]], similarities: Similarities | None = None
) -> SentenceTable:
    """The sentences of the passages (text, retrieval score; best first) and their features."""
    views = tuple(sentence_views(passages, similarities))
    rows = sentence_matrix(question, views)
    return SentenceTable(
        views, np.asarray(rows, dtype=np.float64).reshape(len(views), len(SENTENCE_FEATURE_NAMES))
    )


@dataclass(frozen=True)
class SpanTable:
    """The candidate spans of one sentence with their feature rows (columns SPAN_MODEL_FEATURES)."""

    views: tuple[SpanView, ...]
    features: np.ndarray


def span_table(
    question: Question, sentence: SentenceView, sentence_row: np.ndarray, probability: float, rank: int
) -> SpanTable:
    """The candidate spans of a sentence and their features, with the sentence's probability and rank."""
    views = tuple(span_views(question, sentence))
    own = np.asarray(span_matrix(question, views), dtype=np.float64).reshape(
        len(views), len(SPAN_FEATURE_NAMES)
    )
    carried = [float(sentence_row[SENTENCE_FEATURE_NAMES.index(n)]) for n in CARRIED_SENTENCE_FEATURES]
    context = np.tile([probability, float(rank), float(sentence.passage), *carried], (len(views), 1))
    return SpanTable(
        views, np.hstack([own, context]) if len(views) else np.zeros((0, len(SPAN_MODEL_FEATURES)))
    )


def sentence_confidence_row(
    logits: np.ndarray, chosen: int, features: np.ndarray, short_row: Sequence[float]
) -> list[float]:
    """The values the sentence confidence model reads, in SENTENCE_CONFIDENCE_FEATURES order: the chosen
    sentence's log-odds, its lead over the best other sentence, its features, then the short answer's row."""
    return [float(logits[chosen]), _lead(logits, chosen), *map(float, features[chosen]), *short_row]


def short_confidence_row(
    span_logits: np.ndarray,
    best: int,
    features: np.ndarray,
    sentence_margin: float,
    rivals: np.ndarray | None = None,
) -> list[float]:
    """The values the short-answer confidence model reads, in SHORT_CONFIDENCE_FEATURES order: the chosen
    span's score (see `choose`), its lead over the runner-up in any sentence, its lead over the best rival (a
    span that is another answer, not the same one with other bounds: `rivals` marks them), its sentence's
    lead, then the span model's features of it."""
    others = span_logits[rivals] if rivals is not None else np.delete(span_logits, best)
    return [
        float(span_logits[best]),
        _lead(span_logits, best),
        _lead_over(float(span_logits[best]), others),
        _clip(sentence_margin),
        *map(float, features[best]),
    ]


def rival_spans(chosen: int, spans: Sequence[tuple[int, int, int]], texts: Sequence[str]) -> np.ndarray:
    """Which spans (sentence, start, end; texts beside them) are another answer than the chosen one's: neither
    overlapping it in its sentence nor the same answer in other words (152 and 152公里 are one answer; 5个
    and 45个 are two)."""
    (i, a, b), mine = spans[chosen], texts[chosen]
    return np.array(
        [
            not (j == i and s < b and a < e) and not _same_answer(mine, t)
            for (j, s, e), t in zip(spans, texts, strict=True)
        ],
        dtype=bool,
    )


def _same_answer(one: str, other: str) -> bool:
    """One text holds the other and they name the same figures (152 / 152公里, 左云 / 左云县)."""
    return (one in other or other in one) and figures_agree(one, other)


def _clip(margin: float) -> float:
    return max(-MAX_MARGIN, min(MAX_MARGIN, margin))


def _lead(values: np.ndarray, chosen: int) -> float:
    """How far the chosen value stands above the best other one, clipped to ±MAX_MARGIN (MAX_MARGIN alone)."""
    return _lead_over(float(values[chosen]), np.delete(values, chosen))


def _lead_over(value: float, others: np.ndarray) -> float:
    """How far value stands above the best of others, clipped to ±MAX_MARGIN (MAX_MARGIN with none)."""
    return _clip(value - float(others.max())) if len(others) else MAX_MARGIN


@dataclass(frozen=True)
class SpanAnswer:
    """The chosen sentence and short answer, with their probabilities and the features behind them."""

    passage: int  # index into the passages given
    sentence_start: int  # the sentence's offsets in its passage's text
    sentence_end: int
    span_start: int  # the short answer's offsets in the sentence
    span_end: int
    short: str  # the short answer (the passage's script; the caller converts to the question's)
    span_type: SpanType
    sentence_probability: float  # calibrated: that the sentence holds a right answer
    short_confidence: float  # calibrated: that `short` is right (F1 >= 0.5, naming the gold's figures)
    stated: bool  # short_confidence reaches the threshold for stating the short answer (0.9 precision)
    sentence_features: Mapping[str, float]
    span_features: Mapping[str, float]

    @property
    def sentence_span(self) -> tuple[int, int]:
        """The sentence's (start, end) in its passage."""
        return self.sentence_start, self.sentence_end

    @property
    def span(self) -> tuple[int, int]:
        """The short answer's (start, end) in the sentence."""
        return self.span_start, self.span_end


@dataclass(frozen=True)
class Choice:
    """Which sentence and span won, and what the two confidence models read about the win."""

    sentence: int  # index into the sentence table
    table: int  # index into the span tables
    span: int  # index into that table's rows
    sentence_row: list[float]  # SENTENCE_CONFIDENCE_FEATURES
    short_row: list[float]  # SHORT_CONFIDENCE_FEATURES


def span_places(table: SpanTable) -> list[tuple[int, int, str]]:
    """Each span of a table as (start, end, text in matching form): what `choose` tells rivals apart by."""
    return [(v.start, v.end, v.text) for v in table.views]


def leading_span_tables(
    question: Question, table: SentenceTable, sentence_logits: np.ndarray
) -> tuple[tuple[int, SpanTable], ...]:
    """The candidate spans of the SENTENCES_FOR_SPANS best sentences (by the sentence log-odds), each with
    its sentence's index; sentences without a candidate are left out."""
    probabilities = sigmoid(sentence_logits)
    order = sorted(range(len(table.views)), key=lambda i: (-sentence_logits[i], i))
    out = []
    for r, i in enumerate(order[:SENTENCES_FOR_SPANS]):
        spans = span_table(question, table.views[i], table.features[i], float(probabilities[i]), r)
        if spans.views:
            out.append((i, spans))
    return tuple(out)


def choose(
    sentence_features: np.ndarray,
    sentence_logits: np.ndarray,
    span_features: Sequence[tuple[int, np.ndarray]],
    span_logits: Sequence[np.ndarray],
    sentence_weight: float,
    places: Sequence[Sequence[tuple[int, int, str]]],
) -> Choice | None:
    """The best span over the leading sentences' spans (sentence index and feature rows per table, with
    their log-odds; each span scored with `sentence_weight` times its sentence's log-odds added), and the
    confidence models' inputs; None when no sentence has a candidate. places: per table, each span's (start,
    end, text) in its sentence (`span_places`)."""
    if not span_features:
        return None
    # a span's score: its own log-odds plus a fitted share of its sentence's
    scored = [
        lg + sentence_weight * sentence_logits[i]
        for (i, _), lg in zip(span_features, span_logits, strict=True)
    ]
    t = max(range(len(span_features)), key=lambda k: (float(scored[k].max()), -k))
    i, features = span_features[t]
    j = int(np.argmax(scored[t]))
    order = [t, *(k for k in range(len(scored)) if k != t)]
    every = np.concatenate([scored[k] for k in order])
    where = [(span_features[k][0], a, b) for k in order for a, b, _ in places[k]]
    rivals = rival_spans(j, where, [text for k in order for _, _, text in places[k]])
    short_row = short_confidence_row(every, j, features, _lead(sentence_logits, i), rivals)
    return Choice(
        sentence=i,
        table=t,
        span=j,
        sentence_row=sentence_confidence_row(sentence_logits, i, sentence_features, short_row),
        short_row=short_row,
    )


def answer_span(
    question: Question,
    passages: Sequence[tuple[str, float]],
    weights: Weights | None = None,
    similarities: Similarities | None = None,
) -> SpanAnswer | None:
    """The supporting sentence and the short answer among the passages (text, retrieval score; best first),
    with calibrated probabilities; None when the passages hold no sentence. similarities: per passage, the
    embedder's cosine of the question with each sentence (rag.features.sentence.Similarities)."""
    w = weights or load_weights()
    table = sentence_table(question, passages, similarities)
    if not table.views:
        return None
    sentence_logits = w.sentence.logits(table.features)
    span_tables = leading_span_tables(question, table, sentence_logits)
    # one pass of the trees over every candidate (the walk's cost is per call as much as per row)
    stacked = w.span.logits(np.vstack([st.features for _, st in span_tables])) if span_tables else np.zeros(0)
    bounds = np.cumsum([0] + [len(st.views) for _, st in span_tables])
    choice = choose(
        table.features,
        sentence_logits,
        [(i, st.features) for i, st in span_tables],
        [stacked[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
        w.sentence_weight,
        [span_places(st) for _, st in span_tables],
    )
    if choice is None:
        return None
    view = table.views[choice.sentence]
    spans = span_tables[choice.table][1]
    chosen = spans.views[choice.span]
    sentence_probability = float(sigmoid(w.sentence_confidence.logits(np.asarray([choice.sentence_row])))[0])
    short_confidence = float(sigmoid(w.short_confidence.logits(np.asarray([choice.short_row])))[0])
    return SpanAnswer(
        passage=view.passage,
        sentence_start=view.start,
        sentence_end=view.end,
        span_start=chosen.start,
        span_end=chosen.end,
        short=view.text[chosen.start : chosen.end],
        span_type=chosen.type,
        sentence_probability=sentence_probability,
        short_confidence=short_confidence,
        stated=short_confidence >= w.short_threshold,
        sentence_features=dict(
            zip(SENTENCE_FEATURE_NAMES, map(float, table.features[choice.sentence]), strict=True)
        ),
        span_features=dict(zip(SPAN_MODEL_FEATURES, map(float, spans.features[choice.span]), strict=True)),
    )
