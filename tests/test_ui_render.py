"""Pure parts of the web chat: HTML rendering, upload checks, the chat handler, the LLM check."""

from __future__ import annotations

import http.server
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from ui_support import EMOJI_RE, free_port

from rag.config import Settings
from rag.errors import QuestionError
from rag.types import Answer, BuildReport, Citation, DocumentInfo, Passage, Skipped
from rag.writer import ScanJob
from ui import render
from ui.app import ChatCollections, ChatPage, ChatService, ChatSession, LlmStatus, build_app, probe_llm
from ui.uploads import UploadRejected, check_upload, read_upload, safe_name, sent_by_client, stage_uploads

WAIT_S = 5.0  # generous bound for a step that takes milliseconds; a step that blocks never ends

PARA = "左权县2024年地区生产总值突破80亿元。农村居民收入年均增长10.5%。"
QUOTE = "农村居民收入年均增长10.5%。"


def citation(**changes: object) -> Citation:
    start = PARA.index(QUOTE)
    values: dict[str, object] = dict(
        n=1,
        doc="a.txt",
        paragraph=3,
        text=PARA,
        quote=QUOTE,
        section="一、发展",
        score=0.5,
        quote_start=start,
        quote_end=start + len(QUOTE),
    )
    values.update(changes)
    return Citation(**values)  # type: ignore[arg-type]


def test_quote_is_marked_by_offsets() -> None:
    html = render.highlighted_paragraph(citation())
    assert html == f"左权县2024年地区生产总值突破80亿元。<mark>{QUOTE}</mark>"


def test_wrong_offsets_fall_back_to_finding_the_quote() -> None:
    assert f"<mark>{QUOTE}</mark>" in render.highlighted_paragraph(citation(quote_start=0, quote_end=3))
    assert "<mark>" not in render.highlighted_paragraph(
        citation(quote="不在段落里", quote_start=99, quote_end=120)
    )


def test_text_is_escaped_and_markers_link_only_to_real_citations() -> None:
    html = render.link_markers("<script>x</script> 80亿元[1][7]", "a0", {1})
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<a class="rag-cite" href="#a0-src-1">[1]</a>' in html
    assert "[7]" in html and "#a0-src-7" not in html
    mark = render.highlighted_paragraph(citation(text="<b>" + PARA, quote_start=0, quote_end=0))
    assert "&lt;b&gt;" in mark and f"<mark>{QUOTE}</mark>" in mark


def test_found_answer_has_source_cards_with_anchor_ids() -> None:
    answer = Answer("问", "年均增长10.5%[1]", True, citations=[citation()])
    html = render.answer_html(answer, "a2-x", collection="default")
    assert 'href="#a2-x-src-1"' in html and 'id="a2-x-src-1"' in html
    assert "第 3 段" in html and "章节：一、发展" in html and "相关度 0.500" in html
    assert "rag-notfound" not in html
    assert "\n\n" not in html  # one HTML block for the Markdown renderer


def test_a_follow_up_shows_how_it_was_read_and_a_question_alone_does_not() -> None:
    follow_up = Answer(
        "林木覆盖率呢?", "58%[1]", True, citations=[citation()], standalone_question="左权县林木覆盖率是多少?"
    )
    assert "结合上文理解为：左权县林木覆盖率是多少?" in render.answer_html(
        follow_up, "a", collection="default"
    )
    alone = Answer("问", "58%[1]", True, citations=[citation()], standalone_question="问")
    assert "结合上文理解为" not in render.answer_html(alone, "a", collection="default")


@pytest.mark.parametrize(
    ("doc", "page", "collection", "href"),
    [
        ("报告.pdf", 2, "zuoquan", "api/collections/zuoquan/documents/%E6%8A%A5%E5%91%8A.pdf/source#page=2"),
        ("scan.PNG", 0, "default", "api/collections/default/documents/scan.PNG/source"),
        ("a b&c.pdf", 1, "x_1", "api/collections/x_1/documents/a%20b%26c.pdf/source#page=1"),
        ("notes.txt", 3, "zuoquan", None),  # only a PDF or an image has a stored copy to open
    ],
)
def test_a_source_card_links_to_the_stored_copy_in_the_answers_collection(
    doc: str, page: int, collection: str, href: str | None
) -> None:
    card = render.citation_card(citation(doc=doc, page=page), "a0", collection)
    if href is None:
        assert "rag-open" not in card
    else:
        assert f'<a class="rag-open" href="{href.replace("&", "&amp;")}"' in card


