"""Can the embedder tell a question in everyday words from one the documents do not answer? For each seed
question of the colloquial set and each unanswerable one, the best cosine of the question with a sentence of
the five leading passages (the stored sentence vectors, as the refusal reads them), the lead over the second,
and where the sentence holding a gold answer ranks by that cosine.

    .venv/bin/python evals/colloquial_similarity.py          # builds the seeds index under evals/reports/tmp/
    .venv/bin/python evals/colloquial_similarity.py --words  # the same questions word by word

--words: for each question word the leading passage lacks (figures and subjects aside), the passage's word
(jieba, two characters or more) whose vector is closest to it, with its cosine and its lead over the next:
can the embedder map everyday words onto the document's (厕所 → 公厕) without mapping the words of an
unanswerable question onto something (县长 → 全县) just as closely? For the colloquial set, whether that
word lies in the sentence that holds the answer.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag import Engine  # noqa: E402
from rag.embedding import Embedder, load_embedder  # noqa: E402
from rag.text import normalize, segmented  # noqa: E402

SEEDS_QA = ROOT / "evals" / "seeds_qa.jsonl"
INDEX = ROOT / "evals" / "reports" / "tmp" / "colloquial-index"
PASSAGES = 5  # the leading passages whose sentences are compared


def groups() -> list[tuple[str, dict]]:
    """The colloquial and unanswerable seed questions (follow-ups left out), each with its group."""
    out = []
    for line in SEEDS_QA.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        group = "colloquial" if item.get("set") == "colloquial" else item.get("type")
        if group in ("colloquial", "unanswerable") and not item.get("history"):
            out.append((group, item))
    return out


def words_report() -> None:
    """Word by word: the closest word of the leading passage to each question word it lacks."""
    engine = Engine.build([str(ROOT / "seeds")], index_dir=INDEX)._pinned()
    embedder: Embedder = load_embedder(engine.settings.embedder)

    @cache
    def word_vector(word: str) -> np.ndarray:
        return embedder.embed_documents([word])[0]

    cosines: dict[str, list[float]] = {"colloquial": [], "unanswerable": []}
    in_evidence = lacking = 0
    for group, item in groups():
        question = engine._analyse(item["question"], None)
        passage = engine._passages(question, 1)[0]
        norm = normalize(passage.text)
        words = sorted({w for w in segmented(norm) if len(w) >= 2 and not any(c.isdigit() for c in w)})
        matrix = np.array([word_vector(w) for w in words])
        shown = []
        for k in question.keywords_in_order:
            if k in norm or k.isdigit() or any(k in e for e in question.entities):
                continue
            sims = matrix @ embedder.embed_query(k)
            order = np.argsort(-sims)
            best, lead = words[order[0]], float(sims[order[0]] - sims[order[1]]) if len(order) > 1 else 0.0
            cosines[group].append(float(sims[order[0]]))
            if group == "colloquial":
                lacking += 1
                in_evidence += best in normalize(item.get("evidence", ""))
            shown.append(f"{k}→{best} {sims[order[0]]:.3f} (+{lead:.3f})")
        print(f"{item['id']:7s} {item['question']}  {'  '.join(shown)}")
    for group, values in cosines.items():
        if values:
            print(f"{group}: {len(values)} words lacking, closest cosine {min(values):.3f}–{max(values):.3f}")
    print(f"colloquial: the closest word lies in the answering sentence for {in_evidence} of {lacking} words")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", action="store_true", help="word by word instead of sentence by sentence")
    if parser.parse_args().words:
        words_report()
        return
    engine = Engine.build([str(ROOT / "seeds")], index_dir=INDEX)._pinned()
    best: dict[str, list[float]] = {"colloquial": [], "unanswerable": []}
    first = in_top3 = 0
    for line in SEEDS_QA.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        group = "colloquial" if item.get("set") == "colloquial" else item.get("type")
        if group not in best or item.get("history"):
            continue
        question = engine._analyse(item["question"], None)
        vector = engine._question_vector(question)
        scored = sorted(
            (
                (cos, p.text[a:b])
                for p in engine._passages(question, PASSAGES)
                for (a, b), cos in engine._sentence_cosines(p.doc, p.paragraph, vector)
            ),
            reverse=True,
        )
        golds = [normalize(g) for g in item.get("answers", [])]
        rank = next((k for k, (_, s) in enumerate(scored, 1) if any(g in normalize(s) for g in golds)), None)
        first += rank == 1
        in_top3 += rank is not None and rank <= 3
        best[group].append(scored[0][0])
        lead = scored[0][0] - scored[1][0] if len(scored) > 1 else 0.0
        print(
            f"{item['id']:7s} best {scored[0][0]:.3f} lead {lead:.3f} gold sentence rank {rank}  {item['question']}"
        )
    for group, values in best.items():
        print(f"{group}: {len(values)} questions, best cosine {min(values):.3f}–{max(values):.3f}")
    n = len(best["colloquial"])
    print(
        f"colloquial: the gold sentence is the closest for {first} of {n}, among the three closest for {in_top3}"
    )


if __name__ == "__main__":
    main()
