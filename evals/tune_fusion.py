"""Grid over the fusion weights on question sets, scoring every question once per retriever.

    .venv/bin/python evals/tune_fusion.py --seeds evals/seeds_qa.jsonl --squad ../shared/data/cmrc2018_dev.json \
        --limit 400

Prints hit@1 / hit@5 of each weight setting on each set, so one configuration can be chosen for all;
then the same for the second stage's weights (the restatement of the question by the leading paragraphs),
and for the third stage's (close calls settled by the closest sentence and the answerer's evidence).
"""

from __future__ import annotations

import argparse
import itertools
import pickle
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.engine import Engine
from rag.eval_cli import load_items
from rag.evaluation import QAItem
from rag.retrieval import (
    FusionWeights,
    Query,
    fuse,
    restatement,
    restatement_gain,
    settled_order,
    subject_coverage,
    top_rows,
)
from rag.squad import load_squad, spread
from rag.text import to_simplified

WIDEST_MARGIN = 3.0  # the third stage's features are computed for close calls up to this margin


@dataclass
class Scored:
    dense: np.ndarray
    lexical: np.ndarray
    subject: np.ndarray
    gold: set[int]
    lead: list[int]  # the leading rows of the first stage (default weights), which the second stage reorders
    restated: np.ndarray  # their restatement features
    settle: Settle


@dataclass
class Settle:
    """The engine's own leading rows after the second stage (default weights), with their scores, and for
    close calls (margin < WIDEST_MARGIN) the third stage's features."""

    rows: list[int]
    scores: np.ndarray
    closest: np.ndarray | None = None
    strength: np.ndarray | None = None


def scored(engine: Engine, items: list[QAItem]) -> list[Scored]:
    store = engine.store
    docs = [r.paragraph.doc for r in store.rows]
    out = []
    for item in items:
        evidence = [e for e in item.evidence if e]
        if item.paragraph:
            gold = {
                i
                for i, r in enumerate(store.rows)
                if (r.paragraph.doc, r.paragraph.paragraph) == (item.doc, item.paragraph)
            }
        elif evidence:
            gold = {i for i, r in enumerate(store.rows) if any(e in r.paragraph.text for e in evidence)}
        else:
            continue
        history = [{"role": "user", "content": h} for h in (item.history or [])]
        q = engine._analyse(item.question, history)
        vector = engine.embedder.embed_query(to_simplified(q.text))
        dense = store.dense_scores(vector, 50)
        lexical = store.bm25_scores(q.terms)
        subject = subject_coverage(q.entities, store.doc_text, docs)
        w = engine.weights
        lead = top_rows(fuse(dense, lexical, subject, "hybrid", w), w.depth)
        restated = restatement(q.text, [store.rows[i].paragraph.text for i in lead], engine._pair_weight)
        out.append(Scored(dense, lexical, subject, gold, lead, restated, close_call(engine, q, vector)))
    return out


def close_call(engine: Engine, q: Query, vector: np.ndarray) -> Settle:
    engine.weights = replace(FusionWeights(), settle_margin=0.0)  # the ranking before the third stage
    ranked = engine._rank(q, FusionWeights().settle_depth)
    engine.weights = FusionWeights()
    rows = [engine.store.row_of_paragraph[(p.doc, p.paragraph)] for p in ranked]
    out = Settle(rows, np.array([p.score for p in ranked]))
    if len(ranked) > 1 and ranked[0].score - ranked[1].score < WIDEST_MARGIN:
        paragraphs = [engine.store.rows[i].paragraph for i in rows]
        out.closest, out.strength = engine.sentence_evidence(q, paragraphs, vector)
    return out


def settled_hit1(data: list[Scored], w: FusionWeights) -> float:
    hit = 0
    for s in data:
        c = s.settle
        top = c.rows[0] if c.rows else -1
        close = len(c.rows) > 1 and c.scores[0] - c.scores[1] < w.settle_margin
        if close and c.closest is not None and c.strength is not None:
            top = c.rows[settled_order(c.scores, c.closest, c.strength, w)[0]]
        hit += top in s.gold
    return hit / len(data)


