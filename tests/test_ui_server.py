"""The web chat end to end through gradio_client against a real server on loopback (real engine, seeds/)."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from ui_support import (
    FICTIONAL_ANSWER,
    FICTIONAL_NAME,
    FICTIONAL_QUESTION,
    FICTIONAL_TEXT,
    Server,
    last_message_text,
    shared_server,
)

pytestmark = pytest.mark.slow

SEED_DOCS = {"000_8e3a739afda006bb.txt", "004_7b7eee9865cdd99f.txt"}


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    return shared_server(request.config, tmp_path_factory)


def client(server: Server) -> Client:
    """A new client is a new browser session (its own gr.State)."""
    return Client(server.url, verbose=False, analytics_enabled=False, download_files=False)


def ask(
    c: Client, question: str, answerer: str = "extractive", collection: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """/ask; the collection is the endpoint's last argument, the served one when left out."""
    chat, answer = c.predict(question, answerer, *([collection] if collection else []), api_name="/ask")
    return chat, answer


def doc_names(c: Client) -> set[str]:
    _, table, *_ = c.predict(api_name="/documents")
    return {row[0] for row in table["data"]}


def test_healthz_reports_the_loaded_index(server: Server) -> None:
    health = server.health()
    assert health["status"] == "ok"
    assert health["documents"] == 2
    assert isinstance(health["paragraphs"], int) and health["paragraphs"] > 20


def test_llm_is_not_offered_when_no_model_answers(server: Server) -> None:
    """The server's model URL is a closed port: the start-up check says so in Chinese, and /ask refuses
    the 大模型 answerer instead of failing with an English APIConnectionError."""
    with pytest.raises(AppError, match="not in the list of choices"):
        client(server).predict("2024年左权县的地区生产总值有多少？", "llm", api_name="/ask")
    llm = server.health()["llm"]
    assert isinstance(llm, dict) and llm["available"] is False
    assert "大模型未启用" in llm["message"] and "RAG_LLM_BASE_URL" in llm["message"]


def test_answer_has_citations_and_highlighted_sources(server: Server) -> None:
    chat, answer = ask(client(server), "2024年左权县的地区生产总值有多少？")
    assert answer is not None and answer["found"]
    assert "80亿" in answer["text"]
    c1 = answer["citations"][0]
    assert c1["doc"] == "000_8e3a739afda006bb.txt"
    html = last_message_text(chat)
    quote = c1["text"][c1["quote_start"] : c1["quote_end"]]
    a, b = c1["answer_start"], c1["answer_end"]
    # the supporting sentence marked, the short answer inside it in bold
    assert f'<mark>{quote[:a]}<strong class="rag-span">{quote[a:b]}</strong>{quote[b:]}</mark>' in html
    assert answer["short"] == quote[a:b] and answer["text"].startswith(f"{answer['short']}[1]")
    assert "把握较高" in html  # the stated short answer's confidence, in words
    assert 'href="#' in html and "-src-1" in html  # [1] links to its source card
    assert f"第 {c1['paragraph']} 段" in html and "相关度" in html


def test_answer_streams_in_before_the_cited_answer(server: Server) -> None:
    job = client(server).submit("左权新修的太行一号旅游公路有多长？", "extractive", api_name="/ask")
    job.result(timeout=120)
    steps = [last_message_text(chat) for chat, *_ in job.outputs()]
    streamed = [s for s in steps if "rag-streaming" in s]
    assert len(streamed) >= 2  # the empty placeholder, then text deltas
    assert "152" in "".join(streamed)
    assert "rag-streaming" not in steps[-1] and "<mark>" in steps[-1]


def test_not_found_answer_shows_closest_paragraphs(server: Server) -> None:
    chat, answer = ask(client(server), "左权县总人口有多少？")
    assert answer is not None and not answer["found"]
    html = last_message_text(chat)
    assert "rag-notfound" in html and "最接近的" in html
    assert "<mark>" not in html


def test_follow_up_uses_this_sessions_history_only(server: Server) -> None:
    a, b = client(server), client(server)
    ask(a, "左云县有多少家活性炭企业？")
    chat_a, answer_a = ask(a, "其中规模以上的有几家？")
    assert answer_a is not None and answer_a["found"] and "7家" in answer_a["text"]
    assert len(chat_a) == 4
    chat_b, _ = ask(b, "其中规模以上的有几家？")
    assert len(chat_b) == 2  # session b never sees session a's turns
    assert all("活性炭" not in str(m["content"]) for m in chat_b if m["role"] == "user")


def test_over_long_question_gets_a_message(server: Server) -> None:
    chat, answer = ask(client(server), "问" * 2001)
    assert answer is None
    text = last_message_text(chat)
    assert "问题太长" in text and "2000" in text
    assert "Traceback" not in text


def test_upload_ask_remove(server: Server, tmp_path: Path) -> None:
    c = client(server)
    path = tmp_path / FICTIONAL_NAME
    path.write_text(FICTIONAL_TEXT, encoding="utf-8")
    report, table, *_ = c.predict([handle_file(str(path))], api_name="/upload")
    assert "已添加" in report and FICTIONAL_NAME in report
    assert FICTIONAL_NAME in {row[0] for row in table["data"]}
    assert server.health()["documents"] == 3

    _, answer = ask(c, FICTIONAL_QUESTION)
    assert answer is not None and answer["found"] and FICTIONAL_ANSWER in answer["text"]
    assert answer["citations"][0]["doc"] == FICTIONAL_NAME

    report, *_ = c.predict(FICTIONAL_NAME, api_name="/remove")
    assert "已删除" in report
    assert doc_names(c) == SEED_DOCS
    _, answer = ask(client(server), FICTIONAL_QUESTION)
    assert answer is not None and not answer["found"]


