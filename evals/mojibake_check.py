"""False refusals and mojibake detection of the document reader, over every CMRC and DRCD dev context.

    .venv/bin/python evals/mojibake_check.py                       # both sets, every context
    .venv/bin/python evals/mojibake_check.py --limit 200           # a quick look
    .venv/bin/python evals/mojibake_check.py --shares              # the word shares behind the thresholds

Each context is written into a temporary folder as its own file in the encodings its script is saved in
(CMRC, Simplified: GB18030 and UTF-8; DRCD, Traditional: Big5 where it can hold the text, and UTF-8) and
read back with `read_document`, the reader `rag build` uses. A refusal is a false refusal; a paragraph that
is not part of the context is a wrong decoding. Then every context is garbled the ways Chinese turns into
mojibake (each saved as a file that decodes cleanly) and the share the reader refuses is printed, with how
many of those the round trip (rag.documents.misreading_of) caught rather than the count of U+FFFD.
--shares prints instead the Chinese word shares that PROSE_WORD_SHARE and MISREAD_GAIN are set from.
Nothing of the sets' text is kept.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rag.documents import MISREADINGS, chinese_word_share, read_document
from rag.errors import DocumentError
from rag.squad import load_squad

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _lost_then_read_as_gbk(text: str, written: str) -> str:
    """锟斤拷: bytes in `written` decoded as UTF-8 (all Chinese lost to U+FFFD), saved as UTF-8, read as GBK."""
    return (
        text.encode(written).decode("utf-8", errors="replace").encode("utf-8").decode("gbk", errors="replace")
    )


def _misread(written: str, read_as: str, errors: str) -> Callable[[str], str]:
    """Text written in one encoding and decoded as another; undecodable bytes become U+FFFD ("replace") or
    are dropped ("ignore", as some editors do: no U+FFFD left for a simple check to see)."""
    return lambda text: text.encode(written).decode(read_as, errors=errors)


# name -> (garble the context's text, the encoding the garbled text is then saved in)
Garbling = tuple[Callable[[str], str], str]
GARBLINGS: dict[str, dict[str, Garbling]] = {
    "hans": {
        "UTF-8 read as GBK, saved UTF-8": (_misread("utf-8", "gbk", "replace"), "utf-8"),
        "UTF-8 read as GBK (bytes dropped), saved UTF-8": (_misread("utf-8", "gbk", "ignore"), "utf-8"),
        "UTF-8 read as GBK (bytes dropped), saved GB18030": (_misread("utf-8", "gbk", "ignore"), "gb18030"),
        "UTF-8 read as Big5, saved UTF-8": (_misread("utf-8", "big5", "replace"), "utf-8"),
        "UTF-8 read as Big5 (bytes dropped), saved UTF-8": (_misread("utf-8", "big5", "ignore"), "utf-8"),
        "GBK read as Big5, saved UTF-8": (_misread("gb18030", "big5", "replace"), "utf-8"),
        "GBK read as Big5 (bytes dropped), saved UTF-8": (_misread("gb18030", "big5", "ignore"), "utf-8"),
        "GBK lost as UTF-8, read as GBK (锟斤拷), saved UTF-8": (
            lambda t: _lost_then_read_as_gbk(t, "gb18030"),
            "utf-8",
        ),
    },
    "hant": {
        "UTF-8 read as GBK, saved UTF-8": (_misread("utf-8", "gbk", "replace"), "utf-8"),
        "UTF-8 read as GBK (bytes dropped), saved UTF-8": (_misread("utf-8", "gbk", "ignore"), "utf-8"),
        "UTF-8 read as Big5, saved UTF-8": (_misread("utf-8", "big5", "replace"), "utf-8"),
        "UTF-8 read as Big5 (bytes dropped), saved UTF-8": (_misread("utf-8", "big5", "ignore"), "utf-8"),
        "UTF-8 read as Big5 (bytes dropped), saved Big5": (_misread("utf-8", "big5", "ignore"), "big5"),
        "Big5 read as GBK, saved UTF-8": (_misread("big5", "gbk", "replace"), "utf-8"),
        "Big5 read as GBK (bytes dropped), saved UTF-8": (_misread("big5", "gbk", "ignore"), "utf-8"),
        "Big5 lost as UTF-8, read as GBK (锟斤拷), saved UTF-8": (
            lambda t: _lost_then_read_as_gbk(t, "big5"),
            "utf-8",
        ),
    },
}
# The encodings each script's documents are saved in.
CLEAN_ENCODINGS = {"hans": ("gb18030", "utf-8"), "hant": ("big5", "utf-8")}


def _read(folder: Path, text: str, codec: str) -> DocumentError | str | None:
    """The refusal, or "wrong" when a paragraph read is not part of the text, or "" when it was read right,
    for text saved in codec; None when codec cannot hold the text."""
    try:
        data = text.encode(codec)
    except UnicodeEncodeError:
        return None
    path = folder / "context.txt"
    path.write_bytes(data)
    try:
        paragraphs, _ = read_document(path)
    except DocumentError as exc:
        return exc
    finally:
        path.unlink()
    source = text.replace("\r\n", "\n").replace("\r", "\n")
    return "wrong" if any(p.text not in source for p in paragraphs) else ""


def _garbled(garble: Callable[[str], str], text: str) -> str | None:
    try:
        return garble(text)
    except UnicodeEncodeError:  # a Traditional context that Big5 cannot hold
        return None


def check(label: str, contexts: list[str], script: str, folder: Path) -> int:
    """Print false refusals and detection rates for one set; return the number of false refusals."""
    false_refusals = 0
    for codec in CLEAN_ENCODINGS[script]:
        start = time.perf_counter()
        results = [_read(folder, c, codec) for c in contexts]
        read = [r for r in results if r is not None]
        refused = sum(isinstance(r, DocumentError) for r in read)
        false_refusals += refused
        print(
            f"{label} as {codec}: {len(read)} contexts ({len(results) - len(read)} not encodable): "
            f"false refusals {refused}, wrong decodings {read.count('wrong')}"
            f"  ({time.perf_counter() - start:.1f} s)"
        )
    for name, (garble, codec) in GARBLINGS[script].items():
        start = time.perf_counter()
        garbled = [g for g in (_garbled(garble, c) for c in contexts) if g is not None]
        results = [_read(folder, g, codec) for g in garbled]
        read = [r for r in results if r is not None]
        caught = [r for r in read if isinstance(r, DocumentError)]
        by_round_trip = sum("reads as" in r.reason for r in caught)
        print(
            f"{label} garbled, {name}: detected {len(caught)}/{len(read)} "
            f"({len(caught) / max(1, len(read)):.1%}; {by_round_trip} by the round trip)"
            f"  ({time.perf_counter() - start:.1f} s)"
        )
    return false_refusals


def _best_undone(text: str) -> float:
    """The highest word share any misreading's undoing gives the text."""
    undone = (m.undo(text) for m in MISREADINGS)
    return max((chinese_word_share(u[0]) for u in undone if u is not None), default=0.0)


