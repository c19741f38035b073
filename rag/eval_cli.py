"""`rag eval`: run a question set (JSONL) or a SQuAD-format set through the engine and write reports.

rag eval evals/seeds_qa.jsonl --docs seeds [--out evals/reports] [--compare OLD.json] [--write-floors F]
rag eval --squad /work/shared/data/cmrc2018_dev.json [--cross-script] [--limit 300] [--negatives]
rag eval evals/field.jsonl --data index --collection zuoquan   (a collection's questions, e.g. its feedback)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.config import Settings
from rag.errors import RagError
from rag.eval_calibration import (
    coverage_at_precision,
    expected_calibration_error,
    precision_coverage,
    reliability_bins,
)
from rag.evaluation import (
    ARTICLE_REMOVED,
    CONFIDENCES,
    MRR_DEPTH,
    Outcome,
    QAItem,
    Retrieved,
    calibration_pool,
    compare,
    first_hit_rank,
    floors_from_metrics,
    given_short,
    item_from_dict,
    item_kind,
    outcome_ok,
    short_scores,
    summarise_by_type,
)

if TYPE_CHECKING:
    from rag.engine import Engine

DEFAULT_OUT = "evals/reports"
DEFAULT_CACHE = ".cache/embeddings"
DEFAULT_DATA = "index"  # the data folder of --collection, as for rag serve and rag collections
DEFAULT_FOLDS = 2  # --negatives: half the articles indexed, the other half's questions asked
REPORTED_PRECISIONS = (0.8, 0.9, 0.95)  # the issue states short answers at 0.9 precision; either side of it
CURVE_POINTS = 101  # precision-coverage points kept in the JSON report (the whole curve can be thousands)
FLOORS_NOTE = (
    "Each floor is the figure measured by `command` minus 0.01 (a ceiling: plus 0.01), checked by "
    "tests/test_quality_gate.py in `make test`. Lowering a floor or raising a ceiling needs a CHANGELOG "
    "line saying why."
)


class CollectionInDataFolder(argparse.Action):
    """--collection NAME: the data folder is --index DIR, or DEFAULT_DATA when none is given (rag eval's
    --index has no default: without one, --docs builds into a temporary folder)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        if getattr(namespace, "index", None) is None:
            namespace.index = DEFAULT_DATA


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
    p.add_argument(
        "--index",
        "--data",
        dest="index",
        metavar="DIR",
        help="index folder to open (or to build into with --docs); with --collection, the data folder",
    )
    # rag.cli.main turns --collection into the collection's folder under --index, as for the other commands
    p.add_argument(
        "--collection",
        action=CollectionInDataFolder,
        help=f"a collection in the data folder --index DIR (default DIR: {DEFAULT_DATA}; rag collections)",
    )
    p.add_argument("--docs", nargs="+", metavar="PATH", help="documents to index before asking")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"report folder (default {DEFAULT_OUT})")
    p.add_argument("--compare", metavar="OLD.json", help="show the change against an earlier JSON report")
    p.add_argument("--answerer", choices=["extractive", "llm"], help="answerer passed to engine.ask")
    p.add_argument("--fusion", choices=["hybrid", "bm25", "dense"], help="retrieval mode (default: hybrid)")
    p.add_argument(
        "--embed-cache", default=DEFAULT_CACHE, metavar="DIR", help="passage-vector cache ('' = off)"
    )
    p.add_argument(
        "--negatives",
        action="store_true",
        help="with --squad: index all but one fold of the articles and ask the held-out fold's questions too "
        "(article-removed: each should be refused); --limit applies to each side",
    )
    p.add_argument(
        "--folds",
        type=int,
        default=DEFAULT_FOLDS,
        help=f"article folds for --negatives (default {DEFAULT_FOLDS})",
    )
    p.add_argument(
        "--write-floors",
        metavar="PATH",
        help="write quality floors (each figure minus 0.01) from this run, e.g. evals/quality_floors.json",
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


def _optional_float(answer: Any, name: str) -> float | None:
    value = getattr(answer, name, None)
    return float(value) if isinstance(value, int | float) else None


def _candidate_texts(answer: Any) -> tuple[str, ...] | None:
    """The answer's candidate spans as strings (a span object's `.text`); None when it has none."""
    found = getattr(answer, "candidates", None)
    if not isinstance(found, list | tuple):
        return None
    return tuple(c if isinstance(c, str) else str(getattr(c, "text", c)) for c in found)


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
        short=getattr(answer, "short", None),
        confidence=_optional_float(answer, "confidence"),
        short_confidence=_optional_float(answer, "short_confidence"),
        candidates=_candidate_texts(answer),
        stated=getattr(answer, "short_stated", None),
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
        em, f1 = short_scores(o)
        kind = item_kind(o.item)
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
                "short": given_short(o),
                "short_em": em,
                "short_f1": round(f1, 4),
                "kind": kind.value if kind else None,
                "confidence": o.confidence,
                "short_confidence": o.short_confidence,
                "stated": o.stated,
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
    calibration = calibration_report(outcomes)
    if calibration:
        extra["calibration"] = calibration
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


def _thinned(points: Sequence[Any], keep: int) -> list[Any]:
    if len(points) <= keep:
        return list(points)
    return [points[round(i * (len(points) - 1) / (keep - 1))] for i in range(keep)]


def calibration_report(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Per confidence the answerer gives: reliability bins, ECE and the precision-coverage curve over
    answerable and unanswerable questions weighted 1:1 (empty when there is nothing to calibrate)."""
    out: dict[str, Any] = {}
    for which in CONFIDENCES:
        pool = calibration_pool(outcomes, which)
        if pool is None:
            continue
        curve = precision_coverage(pool.confidences, pool.labels, pool.weights)
        out[which] = {
            "answerable": pool.answerable,
            "unanswerable": pool.unanswerable,
            "ece": expected_calibration_error(pool.confidences, pool.labels, pool.weights),
            "bins": [
                dataclasses.asdict(b) for b in reliability_bins(pool.confidences, pool.labels, pool.weights)
            ],
            "coverage_at_precision": {str(p): coverage_at_precision(curve, p) for p in REPORTED_PRECISIONS},
            "curve": [dataclasses.asdict(p) for p in _thinned(curve, CURVE_POINTS)],
        }
    return out


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
    if args.negatives and not args.squad:
        print(
            "rag eval: --negatives needs --squad PATH (a JSONL set marks its own unanswerable questions)",
            file=sys.stderr,
        )
        return 2
    if args.folds < 2:
        print("rag eval: --folds must be at least 2 (one held out, the rest indexed)", file=sys.stderr)
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
    from rag.squad import article_folds, cross_script_items, load_squad, spread

    data = load_squad(args.squad)
    stem = Path(args.squad).stem
    if args.negatives:
        held_out, texts = article_folds(data, args.folds)
        index_dir = args.index or f".cache/index-{stem}-without-1of{args.folds}"
        engine, extra = squad_engine(index_dir, settings, texts)
        asked = [i for i in data.items if i.doc in texts]
        removed = [i for i in data.items if i.doc in held_out]
        items = spread(asked, args.limit) + negative_items(spread(removed, args.limit))
        extra.update(folds=args.folds, held_out_articles=len(held_out))
    else:
        texts = data.texts
        engine, extra = squad_engine(args.index or f".cache/index-{stem}", settings, texts)
        items = spread(data.items, args.limit)
    if args.cross_script:
        items = cross_script_items(items, data.script)
    outcomes = run_items(engine, items, args.answerer, progress=not args.no_progress)
    name = args.name or stem + ("-cross-script" if args.cross_script else "") + (
        f"-{args.fusion}" if args.fusion else ""
    ) + ("-negatives" if args.negatives else "")
    extra.update(index_paragraphs=sum(len(p) for p in texts.values()), script=data.script)
    report = build_report(
        name, args.squad, outcomes, settings, answerer=args.answerer or settings.answerer, **extra
    )
    return without_text(report)


def negative_items(items: Sequence[QAItem]) -> list[QAItem]:
    """The same questions as article-removed negatives: no answer or evidence, each should be refused."""
    return [
        dataclasses.replace(
            i, id=f"{i.id}-removed", type=ARTICLE_REMOVED, answers=(), evidence=(), paragraph=0
        )
        for i in items
    ]


def without_text(report: dict[str, Any]) -> dict[str, Any]:
    """The external sets' text stays in the shared data folder: their reports keep ids, ranks and outcomes."""
    for row in report["questions"]:
        for key in ("question", "expected", "answer", "history", "top", "cited", "short"):
            if key in row:
                row[key] = "" if isinstance(row[key], str) else [] if isinstance(row[key], list) else None
    return report


def write_floors(path: str | Path, report: dict[str, Any], command: str) -> Path:
    """The quality floors of this run (rag.evaluation.GATED), with the command that measured them."""
    floors = {
        "note": FLOORS_NOTE,
        "command": command,
        "measured_on": report["created"],
        "floors": floors_from_metrics(report["metrics"]),
    }
    out = Path(path)
    out.write_text(json.dumps(floors, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return out


def finish(args: argparse.Namespace, report: dict[str, Any], out: Callable[[str], None] = print) -> int:
    from rag.eval_report import calibration_lines, comparison_lines, short_table, text_table, write_reports

    if args.compare:
        with open(args.compare, encoding="utf-8") as f:
            old = json.load(f)
        report["compare_with"] = args.compare
        report["compare"] = compare(report["metrics"]["all"], old["metrics"]["all"])
    paths = write_reports(report, args.out, report["name"])
    out(text_table(report["metrics"]))
    if any(m.get("short_f1") is not None for m in report["metrics"].values()):
        out("\nshort answers (CMRC 2018 metric; refusals and None count 0):")
        out(short_table(report["metrics"]))
    for line in calibration_lines(report.get("calibration", {})):
        out(line)
    if getattr(args, "write_floors", None):
        command = "rag " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        paths["floors"] = write_floors(args.write_floors, report, command)
    if report.get("compare"):
        out(f"\nchange against {args.compare}:")
        for line in comparison_lines(report["compare"]):
            out("  " + line)
    out("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return 0
