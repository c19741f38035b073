"""Fit the retrieval stages' fusion weights (the "fusion" block of rag/weights.json) on CMRC 2018 dev + DRCD
dev + the seed questions, by grid search cross-validated by article.

    .venv/bin/python evals/fit_fusion.py --passages --embed-cache evals/reports/tmp/bench-embed-cache
                                                          # fit as shipped: dev contexts cut into passages
    .venv/bin/python evals/fit_fusion.py                  # the same over whole contexts (one per article)
    .venv/bin/python evals/fit_fusion.py --limit 1500     # at most 1500 questions per dev set, whole articles
    .venv/bin/python evals/fit_fusion.py --dry            # figures only, nothing written

With --passages each dev context is cut into passages as evals/bench_corpus.py cuts them, so that sibling
passages of one article compete as the paragraphs of one report do, and a question's gold passages are those
that hold one of its answers; over whole contexts (one paragraph per article) hit@1 is 0.99 whatever the weights,
and the fit has little to learn from.

Each question is scored once per retriever by the shipped engine (its question analysis, BM25, the dense
index, the subject coverage), over one index per set (evals/reports/tmp/fit_fusion/, git-ignored, with the
per-question arrays cached beside it; --rescore after changing the analysis or a retriever). The three stages
are then replayed from those arrays with the shipped pure functions (rag.retrieval's fuse, rag.features.passage's restatement,
restatement_gain, settled_order, top_rows; rag.answer's fits; the engine's sentence_evidence), so a grid point
costs no embedding; the replay is checked against Engine._rank on a sample of questions and the agreement
printed (one ranking per question: a comparison is not split by subject as Engine.retrieve splits it).

Stage by stage, as the engine applies them: (1) the fusion of the retrievers and the answer-kind bonus;
(2) the restatement of the question by the leading paragraphs, with (1) fixed; (3) close calls settled by
sentences, with (1) and (2) fixed; then (4) how much more the dense side of (1) weighs per share of the
question's words that no indexed paragraph uses (a question in other words than the documents'), every stage
replayed at each point. In each of 5 GroupKFold folds by article (the seeds: by document), each
stage's grid point with the best mean hit@1 over the three sets on the fitting folds (ties: MRR@10, then grid
order) is scored on the held-out fold. The shipped values are each stage's best on every question. hit@1,
hit@5 and MRR@10 are over answerable questions with evidence, counted as `rag eval` counts them (a retrieved
paragraph of the right document that holds the evidence). The hand-set values (FusionWeights' defaults) are
fixed, so their held-out score is their score on every question.
"""

from __future__ import annotations

import os

# One thread: the machine is shared, and a question's vector is all that is embedded here.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from dataclasses import asdict, dataclass, field, replace  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import jieba  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.answer import fits  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.engine import MAX_SETTLED_QUESTION_CHARS, Engine  # noqa: E402
from rag.eval_cli import load_items  # noqa: E402
from rag.evaluation import MRR_DEPTH, QAItem, Retrieved, holds_evidence  # noqa: E402
from rag.features.passage import restatement, subject_coverage, unknown_share  # noqa: E402
from rag.question import Question, QuestionKind  # noqa: E402
from rag.retrieval import (  # noqa: E402
    FUSION_KEY,
    FusionWeights,
    fuse,
    restatement_gain,
    settled_order,
    top_rows,
)
from rag.scoring import WEIGHTS_FILE  # noqa: E402
from rag.squad import load_squad  # noqa: E402
from rag.text import normalize  # noqa: E402

sys.path.insert(0, str(ROOT / "evals"))
from bench_corpus import passages  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SQUAD_SETS = {"cmrc2018": DATA / "cmrc2018_dev.json", "drcd": DATA / "DRCD_dev.json"}
SEEDS_QA = ROOT / "evals" / "seeds_qa.jsonl"
SEED_DOCS = ROOT / "seeds"
SET_NAMES = ("cmrc2018", "drcd", "seeds")
WORK = ROOT / "evals" / "reports" / "tmp" / "fit_fusion"
FOLDS = 5
SEED = 0
CHECKED_PER_SET = 100  # questions per set whose replayed ranking is compared with Engine._rank
HAND_SET = FusionWeights()  # today's values: the dataclass defaults

