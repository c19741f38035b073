"""OCR as journalled work: a document with scanned pages is planned without reading them, its pages are OCR'd
by the job one at a time and kept in the job folder as each is done (a killed build resumes at the next
page), the index keeps what reading each document found and a stored copy of each PDF and image, and a
server that stopped mid-OCR finishes the job when it starts again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import KeywordEmbedder
from scan_support import small_scan_pdf

import rag
from rag import journal, writer
from rag.documents import sha256_of
from rag.store import SOURCES, Store

pytest.importorskip("rapidocr_onnxruntime")
pytest.importorskip("reportlab")

REPO = Path(__file__).resolve().parents[1]
NOTES = "县城新建停车位1200个，缓解了停车难问题。\n"


def docs_with(folder: Path, scan: bytes, name: str = "scan.pdf") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(scan)
    (folder / "notes.txt").write_text(NOTES, encoding="utf-8")
    return folder


def test_a_build_reads_scanned_pages_in_its_job_says_how_far_and_keeps_the_source(tmp_path: Path) -> None:
    pdf = small_scan_pdf(["全县建成5G基站826个。", "城镇新增就业4120人。"])
    docs = docs_with(tmp_path / "docs", pdf)
    said: list[str] = []
    index = tmp_path / "index"
    engine = rag.Engine.build([docs], index_dir=index, embedder=KeywordEmbedder(), notify=said.append)
    assert [m for m in said if m.startswith("OCR ")] == [
        "OCR scan.pdf: page 1 of 2 read",
        "OCR scan.pdf: page 2 of 2 read",
    ]
    scan = [p for p in engine.store.paragraphs if p.doc == "scan.pdf"]
    assert [p.page for p in scan] == [1, 2] and "826" in scan[0].text and "4120" in scan[1].text
    stats = engine.store.doc_stats
    assert stats["scan.pdf"]["summary"] == "2 paragraphs, 2 pages (2 OCR'd)"
    assert stats["notes.txt"]["summary"] == "1 paragraph"
    assert Store.open(index).doc_stats == stats  # kept in the manifest
    stored = index / SOURCES / f"{sha256_of(pdf)}.pdf"
    assert stored.read_bytes() == pdf and sorted(p.name for p in (index / SOURCES).iterdir()) == [stored.name]
    assert journal.pending(index) == []

    # The stored copy goes once neither kept version (the live one, the one before) holds the document.
    (docs / "scan.pdf").unlink()
    rag.Engine.build([docs], index_dir=index, embedder=KeywordEmbedder())
    assert stored.exists()
    (docs / "more.txt").write_text("全县新增公园3个。\n", encoding="utf-8")
    rag.Engine.build([docs], index_dir=index, embedder=KeywordEmbedder())
    assert not stored.exists()


KILLED_MID_OCR = """
import os, signal, sys
import rag
from tests.conftest import KeywordEmbedder

def killed_after_page_one(message):
    print(message, flush=True)
    if message.endswith("page 1 of 3 read"):
        os.kill(os.getpid(), signal.SIGKILL)

rag.Engine.build([sys.argv[1]], index_dir=sys.argv[2], embedder=KeywordEmbedder(), notify=killed_after_page_one)
"""


def test_a_build_killed_mid_ocr_resumes_at_the_next_page(tmp_path: Path) -> None:
    pdf = small_scan_pdf(["左权县新建农村公路126公里。", "全年接待游客1280万人次。", "新增床位300张。"])
    docs = docs_with(tmp_path / "docs", pdf)
    index = tmp_path / "index"
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_OCR, str(docs), str(index)], cwd=REPO, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL
    [job] = journal.pending(index)
    assert [p.name for p in job.glob("d*-ocr-p*.json")] == ["d00001-ocr-p00001.json"]  # notes.txt is d00000
    plan = json.loads((job / journal.PLAN).read_text("utf-8"))
    assert [d["pending_ocr"] for d in plan["documents"]] == [[], [1, 2, 3]]

    said: list[str] = []
    engine = rag.Engine.build([docs], index_dir=index, embedder=KeywordEmbedder(), notify=said.append)
    ocr = [m for m in said if m.startswith(("OCR ", "resuming"))]
    assert "1 of 3 scanned pages already OCR'd" in ocr[0]
    assert ocr[1:] == [
        "OCR scan.pdf: 1 of 3 pages read before, reading the rest",
        "OCR scan.pdf: page 2 of 3 read",
        "OCR scan.pdf: page 3 of 3 read",
    ]
    assert [p.page for p in engine.store.paragraphs if p.doc == "scan.pdf"] == [1, 2, 3]
    assert engine.store.doc_stats["scan.pdf"]["pages_ocr"] == 3
    assert journal.pending(index) == [] and sorted(d.doc for d in engine.documents()) == [
        "notes.txt",
        "scan.pdf",
    ]


def test_a_server_that_stopped_mid_ocr_finishes_the_job_when_it_starts(tmp_path: Path) -> None:
    """A job planned by an upload whose process died: resume_scans OCRs it (in a child) and commits it."""
    index = tmp_path / "index"
    engine = rag.Engine.build_from_texts({"notes.txt": [NOTES]}, index, embedder=KeywordEmbedder())
    upload = tmp_path / "upload" / "notice.pdf"
    upload.parent.mkdir()
    upload.write_bytes(small_scan_pdf(["全县累计植树造林3.2万亩。"]))
    plan = journal.plan_files([upload], {}, sync=False)
    assert [d.pending_ocr for d in plan.documents] == [[1]]  # planning did not OCR
    journal.Job.create(index, engine.embedder.id, plan).release()  # the server died here
    upload.unlink()  # its staging folder went with it: the job keeps the bytes

    [status] = writer.resume_scans(engine)
    assert (status.state, status.added, status.pages_done, status.pages_total) == (
        "done",
        ["notice.pdf"],
        1,
        1,
    )
    assert {d.doc for d in engine.documents()} == {"notes.txt", "notice.pdf"}
    [paragraph] = [p for p in engine.store.paragraphs if p.doc == "notice.pdf"]
    assert "3.2万亩" in paragraph.text and paragraph.page == 1
    assert journal.pending(index) == []
