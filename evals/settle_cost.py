"""How often the third stage (close calls settled at sentence level) runs, and what it costs.

    .venv/bin/python evals/settle_cost.py --squad ../shared/data/DRCD_dev.json --limit 800
    .venv/bin/python evals/settle_cost.py --index /tmp/idx_seeds        # the seed question set

A SQuAD set uses the index `rag eval --squad` keeps in .cache/index-<set>/ (run that first). Prints the share
of questions settled, the time settling took (the first time a sentence is seen it is embedded; later it
comes from the cache) and retrieve latency.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.engine import Engine
from rag.eval_cli import load_items
from rag.squad import load_squad, spread

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--squad", help="a SQuAD-format set; default: evals/seeds_qa.jsonl over --index")
    ap.add_argument("--index", default="index")
    ap.add_argument("--limit", type=int, default=800)
    args = ap.parse_args()
    if args.squad:
        name = Path(args.squad).stem
        settings = Settings.from_env().with_(index_dir=str(ROOT / ".cache" / f"index-{name}"))
        engine = Engine.open(settings.index_dir, settings=settings)
        questions = [i.question for i in spread(load_squad(args.squad).items, args.limit)]
    else:
        name = "seeds_qa"
        engine = Engine.open(args.index)
        questions = [i.question for i in load_items(ROOT / "evals" / "seeds_qa.jsonl")]

    settling: list[float] = []
    measure = engine.sentence_evidence

    def timed(*a: Any) -> tuple[np.ndarray, np.ndarray]:
        start = time.perf_counter()
        out = measure(*a)
        settling.append((time.perf_counter() - start) * 1000)
        return out

    engine.sentence_evidence = timed  # type: ignore[method-assign,assignment]
    retrieve = []
    for q in questions:
        start = time.perf_counter()
        engine.retrieve(q)
        retrieve.append((time.perf_counter() - start) * 1000)
    print(
        f"{name}: {len(questions)} questions, {len(settling)} settled ({len(settling) / len(questions):.1%})"
    )
    if settling:
        p50, p95, top = np.percentile(settling, [50, 95, 100])
        print(f"settling ms: p50 {p50:.0f}, p95 {p95:.0f}, max {top:.0f}")
    p50, p95 = np.percentile(retrieve, [50, 95])
    print(f"retrieve ms: p50 {p50:.1f}, p95 {p95:.1f}")


if __name__ == "__main__":
    main()