# The grids, stage by stage; each holds the hand-set value. BM25's weight stays 1: it sets the scale the
# other weights are measured in (standard deviations of BM25 over its leading candidates).
FUSION_GRID: dict[str, tuple[float | int, ...]] = {
    "lexical": (1.0,),
    "dense": (0.1, 0.2, 0.35, 0.5, 0.7),
    "subject": (1.0, 2.0, 3.0, 5.0),
    "pool": (20, 50),
    "dense_floor": (0.0, 0.01, 0.02, 0.03),
    "kind": (0.0, 0.5, 1.0, 2.0),
}
RESTATEMENT_GRID: dict[str, tuple[float | int, ...]] = {
    "depth": (3, 5, 8),
    "pairs": (0.0, 2.0, 4.0, 6.0),
    "sentence_pairs": (0.0, 2.0, 4.0, 6.0),
    "order": (0.0, 2.0, 4.0, 6.0),
}
SETTLE_GRID: dict[str, tuple[float | int, ...]] = {
    "settle_margin": (0.0, 1.0, 1.5, 2.0, 3.0),
    "settle_depth": (2, 3, 4),
    "settle_sentences": (2, 3, 5),
    "sentence_dense": (0.0, 25.0, 50.0, 100.0),
    "evidence": (0.0, 0.5, 1.0, 2.0, 4.0),
}
# Last, with the three stages fixed: how much more the dense side weighs for a question in other words than
# the documents' (it changes the first stage, so every stage is replayed at each point).
UNKNOWN_GRID: dict[str, tuple[float | int, ...]] = {"dense_unknown": (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)}
STAGES = (
    ("fusion", FUSION_GRID),
    ("restatement", RESTATEMENT_GRID),
    ("settle", SETTLE_GRID),
    ("unknown words", UNKNOWN_GRID),
)
REPLAYED_STAGES = 3  # the engine's ranking stages; the last entry of STAGES refits the first


@dataclass
class Scored:
    """One question as the first stage sees it: each retriever's score per index row, once."""

    set: str
    group: str  # the article (the seeds: the document): no group is split across fitting and scoring folds
    query: Question
    vector: np.ndarray
    dense: np.ndarray
    lexical: np.ndarray
    subject: np.ndarray
    kind_fits: np.ndarray | None  # per row: holds the kind of answer asked for (number and date questions)
    gold: frozenset[int]
    unknown: float = 0.0  # the share of the question's keyword weight the index's words lack


@dataclass
class Features:
    """The second and third stages' per-row features, computed on demand and kept across grid points."""

    restated: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    strength: dict[tuple[int, int], float] = field(default_factory=dict)
    closest: dict[tuple[int, int, int], float] = field(default_factory=dict)


# ------------------------------------------------------------------ questions and their scores


def squad_items(name: str, limit: int, split: bool = False) -> tuple[dict[str, list[str]], list[QAItem]]:
    """A dev set's articles and its questions: at most `limit` (0: all), whole articles drawn at random. With
    `split`, each context is cut into passages as evals/bench_corpus.py cuts them (documents of many
    paragraphs, like the users'), and a question's gold passages are those that hold one of its answers."""
    data = load_squad(SQUAD_SETS[name])
    items = [i for i in data.items if i.has_gold_paragraph]
    texts = data.texts
    if split:
        texts = {d: [p for c in ps for p in passages(c)] for d, ps in data.texts.items()}
        items = [replace(i, paragraph=0, evidence=i.answers) for i in items if i.answers]
    if limit and limit < len(items):
        by_doc: dict[str, list[QAItem]] = {}
        for item in items:
            by_doc.setdefault(item.doc, []).append(item)
        docs = sorted(by_doc)
        random.Random(SEED).shuffle(docs)
        items = []
        for doc in docs:
            if len(items) >= limit:
                break
            items.extend(by_doc[doc])
    return texts, items


def seed_items() -> list[QAItem]:
    """The seed questions that have a gold paragraph (answerable, with evidence)."""
    return [i for i in load_items(SEEDS_QA) if not i.unanswerable and i.has_gold_paragraph]


