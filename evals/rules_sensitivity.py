"""How much each hand-set number of the extractive answerer's window rules (rag/answer.py) matters: each one is
lowered and raised in turn, the rest kept, and the same questions are asked again end to end (the fitted span,
sentence and refusal models downstream are not refitted). A number on a plateau (small changes either way)
is safe to leave by hand; one where a small change moves a figure a lot is fitted to the sets it was set on.

    .venv/bin/python evals/rules_sensitivity.py                 # seeds + 300 CMRC 2018 + 300 DRCD (+ negatives)
    .venv/bin/python evals/rules_sensitivity.py --limit 100 --only MIN_COVERAGE,RANK_COST

The seed set is asked of the seeds index; each dev set of the index `rag eval --squad … --negatives` builds
(half of its articles, under .cache/), with --limit questions whose article is indexed and --limit whose
article is not (article-removed: each should be refused). Figures per set: answer accuracy of the answerable
questions, precision of the answers given (share holding a gold answer), false refusals, refusals of the
unanswerable or article-removed questions, short-answer EM; for the seeds also the colloquial set's accuracy.
Writes evals/reports/rules_sensitivity.json and .md. About 25 minutes on 2 cores at the default limit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rag.answer as rules  # noqa: E402
from rag import Engine, Settings  # noqa: E402
from rag.eval_cli import DEFAULT_CACHE, DEFAULT_FOLDS, load_items, negative_items, run_items, squad_engine  # noqa: E402
from rag.evaluation import Outcome, QAItem, answer_correct, summarise  # noqa: E402
from rag.squad import article_folds, load_squad, spread  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SETS = {"cmrc2018": DATA / "cmrc2018_dev.json", "drcd": DATA / "DRCD_dev.json"}
SEEDS_QA = ROOT / "evals" / "seeds_qa.jsonl"
OUT = ROOT / "evals" / "reports"
SEEDS_INDEX = OUT / "tmp" / "rules-seeds"
# Each number is tried at these multiples of its value (integers one step either way): far enough to move
# something if the number matters, near enough that the rule still means what it says.
LOWER, HIGHER = 0.5, 1.5
INTEGER_STEP = 1

RULE_NUMBERS = (
    "PASSAGES_READ",
    "MIN_COVERAGE",
    "STRICT_COVERAGE",
    "PAIR_CREDIT",
    "SPREAD_EXPONENT",
    "SUBJECT_SHARE",
    "TOPIC_SHARE",
    "TOPIC_REACH",
    "TOPIC_MIN_SENTENCES",
    "WINDOW_CLAUSES",
    "HELD_GAIN",
    "SENTENCE_GAIN",
    "CLAUSE_COST",
    "RANK_COST",
    "ASKING_COST",
    "ASKING_GAIN",
    "NUMBER_MISSING",
    "MEASURE_FIT",
    "NUMBER_PRESENT",
    "DATE_FIT",
    "DATE_MISSING",
    "PERSON_FIT",
    "RUNNER_GAP",
)


def trial_values(value: float) -> list[float]:
    """The values a number is tried at besides its own."""
    if isinstance(value, int):
        return [value - INTEGER_STEP, value + INTEGER_STEP]
    return [round(value * LOWER, 4), round(value * HIGHER, 4)]


def figures(outcomes: Sequence[Outcome]) -> dict[str, float | None]:
    """What a setting is judged by, over one set's outcomes."""
    m = summarise(outcomes)
    given = [o for o in outcomes if not o.item.unanswerable and o.found and o.item.answers]
    right = sum(answer_correct(o.item, o.answer, o.found) for o in given)
    out: dict[str, float | None] = {
        "accuracy": m.answer_accuracy,
        "precision": round(right / len(given), 4) if given else None,
        "false_refusal": m.false_refusal_rate,
        "refused": m.refusal_recall,
        "short_em": m.short_em,
    }
    colloquial = [o for o in outcomes if o.item.set == "colloquial"]
    if colloquial:
        out["colloquial"] = summarise(colloquial).answer_accuracy
    return {k: round(v, 4) if v is not None else None for k, v in out.items()}


