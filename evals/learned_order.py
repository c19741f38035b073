"""How much a learned order of the leading passages would add to the three fitted ranking stages (not shipped):
held-out hit@1 on the passage cut of CMRC 2018 dev, DRCD dev and the seeds, as evals/fit_fusion.py scores it.

    .venv/bin/python evals/learned_order.py        # reuses fit_fusion's indexes and per-question scores

Each question's leading LEAD passages after the shipped stages (rag/weights.json "fusion", replayed with
evals/fit_fusion.py's Replay) are the rows; a row is positive when the passage holds a gold answer. Gradient-
boosted trees (the answer models' settings) are fitted with GroupKFold by article (5 folds) and each held-out
question's most probable row is its new first passage. Two feature sets are compared: what the stages weigh (the
settled and first-stage scores and their gaps to the lead, each retriever's z-score, the subject coverage, the
answer-kind fit, the three restatement shares, the closest sentence's cosine and the evidence strength, each
with its gap to the best of the lead, the lead's passages of the same document, the unknown-word share, the
question's length); then those and the fitted sentence model's best log-odds in each passage (rag/weights.json
"sentence", itself fitted on these sets, so that row flatters).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jieba  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "evals"))

import fit_fusion as ff  # noqa: E402

from rag.config import Settings  # noqa: E402
from rag.retrieval import FusionWeights, standardise, top_rows  # noqa: E402
from rag.scoring import load_weights, sentence_table  # noqa: E402

LEAD = 5  # passages reordered per question: the gold is among them for 97 % (CMRC) / 98.5 % (DRCD)
TREE_PARAMS = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15}
NO_SENTENCE = -10.0  # the log-odds of a passage without a sentence
WEIGHTS = load_weights()  # the shipped sentence model


def question_rows(replay: ff.Replay, qi: int, w: FusionWeights) -> tuple[np.ndarray, np.ndarray, int]:
    """The lead's feature rows (stage features, then the sentence model's), its labels, and the shipped
    stages' first-gold rank."""
    s = replay.scored[qi]
    engine = replay.engines[s.set]
    first = replay.fused(qi, w, 1)
    settled = replay.fused(qi, w, 3)
    lead = top_rows(settled, LEAD)
    restated = ff.restated(engine, s, qi, lead, replay.features)
    ff.sentence_features(engine, s, qi, lead, w.settle_sentences, replay.features)
    closest = np.array([replay.features.closest[(qi, i, w.settle_sentences)] for i in lead])
    strength = np.array([replay.features.strength[(qi, i)] for i in lead])
    z_lex = standardise(s.lexical, w.pool)[lead] if s.lexical.any() else np.zeros(len(lead))
    z_dense = standardise(s.dense, w.pool, w.dense_floor)[lead]
    kind = s.kind_fits[lead].astype(float) if s.kind_fits is not None else np.full(len(lead), np.nan)
    docs = [engine.store.rows[i].paragraph.doc for i in lead]
    siblings = np.array([docs.count(d) - 1 for d in docs], dtype=float)
    best = []
    for i in lead:
        p = engine.store.rows[i].paragraph
        cosines = dict(engine._sentence_cosines(p.doc, p.paragraph, s.vector))
        table = sentence_table(s.query, [(p.text, float(settled[i]))], [cosines])
        logits = np.sort(WEIGHTS.sentence.logits(table.features))[::-1] if table.views else np.array([])
        top = float(logits[0]) if len(logits) else NO_SENTENCE
        best.append((top, top - (float(logits[1]) if len(logits) > 1 else NO_SENTENCE)))
    sent = np.array(best)
    stage = np.column_stack(
        [
            settled[lead],
            settled[lead] - settled[lead[0]],
            np.arange(len(lead)),
            first[lead],
            first[lead] - first[lead].max(),
            z_lex,
            z_dense,
            z_lex - z_lex.max(),
            z_dense - z_dense.max(),
            s.subject[lead],
            kind,
            restated,
            restated - restated.max(axis=0),
            closest,
            closest - closest.max(),
            strength,
            strength - strength.max(),
            siblings,
            np.full(len(lead), s.unknown),
            np.full(len(lead), len(s.query.standalone)),
        ]
    )
    model = np.column_stack([sent[:, 0], sent[:, 0] - sent[:, 0].max(), sent[:, 1]])
    labels = np.array([int(i in s.gold) for i in lead])
    return np.hstack([stage, model]), labels, replay.rank(qi, settled)


def held_out_first(x: np.ndarray, y: np.ndarray, groups: np.ndarray, question: np.ndarray) -> np.ndarray:
    """Per question, whether its held-out most probable row is gold (5 folds by article)."""
    held = np.zeros(len(y))
    for fit_idx, test_idx in GroupKFold(5).split(x, y, groups):
        model = HistGradientBoostingClassifier(**TREE_PARAMS, random_state=0)
        held[test_idx] = model.fit(x[fit_idx], y[fit_idx]).predict_proba(x[test_idx])[:, 1]
    out = np.zeros(int(question.max()) + 1, dtype=bool)
    for q in np.unique(question):
        rows = np.flatnonzero(question == q)
        out[q] = y[rows[int(np.argmax(held[rows]))]] == 1  # a tie keeps the stages' order
    return out


def main() -> int:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    started = time.perf_counter()
    jieba.initialize()
    ff.WORK.mkdir(parents=True, exist_ok=True)
    settings = Settings().with_(embed_cache_dir=str(ff.ROOT / "evals/reports/tmp/bench-embed-cache"))
    settings = settings.with_(fusion="hybrid")
    items, engines = {}, {}
    for name in ff.SQUAD_SETS:
        texts, items[name] = ff.squad_items(name, 0, split=True)
        engines[name] = ff.engine_for(name, texts, settings, split=True)
    items["seeds"] = ff.seed_items()
    engines["seeds"] = ff.engine_for("seeds", None, settings)
    args = argparse.Namespace(limit=0, passages=True, rescore=False)
    # fit_fusion pickles its scores when run as a script, so they name its classes as __main__'s
    sys.modules["__main__"].Scored = ff.Scored  # type: ignore[attr-defined]
    replay = ff.Replay(engines, ff.cached_scores(args, engines, items))
    shipped = FusionWeights.shipped()
    xs, ys, groups, question, ranks = [], [], [], [], []
    for qi, s in enumerate(replay.scored):
        x, y, rank = question_rows(replay, qi, shipped)
        xs.append(x)
        ys.append(y)
        groups += [s.group] * len(y)
        question += [qi] * len(y)
        ranks.append(rank)
    x, y = np.vstack(xs), np.concatenate(ys)
    g, q = np.array(groups), np.array(question)
    sets = np.array([s.set for s in replay.scored])
    stages_only = x.shape[1] - 3
    print(f"{len(sets)} questions, {len(y)} rows ({time.perf_counter() - started:.0f} s)")
    print(
        f"{'set':9s} {'n':>5s} {'gold in lead':>12s} {'stages':>7s} {'learned':>8s} {'+sentence model':>16s}"
    )
    learned = held_out_first(x[:, :stages_only], y, g, q)
    with_model = held_out_first(x, y, g, q)
    ranks_a = np.array(ranks)
    for name in ff.SET_NAMES:
        m = sets == name
        in_lead = np.array([y[q == i].any() for i in np.flatnonzero(m)])
        print(
            f"{name:9s} {int(m.sum()):5d} {in_lead.mean():12.4f} {np.mean(ranks_a[m] == 1):7.4f}"
            f" {learned[m].mean():8.4f} {with_model[m].mean():16.4f}"
        )
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
