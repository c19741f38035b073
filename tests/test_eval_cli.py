"""The eval runner and reports over a fake engine (keyword lookup), and the SQuAD loader; no model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from rag.eval_cli import build_report, finish, load_items, register, run_items
from rag.eval_report import markdown_report, text_table
from rag.evaluation import QAItem
from rag.squad import cross_script_items, detect_script, spread, squad_from_json
from rag.types import Answer, Citation, Passage

PARAS = [
    Passage("a.txt", 1, "左权县地区生产总值突破80亿元。", 1.0),
    Passage("b.txt", 1, "集聚了14家活性炭企業。", 1.0, speaker="副縣長 高鵬"),
]


class KeywordEngine:
    """Ranks a paragraph first when it shares a character bigram with the question; answers with it."""

    def retrieve(self, question: str, k: int = 5, history: Any = None) -> list[Passage]:
        grams = {question[i : i + 2] for i in range(len(question) - 1)}
        return sorted(PARAS, key=lambda p: -sum(g in p.text for g in grams))[:k]

    def ask(self, question: str, history: Any = None, k: Any = None, answerer: Any = None) -> Answer:
        if "人口" in question:
            return Answer(question, "文档中没有找到答案。", False, passages=PARAS)
        p = self.retrieve(question, 1)[0]
        cite = Citation(1, p.doc, p.paragraph, p.text, p.text, speaker=p.speaker)
        return Answer(question, p.text + "[1]", True, citations=[cite], passages=PARAS)


ITEMS = [
    QAItem("g", "左权县地区生产总值多少", ("80亿",), doc="a.txt", evidence=("80亿元",), type="num"),
    QAItem("c", "活性炭企业几家", ("14家",), doc="b.txt", evidence=("14家",), type="num"),
    QAItem("u", "左权县人口多少", type="unanswerable"),
]


def test_run_items_and_report(tmp_path: Path) -> None:
    from rag.config import Settings

    outcomes = run_items(KeywordEngine(), ITEMS, progress=False)  # type: ignore[arg-type]
    report = build_report("t", "t.jsonl", outcomes, Settings())
    assert report["metrics"]["all"]["hit_at_1"] == 1.0
    assert report["metrics"]["all"]["answer_accuracy"] == 1.0
    assert report["metrics"]["unanswerable"]["refusal_recall"] == 1.0
    assert [q["ok"] for q in report["questions"]] == [True, True, True]
    assert "hit@1" in text_table(report["metrics"]) and "verified" not in text_table(report["metrics"])

    old = tmp_path / "old.json"
    worse = json.loads(json.dumps(report))
    worse["metrics"]["all"]["hit_at_1"] = 0.5
    old.write_text(json.dumps(worse), encoding="utf-8")
    args = argparse.Namespace(compare=str(old), out=str(tmp_path / "out"))
    lines: list[str] = []
    assert finish(args, report, out=lines.append) == 0
    assert any("hit_at_1: 0.500 → 1.000 (+0.500)" in line for line in lines)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["t.json", "t.md", "t.png"]
    assert "## Change against" in (tmp_path / "out" / "t.md").read_text(encoding="utf-8")


def test_markdown_lists_failures() -> None:
    from rag.config import Settings

    wrong = [QAItem("w", "活性炭企业几家", ("15家",), doc="b.txt", evidence=("14家",), type="num")]
    report = build_report("t", "t.jsonl", run_items(KeywordEngine(), wrong, progress=False), Settings())  # type: ignore[arg-type]
    md = markdown_report(report)
    assert "## Failures" in md and "| w | num |" in md and "15家" in md


def test_load_items_reports_bad_line(tmp_path: Path) -> None:
    from rag.errors import RagError

    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "?"}\n\n{"id": "b"\n', encoding="utf-8")
    with pytest.raises(RagError, match="line 3"):
        load_items(path)
    path.write_text('# comment\n{"id": "a", "question": "?", "answers": ["1"]}\n', encoding="utf-8")
    assert [i.id for i in load_items(path)] == ["a"]


def test_register_adds_eval_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="rag")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["eval", "--squad", "x.json", "--cross-script", "--limit", "5", "--fusion", "bm25"]
    )
    assert (args.squad, args.cross_script, args.limit, args.fusion) == ("x.json", True, 5, "bm25")
    assert callable(args.func)


SQUAD = {
    "data": [
        {
            "title": "梵文/語言",
            "paragraphs": [
                {"context": "在歐洲,梵語的學術研究由德國學者開創。", "qas": []},
                {
                    "context": "梵語是印歐語系的一支。",
                    "qas": [
                        {"id": "q1", "question": "梵語屬於哪個語系?", "answers": [{"text": "印歐語系"}] * 2}
                    ],
                },
            ],
        }
    ]
}


def test_squad_documents_and_gold_paragraphs() -> None:
    data = squad_from_json(SQUAD)
    assert list(data.texts) == ["0001_梵文_語言.txt"]
    assert len(data.texts["0001_梵文_語言.txt"]) == 2
    (item,) = data.items
    assert (item.doc, item.evidence, item.answers) == (
        "0001_梵文_語言.txt",
        ("梵語是印歐語系的一支。",),
        ("印歐語系",),
    )
    assert data.script == "hant" and detect_script("梵语是印欧语系的一支") == "hans"
    assert cross_script_items([item], data.script)[0].question == "梵语属于哪个语系?"


def test_spread_takes_evenly() -> None:
    items = [QAItem(str(i), "?") for i in range(10)]
    assert [i.id for i in spread(items, 5)] == ["0", "2", "4", "6", "8"]
    assert len(spread(items, 0)) == 10


def test_bench_report_marks_targets(tmp_path: Path) -> None:
    from rag.eval_report import write_bench

    system = {
        "system": "ours (hybrid)",
        "n": 3,
        "hit_at_1": 0.5,
        "hit_at_5": 1.0,
        "mrr_at_10": 0.7,
        "build_s": 1.0,
    }
    results = {
        "created": "now",
        "machine": "test",
        "seeds": [system, {**system, "system": "llama-index", "answer_accuracy": None}],
        "build": {
            "paragraphs": 10,
            "chars": 1000,
            "raw_embed_s": [1.0, 1.2],
            "build_s": 1.2,
            "raw_chars_per_s": 909.1,
            "build_chars_per_s": 833.3,
            "build_over_raw": 1.091,
        },
        "serving": {
            "paragraphs": 2000,
            "open_s": 0.5,
            "questions": 3,
            "retrieve_ms_p50": 20.0,
            "retrieve_ms_p95": 40.0,
            "ask_ms_p50": 75.0,
            "ask_ms_p95": 90.0,
            "rss_after_open_mb": 400.0,
            "peak_rss_mb": 500.0,
        },
    }
    paths = write_bench(results, tmp_path)
    md = paths["md"].read_text(encoding="utf-8")
    assert "| index build time / raw embedding time | ≤ 1.15 | 1.091 | yes |" in md
    assert "| ask p50 (ms) | ≤ 60 | 75.0 | **no** |" in md
    assert "| llama-index | 3 | 0.500 |" in md
    assert paths["png"].stat().st_size > 0
