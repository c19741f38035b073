"""The quality gate: the seed question set, run by the real engine, must hold the recorded floors.

evals/quality_floors.json is written by `rag eval evals/seeds_qa.jsonl --docs seeds --write-floors
evals/quality_floors.json`: each floor is the measured figure minus 0.01 (a ceiling plus 0.01). Lowering one
needs a CHANGELOG line saying why.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from rag.eval_cli import load_items, run_items
from rag.evaluation import FLOOR_MARGIN, GATED, floor_violations, summarise_by_type

ROOT = Path(__file__).resolve().parent.parent
FLOORS = ROOT / "evals" / "quality_floors.json"
SEEDS_QA = ROOT / "evals" / "seeds_qa.jsonl"


def _floors() -> dict[str, Any]:
    return json.loads(FLOORS.read_text(encoding="utf-8"))


def test_floors_file_says_how_it_was_measured() -> None:
    recorded = _floors()
    assert recorded["command"].startswith("rag eval evals/seeds_qa.jsonl --docs seeds")
    assert "CHANGELOG" in recorded["note"]
    gated = {(f["group"], f["metric"]) for f in recorded["floors"]}
    for key in (
        "hit_at_1",
        "answer_accuracy",
        "citation_precision",
        "refusal_recall",
        "short_em",
        "short_f1",
    ):
        assert ("all", key) in gated
    assert ("all", "false_refusal_rate") in gated
    assert gated <= {(g, k) for g, keys in GATED.items() for k in keys}
    for f in recorded["floors"]:
        bound = "max" if GATED[f["group"]][f["metric"]] == "max" else "min"
        want = f["measured"] + FLOOR_MARGIN if bound == "max" else f["measured"] - FLOOR_MARGIN
        assert f[bound] == pytest.approx(min(1.0, max(0.0, want)), abs=1e-4), f


@pytest.mark.slow
def test_seed_set_holds_its_floors(seeds_engine: Any) -> None:
    """Every floor of evals/quality_floors.json holds on the seed set (the session's engine, no extra build)."""
    start, cpu = time.perf_counter(), time.process_time()
    outcomes = run_items(seeds_engine, load_items(SEEDS_QA), progress=False)
    metrics = {k: m.as_dict() for k, m in summarise_by_type(outcomes).items()}
    broken = floor_violations(metrics, _floors()["floors"])
    assert not broken, "\n".join(broken) + f"\nfailed questions: {metrics['all']['failures']}"
    wall, used = time.perf_counter() - start, time.process_time() - cpu
    print(f"quality gate: {len(outcomes)} questions in {wall:.1f} s ({used:.1f} s of CPU)")
