"""SQuAD-format question sets (CMRC 2018, DRCD) as documents and evaluation items.

One document per article, its paragraphs in order; each question's gold paragraph is the one it was
written on (its whole context is the evidence). The files are read where they lie; nothing of their text is copied into the project.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from rag.evaluation import QAItem

_UNSAFE = re.compile(r"[^\w\u4e00-\u9fff-]+")


@dataclass(frozen=True)
class SquadSet:
    texts: dict[str, list[str]]  # document name -> paragraph texts in order
    items: list[QAItem]  # every question; evidence = the context it was written on
    script: str  # "hans" or "hant", the script the set is written in

    @property
    def chars(self) -> int:
        return sum(len(p) for ps in self.texts.values() for p in ps)


@lru_cache(maxsize=2)
def _converter(config: str) -> Any:
    import opencc

    return opencc.OpenCC(config)


def other_script(text: str, script: str) -> str:
    """`text` written in `script` ("hans"/"hant"), converted to the other one."""
    return _converter("s2t" if script == "hans" else "t2s").convert(text)


def detect_script(sample: str) -> str:
    """ "hant" when converting to Simplified changes more than 2% of the characters, else "hans"."""
    if not sample:
        return "hans"
    simplified = _converter("t2s").convert(sample)
    changed = sum(a != b for a, b in zip(sample, simplified, strict=False))
    return "hant" if changed > 0.02 * len(sample) else "hans"


def squad_from_json(data: dict[str, Any]) -> SquadSet:
    """Documents and items from an already-parsed SQuAD-format object."""
    texts: dict[str, list[str]] = {}
    items: list[QAItem] = []
    for n, article in enumerate(data.get("data", []), start=1):
        title = _UNSAFE.sub("_", str(article.get("title", "")))[:40].strip("_")
        doc = f"{n:04d}_{title or 'article'}.txt"
        paragraphs: list[str] = []
        for para in article.get("paragraphs", []):
            paragraphs.append(str(para["context"]))
            for qa in para.get("qas", []):
                answers = tuple(dict.fromkeys(str(a["text"]) for a in qa.get("answers", []) if a.get("text")))
                items.append(
                    QAItem(
                        id=str(qa.get("id", f"{doc}-{len(items)}")),
                        question=str(qa["question"]),
                        answers=answers,
                        doc=doc,
                        type="squad",
                        # the whole context as evidence: robust to the engine joining or renumbering
                        evidence=(paragraphs[-1],),
                    )
                )
        texts[doc] = paragraphs
    sample = "".join(p for ps in list(texts.values())[:20] for p in ps)[:20000]
    return SquadSet(texts=texts, items=items, script=detect_script(sample))


def load_squad(path: str | Path) -> SquadSet:
    """Read a SQuAD-format JSON file (data[].paragraphs[].context / qas[].question / answers[].text)."""
    with open(path, encoding="utf-8") as f:
        return squad_from_json(json.load(f))


def spread(items: list[QAItem], limit: int | None) -> list[QAItem]:
    """At most `limit` items taken evenly across the set (so a quick look still covers every part)."""
    if not limit or limit >= len(items):
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def article_folds(data: SquadSet, folds: int) -> tuple[set[str], dict[str, list[str]]]:
    """Articles dealt in turn into `folds` folds: the first fold's names (held out of the index) and the
    texts of the others (indexed). Its questions become article-removed negatives (rag eval --negatives)."""
    names = list(data.texts)
    held_out = set(names[0::folds])
    return held_out, {d: ps for d, ps in data.texts.items() if d not in held_out}


def cross_script_items(items: list[QAItem], script: str) -> list[QAItem]:
    """The same questions written in the other script (answers are matched script-normalised anyway)."""
    return [replace(i, question=other_script(i.question, script), type="squad-cross-script") for i in items]
