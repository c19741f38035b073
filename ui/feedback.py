"""Feedback on answers and a per-request log, appended as JSONL inside each collection's folder, and the
export of marked questions as an eval question set (evals/README.md), so field failures become test questions.

    <collection>/feedback.jsonl   one line per answer marked wrong: the question, the answer given, the
                                  correct answer when the user gave one, the cited paragraphs
    <collection>/requests.jsonl   one line per question answered: time, collection, latency, found,
                                  confidence; the question text only when RAG_LOG_QUESTIONS is on

Neither file is part of the index format (the store reads only CURRENT and the version folders).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.types import Answer

FEEDBACK_FILE = "feedback.jsonl"
REQUEST_LOG_FILE = "requests.jsonl"
LOG_QUESTIONS_VARIABLE = "RAG_LOG_QUESTIONS"
MAX_FEEDBACK_FIELD_CHARS = 4000  # a question is at most 2,000 characters; an answer or comment rarely more
FEEDBACK_TYPE = "feedback"  # the eval `type` of an exported question with a correct answer
UNLABELLED_TYPE = "feedback-unlabelled"  # marked wrong with no correct answer: fill `answers` before use


def log_questions_from(environ: Mapping[str, str]) -> bool:
    """Whether the request log keeps question texts (RAG_LOG_QUESTIONS=1/true/yes/on); off by default, as
    questions may hold personal data."""
    return environ.get(LOG_QUESTIONS_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Feedback:
    """One answer marked wrong."""

    collection: str
    question: str
    answer: str = ""
    correct_answer: str = ""
    comment: str = ""
    history: tuple[str, ...] = ()  # the earlier user questions of the conversation (a follow-up)
    request_id: str = ""  # the id the API gave the answer, when known
    cited: tuple[str, ...] = ()  # "doc ¶n" of each citation of the answer


class JsonlLog:
    """Appends JSON lines to one file per collection folder; one lock for all files of a process, and each
    record written with a single write() to a file opened for appending."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def append(self, path: Path, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock, open(path, "a", encoding="utf-8") as f:
            f.write(line)


class Journal:
    """Feedback and the request log of every collection of a server."""

    def __init__(self, log_questions: bool = False) -> None:
        self.log_questions = log_questions
        self._log = JsonlLog()

    def request(
        self,
        folder: Path,
        *,
        collection: str,
        endpoint: str,
        request_id: str,
        seconds: float,
        answer: Answer | None = None,
        question: str = "",
        passages: int | None = None,
        error: str = "",
    ) -> None:
        """Log one request: never its question unless log_questions is on."""
        record: dict[str, Any] = {
            "time": _now(),
            "id": request_id,
            "collection": collection,
            "endpoint": endpoint,
            "latency_ms": round(seconds * 1000, 1),
        }
        if answer is not None:
            record["found"] = answer.found
            record["confidence"] = round(answer.confidence, 4)
            record["short_confidence"] = round(answer.short_confidence, 4)
            record["citations"] = len(answer.citations)
        if passages is not None:
            record["passages"] = passages
        if error:
            record["error"] = error
        if self.log_questions and question:
            record["question"] = question
        self._log.append(folder / REQUEST_LOG_FILE, record)

    def feedback(self, folder: Path, item: Feedback) -> dict[str, Any]:
        """Append one feedback record; returns it as written."""
        record = {
            "time": _now(),
            "id": item.request_id,
            "collection": item.collection,
            "question": item.question[:MAX_FEEDBACK_FIELD_CHARS],
            "answer": item.answer[:MAX_FEEDBACK_FIELD_CHARS],
            "correct_answer": item.correct_answer[:MAX_FEEDBACK_FIELD_CHARS],
            "comment": item.comment[:MAX_FEEDBACK_FIELD_CHARS],
            "history": [h[:MAX_FEEDBACK_FIELD_CHARS] for h in item.history],
            "cited": list(item.cited),
        }
        self._log.append(folder / FEEDBACK_FILE, record)
        return record


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSONL log; a line that is not a JSON object (a torn last line) is skipped."""
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def as_eval_questions(records: Iterable[Mapping[str, Any]], prefix: str = "fb") -> list[dict[str, Any]]:
    """Feedback records as eval question-set items (evals/README.md): the correct answer, when given, is the
    expected answer; one without a correct answer is typed UNLABELLED_TYPE, to be filled in before use.
    A question marked wrong more than once is exported once, with every correct answer given for it."""
    merged: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    for record in records:
        question = str(record.get("question", "")).strip()
        if not question:
            continue
        history = tuple(str(h) for h in record.get("history", []) if str(h).strip())
        item = merged.setdefault(
            (question, history),
            {
                "id": f"{prefix}-{len(merged) + 1:03d}",
                "question": question,
                "answers": [],
                "doc": "*",
                "evidence": "",
                "type": UNLABELLED_TYPE,
                "set": f"feedback:{record.get('collection', '')}",
            },
        )
        if history:
            item["history"] = list(history)
        correct = str(record.get("correct_answer", "")).strip()
        if correct and correct not in item["answers"]:
            item["answers"].append(correct)
            item["type"] = FEEDBACK_TYPE
    return list(merged.values())


def export_feedback(folder: Path, out: Path | None, prefix: str = "fb") -> list[dict[str, Any]]:
    """Write a collection's feedback as a question set (JSONL) to out, or to stdout when out is None."""
    items = as_eval_questions(read_jsonl(folder / FEEDBACK_FILE), prefix)
    text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text, encoding="utf-8")
    return items


