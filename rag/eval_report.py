"""Rendering of evaluation results: terminal table, JSON, Markdown and a PNG chart."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COLUMNS = (
    ("n", "n"),
    ("hit_at_1", "hit@1"),
    ("hit_at_5", "hit@5"),
    ("mrr_at_10", "MRR@10"),
    ("answer_accuracy", "answer acc"),
    ("citation_precision", "cite prec"),
    ("refusal_recall", "refusal rec"),
    ("false_refusal_rate", "false refusal"),
    ("verification_rate", "verified"),
    ("answer_chars_median", "ans chars p50"),
    ("retrieve_ms_p50", "retrieve p50 ms"),
    ("ask_ms_p50", "ask p50 ms"),
    ("ask_ms_p95", "ask p95 ms"),
)
RATIOS = {"hit_at_1", "hit_at_5", "mrr_at_10", "answer_accuracy", "citation_precision"}
RATIOS |= {"refusal_recall", "false_refusal_rate", "verification_rate"}


def fmt(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if key in RATIOS:
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _present(
    columns: Sequence[tuple[str, str]], rows: Mapping[str, Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """Drop columns that no row has a value for (e.g. `verified` for the extractive answerer)."""
    return [(k, h) for k, h in columns if any(r.get(k) is not None for r in rows.values())]


def text_table(rows: Mapping[str, Mapping[str, Any]], columns: Sequence[tuple[str, str]] = COLUMNS) -> str:
    """Fixed-width table, one row per key of `rows` (e.g. per question type)."""
    cols = _present(columns, rows)
    cells = [["", *[h for _, h in cols]]]
    cells += [[name, *[fmt(k, r.get(k)) for k, _ in cols]] for name, r in rows.items()]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def markdown_table(
    rows: Mapping[str, Mapping[str, Any]], columns: Sequence[tuple[str, str]] = COLUMNS
) -> str:
    cols = _present(columns, rows)
    out = ["| | " + " | ".join(h for _, h in cols) + " |", "|---|" + "---:|" * len(cols)]
    out += [f"| {name} | " + " | ".join(fmt(k, r.get(k)) for k, _ in cols) + " |" for name, r in rows.items()]
    return "\n".join(out)


def comparison_lines(diff: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """`metric: old → new (±delta)` lines for a --compare diff."""
    lines = []
    for key, d in diff.items():
        delta = d.get("delta")
        sign = "" if delta is None else f" ({delta:+.3f})" if key in RATIOS else f" ({delta:+.1f})"
        lines.append(f"{key}: {fmt(key, d.get('old'))} → {fmt(key, d.get('new'))}{sign}")
    return lines


def _clip(text: str, n: int = 80) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= n else text[: n - 1] + "…"


def markdown_report(report: Mapping[str, Any], chart: str = "") -> str:
    """The whole Markdown report: settings, metric tables, comparison and the failed questions."""
    parts = [f"# Evaluation: {report['name']}", ""]
    parts.append(f"- question set: `{report['dataset']}` ({report['metrics']['all']['n']} questions)")
    for key in ("index", "answerer", "fusion", "embedder", "created", "index_paragraphs", "build_seconds"):
        if report.get(key) not in (None, ""):
            parts.append(f"- {key.replace('_', ' ')}: {report[key]}")
    parts += ["", "## Metrics", "", markdown_table(report["metrics"]), ""]
    if chart:
        parts += [f"![metrics]({chart})", ""]
    if report.get("compare"):
        parts += [f"## Change against `{report.get('compare_with', 'earlier run')}`", ""]
        parts += [f"- {line}" for line in comparison_lines(report["compare"])] + [""]
    failed = [q for q in report.get("questions", []) if not q.get("ok")]
    if failed:
        parts += [
            "## Failures",
            "",
            "| id | type | question | expected | got | rank |",
            "|---|---|---|---|---|---:|",
        ]
        for q in failed[:300]:
            expected = " / ".join(q.get("expected") or []) or "(refusal)"
            got = q["answer"] if q.get("found") else "(refused)"
            row = (
                q["id"],
                q["type"],
                _clip(q["question"], 40),
                _clip(expected, 30),
                _clip(got, 60),
                q.get("rank"),
            )
            parts.append("| " + " | ".join("–" if c is None else str(c) for c in row) + " |")
        parts.append("")
    return "\n".join(parts)


def plot_metrics(rows: Mapping[str, Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """Grouped bars of the ratio metrics per row (question type or system), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k, _ in COLUMNS if k in RATIOS and any(r.get(k) is not None for r in rows.values())]
    labels = dict(COLUMNS)
    names = list(rows)
    fig, ax = plt.subplots(figsize=(min(14.0, 3.0 + 1.1 * len(names)), 4.2))
    width = 0.8 / max(1, len(keys))
    for j, key in enumerate(keys):
        values = [rows[n].get(key) or 0.0 for n in names]
        ax.bar([i + j * width for i in range(len(names))], values, width, label=labels[key])
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=min(4, max(1, len(keys))))
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_reports(report: Mapping[str, Any], out_dir: str | Path, name: str) -> dict[str, Path]:
    """<name>.json, <name>.md and <name>.png under `out_dir`; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{name}.json", "md": out / f"{name}.md", "png": out / f"{name}.png"}
    paths["json"].write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    plot_metrics(report["metrics"], paths["png"], title=str(report["name"]))
    paths["md"].write_text(markdown_report(report, chart=paths["png"].name) + "\n", encoding="utf-8")
    return paths
