"""Can the embedder tell a question in everyday words from one the documents do not answer? For each seed
question of the colloquial set and each unanswerable one, the best cosine of the question with a sentence of
the five leading passages (the stored sentence vectors, as the refusal reads them), the lead over the second,
and where the sentence holding a gold answer ranks by that cosine.

    .venv/bin/python evals/colloquial_similarity.py          # builds the seeds index under evals/reports/tmp/
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag import Engine  # noqa: E402
from rag.text import normalize  # noqa: E402

SEEDS_QA = ROOT / "evals" / "seeds_qa.jsonl"
INDEX = ROOT / "evals" / "reports" / "tmp" / "colloquial-index"
PASSAGES = 5  # the leading passages whose sentences are compared


def main() -> None:
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