def squad_set(name: str, limit: int, settings: Settings) -> tuple[Engine, list[QAItem]]:
    """The engine over half of a dev set's articles and its questions: indexed and article-removed."""
    data = load_squad(SETS[name])
    held_out, texts = article_folds(data, DEFAULT_FOLDS)
    stem = SETS[name].stem
    engine, _ = squad_engine(
        str(ROOT / ".cache" / f"index-{stem}-without-1of{DEFAULT_FOLDS}"), settings, texts
    )
    asked = [i for i in data.items if i.doc in texts]
    removed = [i for i in data.items if i.doc in held_out]
    return engine, spread(asked, limit) + negative_items(spread(removed, limit))


def sweep(
    sets: dict[str, tuple[Engine, list[QAItem]]], names: Sequence[str], log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """The baseline row, then one row per number and trial value."""

    def run(label: str, value: float | None) -> dict[str, Any]:
        start = time.perf_counter()
        row: dict[str, Any] = {"number": label, "value": value}
        for set_name, (engine, items) in sets.items():
            row[set_name] = figures(run_items(engine, items, progress=False))
        log(f"{label}={value}: {json.dumps({k: row[k] for k in sets})} ({time.perf_counter() - start:.0f}s)")
        return row

    rows = [run("baseline", None)]
    for name in names:
        kept = getattr(rules, name)
        try:
            for value in trial_values(kept):
                setattr(rules, name, value)
                rows.append(run(name, value))
        finally:
            setattr(rules, name, kept)
    return rows


def markdown(rows: Sequence[dict[str, Any]], sets: Sequence[str], limit: int, command: str) -> str:
    """The sweep as a table: each figure with its change against the baseline."""
    base = rows[0]
    metrics = ("accuracy", "precision", "false_refusal", "refused", "short_em", "colloquial")
    head = ["number", "value"] + [f"{s} {m}" for s in sets for m in metrics if m in base[s]]
    asked = ", ".join(
        "the seed set" if s == "seeds" else f"{limit} answerable + {limit} article-removed {s} dev questions"
        for s in sets
    )
    lines = [
        "# Sensitivity of the window rules' hand-set numbers (rag/answer.py)",
        "",
        f"`.venv/bin/python {command}` — each number lowered and raised with the others kept, over"
        f" {asked} (half of each dev set's articles indexed). The fitted models are not refitted. Cells: the"
        " figure, and its change against the shipped values where it moved.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in rows:
        cells = [row["number"], "shipped" if row["value"] is None else str(row["value"])]
        for s in sets:
            for m in metrics:
                if m not in base[s]:
                    continue
                v, b = row[s].get(m), base[s][m]
                if v is None:
                    cells.append("–")
                elif row is base or b is None or abs(v - b) < 5e-4:
                    cells.append(f"{v:.3f}")
                else:
                    cells.append(f"{v:.3f} ({v - b:+.3f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=300, help="answerable (and as many removed) per dev set")
    parser.add_argument("--only", default="", help="comma-separated numbers to try (default: all)")
    parser.add_argument(
        "--sets", default="seeds,cmrc2018,drcd", help="comma-separated: seeds, cmrc2018, drcd"
    )
    parser.add_argument("--out", default=str(OUT), help="folder for rules_sensitivity.json and .md")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(RULE_NUMBERS)
    unknown = [n for n in names if not hasattr(rules, n)]
    if unknown:
        parser.error(f"not a number of rag/answer.py: {', '.join(unknown)}")
    settings = Settings.from_env(embed_cache_dir=str(ROOT / DEFAULT_CACHE))
    sets: dict[str, tuple[Engine, list[QAItem]]] = {}
    for set_name in args.sets.split(","):
        if set_name == "seeds":
            sets["seeds"] = (
                Engine.build([str(ROOT / "seeds")], SEEDS_INDEX, settings=settings),
                load_items(SEEDS_QA),
            )
        else:
            sets[set_name] = squad_set(set_name, args.limit, settings)

    def log(line: str) -> None:
        print(line, flush=True)

    rows = sweep(sets, names, log)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["evals/rules_sensitivity.py", *sys.argv[1:]]),
        "limit": args.limit,
        "rows": rows,
    }
    (out / "rules_sensitivity.json").write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n")
    (out / "rules_sensitivity.md").write_text(
        markdown(rows, list(sets), args.limit, report["command"]), encoding="utf-8"
    )
    print(f"wrote {out / 'rules_sensitivity.json'} and {out / 'rules_sensitivity.md'}")


if __name__ == "__main__":
    main()