def shares(label: str, contexts: list[str], script: str) -> None:
    """Print the word shares of clean and garbled contexts and of their undoing (min, 1st percentile, max)."""

    def spread(values: list[float]) -> str:
        values = sorted(values)
        return f"min {values[0]:.2f}, 1st percentile {values[len(values) // 100]:.2f}, max {values[-1]:.2f}"

    print(f"{label} clean: word share {spread([chinese_word_share(c) for c in contexts])}")
    print(f"{label} clean, undone the best wrong way: {spread([_best_undone(c) for c in contexts])}")
    for name, (garble, _) in GARBLINGS[script].items():
        garbled = [g for g in (_garbled(garble, c) for c in contexts) if g is not None]
        print(f"{label} garbled, {name}: word share {spread([chinese_word_share(g) for g in garbled])}")
        print(f"{label} garbled, {name}, undone: {spread([_best_undone(g) for g in garbled])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cmrc", default=str(DATA / "cmrc2018_dev.json"))
    ap.add_argument("--drcd", default=str(DATA / "DRCD_dev.json"))
    ap.add_argument("--limit", type=int, default=0, help="the first N contexts of each set (default: all)")
    ap.add_argument("--shares", action="store_true", help="print word shares instead of reading files")
    args = ap.parse_args()
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in (("CMRC", args.cmrc), ("DRCD", args.drcd)):
            squad = load_squad(path)
            contexts = [c for paragraphs in squad.texts.values() for c in paragraphs]
            contexts = contexts[: args.limit] if args.limit else contexts
            if args.shares:
                shares(label, contexts, squad.script)
            else:
                total += check(label, contexts, squad.script, Path(tmp))
    if not args.shares:
        print(f"false refusals in all: {total}")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
