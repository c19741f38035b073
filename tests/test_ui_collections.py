"""The web chat's collection picker end to end (ui/chat_collections.py) against the real server `rag serve`
runs (ui_support.shared_server), through gradio_client and httpx: a citation card links to the stored
copy in the collection its answer came from, and the chosen collection's status line follows the OCR of a
scanned upload page by page until the document joins its list."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client, handle_file
from scan_support import small_scan_pdf
from ui_support import Server, last_message_text, shared_server

pytest.importorskip("reportlab")
pytestmark = pytest.mark.slow

FONT = "STSong-Light"  # reportlab's built-in CID font: a text PDF with Chinese and no font file
# The same document name in two collections, with different facts: a link naming the wrong collection
# serves the other one's copy.
SAME_NAME = "report.pdf"
FACTS = {  # collection: (heading, sentence, question, answer)
    "lakes": (
        "甲县概况",
        "2024年，甲县新建小型水库7座，新增库容1200万立方米。",
        "甲县2024年新建了多少座小型水库？",
        "7座",
    ),
    "bridges": (
        "乙县概况",
        "2024年，乙县新修农村公路桥梁15座，全长3.6公里。",
        "乙县2024年新修了多少座桥梁？",
        "15座",
    ),
}
SCANS = "scans"
SCAN_LINES = ["全县新建村级卫生室46个。", "全县新增养老床位380张。", "全县改造农村危房215户。"]
JOB_TIMEOUT_S = 180.0  # OCR of three small pages and the commit, on 2 busy cores
READ_EVERY_S = 0.2  # how often the test reads the status line while the scan is read
PROGRESS_RE = re.compile(r"识别中：`scan\.pdf` 第 (\d)/3 页")
LINK_RE = re.compile(r'class="rag-open" href="([^"]+)"')


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    return shared_server(request.config, tmp_path_factory)


def client(server: Server) -> Client:
    """A new client is a new browser session."""
    return Client(server.url, verbose=False, analytics_enabled=False, download_files=False)


@contextmanager
def collections(server: Server, *names: str) -> Iterator[None]:
    """Empty collections made through the REST API, deleted after."""
    api = server.url + "api/collections"
    try:
        for name in names:
            created = httpx.post(api, json={"name": name}, timeout=120)
            assert created.status_code == 201, created.text
        yield
    finally:
        for name in names:
            httpx.delete(f"{api}/{name}", timeout=120)


def text_pdf(heading: str, sentence: str) -> bytes:
    """A one-page text PDF: a heading and a sentence in reportlab's STSong-Light."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=A4)
    c.setFont(FONT, 16)
    c.drawString(72, A4[1] - 90, heading)
    c.setFont(FONT, 11)
    c.drawString(72, A4[1] - 130, sentence)
    c.showPage()
    c.save()
    return out.getvalue()


def names_in(table: dict[str, Any]) -> set[str]:
    return {row[0] for row in table["data"]}


def test_a_source_card_opens_the_copy_in_the_collection_the_answer_came_from(
    server: Server, tmp_path: Path
) -> None:
    pdfs = {name: text_pdf(heading, sentence) for name, (heading, sentence, _, _) in FACTS.items()}
    assert len(set(pdfs.values())) == 2
    with collections(server, *FACTS):
        c = client(server)
        for name, pdf in pdfs.items():
            (tmp_path / name).mkdir()
            path = tmp_path / name / SAME_NAME
            path.write_bytes(pdf)
            report, table, *_ = c.predict([handle_file(str(path))], name, api_name="/upload")
            assert "已添加" in report and names_in(table) == {SAME_NAME}, report
        for name, (_, _, question, expected) in FACTS.items():
            chat, answer = c.predict(question, "extractive", name, api_name="/ask")
            assert answer is not None and answer["found"] and expected in answer["text"], answer
            assert answer["citations"][0]["doc"] == SAME_NAME
            links = LINK_RE.findall(last_message_text(chat))
            assert links == [f"api/collections/{name}/documents/{SAME_NAME}/source#page=1"]
            served = httpx.get(server.url + links[0].split("#")[0], timeout=30)
            assert served.status_code == 200 and served.content == pdfs[name]
            assert served.headers["content-type"] == "application/pdf"


def test_the_status_line_follows_the_ocr_of_a_scan_until_it_joins_the_list(
    server: Server, tmp_path: Path
) -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(small_scan_pdf(SCAN_LINES))
    with collections(server, SCANS):
        c = client(server)
        started = time.monotonic()
        report, table, _, status, _ = c.predict([handle_file(str(scan))], SCANS, api_name="/upload")
        replied = time.monotonic() - started
        assert "3 页待识别" in report and "scan.pdf" not in names_in(table), report
        statuses = [status]  # every status line read, in order, until the scan is in the list
        while "scan.pdf" not in names_in(table) or "识别" in status:
            assert time.monotonic() - started < JOB_TIMEOUT_S, statuses[-3:]
            time.sleep(READ_EVERY_S)
            _, table, _, status, _ = c.predict(SCANS, api_name="/documents")
            statuses.append(status)
        done = time.monotonic() - started
        assert "等待识别：`scan.pdf`（3 页）" in statuses[0] or PROGRESS_RE.search(statuses[0]), statuses[0]
        pages = [int(m.group(1)) for s in statuses for m in PROGRESS_RE.finditer(s)]
        assert pages and pages == sorted(pages) and set(pages) <= {1, 2, 3}, statuses
        assert "1 个文档" in status and "识别" not in status
        print(
            f"\nscan of 3 pages: upload replied in {replied:.1f} s, listed after {done:.1f} s, pages seen {pages}"
        )

        chat, answer = c.predict("全县新增养老床位多少张？", "extractive", SCANS, api_name="/ask")
        assert answer is not None and answer["found"] and "380" in answer["text"], answer
        assert LINK_RE.findall(last_message_text(chat)) == [
            f"api/collections/{SCANS}/documents/scan.pdf/source#page=2"
        ]