# ---------------------------------------------------------------- command line: rag feedback export


def cmd_feedback_export(args: argparse.Namespace) -> int:
    from rag.collections import DEFAULT, collection_dir, is_index
    from rag.errors import UnknownCollectionError

    name = args.feedback_collection or DEFAULT
    folder = collection_dir(args.index, name)
    if not is_index(folder):
        raise UnknownCollectionError(f"no collection {name!r} in {args.index}/; see rag collections list")
    out = Path(args.out) if args.out else None
    items = export_feedback(folder, out, prefix=args.prefix)
    unlabelled = sum(1 for i in items if i["type"] == UNLABELLED_TYPE)
    where = args.out or "stdout"
    print(
        f"exported {len(items)} questions from {folder / FEEDBACK_FILE} to {where}"
        + (
            f"; {unlabelled} have no correct answer yet (type {UNLABELLED_TYPE}): fill in 'answers'"
            if unlabelled
            else ""
        ),
        file=sys.stderr,
    )
    return 0


def add_commands(sub: Any) -> None:
    """`rag feedback export [--index DIR] [--collection NAME] [--out FILE]` on the rag parser's subparsers."""
    feedback = sub.add_parser("feedback", help="answers marked wrong in the chat or the API")
    actions = feedback.add_subparsers(dest="feedback_command", required=True)
    p = actions.add_parser("export", help="write the marked questions as an eval question set (JSONL)")
    p.add_argument(
        "--index", "--data", dest="index", default="index", metavar="DIR", help="data folder (default: index)"
    )
    # its own dest: rag.cli.main turns a plain --collection into the collection's folder
    p.add_argument("--collection", dest="feedback_collection", help="collection name (default: default)")
    p.add_argument("--out", default=None, metavar="FILE", help="output file (default: stdout)")
    p.add_argument("--prefix", default="fb", help="prefix of the exported question ids (default: fb)")
    p.set_defaults(func=cmd_feedback_export)


def cited_of(answer_citations: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """'doc ¶n' for each citation given as JSON (what an API client sends back with its feedback)."""
    return tuple(
        f"{c.get('doc', '')} ¶{c.get('paragraph', '')}" for c in answer_citations if isinstance(c, Mapping)
    )


def cited_of_answer(answer: Answer) -> tuple[str, ...]:
    """'doc ¶n' for each citation of an answer: what POST /api/feedback records from the same answer's JSON."""
    return cited_of([{"doc": c.doc, "paragraph": c.paragraph} for c in answer.citations])