def engine_for(
    name: str, texts: Mapping[str, Sequence[str]] | None, settings: Settings, split: bool = False
) -> Engine:
    """The set's index (built once, reused while it holds the same documents), with the hand-set weights."""
    index_dir = WORK / (f"index-{name}-passages" if split else f"index-{name}")
    if texts is None:
        engine = Engine.build([str(SEED_DOCS)], index_dir, settings=settings)
    else:
        engine = Engine.build_from_texts(texts, index_dir, settings=settings, progress=True)
    engine.weights = HAND_SET
    return engine


def score(engine: Engine, name: str, items: Sequence[QAItem]) -> list[Scored]:
    """Each question scored once per retriever, as Engine._rank scores it."""
    store = engine.store
    docs = [r.paragraph.doc for r in store.rows]
    retrieved = [
        Retrieved(
            r.paragraph.doc, r.paragraph.text, r.paragraph.paragraph, r.paragraph.section, r.paragraph.speaker
        )
        for r in store.rows
    ]
    rows_of_doc: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        rows_of_doc.setdefault(d.rsplit("/", 1)[-1], []).append(i)
    texts = [normalize(r.paragraph.text) for r in store.rows]
    fitting: dict[tuple[QuestionKind, str], np.ndarray] = {}
    out: list[Scored] = []
    for item in items:
        rows = range(len(docs)) if item.doc == "*" else rows_of_doc.get(item.doc.rsplit("/", 1)[-1], [])
        gold = frozenset(i for i in rows if holds_evidence(item, retrieved[i]))
        if not gold:
            continue  # evidence in no indexed paragraph: rag eval scores it a miss whatever the weights
        history = [{"role": "user", "content": h} for h in item.history] or None
        query = engine._analyse(item.question, history)
        vector = engine._question_vector(query)
        kind_fits = None
        if query.kind in (QuestionKind.NUMBER, QuestionKind.DATE):
            key = (query.kind, query.measure)
            if key not in fitting:
                fitting[key] = np.array([fits(query, t) for t in texts])
            kind_fits = fitting[key]
        out.append(
            Scored(
                set=name,
                group=f"{name}:{item.doc}",
                query=query,
                vector=vector,
                dense=store.dense_scores(vector, engine.settings.candidates),
                lexical=store.bm25_scores(query.terms),
                subject=subject_coverage(query.entities, store.doc_text, docs),
                kind_fits=kind_fits,
                gold=gold,
                unknown=unknown_share(query, store.idf),
            )
        )
    return out


# ------------------------------------------------------------------ the stages, replayed


def first_stage(s: Scored, w: FusionWeights) -> np.ndarray:
    """Fused scores with the answer-kind bonus (Engine._rank before its second stage)."""
    fused = fuse(s.dense, s.lexical, s.subject, "hybrid", w, s.unknown)
    if s.kind_fits is not None:
        for i in top_rows(fused, 10):
            if s.kind_fits[i]:
                fused[i] += w.kind
    return fused


def restated(engine: Engine, s: Scored, qi: int, rows: Sequence[int], f: Features) -> np.ndarray:
    """The restatement features of these rows (rag.retrieval.restatement), kept per row."""
    missing = [i for i in rows if (qi, i) not in f.restated]
    if missing:
        texts = [engine.store.rows[i].paragraph.text for i in missing]
        for i, row in zip(missing, restatement(s.query, texts, engine._pair_weight), strict=True):
            f.restated[(qi, i)] = row
    return np.array([f.restated[(qi, i)] for i in rows], dtype=np.float32).reshape(len(rows), 3)


def second_stage(
    fused: np.ndarray, s: Scored, qi: int, w: FusionWeights, engine: Engine, f: Features
) -> None:
    """Engine._rerank on the replayed scores."""
    lead = top_rows(fused, w.depth)
    fused[lead] += restatement_gain(restated(engine, s, qi, lead, f), w)


def is_close(fused: np.ndarray, s: Scored, margin: float) -> bool:
    """Whether Engine._settle would reorder this question's leading paragraphs at this margin."""
    lead = top_rows(fused, 2)
    return (
        len(s.query.standalone) <= MAX_SETTLED_QUESTION_CHARS
        and len(lead) == 2
        and fused[lead[0]] - fused[lead[1]] < margin
    )