def test_each_collections_chat_links_its_sources_to_itself() -> None:
    engine = FakeEngine()
    engine.cited = citation(doc="plan.pdf", page=2)
    steps = list(ChatService(engine, collection="zuoquan").ask("收入增长多少？", "extractive", ChatSession()))
    shown = steps[-1][0][-1]["content"]
    assert 'href="api/collections/zuoquan/documents/plan.pdf/source#page=2"' in shown
    assert "api/collections/default/" not in shown


def test_not_found_answer_looks_different_and_shows_closest_paragraphs() -> None:
    passages = [Passage("b.txt", 9, "无关段落" * 200, 0.1, speaker="发言人 高鹏")]
    html = render.answer_html(
        Answer("问", "文档中没有找到这个问题的答案。", False, passages=passages), "a0", collection="default"
    )
    assert "rag-notfound" in html and "文档中没有找到答案" in html
    assert "最接近的" in html and "发言人：发言人 高鹏" in html and "<mark>" not in html
    assert len(html) < 1500  # long paragraphs are shortened


def test_verification_is_shown_only_when_checked() -> None:
    plain = Answer("问", "x[1]", True, citations=[citation()])
    assert "rag-verify" not in render.answer_html(plain, "a", collection="default")
    failed = Answer(
        "问", "x[1]", True, citations=[citation()], answerer="llm", verified=False, verification=["数字不符"]
    )
    html = render.answer_html(failed, "a", collection="default")
    assert "未通过核验" in html and "<li>数字不符</li>" in html and "大模型" in html
    ok = Answer("问", "x[1]", True, citations=[citation()], answerer="llm", verified=True)
    assert "已核验" in render.answer_html(ok, "a", collection="default")


def test_tables_and_reports() -> None:
    docs = [DocumentInfo("b.txt", 3, "h", "2025-01-02T03:04:05+00:00"), DocumentInfo("a.txt", 2, "h", "x")]
    assert render.document_rows(docs) == [["a.txt", 2, "x"], ["b.txt", 3, "2025-01-02 03:04 UTC"]]
    assert "2 个文档，5 个段落" in render.status_markdown(docs, "index")
    report = BuildReport(added=["a.txt"], skipped=[Skipped("/tmp/c.pdf", "no text")])
    md = render.report_markdown(report, [("d.exe", "不支持")])
    assert "已添加 `a.txt`" in md and "no text" in md and "`d.exe`：不支持" in md
    assert render.report_markdown(BuildReport(), []) == "没有变化。"


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\x\\报告 2024.PDF", "报告_2024.pdf"),
        (".hidden.md", "hidden.md"),
        ("a\x00b;rm -rf.txt", "ab_rm_-rf.txt"),
        ("《左权》（全文）.docx", "左权_(全文).docx"),
        ("..txt", "document.txt"),
    ],
)
def test_safe_name(raw: str, safe: str) -> None:
    assert safe_name(raw) == safe