def test_docx_upload_is_indexed(server: Server, tmp_path: Path) -> None:
    import docx

    path = tmp_path / "wuling_report.docx"
    document = docx.Document()
    document.add_heading("雾岭县简介", level=1)
    document.add_paragraph("雾岭县是一个虚构的县。2024年雾岭县新建了17座风力发电塔。")
    document.save(str(path))
    c = client(server)
    report, *_ = c.predict([handle_file(str(path))], api_name="/upload")
    assert "已添加" in report, report
    _, answer = ask(c, "雾岭县新建了多少座风力发电塔？")
    assert answer is not None and answer["found"] and "17" in answer["text"]
    c.predict("wuling_report.docx", api_name="/remove")
    assert doc_names(c) == SEED_DOCS


def test_bad_uploads_leave_the_index_as_it_was(server: Server, tmp_path: Path) -> None:
    fake_pdf = tmp_path / "report.pdf"
    fake_pdf.write_text("这不是PDF", encoding="utf-8")
    binary_txt = tmp_path / "notes.txt"
    binary_txt.write_bytes(b"\x00\x01\x02\xff" * 64)
    c = client(server)
    report, table, *_ = c.predict(
        [handle_file(str(fake_pdf)), handle_file(str(binary_txt))], api_name="/upload"
    )
    assert "report.pdf" in report and "%PDF" in report
    assert "notes.txt" in report and "无法" in report
    assert {row[0] for row in table["data"]} == SEED_DOCS
    with pytest.raises(AppError, match="not in the list of choices"):
        c.predict("no-such-doc.txt", api_name="/remove")
    assert server.health()["documents"] == 2


def test_a_collection_made_through_the_api_is_taken_by_every_endpoint(server: Server, tmp_path: Path) -> None:
    """/upload, /ask and /documents take a collection as their last argument, one created after the page
    was built included; its documents never answer in the served collection."""
    api = server.url + "api/collections"
    assert httpx.post(api, json={"name": "tea"}, timeout=120).status_code == 201
    try:
        c = client(server)
        path = tmp_path / FICTIONAL_NAME
        path.write_text(FICTIONAL_TEXT, encoding="utf-8")
        report, table, *_ = c.predict([handle_file(str(path))], "tea", api_name="/upload")
        assert "已添加" in report and {row[0] for row in table["data"]} == {FICTIONAL_NAME}
        _, answer = ask(c, FICTIONAL_QUESTION, collection="tea")
        assert answer is not None and answer["found"] and FICTIONAL_ANSWER in answer["text"]
        assert {cite["doc"] for cite in answer["citations"]} == {FICTIONAL_NAME}
        _, answer = ask(c, FICTIONAL_QUESTION)
        assert answer is not None and not answer["found"]
        _, table, *_ = c.predict("tea", api_name="/documents")
        assert {row[0] for row in table["data"]} == {FICTIONAL_NAME}
        assert doc_names(c) == SEED_DOCS
        with pytest.raises(AppError, match="没有文档集合 `nosuch`.*rag collections create"):
            ask(c, FICTIONAL_QUESTION, collection="nosuch")
    finally:
        httpx.delete(api + "/tea", timeout=120)


# Questions with their gold answers (evals/seeds_qa.jsonl), both scripts.
LOAD_QUESTIONS = [
    ("2024年左权县的地区生产总值有多少?", "80亿"),
    ("左权县有机作物种了多少亩?", "8万亩"),
    ("左权新修的太行一号旅游公路有多长?", "152公里"),
    ("2025年左权中学二本应届上线多少人?", "1022人"),
    ("左权核桃油被列入了什么名录?", "中国农业品牌名录"),
    ("左雲縣一共有多少家活性炭企業?", "14家"),
    ("左雲縣改造了多少個老舊小區?", "84個"),
    ("審批的平均辦理環節減少了多少?", "70%"),
    ("左云县城维修改造了多少条小街小巷?", "45条"),
    ("左雲縣自行車賽事已經連續辦了幾年?", "8年"),
]


def test_load_8_clients_x_5_questions(server: Server) -> None:
    """8 sessions × 5 questions in parallel: every answer right; p50/p95 printed (a figure, not a limit)."""
    latencies: list[float] = []
    wrong: list[str] = []
    lock = threading.Lock()

    def session(i: int) -> None:
        c = client(server)
        for j in range(5):
            question, gold = LOAD_QUESTIONS[(i * 5 + j) % len(LOAD_QUESTIONS)]
            start = time.perf_counter()
            try:
                _, answer = ask(c, question)
            except Exception as e:  # a thread's exception would otherwise be lost
                answer = {"found": False, "text": f"{type(e).__name__}: {e}"}
            elapsed = time.perf_counter() - start
            c.predict(api_name="/clear")  # each question stands alone, no follow-up folding
            with lock:
                latencies.append(elapsed)
                if not (answer and answer["found"] and gold in answer["text"]):
                    wrong.append(f"{question} → {answer and answer['text']}")

    threads = [threading.Thread(target=session, args=(i,)) for i in range(8)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    wall = time.perf_counter() - start
    assert len(latencies) == 40
    assert wrong == []
    q = statistics.quantiles(latencies, n=20)
    print(
        f"\nload: 8 clients × 5 questions, {wall:.1f} s wall, "
        f"p50 {statistics.median(latencies):.2f} s, p95 {q[18]:.2f} s, max {max(latencies):.2f} s"
    )