def sentence_features(engine: Engine, s: Scored, qi: int, rows: Sequence[int], n: int, f: Features) -> None:
    """The third stage's features of these rows with `n` sentences compared (Engine.sentence_evidence)."""
    missing = [i for i in rows if (qi, i, n) not in f.closest]
    if not missing:
        return
    engine.weights = replace(HAND_SET, settle_sentences=n)
    paragraphs = [engine.store.rows[i].paragraph for i in missing]
    closest, strength = engine.sentence_evidence(s.query, paragraphs, s.vector)
    engine.weights = HAND_SET
    for i, c, st in zip(missing, closest, strength, strict=True):
        f.closest[(qi, i, n)] = float(c)
        f.strength[(qi, i)] = float(st)


def third_stage(fused: np.ndarray, s: Scored, qi: int, w: FusionWeights, engine: Engine, f: Features) -> None:
    """Engine._settle on the replayed scores."""
    if not is_close(fused, s, w.settle_margin):
        return
    lead = top_rows(fused, w.settle_depth)
    sentence_features(engine, s, qi, lead, w.settle_sentences, f)
    closest = np.array([f.closest[(qi, i, w.settle_sentences)] for i in lead])
    strength = np.array([f.strength[(qi, i)] for i in lead])
    order = settled_order(fused[lead], closest, strength, w)
    fused[[lead[j] for j in order]] = fused[lead]


def first_gold_rank(rows: Sequence[int], gold: frozenset[int]) -> int:
    """1-based rank of the first gold row among the leading MRR_DEPTH, 0 when none."""
    return next((r for r, i in enumerate(rows[:MRR_DEPTH], start=1) if i in gold), 0)


class Replay:
    """Every question's ranks under grid points, stage by stage; the per-row features kept across them."""

    def __init__(self, engines: Mapping[str, Engine], scored: Sequence[Scored]) -> None:
        self.engines = engines
        self.scored = scored
        self.features = Features()
        self.memo: dict[tuple[int, tuple[FusionWeights, ...]], np.ndarray] = {}

    def fused(self, qi: int, w: FusionWeights, stage: int) -> np.ndarray:
        """One question's scores after the stages up to `stage` under `w`."""
        fused = first_stage(self.scored[qi], w)
        for later in range(2, min(stage, REPLAYED_STAGES) + 1):
            self.apply(fused, qi, w, later)
        return fused

    def apply(self, fused: np.ndarray, qi: int, w: FusionWeights, stage: int) -> None:
        """The second or third stage, on scores after the stages before it."""
        s = self.scored[qi]
        if stage == 2:
            second_stage(fused, s, qi, w, self.engines[s.set], self.features)
        elif stage == 3:
            third_stage(fused, s, qi, w, self.engines[s.set], self.features)

    def rank(self, qi: int, fused: np.ndarray) -> int:
        return first_gold_rank(top_rows(fused, MRR_DEPTH), self.scored[qi].gold)

    def ranks(self, w: FusionWeights, stage: int) -> np.ndarray:
        """Every question's first-gold rank after the stages up to `stage` under `w`."""
        return np.array(
            [self.rank(qi, self.fused(qi, w, stage)) for qi in range(len(self.scored))], dtype=np.int8
        )

    def grid_ranks(
        self, base: FusionWeights, grid: Mapping[str, Sequence[float | int]], stage: int
    ) -> np.ndarray:
        """Ranks of every question (columns) at every grid point (rows) of one stage, the others at `base`.
        The scores after the earlier stages are computed once; the third stage only moves close calls."""
        points = tuple(grid_points(base, grid))
        if (stage, points) in self.memo:
            return self.memo[(stage, points)]
        if stage == 1 or stage > REPLAYED_STAGES:
            out = np.stack([self.ranks(point, stage) for point in points])
        else:
            earlier = [self.fused(qi, base, stage - 1) for qi in range(len(self.scored))]
            before = np.array([self.rank(qi, f) for qi, f in enumerate(earlier)], dtype=np.int8)
            widest = max(float(v) for v in SETTLE_GRID["settle_margin"])
            movable = [
                qi for qi, s in enumerate(self.scored) if stage == 2 or is_close(earlier[qi], s, widest)
            ]
            out = np.tile(before, (len(points), 1))
            for g, point in enumerate(points):
                for qi in movable:
                    fused = earlier[qi].copy()
                    self.apply(fused, qi, point, stage)
                    out[g, qi] = self.rank(qi, fused)
        self.memo[(stage, points)] = out
        return out


