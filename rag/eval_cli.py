"""`rag eval`: run a question set (JSONL) or a SQuAD-format set through the engine and write reports.

rag eval evals/seeds_qa.jsonl --docs seeds [--out evals/reports] [--compare OLD.json]
rag eval --squad /work/shared/data/cmrc2018_dev.json [--cross-script] [--limit 300]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.config import Settings
from rag.errors import RagError
from rag.evaluation import (
    MRR_DEPTH,
    Outcome,
    QAItem,
    Retrieved,
    compare,
    first_hit_rank,
    item_from_dict,
    outcome_ok,
    summarise_by_type,
)

if TYPE_CHECKING:
    from rag.engine import Engine

DEFAULT_OUT = "evals/reports"
DEFAULT_CACHE = ".cache/embeddings"


def register(subparsers: Any) -> None:
    """Add the `eval` subcommand to the `rag` parser (called by rag/cli.py)."""
    p = subparsers.add_parser(
        "eval",
        help="measure retrieval and answers on a question set",
        description="Run a JSONL question set (or a SQuAD-format set with --squad) and write "
        "a terminal table, JSON, Markdown and a PNG chart.",
    )
    p.add_argument("file", nargs="?", help="question set, one JSON object a line (see evals/README.md)")
    p.add_argument(
        "--squad", metavar="PATH", help="a SQuAD-format JSON file (CMRC 2018, DRCD) instead of FILE"
    )
    p.add_argument("--cross-script", action="store_true", help="ask SQuAD questions in the other script")
    p.add_argument("--limit", type=int, default=0, help="ask at most N questions, spread over the set")
    p.add_argument("--index", metavar="DIR", help="index folder to open (or to build into with --docs)")
    p.add_argument("--docs", nargs="+", metavar="PATH", help="documents to index before asking")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"report folder (default {DEFAULT_OUT})")
    p.add_argument("--compare", metavar="OLD.json", help="show the change against an earlier JSON report")
    p.add_argument("--answerer", choices=["extractive", "llm"], help="answerer passed to engine.ask")
    p.add_argument("--fusion", choices=["hybrid", "bm25", "dense"], help="retrieval mode (default: hybrid)")
    p.add_argument(
        "--embed-cache", default=DEFAULT_CACHE, metavar="DIR", help="passage-vector cache ('' = off)"
    )
    p.add_argument("--name", help="report file name (default: from the question set)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def settings_for(args: argparse.Namespace) -> Settings:
    """Settings from the environment plus the command line; --fusion needs Settings.fusion."""
    changes: dict[str, Any] = {"embed_cache_dir": args.embed_cache}
    if args.fusion:
        if "fusion" not in {f.name for f in dataclasses.fields(Settings)}:
            raise RagError("--fusion needs Settings.fusion, which this version does not have")
        changes["fusion"] = args.fusion
    if args.index:
        changes["index_dir"] = args.index
    return Settings.from_env(**changes)


def load_items(path: str | Path) -> list[QAItem]:
    """Read a JSONL question set; blank lines and lines starting with # are skipped."""
    items: list[QAItem] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RagError(f"{path}, line {n}: not JSON ({exc.msg})") from exc
                try:
                    items.append(item_from_dict(obj, n))
                except ValueError as exc:
                    raise RagError(f"{path}: {exc}") from exc
    if not items:
        raise RagError(f"{path}: no questions in it")
    return items


def _retrieved(x: Any) -> Retrieved:
    return Retrieved(doc=x.doc, text=x.text, paragraph=x.paragraph, section=x.section, speaker=x.speaker)


def ask_one(engine: Engine, item: QAItem, answerer: str | None = None) -> Outcome:
    """Retrieve (top 10, for MRR@10) and answer one question, timing each call."""
    history = [{"role": "user", "content": h} for h in item.history] or None
    t0 = time.perf_counter()
    try:
        passages = engine.retrieve(item.question, k=MRR_DEPTH, history=history)
        t1 = time.perf_counter()
        answer = engine.ask(item.question, history=history, answerer=answerer)
        t2 = time.perf_counter()
    except RagError as exc:  # e.g. an over-long question: counts as a refusal
        return Outcome(item, answer=f"error: {exc}", found=False)
    return Outcome(
        item=item,
        retrieved=tuple(_retrieved(p) for p in passages),
        answer=answer.text,
        found=answer.found,
        cited=tuple(_retrieved(c) for c in answer.citations),
        verified=answer.verified,
        ask_seconds=t2 - t1,
        retrieve_seconds=t1 - t0,
    )


def run_items(
    engine: Engine, items: Sequence[QAItem], answerer: str | None = None, progress: bool = True
) -> list[Outcome]:
    from tqdm import tqdm

    return [
        ask_one(engine, item, answerer) for item in tqdm(items, desc="asking", unit="q", disable=not progress)
    ]


