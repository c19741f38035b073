"""The REST API with httpx against a real server on loopback: collections, uploads (.txt, .docx), ask,
retrieve, removal, errors as a JSON envelope with a stable code, feedback and the request log."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import TRADITIONAL_SEED, api_app, seeds_data_dir, serving
from ui_support import FICTIONAL_ANSWER, FICTIONAL_NAME, FICTIONAL_QUESTION, FICTIONAL_TEXT

from rag.collections import Collections
from rag.engine import Engine
from ui.feedback import FEEDBACK_FILE, REQUEST_LOG_FILE, UNLABELLED_TYPE, Journal, export_feedback

pytestmark = pytest.mark.slow

UPLOAD_LIMIT = 256 * 1024  # small, so the too-large case sends little
DOCX_NAME = "yunwu_notes.docx"
DOCX_QUESTION = "云雾县的县树是什么？"
DOCX_ANSWER = "银杏"


@pytest.fixture(scope="module")
def data(seeds_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seeds_data_dir(seeds_engine, tmp_path_factory.mktemp("rest") / "data")


@pytest.fixture(scope="module")
def api(data: Path, seeds_engine: Engine) -> Iterator[httpx.Client]:
    collections = Collections(data, seeds_engine.settings)
    app = api_app(collections, journal=Journal(log_questions=False), max_upload_bytes=UPLOAD_LIMIT)
    with serving(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client


def docx_bytes(paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for p in paragraphs:
        document.add_paragraph(p)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def error_of(response: httpx.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code"} and error["message"]
    return dict(error)


def test_collections_are_listed_with_their_document_counts(api: httpx.Client) -> None:
    listed = api.get("/api/collections").json()["collections"]
    assert listed == [
        {"name": "default", "documents": 2},
        {"name": "zuoquan", "documents": 1},
        {"name": "zuoyun", "documents": 1},
    ]


def test_ask_returns_the_answer_as_json(api: httpx.Client) -> None:
    answer = api.post("/api/collections/zuoyun/ask", json={"question": "左雲縣有多少家活性炭企業？"}).json()
    assert answer["found"] and "14" in answer["text"]
    assert answer["id"].startswith("ask-") and answer["collection"] == "zuoyun"
    c1 = answer["citations"][0]
    assert (c1["doc"], c1["paragraph"]) == (TRADITIONAL_SEED, 21)
    assert c1["text"][c1["quote_start"] : c1["quote_end"]] == c1["quote"]
    follow = api.post(
        "/api/collections/zuoyun/ask",
        json={
            "question": "其中规模以上的有几家?",
            "history": [{"role": "user", "content": "左云县有多少家活性炭企业?"}],
        },
    ).json()
    assert follow["found"] and "7家" in follow["text"]


def test_retrieve_returns_ranked_passages(api: httpx.Client) -> None:
    body = api.post("/api/collections/default/retrieve", json={"question": "左云县活性炭产量", "k": 3}).json()
    passages = body["passages"]
    assert len(passages) == 3
    assert passages[0]["doc"] == TRADITIONAL_SEED
    assert [p["score"] for p in passages] == sorted((p["score"] for p in passages), reverse=True)


def test_errors_carry_a_status_and_a_stable_code(api: httpx.Client) -> None:
    assert (
        error_of(api.post("/api/collections/default/ask", json={"question": "  "}), 400)["code"]
        == "bad_question"
    )
    assert error_of(api.post("/api/collections/default/ask", json={"q": "x"}), 400)["code"] == "bad_request"
    unknown = error_of(api.post("/api/collections/nosuch/ask", json={"question": "左云县?"}), 404)
    assert unknown["code"] == "unknown_collection" and "zuoquan" in unknown["message"]
    bad = error_of(api.post("/api/collections", json={"name": "Bad-Name"}), 400)
    assert bad["code"] == "bad_collection_name" and "lower-case" in bad["message"]
    exists = error_of(api.post("/api/collections", json={"name": "zuoquan"}), 409)
    assert exists["code"] == "collection_exists"
    gone = error_of(api.delete("/api/collections/default/documents/nosuch.txt"), 404)
    assert gone["code"] == "unknown_document"


def test_upload_ask_remove_and_delete_a_collection(api: httpx.Client, data: Path) -> None:
    created = api.post("/api/collections", json={"name": "yunwu"})
    assert created.status_code == 201 and created.json() == {"name": "yunwu", "documents": 0}
    files = [
        ("files", (FICTIONAL_NAME, FICTIONAL_TEXT.encode("utf-8"), "text/plain")),
        (
            "files",
            (
                DOCX_NAME,
                docx_bytes(["云雾县植物", f"云雾县的县树是{DOCX_ANSWER}，全县共有古{DOCX_ANSWER}树126棵。"]),
                "application/octet-stream",
            ),
        ),
        ("files", ("fake.pdf", b"not a pdf at all", "application/pdf")),
    ]
    uploaded = api.post("/api/collections/yunwu/documents", files=files)
    assert uploaded.status_code == 200, uploaded.text
    report = uploaded.json()
    assert sorted(report["added"]) == sorted([FICTIONAL_NAME, DOCX_NAME])
    assert [r["name"] for r in report["rejected"]] == ["fake.pdf"] and "PDF" in report["rejected"][0][
        "reason"
    ]
    docs = api.get("/api/collections/yunwu/documents").json()["documents"]
    assert sorted(d["doc"] for d in docs) == sorted([FICTIONAL_NAME, DOCX_NAME])

    answer = api.post("/api/collections/yunwu/ask", json={"question": FICTIONAL_QUESTION}).json()
    assert answer["found"] and FICTIONAL_ANSWER in answer["text"]
    assert answer["citations"][0]["doc"] == FICTIONAL_NAME
    from_docx = api.post("/api/collections/yunwu/ask", json={"question": DOCX_QUESTION}).json()
    assert from_docx["found"] and DOCX_ANSWER in from_docx["text"]
    assert from_docx["citations"][0]["doc"] == DOCX_NAME
    # the other collections do not see it
    assert not api.post("/api/collections/default/ask", json={"question": FICTIONAL_QUESTION}).json()["found"]

    removed = api.delete(f"/api/collections/yunwu/documents/{FICTIONAL_NAME}")
    assert removed.status_code == 200 and removed.json()["documents"] == 1
    after = api.post("/api/collections/yunwu/ask", json={"question": FICTIONAL_QUESTION}).json()
    assert not after["found"] and FICTIONAL_NAME not in {p["doc"] for p in after["passages"]}

    assert api.delete("/api/collections/yunwu").json() == {"deleted": "yunwu"}
    assert not (data / "yunwu").exists()
    assert error_of(api.get("/api/collections/yunwu/documents"), 404)["code"] == "unknown_collection"


def test_uploads_are_checked_and_limited(api: httpx.Client) -> None:
    big = ("files", ("big.txt", "左".encode() * (UPLOAD_LIMIT // 3 + 10), "text/plain"))
    too_large = error_of(api.post("/api/collections/zuoquan/documents", files=[big]), 413)
    assert too_large["code"] == "too_large" and "big.txt" in too_large["message"]
    renamed = ("files", ("image.docx", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "application/octet-stream"))
    rejected = error_of(api.post("/api/collections/zuoquan/documents", files=[renamed]), 400)
    assert rejected["code"] == "upload_rejected" and "image.docx" in rejected["message"]
    not_multipart = error_of(api.post("/api/collections/zuoquan/documents", json={"files": []}), 400)
    assert "multipart" in not_multipart["message"]
    assert api.get("/api/collections/zuoquan/documents").json()["documents"][0]["doc"] != "big.txt"


def test_feedback_and_the_request_log(api: httpx.Client, data: Path, tmp_path: Path) -> None:
    question = "左权县有多少家活性炭企业?"
    asked = api.post("/api/collections/zuoquan/ask", json={"question": question}).json()
    sent = api.post(
        "/api/feedback",
        json={
            "collection": "zuoquan",
            "question": question,
            "answer": asked["text"],
            "correct_answer": "文档中没有",
            "id": asked["id"],
            "citations": asked["citations"],
        },
    )
    assert sent.status_code == 201
    api.post("/api/feedback", json={"collection": "zuoquan", "question": "左权县的县花是什么？"})
    assert error_of(api.post("/api/feedback", json={"collection": "nosuch", "question": "x"}), 404)
    lines = [json.loads(line) for line in (data / "zuoquan" / FEEDBACK_FILE).read_text().splitlines()]
    assert [r["question"] for r in lines] == [question, "左权县的县花是什么？"]
    assert lines[0]["id"] == asked["id"]

    log = [json.loads(line) for line in (data / "zuoquan" / REQUEST_LOG_FILE).read_text().splitlines()]
    mine = [r for r in log if r["id"] == asked["id"]]
    assert len(mine) == 1 and mine[0]["endpoint"] == "ask" and mine[0]["latency_ms"] > 0
    assert mine[0]["found"] is asked["found"] and "confidence" in mine[0]
    assert all("question" not in r for r in log)  # RAG_LOG_QUESTIONS is off

    out = tmp_path / "marked.jsonl"
    items = export_feedback(data / "zuoquan", out)
    assert [json.loads(line) for line in out.read_text().splitlines()] == items
    assert items[0]["question"] == question and items[0]["answers"] == ["文档中没有"]
    assert items[1]["type"] == UNLABELLED_TYPE and items[1]["answers"] == []
    from rag.evaluation import item_from_dict

    assert [item_from_dict(i).question for i in items] == [question, "左权县的县花是什么？"]

    from rag.cli import main

    by_cli = tmp_path / "by_cli.jsonl"
    assert (
        main(["feedback", "export", "--data", str(data), "--collection", "zuoquan", "--out", str(by_cli)])
        == 0
    )
    assert by_cli.read_text() == out.read_text()


def test_the_answer_gate_says_busy_and_a_dropped_stream_gives_its_slot_back() -> None:
    import gc
    from types import SimpleNamespace

    from rag.config import Settings
    from rag.types import Answer
    from ui.api import AnswerGate, ApiContext, ApiError, ChatCompletionRequest, _stream

    gate = AnswerGate(concurrent=1, waiting=0)
    with gate.turn(), pytest.raises(ApiError, match="too many") as busy, gate.turn():
        pass
    assert busy.value.status == 503 and busy.value.code == "busy"

    def ask_stream(question: str, history: object = None, answerer: object = None) -> Iterator[object]:
        yield "答案"
        yield Answer(question=question, text="答案", found=False)

    engine = SimpleNamespace(ask_stream=ask_stream, settings=Settings())
    ctx = ApiContext(Collections("."), Journal(), gate=gate)
    body = ChatCompletionRequest(model="default", messages=[{"role": "user", "content": "问"}])  # type: ignore[list-item]
    response = _stream(ctx, engine, body, "问", [], "chatcmpl-x", 0.0, 0)
    with pytest.raises(ApiError), gate.turn():  # the stream holds the only slot
        pass
    del response
    gc.collect()
    with gate.turn():  # never iterated, yet the slot is back
        pass