def test_upload_type_is_checked_by_content(tmp_path: Path) -> None:
    def file(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    assert check_upload(file("ok.txt", "左权县".encode()), "ok.txt") == "ok.txt"
    assert check_upload(file("gb.txt", "左權縣".encode("gb18030")), "gb.txt") == "gb.txt"
    assert check_upload(file("ok.pdf", b"%PDF-1.7\n..."), "ok.pdf") == "ok.pdf"
    for name, data, reason in [
        ("fake.pdf", "不是PDF".encode(), "%PDF-"),
        ("fake.docx", b"PK\x03\x04 not really", "不是 Word"),
        ("bin.txt", b"\x00\x01\xff" * 10, "无法"),
        ("pdf.txt", b"%PDF-1.4 binary", "无法"),
        ("empty.md", b"", "空"),
        ("tool.exe", b"MZ", "不支持"),
    ]:
        with pytest.raises(UploadRejected, match=reason):
            check_upload(file(name, data), name)
    zip_path = tmp_path / "other.docx"
    with zipfile.ZipFile(zip_path, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(UploadRejected, match="word/document.xml"):
        check_upload(zip_path, "other.docx")
    with pytest.raises(UploadRejected, match="太大"):
        check_upload(file("big.txt", b"a" * 2048), "big.txt", max_bytes=1024)


def test_tables_and_images_are_accepted_by_content_and_cited_with_page_and_row(tmp_path: Path) -> None:
    def file(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    book = tmp_path / "book.xlsx"
    with zipfile.ZipFile(book, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    assert check_upload(book, "指标.xlsx") == "指标.xlsx"
    assert check_upload(file("a.csv", "县名,人口\n左权县,16.5\n".encode("gb18030")), "a.csv") == "a.csv"
    assert check_upload(file("s.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 20), "s.png") == "s.png"
    assert check_upload(file("s.jpeg", b"\xff\xd8\xff\xe0" + b"\0" * 20), "s.JPEG") == "s.jpeg"
    for name, data, reason in [
        ("fake.xlsx", b"PK\x03\x04 not really", "不是 Excel"),
        ("fake.png", b"\xff\xd8\xff\xe0", "不是 PNG"),
        ("fake.jpg", b"\x89PNG\r\n\x1a\n", "不是 JPG"),
    ]:
        with pytest.raises(UploadRejected, match=reason):
            check_upload(file(name, data), name)
    html = render.answer_html(
        Answer("问", "10.5%[1]", True, citations=[citation(page=1, page_end=2)]), "a0", collection="default"
    )
    assert "第 3 段 · 第 1–2 页" in html
    answer = Answer("问", "7.3亿元[1]", True, citations=[citation(page=2, page_end=2, table=1, row=3)])
    assert "a.txt 第 3 段 第 2 页 表 1 第 3 行（一、发展）" in render.answer_text(answer)


def test_stage_uploads_copies_good_files_under_safe_names(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "x").mkdir(parents=True)
    (src / "报告 一.txt").write_text("内容", encoding="utf-8")
    (src / "x" / "报告 一.txt").write_text("另一个", encoding="utf-8")
    (src / "bad.pdf").write_text("no", encoding="utf-8")
    staging = tmp_path / "staging"
    staging.mkdir()
    accepted, rejected = stage_uploads(
        [src / "报告 一.txt", src / "x" / "报告 一.txt", src / "bad.pdf"], staging
    )
    assert [a.name for a in accepted] == ["报告_一.txt"]
    assert (staging / "报告_一.txt").read_text(encoding="utf-8") == "内容"
    assert [r[0] for r in rejected] == ["报告 一.txt", "bad.pdf"]


def test_read_upload_refuses_anything_but_a_regular_file_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # opening a pipe for reading would wait for a writer forever
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "target.txt")
    (tmp_path / "target.txt").write_text("内容", encoding="utf-8")
    for path in [Path("/dev/zero"), fifo, link, tmp_path]:
        start = time.monotonic()
        with pytest.raises(UploadRejected, match="不是普通文件"):
            read_upload(path, 1024)
        assert time.monotonic() - start < WAIT_S
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * 2048)
    with pytest.raises(UploadRejected, match="太大"):
        read_upload(big, 1024)
    assert read_upload(tmp_path / "target.txt", 1024) == "内容".encode()


def test_only_files_a_client_sent_are_accepted(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    (uploads / "h1").mkdir(parents=True)
    sent = uploads / "h1" / "a.txt"
    sent.write_text("内容", encoding="utf-8")
    secret = tmp_path / "secret.txt"
    secret.write_text("机密", encoding="utf-8")
    escape = uploads / "h1" / "escape.txt"
    escape.symlink_to(secret)
    assert sent_by_client(str(sent), uploads) == sent
    assert sent_by_client(str(sent), uploads, {str(sent)}) == sent
    for path, record in [(secret, None), (Path("/dev/zero"), None), (escape, None), (sent, set())]:
        with pytest.raises(UploadRejected, match="不是通过本服务上传的文件"):
            sent_by_client(str(path), uploads, record)


def test_no_emoji_in_anything_rendered() -> None:
    """Without an emoji font (a plain Debian desktop, a server's headless browser) emoji show as boxes."""
    report = BuildReport(
        added=["a"], updated=["b"], unchanged=["c"], removed=["d"], skipped=[Skipped("e", "x")]
    )
    checked = Answer("问", "x[1]", True, citations=[citation()], answerer="llm", verified=True)
    failed = Answer("问", "x[1]", True, citations=[citation()], answerer="llm", verified=False)
    missing = Answer("问", "没有", False, passages=[Passage("b.txt", 9, "段落", 0.1)])
    texts = [
        render.answer_html(checked, "a", collection="default"),
        render.answer_html(failed, "a", collection="default"),
        render.answer_html(missing, "a", collection="default"),
        render.notice_html("问题太长"),
        render.waiting_html(),
        render.streaming_html("部分"),
        render.status_markdown([DocumentInfo("a.txt", 2, "h", "x")], "index"),
        render.report_markdown(report, [("f.exe", "不支持")]),
        render.confirm_remove_markdown("a.txt"),
    ]
    assert [EMOJI_RE.findall(t) for t in texts] == [[]] * len(texts)


def test_copied_answer_is_plain_text_with_its_sources() -> None:
    answer = Answer("问", "收入年均增长10.5%[1]", True, citations=[citation()])
    text = render.answer_text(answer)
    assert text == f"收入年均增长10.5%[1]\n\n来源：\n[1] a.txt 第 3 段（一、发展）：{QUOTE}"
    html = render.answer_html(answer, "a0", collection="default")
    assert 'class="rag-copy"' in html
    # The copy script joins the hidden lines beside the button: the same text, escaped only as HTML.
    hidden = html.split('<div class="rag-copy-text">', 1)[1]
    assert hidden.startswith("<div>收入年均增长10.5%[1]</div><div></div><div>来源：</div><div>[1] a.txt")
    assert (
        render.answer_text(Answer("问", "文档中没有找到这个问题的答案。", False))
        == "文档中没有找到这个问题的答案。"
    )


class FakeEngine:
    """Just enough engine for the chat handler: streams a fixed answer, records the history it got.

    `hold` (when set) makes ask_stream and add wait until it is set, to see who waits on whom."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.settings = Settings()
        self.index_dir = Path(tempfile.mkdtemp(prefix="fake-index-"))  # the chat logs its requests there
        self.histories: list[list[dict[str, str]]] = []
        self.asked: list[str] = []
        self.hold = hold
        self.hold_questions: set[str] = set()
        self.adding = 0
        self.most_adding = 0
        self.added: list[list[str]] = []
        self.calls = threading.Lock()
        self.cited = citation()

    def documents(self) -> list[DocumentInfo]:
        return [DocumentInfo("a.txt", 2, "h", "2025-01-01T00:00:00+00:00")]

    def ask_stream(
        self, question: str, history: Sequence[dict[str, str]] | None = None, answerer: str | None = None
    ) -> Iterator[str | Answer]:
        if len(question) > self.settings.max_question_chars:
            raise QuestionError("too long")
        self.histories.append(list(history or []))
        self.asked.append(question)
        yield "年均增长"
        if self.hold is not None and question in self.hold_questions:
            assert self.hold.wait(WAIT_S)
        yield "10.5%[1]"
        yield Answer(
            question, "年均增长10.5%[1]", True, citations=[self.cited], answerer=answerer or "extractive"
        )

    def add(self, paths: list[str], progress: Any = None) -> BuildReport:
        with self.calls:
            self.adding += 1
            self.most_adding = max(self.most_adding, self.adding)
        try:
            if self.hold is not None:
                assert self.hold.wait(WAIT_S)
            self.added.append(paths)
            return BuildReport(added=[Path(p).name for p in paths])
        finally:
            with self.calls:
                self.adding -= 1

    def remove(self, doc: str) -> BuildReport:
        return BuildReport(removed=[doc])


def test_chat_handler_streams_then_renders_and_keeps_history_per_session() -> None:
    engine = FakeEngine()
    service = ChatService(engine)
    session = ChatSession()
    steps = list(service.ask("收入增长多少？", "extractive", session))
    assert "rag-streaming" in steps[1][0][-1]["content"]
    chat, session, answer = steps[-1]
    assert "<mark>" in chat[-1]["content"] and answer["found"]
    list(service.ask("那2020年呢？", "llm", session))
    assert engine.histories[-1][0] == {"role": "user", "content": "收入增长多少？"}
    other = ChatSession()
    list(service.ask("别的问题", "extractive", other))
    assert engine.histories[-1] == [] and len(other.messages) == 2 and len(session.messages) == 4


def test_chat_handler_never_writes_the_question_box() -> None:
    """Only the browser clears the box, when a question leaves it; no step of an answer has the box among
    its outputs, so text typed while an answer streams is kept."""
    steps = list(ChatService(FakeEngine()).ask("收入增长多少？", "extractive", ChatSession()))
    assert len(steps) >= 3 and all(len(step) == 3 for step in steps)
    assert all(not isinstance(value, str) for step in steps for value in step)


def test_chat_handler_turns_question_errors_into_a_message() -> None:
    service = ChatService(FakeEngine())
    *_, (chat, _, answer) = service.ask("问" * 2001, "extractive", ChatSession())
    assert answer is None and "问题太长" in chat[-1]["content"] and "2000" in chat[-1]["content"]
    assert list(service.ask("   ", "extractive", ChatSession()))[-1][0] == []


def _drain(steps: Iterator[Any], into: list[Any]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.extend(steps), daemon=True)
    thread.start()
    return thread


def test_a_question_sent_while_one_streams_is_shown_then_answered_after_it() -> None:
    hold = threading.Event()
    engine = FakeEngine(hold)
    engine.hold_questions = {"第一个问题"}
    service = ChatService(engine)
    session = ChatSession()
    first: list[Any] = []
    second: list[Any] = []
    one = _drain(service.ask("第一个问题", "extractive", session), first)
    while not engine.asked:
        time.sleep(0.01)
    two = _drain(service.ask("第二个问题", "extractive", session), second)
    time.sleep(0.2)
    assert engine.asked == ["第一个问题"]  # the second waits for the first
    assert "等上一个问题回答完" in second[0][0][-1]["content"]  # but is shown at once
    hold.set()
    one.join(WAIT_S)
    two.join(WAIT_S)
    assert engine.asked == ["第一个问题", "第二个问题"]
    assert engine.histories[1][0] == {"role": "user", "content": "第一个问题"}  # a follow-up sees the first
    assert [m["content"] for m in session.messages if m["role"] == "user"] == ["第一个问题", "第二个问题"]
    assert all("<mark>" in m["content"] for m in session.messages if m["role"] == "assistant")


def test_clearing_the_chat_drops_answers_still_coming() -> None:
    hold = threading.Event()
    engine = FakeEngine(hold)
    engine.hold_questions = {"问题"}
    service = ChatService(engine)
    session = ChatSession()
    steps: list[Any] = []
    thread = _drain(service.ask("问题", "extractive", session), steps)
    while not engine.asked:
        time.sleep(0.01)
    chat, new_session, _ = service.clear(session)
    hold.set()
    thread.join(WAIT_S)
    assert chat == [] and new_session is not session and new_session.messages == []
    # Nothing more of the old conversation is shown after the clear: no finished answer comes back.
    assert steps and all("<mark>" not in str(step[0]) for step in steps) and session.history == []


def _upload_dir_with(tmp_path: Path, name: str, text: str) -> tuple[Path, str]:
    folder = tmp_path / "uploads" / name
    folder.mkdir(parents=True)
    (folder / name).write_text(text, encoding="utf-8")
    return tmp_path / "uploads", str(folder / name)


def test_questions_are_answered_while_an_upload_is_indexed(tmp_path: Path) -> None:
    hold = threading.Event()
    engine = FakeEngine(hold)
    uploads, path = _upload_dir_with(tmp_path, "new.txt", "新文档的内容")
    service = ChatService(engine, upload_dir=uploads)
    uploading = threading.Thread(target=service.upload, args=([path],), daemon=True)
    uploading.start()
    while not engine.adding:
        time.sleep(0.01)
    steps: list[Any] = []
    _drain(service.ask("收入增长多少？", "extractive", ChatSession()), steps).join(WAIT_S)
    assert steps and steps[-1][2] is not None and steps[-1][2]["found"]  # answered, the upload still running
    assert engine.adding == 1
    hold.set()
    uploading.join(WAIT_S)
    assert engine.added and engine.added[0][0].endswith("new.txt")


def test_a_second_upload_waits_for_the_first_and_says_so_only_then(tmp_path: Path) -> None:
    hold = threading.Event()
    engine = FakeEngine(hold)
    uploads, first_path = _upload_dir_with(tmp_path, "one.txt", "第一个文档")
    _, second_path = _upload_dir_with(tmp_path, "two.txt", "第二个文档")
    service = ChatService(engine, upload_dir=uploads)
    said: dict[str, list[str]] = {"one": [], "two": []}

    def run(key: str, path: str) -> None:
        service.upload([path], lambda fraction, desc: said[key].append(desc))

    first = threading.Thread(target=run, args=("one", first_path), daemon=True)
    first.start()
    while not engine.adding:
        time.sleep(0.01)
    second = threading.Thread(target=run, args=("two", second_path), daemon=True)
    second.start()
    while not any("另一个" in d for d in said["two"]):
        time.sleep(0.01)
    hold.set()
    first.join(WAIT_S)
    second.join(WAIT_S)
    assert not any("等待" in d or "另一个" in d for d in said["one"])  # nothing else ran: no waiting said
    assert engine.most_adding == 1 and len(engine.added) == 2  # writes took turns


def test_upload_refuses_files_the_client_did_not_send(tmp_path: Path) -> None:
    engine = FakeEngine()
    uploads, sent = _upload_dir_with(tmp_path, "sent.txt", "上传的内容")
    secret = tmp_path / "secret.txt"
    secret.write_text("服务器上的机密", encoding="utf-8")
    service = ChatService(engine, upload_dir=uploads)
    start = time.monotonic()
    report, *_ = service.upload([str(secret), "/dev/zero", sent])
    assert time.monotonic() - start < WAIT_S
    assert "未接收 `secret.txt`" in report and "未接收 `zero`" in report and "已添加 `sent.txt`" in report
    assert [Path(p).name for p in engine.added[0]] == ["sent.txt"]


class _ModelsHandler(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible server's model list, answering with the status the test sets."""

    status = 200

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        body = b'{"object": "list", "data": [{"id": "local"}]}'
        self.send_response(self.status if self.path.endswith("/models") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def test_llm_probe_says_in_chinese_what_to_configure(tmp_path: Path) -> None:
    closed = probe_llm(Settings(llm_base_url=f"http://127.0.0.1:{free_port()}/v1"))
    assert not closed.available and "连不上" in closed.message and "RAG_LLM_BASE_URL" in closed.message
    assert "APIConnectionError" not in closed.message
    missing = probe_llm(Settings(llm_backend="gguf", llm_gguf_path=str(tmp_path / "none.gguf")))
    assert not missing.available and "找不到模型文件" in missing.message
    odd = probe_llm(Settings(llm_backend="vllm"))
    assert not odd.available and "RAG_LLM_BACKEND" in odd.message
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ModelsHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        up = probe_llm(Settings(llm_base_url=url, llm_model="qwen"))
        assert up.available and "qwen" in up.message
        _ModelsHandler.status = 401
        refused = probe_llm(Settings(llm_base_url=url))
        assert not refused.available and "RAG_LLM_API_KEY" in refused.message
    finally:
        _ModelsHandler.status = 200
        server.shutdown()


def _answerer_radio(demo: gr.Blocks) -> dict[str, Any]:
    return next(c for c in demo.config["components"] if c.get("props", {}).get("label") == "回答方式")


def test_llm_is_offered_only_when_the_model_answers() -> None:
    engine = FakeEngine()
    engine.settings = Settings(answerer="llm")
    off = _answerer_radio(build_app(engine, llm=LlmStatus(False, "大模型未启用：连不上。")))["props"]
    assert [c[1] for c in off["choices"]] == ["extractive"] and off["value"] == "extractive"
    assert off["info"] == "大模型未启用：连不上。"
    on = _answerer_radio(build_app(engine, llm=LlmStatus(True, "大模型：qwen")))["props"]
    assert [c[1] for c in on["choices"]] == ["extractive", "llm"] and on["value"] == "llm"


# --- collections, the kept conversation, 答案有误 -------------------------------------------------


class VersionedEngine(FakeEngine):
    """A FakeEngine whose live version can be changed, as an upload through the API changes it."""

    class Store:
        version = "v-1"

    def __init__(self) -> None:
        super().__init__()
        self.store = self.Store()
        self.docs = [DocumentInfo("a.txt", 2, "h", "2025-01-01T00:00:00+00:00")]

    def documents(self) -> list[DocumentInfo]:
        return list(self.docs)


def _page(engine: Any) -> ChatPage:
    return ChatPage(ChatCollections(ChatService(engine)))


def _is_skip(value: Any) -> bool:
    return value == gr.skip()


def test_a_follow_up_after_a_reload_reads_the_conversation_the_browser_kept() -> None:
    engine = FakeEngine()
    before = _page(engine)
    session = ChatSession()
    list(before.ask("收入增长多少？", "extractive", session))
    stored = before.save(session, None)
    # A reload: a new session of a new page, from nothing but what the browser kept.
    after = _page(engine)
    _, chat, restored, *_ = after.open(stored)
    assert [m["role"] for m in chat] == ["user", "assistant"] and "<mark>" in chat[1]["content"]
    list(after.ask("那2020年呢？", "extractive", restored))
    assert engine.histories[-1] == [
        {"role": "user", "content": "收入增长多少？"},
        {"role": "assistant", "content": "年均增长10.5%[1]"},
    ]
    assert after.forget(restored, after.save(restored, stored))["chats"] == {}  # 新对话


def test_a_question_still_waiting_is_not_kept() -> None:
    hold = threading.Event()
    engine = FakeEngine(hold)
    engine.hold_questions = {"第二个"}
    page = _page(engine)
    session = ChatSession()
    list(page.ask("第一个", "extractive", session))
    steps = page.ask("第二个", "extractive", session)
    next(steps)  # shown, its answer streaming
    next(steps)
    kept = page.save(session, None)["chats"]["default"]["messages"]
    assert [m["content"] for m in kept if m["role"] == "user"] == ["第一个"]
    hold.set()
    list(steps)
    kept = page.save(session, None)["chats"]["default"]["messages"]
    assert [m["content"] for m in kept if m["role"] == "user"] == ["第一个", "第二个"]


def test_marking_an_answer_wrong_writes_the_api_feedback_record(tmp_path: Path) -> None:
    import json

    engine = FakeEngine()
    engine.index_dir = tmp_path
    page = _page(engine)
    session = ChatSession()
    list(page.ask("收入增长多少？", "extractive", session))
    list(page.ask("那2020年呢？", "extractive", session))
    answer_id = list(session.answers)[-1]
    box, prompt, correct, note = page.open_feedback(answer_id, session)
    assert box["visible"] is True and "那2020年呢？" in prompt and correct == "" and note == ""
    box, said = page.send_feedback(answer_id, " 8.1% ", session)
    assert box["visible"] is False and said.startswith("已记录")
    (record,) = [json.loads(line) for line in (tmp_path / "feedback.jsonl").read_text().splitlines()]
    assert {k: v for k, v in record.items() if k != "time"} == {
        "id": answer_id,
        "collection": "default",
        "question": "那2020年呢？",
        "answer": "年均增长10.5%[1]",
        "correct_answer": "8.1%",
        "comment": "",
        "history": ["收入增长多少？"],
        "cited": ["a.txt ¶3"],
    }
    assert "没有找到" in page.open_feedback("a99-000000", session)[3]
    assert "没有记录" in page.send_feedback("a99-000000", "", session)[1]
    assert len((tmp_path / "feedback.jsonl").read_text().splitlines()) == 1
    # each chat answer is in the request log beside it, as the API's are, without its question by default
    logged = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert [r["endpoint"] for r in logged] == ["web.chat", "web.chat"]
    assert logged[-1]["id"] == answer_id and logged[-1]["found"] is True and "question" not in logged[-1]
    assert {"latency_ms", "confidence", "short_confidence", "collection"} <= set(logged[-1])


def test_the_poll_updates_the_documents_only_when_the_version_changed() -> None:
    engine = VersionedEngine()
    page = _page(engine)
    picker, table, choices, status, seen = page.poll("default", {})
    assert picker["choices"] == ["default"] and table == [["a.txt", 2, "2025-01-01 00:00 UTC"]]
    assert all(_is_skip(v) for v in page.poll("default", seen)[:4])  # nothing changed: nothing re-rendered
    engine.docs.append(DocumentInfo("b.txt", 5, "h2", "2025-02-01T00:00:00+00:00"))
    engine.store.version = "v-2"  # an upload through the API
    picker, table, choices, status, seen = page.poll("default", seen)
    assert _is_skip(picker) and [row[0] for row in table] == ["a.txt", "b.txt"]
    assert choices["choices"] == ["a.txt", "b.txt"] and "value" not in choices  # a chosen doc stays chosen
    assert "2 个文档" in status
    assert page.chats.first.health()["documents"] == 2


def _job(
    state: str, done: int = 0, total: int = 3, documents: tuple[str, ...] = ("scan.pdf",), error: str = ""
) -> ScanJob:
    return ScanJob("j1", "/i", list(documents), total, done, state, error=error)


@pytest.mark.parametrize(
    ("jobs", "shown"),
    [
        ([_job("queued")], "等待识别：`scan.pdf`（3 页）"),
        ([_job("ocr", 0, 10)], "识别中：`scan.pdf` 第 1/10 页"),
        ([_job("ocr", 2, 10)], "识别中：`scan.pdf` 第 3/10 页"),
        ([_job("ocr", 10, 10)], "识别中：`scan.pdf` 第 10/10 页"),  # the last page read, not yet indexing
        ([_job("indexing", 3)], "识别完成，正在加入索引：`scan.pdf`"),
        ([_job("done", 3)], ""),
        ([_job("failed", 1, error="<disk> full")], "识别没有完成：`scan.pdf`（&lt;disk&gt; full）"),
        ([_job("failed", error="x" * 500)], f"识别没有完成：`scan.pdf`（{'x' * render.SCAN_ERROR_CHARS}…）"),
        (
            [_job("ocr", 1, 5, ("a.pdf", "b.png")), _job("queued", 0, 2, ("c.pdf",))],
            "识别中：`a.pdf`、`b.png` 第 2/5 页；等待识别：`c.pdf`（2 页）",
        ),
        ([], ""),
    ],
)
def test_scan_progress_says_how_far_each_unfinished_job_got(jobs: list[ScanJob], shown: str) -> None:
    assert render.scan_progress(jobs) == shown


def test_the_poll_shows_the_reading_of_scans_and_then_the_scanned_document(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ui.chat

    engine = VersionedEngine()
    jobs = [_job("ocr", 0, 3)]
    asked: list[str] = []
    monkeypatch.setattr(ui.chat, "scan_jobs", lambda root: asked.append(str(root)) or list(jobs))
    page = _page(engine)
    *_, status, seen = page.poll("default", {})
    assert (
        "1 个文档" in status
        and status.endswith("识别中：`scan.pdf` 第 1/3 页")
        and asked[-1] == str(engine.index_dir)
    )
    assert all(_is_skip(v) for v in page.poll("default", seen)[:4])  # the same page: nothing re-rendered
    jobs[0].pages_done = 1
    picker, table, choices, status, seen = page.poll("default", seen)
    assert all(_is_skip(v) for v in (picker, table, choices)) and status.endswith("第 2/3 页")
    engine.docs.append(DocumentInfo("scan.pdf", 3, "h2", "2025-02-01T00:00:00+00:00"))
    engine.store.version = "v-2"  # the job committed
    jobs[0].state, jobs[0].pages_done = "done", 3
    picker, table, choices, status, seen = page.poll("default", seen)
    assert (
        [row[0] for row in table] == ["a.txt", "scan.pdf"] and "识别" not in status and "2 个文档" in status
    )
    assert all(_is_skip(v) for v in page.poll("default", seen)[:4])


def test_an_unknown_collection_is_refused_with_what_to_do() -> None:
    page = _page(FakeEngine())
    with pytest.raises(gr.Error, match="没有文档集合 `other`"):
        list(page.ask("收入增长多少？", "extractive", ChatSession(), "other"))
    report, *rest = page.documents("other")
    assert "没有文档集合" in report and all(_is_skip(v) for v in rest)
    back, *_, report, _t, _c, _s, _f, _box = page.switch("other", ChatSession(), None)
    assert back["value"] == "default" and "没有文档集合" in report


@pytest.mark.parametrize(
    ("stated", "confidence", "words", "css"),
    [
        (True, 0.9, "把握较高", "rag-sure"),
        (False, 0.7, "把握一般", "rag-unsure"),
        (False, 0.2, "把握较低", "rag-doubtful"),
    ],
)
def test_the_confidence_badge_says_how_sure_in_words_and_colour(
    stated: bool, confidence: float, words: str, css: str
) -> None:
    answer = Answer("左云县有几家?", "14家[1]", True, short_stated=stated, confidence=confidence)
    badge = render.confidence_badge(answer)
    assert words in badge and f"rag-confidence {css}" in badge
    assert render.confidence_badge(Answer("左云县有几家?", "没有", False)) == ""