def question_rows(outcomes: Iterable[Outcome]) -> list[dict[str, Any]]:
    """One JSON row per question: what was expected, what came back, and whether it counts as right."""
    rows = []
    for o in outcomes:
        rows.append(
            {
                "id": o.item.id,
                "type": o.item.type,
                "question": o.item.question,
                "history": list(o.item.history),
                "expected": list(o.item.answers),
                "answer": o.answer,
                "found": o.found,
                "ok": outcome_ok(o),
                "rank": first_hit_rank(o.item, o.retrieved),
                "top": [f"{r.doc}#{r.paragraph}" for r in o.retrieved[:3]],
                "cited": [f"{c.doc}#{c.paragraph}" for c in o.cited],
                "verified": o.verified,
                "retrieve_ms": round(o.retrieve_seconds * 1000, 2),
                "ask_ms": round(o.ask_seconds * 1000, 2),
            }
        )
    return rows


def build_report(
    name: str, dataset: str, outcomes: Sequence[Outcome], settings: Settings, **extra: Any
) -> dict[str, Any]:
    metrics = {k: m.as_dict() for k, m in summarise_by_type(outcomes).items()}
    for m in metrics.values():
        m.pop("failures")
    return {
        "name": name,
        "dataset": dataset,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "embedder": settings.embedder,
        "fusion": getattr(settings, "fusion", "hybrid"),
        **extra,
        "metrics": metrics,
        "questions": question_rows(outcomes),
    }


def open_or_build(args: argparse.Namespace, settings: Settings, tmp: str) -> tuple[Engine, dict[str, Any]]:
    """--docs: build (into --index or a temporary folder); otherwise open --index."""
    from rag.engine import Engine

    if args.docs:
        index_dir = args.index or str(Path(tmp) / "index")
        t0 = time.perf_counter()
        engine = Engine.build(
            args.docs, index_dir=index_dir, settings=settings, progress=not args.no_progress
        )
        return engine, {"index": " ".join(args.docs), "build_seconds": round(time.perf_counter() - t0, 2)}
    return Engine.open(settings.index_dir, settings=settings), {"index": settings.index_dir}


def squad_engine(
    index_dir: str, settings: Settings, texts: dict[str, list[str]]
) -> tuple[Engine, dict[str, Any]]:
    """Index every paragraph of a SQuAD set (in-memory texts), reusing a matching index when there is one."""
    from rag.engine import Engine

    try:
        engine = Engine.open(index_dir, settings=settings)
        if {d.doc for d in engine.documents()} == set(texts):
            return engine, {"index": index_dir, "build_seconds": None}
    except RagError:
        pass
    t0 = time.perf_counter()
    engine = Engine.build_from_texts(texts, index_dir, settings)
    return engine, {"index": index_dir, "build_seconds": round(time.perf_counter() - t0, 2)}


def main(args: argparse.Namespace) -> int:
    """Entry point of `rag eval`; returns the exit status."""
    if bool(args.file) == bool(args.squad):
        print("rag eval: give a question file (FILE.jsonl) or --squad PATH, not both", file=sys.stderr)
        return 2
    try:
        settings = settings_for(args)
        with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
            report = run_squad(args, settings) if args.squad else run_file(args, settings, tmp)
    except RagError as exc:
        print(f"rag eval: {exc}", file=sys.stderr)
        return 1
    return finish(args, report)


def run_file(args: argparse.Namespace, settings: Settings, tmp: str) -> dict[str, Any]:
    items = load_items(args.file)
    engine, extra = open_or_build(args, settings, tmp)
    outcomes = run_items(engine, items, args.answerer, progress=not args.no_progress)
    name = args.name or Path(args.file).stem + (f"-{args.fusion}" if args.fusion else "")
    return build_report(
        name, args.file, outcomes, settings, answerer=args.answerer or settings.answerer, **extra
    )


def run_squad(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from rag.squad import cross_script_items, load_squad, spread

    data = load_squad(args.squad)
    stem = Path(args.squad).stem
    engine, extra = squad_engine(args.index or f".cache/index-{stem}", settings, data.texts)
    items = spread(data.items, args.limit)
    if args.cross_script:
        items = cross_script_items(items, data.script)
    outcomes = run_items(engine, items, args.answerer, progress=not args.no_progress)
    name = args.name or stem + ("-cross-script" if args.cross_script else "") + (
        f"-{args.fusion}" if args.fusion else ""
    )
    extra.update(index_paragraphs=sum(len(p) for p in data.texts.values()), script=data.script)
    report = build_report(
        name, args.squad, outcomes, settings, answerer=args.answerer or settings.answerer, **extra
    )
    return without_text(report)


def without_text(report: dict[str, Any]) -> dict[str, Any]:
    """The external sets' text stays in the shared data folder: their reports keep ids, ranks and outcomes."""
    for row in report["questions"]:
        for key in ("question", "expected", "answer", "history", "top", "cited"):
            if key in row:
                row[key] = "" if isinstance(row[key], str) else []
    return report


def finish(args: argparse.Namespace, report: dict[str, Any], out: Callable[[str], None] = print) -> int:
    from rag.eval_report import comparison_lines, text_table, write_reports

    if args.compare:
        with open(args.compare, encoding="utf-8") as f:
            old = json.load(f)
        report["compare_with"] = args.compare
        report["compare"] = compare(report["metrics"]["all"], old["metrics"]["all"])
    paths = write_reports(report, args.out, report["name"])
    out(text_table(report["metrics"]))
    if report.get("compare"):
        out(f"\nchange against {args.compare}:")
        for line in comparison_lines(report["compare"]):
            out("  " + line)
    out("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return 0
