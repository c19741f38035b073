"""The eval runner and reports over a fake engine (keyword lookup), and the SQuAD loader; no model."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from rag.eval_cli import (
    build_report,
    finish,
    load_items,
    main,
    negative_items,
    register,
    run_items,
    write_floors,
)
from rag.eval_report import markdown_report, text_table
from rag.evaluation import ARTICLE_REMOVED, QAItem
from rag.squad import article_folds, cross_script_items, detect_script, spread, squad_from_json
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag")
    register(parser.add_subparsers(dest="command"))
    return parser


def test_register_adds_eval_subcommand() -> None:
    args = _parser().parse_args(
        ["eval", "--squad", "x.json", "--cross-script", "--limit", "5", "--fusion", "bm25"]
    )
    assert (args.squad, args.cross_script, args.limit, args.fusion) == ("x.json", True, 5, "bm25")
    assert (args.negatives, args.folds, args.write_floors) == (False, 2, None)
    assert callable(args.func)
    args = _parser().parse_args(["eval", "--squad", "x.json", "--negatives", "--folds", "3"])
    assert (args.negatives, args.folds) == (True, 3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "q.jsonl", "--negatives"], "--negatives needs --squad"),
        (["eval", "--squad", "x.json", "--negatives", "--folds", "1"], "--folds must be at least 2"),
    ],
)
def test_negatives_needs_squad_and_two_folds(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_parser().parse_args(argv)) == 2
    assert message in capsys.readouterr().err


@dataclasses.dataclass(frozen=True)
class SpanAnswer(Answer):
    """An Answer with the fields the span answerer adds beyond `short` (a confidence and the candidates)."""

    confidence: float = 0.0
    candidates: list[str] = dataclasses.field(default_factory=list)


class SpanEngine(KeywordEngine):
    """Answers with a short span, two confidences and its candidate spans, as the span answerer will."""

    def ask(self, question: str, history: Any = None, k: Any = None, answerer: Any = None) -> Any:
        base = super().ask(question, history, k, answerer)
        short = {"a.txt": "80亿元", "b.txt": "14家"}[base.citations[0].doc] if base.found else None
        sure = 0.9 if base.found else 0.2
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        fields.update(
            short=short, short_confidence=sure - 0.1, confidence=sure, candidates=[short or "", "7家"]
        )
        return SpanAnswer(**fields)


def test_short_answers_and_calibration_in_the_report(tmp_path: Path) -> None:
    from rag.config import Settings

    items = [*ITEMS, QAItem("u2", "左云县机场", type="unanswerable")]
    outcomes = run_items(SpanEngine(), items, progress=False)  # type: ignore[arg-type]
    report = build_report("t", "t.jsonl", outcomes, Settings())
    m = report["metrics"]["all"]
    assert m["short_em"] == 0.5 and m["short_f1"] == pytest.approx((0.8 + 1.0) / 2)  # 80亿元 vs gold 80亿
    assert m["short_em_number"] == 0.5 and m["short_none"] == 0.0
    assert m["candidate_recall"] == 0.5
    assert report["questions"][1]["short"] == "14家" and report["questions"][1]["kind"] == "number"
    cal = report["calibration"]
    assert set(cal) == {"confidence", "short_confidence"}
    assert (cal["confidence"]["answerable"], cal["confidence"]["unanswerable"]) == (2, 2)
    assert cal["confidence"]["ece"] == pytest.approx(m["ece_confidence"])

    args = argparse.Namespace(compare=None, out=str(tmp_path), write_floors=str(tmp_path / "floors.json"))
    lines: list[str] = []
    assert finish(args, report, out=lines.append) == 0
    assert any(line.startswith("confidence: ECE") for line in lines)
    assert (tmp_path / "t-calibration.png").stat().st_size > 0
    md = (tmp_path / "t.md").read_text(encoding="utf-8")
    assert "## Short answers" in md and "## Calibration" in md and "t-calibration.png" in md
    floors = json.loads((tmp_path / "floors.json").read_text(encoding="utf-8"))
    assert {f["metric"] for f in floors["floors"]} >= {"short_em", "short_f1", "hit_at_1"}


def test_write_floors_records_command_and_note(tmp_path: Path) -> None:
    report = {"created": "now", "metrics": {"all": {"hit_at_1": 0.97, "false_refusal_rate": 0.02}}}
    path = write_floors(tmp_path / "f.json", report, "rag eval evals/seeds_qa.jsonl --docs seeds")
    floors = json.loads(path.read_text(encoding="utf-8"))
    assert floors["command"] == "rag eval evals/seeds_qa.jsonl --docs seeds"
    assert "CHANGELOG" in floors["note"]
    assert floors["floors"] == [
        {"group": "all", "metric": "hit_at_1", "measured": 0.97, "min": 0.96},
        {"group": "all", "metric": "false_refusal_rate", "measured": 0.02, "max": 0.03},
    ]


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
            "raw_windows_s": [0.5, 0.6],
            "build_over_raw_windows": 2.182,
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
    assert "| index build time / raw embedding of every string it embeds | ≤ 1.15 | 1.091 | yes |" in md
    assert "| 1.0 / 1.2 | 1.2 | 909.1 | 833.3 | 1.091 | 0.5 / 0.6 | 2.182 |" in md  # the windows alone beside
    assert "| ask p50 (ms) | ≤ 60 | 75.0 | **no** |" in md
    assert "| llama-index | 3 | 0.500 |" in md
    assert paths["png"].stat().st_size > 0


def test_article_folds_hold_out_every_kth_article() -> None:
    articles = [{"title": f"t{n}", "paragraphs": [{"context": f"第{n}段。", "qas": []}]} for n in range(5)]
    data = squad_from_json({"data": articles})
    held_out, indexed = article_folds(data, 2)
    assert held_out == {"0001_t0.txt", "0003_t2.txt", "0005_t4.txt"}
    assert sorted(indexed) == ["0002_t1.txt", "0004_t3.txt"]
    assert indexed["0002_t1.txt"] == ["第1段。"]


def test_negative_items_have_no_answer_and_should_be_refused() -> None:
    (item,) = negative_items(squad_from_json(SQUAD).items)
    assert (item.id, item.type, item.answers, item.evidence) == ("q1-removed", ARTICLE_REMOVED, (), ())
    assert item.unanswerable and item.question == "梵語屬於哪個語系?"


ARTICLES = [
    (
        "左云县",
        "左云县集聚了14家活性炭企业,2024年活性炭产量达5.52万吨。",
        "左云县有多少家活性炭企业?",
        "14家",
    ),
    (
        "左权县",
        "左权县2024年地区生产总值突破80亿元,年均增长8.6%。",
        "左权县2024年地区生产总值是多少?",
        "80亿元",
    ),
    ("梵语", "梵语是印欧语系的一支,其学术研究由德国学者开创。", "梵语属于哪个语系?", "印欧语系"),
    (
        "长城",
        "长城一号旅游公路串联20余处景点,连续8年举办自行车赛事。",
        "长城一号旅游公路串联了多少处景点?",
        "20余处",
    ),
]


@pytest.mark.slow
def test_negatives_run_asks_held_out_questions_of_an_index_without_them(tmp_path: Path) -> None:
    """`rag eval --squad F --negatives` with the real model: the held-out half is asked as negatives."""
    data = {
        "data": [
            {
                "title": title,
                "paragraphs": [
                    {"context": text, "qas": [{"id": title, "question": q, "answers": [{"text": a}]}]}
                ],
            }
            for title, text, q, a in ARTICLES
        ]
    }
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    argv = ["eval", "--squad", str(path), "--negatives", "--index", str(tmp_path / "idx")]
    argv += ["--out", str(tmp_path / "out"), "--embed-cache", "", "--no-progress"]
    assert main(_parser().parse_args(argv)) == 0
    report = json.loads((tmp_path / "out" / "tiny-negatives.json").read_text(encoding="utf-8"))
    assert (report["folds"], report["held_out_articles"], report["index_paragraphs"]) == (2, 2, 2)
    types = {q["id"]: q["type"] for q in report["questions"]}
    assert types == {
        "左权县": "squad",
        "长城": "squad",
        "左云县-removed": ARTICLE_REMOVED,
        "梵语-removed": ARTICLE_REMOVED,
    }
    removed = report["metrics"][ARTICLE_REMOVED]
    assert removed["n"] == 2 and removed["refusal_recall"] is not None
    assert report["metrics"]["all"]["hit_at_1"] == 1.0  # two paragraphs indexed, each question finds its own
    assert report["questions"][0]["question"] == ""  # the external set's text stays out of the report


def test_collection_is_a_folder_of_the_data_folder_as_for_the_other_commands() -> None:
    from rag.cli import parser

    args = parser().parse_args(["eval", "q.jsonl", "--collection", "zuoyun"])
    assert (args.index, args.collection) == ("index", "zuoyun")  # the default data folder
    for argv in (["--collection", "zuoyun", "--data", "d"], ["--index", "d", "--collection", "zuoyun"]):
        assert parser().parse_args(["eval", "q.jsonl", *argv]).index == "d"
    plain = parser().parse_args(["eval", "q.jsonl"])
    assert (plain.index, plain.collection) == (None, None)  # --docs still builds into a temporary folder


@pytest.mark.slow
def test_eval_on_a_collection_asks_only_its_documents(seeds_engine: Any, tmp_path: Path) -> None:
    from api_support import SIMPLIFIED_SEED, TRADITIONAL_SEED, seeds_data_dir

    from rag.cli import main

    data = seeds_data_dir(seeds_engine, tmp_path / "data")
    questions = tmp_path / "field.jsonl"
    items = [
        {
            "id": "zy",
            "question": "左雲縣一共有多少家活性炭企業?",
            "answers": ["14家"],
            "doc": TRADITIONAL_SEED,
        },
        {
            "id": "zq",
            "question": "2024年左权县的地区生产总值有多少?",
            "answers": ["80亿"],
            "doc": SIMPLIFIED_SEED,
        },
    ]
    questions.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    out = tmp_path / "reports"
    argv = ["eval", str(questions), "--data", str(data), "--collection", "zuoyun", "--out", str(out)]
    assert main([*argv, "--no-progress", "--embed-cache", ""]) == 0
    report = json.loads((out / "field.json").read_text(encoding="utf-8"))
    assert report["index"] == str(data / "zuoyun")
    rows = {row["id"]: row for row in report["questions"]}
    assert rows["zy"]["found"] and rows["zy"]["ok"] and rows["zy"]["cited"][0].startswith(TRADITIONAL_SEED)
    assert not rows["zq"]["found"]  # the other seed is in another collection
