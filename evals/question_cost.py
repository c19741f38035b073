"""CPU seconds one question costs, in a warm process: ordinary questions, 2,000-character questions, and
questions asked after a 40,000-character conversation (the budgets of rag/conversation.py and rag/engine.py).

    .venv/bin/python evals/question_cost.py --index index      # an index built from seeds/
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

import rag

ROOT = Path(__file__).resolve().parent.parent


def _cpu(engine: rag.Engine, question: str, history: list[dict[str, str]] | None = None) -> float:
    start = time.process_time()
    engine.ask(question, history=history)
    return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default="index")
    ap.add_argument("--questions", default=str(ROOT / "evals" / "seeds_qa.jsonl"))
    ap.add_argument("--n", type=int, default=8, help="long questions of each kind")
    args = ap.parse_args()
    engine = rag.Engine.open(args.index)
    rng = random.Random(0)
    ordinary = [json.loads(line)["question"] for line in Path(args.questions).read_text("utf-8").splitlines()]
    texts = [p.text for d in engine.documents() for p in engine.store.paragraphs if p.doc == d.doc]
    limit = engine.settings.max_question_chars

    def long_text(n: int) -> str:
        out = ""
        while len(out) < n:
            out += rng.choice(texts)
        return out[:n]

    engine.ask(ordinary[0])  # load jieba's dictionary and the model once, as a server has
    rows = {
        "ordinary": [_cpu(engine, q) for q in ordinary[:40]],
        f"{limit}-char question": [
            _cpu(engine, long_text(limit - 8) + "一共有多少家?") for _ in range(args.n)
        ],
        "40,000-char history": [
            _cpu(
                engine,
                "其中规模以上的有几家?",
                [
                    {"role": "user", "content": long_text(2000)},
                    {"role": "assistant", "content": long_text(2000)},
                ]
                * 10,
            )
            for _ in range(args.n)
        ],
    }
    print(f"CPU seconds per question ({args.index}, warm process)")
    print(f"{'kind':<24}{'n':>4}{'p50':>8}{'p95':>8}{'max':>8}")
    for kind, values in rows.items():
        v = np.array(values)
        print(f"{kind:<24}{len(v):>4}{np.median(v):>8.3f}{np.percentile(v, 95):>8.3f}{v.max():>8.3f}")


if __name__ == "__main__":
    main()