def grid_points(base: FusionWeights, grid: Mapping[str, Sequence[float | int]]) -> list[FusionWeights]:
    """The grid's points in order, each `base` with the grid's fields replaced."""
    names = list(grid)
    combos: list[dict[str, Any]] = [
        dict(zip(names, c, strict=True)) for c in itertools.product(*grid.values())
    ]
    return [replace(base, **combo) for combo in combos]


# ------------------------------------------------------------------ choosing and scoring


def figures(ranks: np.ndarray) -> dict[str, float]:
    """hit@1, hit@5 and MRR@10 of 1-based first-gold ranks (0: none in the leading ten)."""
    r = ranks.astype(np.float64)
    return {
        "hit_at_1": round(float(np.mean(r == 1)), 4),
        "hit_at_5": round(float(np.mean((r >= 1) & (r <= 5))), 4),
        "mrr": round(float(np.mean(np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0))), 4),
    }


def choose(grid_ranks: np.ndarray, sets: np.ndarray, mask: np.ndarray) -> int:
    """The grid point with the best mean hit@1 over the sets on the masked questions (ties: MRR, then the
    earlier point)."""
    hit1 = np.zeros(len(grid_ranks))
    mrr = np.zeros(len(grid_ranks))
    names = [n for n in SET_NAMES if (mask & (sets == n)).any()]
    for name in names:
        r = grid_ranks[:, mask & (sets == name)].astype(np.float64)
        hit1 += (r == 1).mean(axis=1) / len(names)
        mrr += np.where(r > 0, 1.0 / np.maximum(r, 1), 0.0).mean(axis=1) / len(names)
    hit1, mrr = np.round(hit1, 12), np.round(mrr, 12)  # equal means summed in another order are ties
    order = sorted(range(len(grid_ranks)), key=lambda g: (-float(hit1[g]), -float(mrr[g]), g))
    return order[0]


def fold_of(scored: Sequence[Scored]) -> np.ndarray:
    """The held-out fold of each question: GroupKFold by article over every set together."""
    groups = [s.group for s in scored]
    fold = np.zeros(len(scored), dtype=np.int64)
    for k, (_, test) in enumerate(GroupKFold(n_splits=FOLDS).split(np.zeros(len(scored)), groups=groups)):
        fold[test] = k
    return fold


def per_set(ranks: np.ndarray, sets: np.ndarray) -> dict[str, dict[str, float]]:
    return {name: figures(ranks[sets == name]) for name in SET_NAMES if (sets == name).any()}


def changed(w: FusionWeights, grid: Mapping[str, Sequence[float | int]]) -> dict[str, float | int]:
    return {name: getattr(w, name) for name in grid}