def hits(data: list[Scored], mode: str, w: FusionWeights) -> tuple[float, float]:
    h1 = h5 = 0
    for s in data:
        order = np.argsort(-fuse(s.dense, s.lexical, s.subject, mode, w), kind="stable")
        h1 += int(order[0]) in s.gold
        h5 += bool(s.gold & set(order[:5].tolist()))
    return h1 / len(data), h5 / len(data)


def reranked_hit1(data: list[Scored], w: FusionWeights) -> float:
    hit = 0
    for s in data:
        fused = fuse(s.dense, s.lexical, s.subject, "hybrid", w)
        fused[s.lead] += restatement_gain(s.restated, w)
        hit += top_rows(fused, 1)[0] in s.gold
    return hit / len(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="evals/seeds_qa.jsonl")
    ap.add_argument("--squad", nargs="*", default=[])
    ap.add_argument("--limit", type=int, default=400)
    ap.add_argument("--cache", default=".cache/embeddings")
    ap.add_argument("--reuse", action="store_true", help="reuse the scores of the last run (.cache/tune.pkl)")
    args = ap.parse_args()
    settings = Settings.from_env(embed_cache_dir=args.cache)
    sets: dict[str, list[Scored]] = {}
    saved = Path(".cache/tune.pkl")
    if args.reuse and saved.exists():
        sets = pickle.loads(saved.read_bytes())
    else:
        sets = score_sets(args, settings)
        saved.write_bytes(pickle.dumps(sets))
    report(sets)


def score_sets(args: argparse.Namespace, settings: Settings) -> dict[str, list[Scored]]:
    sets: dict[str, list[Scored]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        seeds = Engine.build(["seeds"], index_dir=f"{tmp}/seeds", settings=settings)
        sets["seeds"] = scored(seeds, load_items(args.seeds))
        for path in args.squad:
            data = load_squad(path)
            engine = Engine.build_from_texts(data.texts, f"{tmp}/{len(sets)}", settings, progress=True)
            sets[path.rsplit("/", 1)[-1]] = scored(engine, spread(data.items, args.limit))
    return sets


def report(sets: dict[str, list[Scored]]) -> None:
    for mode in ("bm25", "dense"):
        print(mode, {k: hits(v, mode, FusionWeights()) for k, v in sets.items()})
    grid = itertools.product(
        [1.0], [0.2, 0.35, 0.5, 0.7, 1.0], [1.0, 2.0, 3.0], [20, 50], [0.0, 0.01, 0.02, 0.03]
    )
    rows = []
    for lex, den, subj, pool, floor in grid:
        w = FusionWeights(lexical=lex, dense=den, subject=subj, pool=pool, dense_floor=floor)
        result = {k: hits(v, "hybrid", w) for k, v in sets.items()}
        rows.append((min(h1 for h1, _ in result.values()), w, result))
    for worst, w, result in sorted(rows, key=lambda r: -r[0])[:15]:
        print(f"{worst:.3f}", w, {k: f"{a:.3f}/{b:.3f}" for k, (a, b) in result.items()})
    print("second stage (hit@1): pairs, sentence_pairs, order")
    second = []
    for pairs, sentence_pairs, order in itertools.product([0.0, 2.0, 4.0, 6.0], repeat=3):
        w = FusionWeights(pairs=pairs, sentence_pairs=sentence_pairs, order=order)
        reranked = {k: reranked_hit1(v, w) for k, v in sets.items()}
        second.append((sum(reranked.values()), (pairs, sentence_pairs, order), reranked))
    for _, weights, reranked in sorted(second, key=lambda r: -r[0])[:10]:
        print(weights, {k: f"{v:.3f}" for k, v in reranked.items()})
    print("third stage (hit@1): settle_margin, sentence_dense, evidence")
    third = []
    for margin, sentence_dense, evidence in itertools.product(
        [0.0, 1.0, 1.5, 2.0, WIDEST_MARGIN], [0.0, 25.0, 50.0, 100.0], [0.0, 0.5, 1.0, 2.0]
    ):
        w = FusionWeights(settle_margin=margin, sentence_dense=sentence_dense, evidence=evidence)
        settled = {k: settled_hit1(v, w) for k, v in sets.items()}
        third.append((sum(settled.values()), (margin, sentence_dense, evidence), settled))
    for _, weights, settled in sorted(third, key=lambda r: -r[0])[:12]:
        print(weights, {k: f"{v:.3f}" for k, v in settled.items()})


if __name__ == "__main__":
    main()
