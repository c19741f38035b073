"""A benchmark corpus of ~7,000 news-sized passages from the CMRC 2018 and DRCD dev sets, and dev questions
to ask of it (evals/retrieve_speed.py).

    .venv/bin/python evals/bench_corpus.py [--out evals/reports/tmp/bench-corpus] [--questions 300]

Each article becomes one .txt document whose paragraphs (blank-line separated) are its contexts cut at
sentence ends into passages of about a news paragraph's length; the questions are spread evenly over both
sets. Written under evals/reports/tmp/ (git-ignored): the sets' text is never committed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.squad import load_squad, spread  # noqa: E402
from rag.text import sentences  # noqa: E402

DATA = Path("/work/shared/data")
SETS = ("cmrc2018_dev.json", "DRCD_dev.json")
OUT = ROOT / "evals" / "reports" / "tmp" / "bench-corpus"
# Sentences are gathered into a passage while it stays within this many characters: the 1,848 contexts of the
# two dev sets (880,662 characters) then make 6,955 passages, ~127 characters each, a news paragraph's length
# (rag/documents.py reads them as 6,947 paragraphs).
PASSAGE_CHARS = 165
QUESTIONS = 300  # asked by retrieve_speed.py; enough for a stable p95 (15 questions above it)


def passages(context: str, limit: int = PASSAGE_CHARS) -> list[str]:
    """A context cut at sentence ends into passages of at most limit characters (a longer sentence alone)."""
    out: list[str] = []
    current = ""
    for start, end in sentences(context) or [(0, len(context))]:
        piece = context[start:end].strip()
        if current and len(current) + len(piece) > limit:
            out.append(current)
            current = ""
        current += piece
    if current:
        out.append(current)
    return out


def write_corpus(out: Path, questions: int, data: Path = DATA) -> tuple[int, int, int]:
    """Write the documents and questions.json under out (replacing them); returns (documents, passages,
    questions)."""
    docs = out / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for old in docs.glob("*.txt"):
        old.unlink()
    asked: list[str] = []
    n_docs = n_passages = 0
    for name in SETS:
        squad = load_squad(data / name)
        stem = name.split("_")[0].lower()
        for doc, contexts in squad.texts.items():
            cut = [p for c in contexts for p in passages(c)]
            (docs / f"{stem}-{doc}").write_text("\n\n".join(cut) + "\n", "utf-8")
            n_docs += 1
            n_passages += len(cut)
        asked += [item.question for item in spread(squad.items, questions // len(SETS))]
    (out / "questions.json").write_text(json.dumps(asked, ensure_ascii=False, indent=0), "utf-8")
    return n_docs, n_passages, len(asked)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--questions", type=int, default=QUESTIONS)
    args = ap.parse_args()
    n_docs, n_passages, n_questions = write_corpus(args.out, args.questions)
    print(f"{n_docs} documents, {n_passages} passages, {n_questions} questions in {args.out}/")


if __name__ == "__main__":
    main()