def fit(replay: Replay, log: Callable[[str], None]) -> tuple[FusionWeights, dict[str, Any]]:
    """Each stage chosen per fold on the fitting folds and scored on the held-out one, then on every question
    for the shipped values. Returns the shipped weights and the cross-validated figures."""
    sets = np.array([s.set for s in replay.scored])
    fold = fold_of(replay.scored)
    everyone = np.ones(len(sets), dtype=bool)
    chosen: dict[int, FusionWeights] = {k: HAND_SET for k in range(FOLDS)}
    shipped = HAND_SET
    report: dict[str, Any] = {"folds": FOLDS, "stages": {}, "fold_choices": {}}
    for stage, (name, grid) in enumerate(STAGES, start=1):
        started = time.perf_counter()
        held_out = np.zeros(len(sets), dtype=np.int8)
        for k in range(FOLDS):
            points = grid_points(chosen[k], grid)
            g = choose(replay.grid_ranks(chosen[k], grid, stage), sets, fold != k)
            chosen[k] = points[g]
            held_out[fold == k] = replay.grid_ranks(points[g], grid, stage)[g][fold == k]
            report["fold_choices"].setdefault(name, []).append(changed(chosen[k], grid))
        points = grid_points(shipped, grid)
        shipped = points[choose(replay.grid_ranks(shipped, grid, stage), sets, everyone)]
        hand = replay.ranks(HAND_SET, stage)
        report["stages"][name] = {
            "hand_set": per_set(hand, sets),
            "fitted_held_out": per_set(held_out, sets),
            "shipped_on_all": per_set(replay.ranks(shipped, stage), sets),
        }
        log(f"stage {stage} ({name}): {len(points)} grid points, {time.perf_counter() - started:.0f} s")
        log(f"  chosen per fold: {report['fold_choices'][name]}")
        log(f"  shipped: {changed(shipped, grid)} (hand-set: {changed(HAND_SET, grid)})")
        for set_name, hand_figures in report["stages"][name]["hand_set"].items():
            fitted = report["stages"][name]["fitted_held_out"][set_name]
            log(f"  {set_name:9s} hand-set {_line(hand_figures)}   fitted, held-out {_line(fitted)}")
    report["questions"] = {n: int((sets == n).sum()) for n in SET_NAMES}
    return shipped, report


def single_retrievers(replay: Replay) -> dict[str, dict[str, dict[str, float]]]:
    """Each retriever alone (rag.retrieval.fuse's bm25 and dense modes), per set: what the fusion adds to."""
    sets = np.array([s.set for s in replay.scored])
    out = {}
    for mode in ("bm25", "dense"):
        ranks = np.array(
            [
                first_gold_rank(top_rows(fuse(s.dense, s.lexical, s.subject, mode), MRR_DEPTH), s.gold)
                for s in replay.scored
            ],
            dtype=np.int8,
        )
        out[mode] = per_set(ranks, sets)
    return out


def _line(f: Mapping[str, float]) -> str:
    return f"hit@1 {f['hit_at_1']:.4f} hit@5 {f['hit_at_5']:.4f} MRR {f['mrr']:.4f}"


def agreement(replay: Replay) -> dict[str, str]:
    """How many sampled questions' replayed leading ten (hand-set weights) are the engine's own (Engine._rank;
    it also ranks press-conference replies, which the replay leaves out)."""
    out: dict[str, str] = {}
    for name in SET_NAMES:
        chosen = [qi for qi, s in enumerate(replay.scored) if s.set == name][:CHECKED_PER_SET]
        if not chosen:
            continue
        engine = replay.engines[name]
        engine.weights = HAND_SET
        same = 0
        for qi in chosen:
            s = replay.scored[qi]
            rows = top_rows(replay.fused(qi, HAND_SET, 3), MRR_DEPTH)
            ranked = engine._rank(s.query, MRR_DEPTH)
            same += rows == [engine.store.row_of_paragraph[(p.doc, p.paragraph)] for p in ranked]
        out[name] = f"{same}/{len(chosen)}"
    return out


# ------------------------------------------------------------------ the run


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cached_scores(
    args: argparse.Namespace, engines: Mapping[str, Engine], items: Mapping[str, list[QAItem]]
) -> list[Scored]:
    """Every question scored once per retriever; kept under WORK, keyed by the data and the limit."""
    key = hashlib.sha256(
        json.dumps(
            [sha256_of(p) for p in SQUAD_SETS.values()]
            + [
                sha256_of(SEEDS_QA),
                args.limit,
                *(["passages"] if args.passages else []),
                engines["seeds"].embedder.id,
                engines["seeds"].settings.candidates,
            ]
        ).encode()
    ).hexdigest()[:16]
    path = WORK / f"scores-{key}.pkl"
    if path.exists() and not args.rescore:
        with open(path, "rb") as f:
            scored: list[Scored] = pickle.load(f)
        return scored
    scored = []
    for name in SET_NAMES:
        started = time.perf_counter()
        scored += score(engines[name], name, items[name])
        print(
            f"{name}: {len(items[name])} questions scored in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    with open(path, "wb") as f:
        pickle.dump(scored, f, protocol=pickle.HIGHEST_PROTOCOL)
    return scored


def fusion_block(shipped: FusionWeights, report: Mapping[str, Any], argv: Sequence[str]) -> dict[str, Any]:
    """The "fusion" block of rag/weights.json: the values and where they came from."""
    return {
        "values": asdict(shipped),
        "fitted": date.today().isoformat(),
        "command": " ".join(["evals/fit_fusion.py", *argv]),
        "data": {
            "cmrc2018": {"file": SQUAD_SETS["cmrc2018"].name, "sha256": sha256_of(SQUAD_SETS["cmrc2018"])},
            "drcd": {"file": SQUAD_SETS["drcd"].name, "sha256": sha256_of(SQUAD_SETS["drcd"])},
            "seeds": {"file": str(SEEDS_QA.relative_to(ROOT)), "sha256": sha256_of(SEEDS_QA)},
        },
        "grids": {name: {k: list(v) for k, v in grid.items()} for name, grid in STAGES},
        "cross_validated": report,
    }


def write_block(block: Mapping[str, Any]) -> None:
    """Replace only the "fusion" key of rag/weights.json (evals/fit_answer.py writes the rest)."""
    obj = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8")) if WEIGHTS_FILE.exists() else {}
    obj[FUSION_KEY] = block
    WEIGHTS_FILE.write_text(
        json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--limit", type=int, default=0, help="questions per dev set (whole articles), 0 = all"
    )
    parser.add_argument("--embed-cache", default=".cache/embeddings", help="passage vectors by content hash")
    parser.add_argument("--rescore", action="store_true", help="score the questions again (not the cache)")
    parser.add_argument("--dry", action="store_true", help="print the figures, write nothing")
    parser.add_argument(
        "--passages",
        action="store_true",
        help="cut each dev context into passages (documents of many paragraphs)",
    )
    args = parser.parse_args(argv)
    for _, grid in STAGES:
        for name, values in grid.items():
            assert getattr(HAND_SET, name) in values, f"the {name} grid lacks the hand-set value"
    started = time.perf_counter()
    # The subject checks read jieba's dictionary, which the engine's question analysis loads first; questions
    # whose analysis comes from the cache would otherwise be checked against an empty one.
    jieba.initialize()
    WORK.mkdir(parents=True, exist_ok=True)
    settings = Settings().with_(embed_cache_dir=args.embed_cache, fusion="hybrid")
    items: dict[str, list[QAItem]] = {}
    engines: dict[str, Engine] = {}
    for name in SQUAD_SETS:
        texts, items[name] = squad_items(name, args.limit, args.passages)
        engines[name] = engine_for(name, texts, settings, args.passages)
    items["seeds"] = seed_items()
    engines["seeds"] = engine_for("seeds", None, settings)
    replay = Replay(engines, cached_scores(args, engines, items))
    print(f"replay agrees with Engine._rank (hand-set, leading {MRR_DEPTH}): {agreement(replay)}", flush=True)
    alone = single_retrievers(replay)
    for mode, by_set in alone.items():
        print(
            f"{mode} alone: " + ", ".join(f"{n} {f['hit_at_1']:.4f}" for n, f in by_set.items()) + " (hit@1)"
        )
    shipped, report = fit(replay, lambda line: print(line, flush=True))
    report["single_retriever"] = alone
    print("\nheld-out hit@1 per set (5 folds by article): hand-set (fixed) vs fitted")
    print(f"{'set':9s} {'n':>5s} {'hand-set':>9s} {'fitted':>9s}")
    final = report["stages"][STAGES[-1][0]]
    for name in SET_NAMES:
        print(
            f"{name:9s} {report['questions'][name]:5d} {final['hand_set'][name]['hit_at_1']:9.4f}"
            f" {final['fitted_held_out'][name]['hit_at_1']:9.4f}"
        )
    print(f"shipped values: {asdict(shipped)}")
    print(f"total {time.perf_counter() - started:.0f} s", flush=True)
    if not args.dry:
        write_block(fusion_block(shipped, report, list(argv if argv is not None else sys.argv[1:])))
        print(f"wrote the {FUSION_KEY!r} block of {WEIGHTS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
