"""Pure parts of the web chat: HTML rendering, upload checks, the read/write lock, the chat handler."""

from __future__ import annotations

import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import QuestionError
from rag.types import Answer, BuildReport, Citation, DocumentInfo, Passage, Skipped
from ui import render
from ui.app import ChatService, ChatSession, ReadWriteLock
from ui.uploads import UploadRejected, check_upload, safe_name, stage_uploads

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
    html = render.answer_html(answer, "a2-x")
    assert 'href="#a2-x-src-1"' in html and 'id="a2-x-src-1"' in html
    assert "第 3 段" in html and "章节：一、发展" in html and "相关度 0.500" in html
    assert "rag-notfound" not in html
    assert "\n\n" not in html  # one HTML block for the Markdown renderer


def test_not_found_answer_looks_different_and_shows_closest_paragraphs() -> None:
    passages = [Passage("b.txt", 9, "无关段落" * 200, 0.1, speaker="发言人 高鹏")]
    html = render.answer_html(Answer("问", "文档中没有找到这个问题的答案。", False, passages=passages), "a0")
    assert "rag-notfound" in html and "文档中没有找到答案" in html
    assert "最接近的" in html and "发言人：发言人 高鹏" in html and "<mark>" not in html
    assert len(html) < 1500  # long paragraphs are shortened


def test_verification_is_shown_only_when_checked() -> None:
    plain = Answer("问", "x[1]", True, citations=[citation()])
    assert "rag-verify" not in render.answer_html(plain, "a")
    failed = Answer(
        "问", "x[1]", True, citations=[citation()], answerer="llm", verified=False, verification=["数字不符"]
    )
    html = render.answer_html(failed, "a")
    assert "未通过核验" in html and "<li>数字不符</li>" in html and "大模型" in html
    ok = Answer("问", "x[1]", True, citations=[citation()], answerer="llm", verified=True)
    assert "已核验" in render.answer_html(ok, "a")


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


def test_write_lock_waits_for_readers_and_blocks_new_ones() -> None:
    lock = ReadWriteLock()
    events: list[str] = []
    with lock.read():
        writer = threading.Thread(target=lambda: _write(lock, events))
        writer.start()
        time.sleep(0.1)
        assert events == []  # the writer waits for the reader
    writer.join(timeout=5)
    assert events == ["write"]


def _write(lock: ReadWriteLock, events: list[str]) -> None:
    with lock.write():
        events.append("write")


class FakeEngine:
    """Just enough engine for the chat handler: streams a fixed answer, records the history it got."""

    def __init__(self) -> None:
        self.settings = Settings()
        self.index_dir = Path("index")
        self.histories: list[list[dict[str, str]]] = []

    def documents(self) -> list[DocumentInfo]:
        return [DocumentInfo("a.txt", 2, "h", "2025-01-01T00:00:00+00:00")]

    def ask_stream(
        self, question: str, history: Sequence[dict[str, str]] | None = None, answerer: str | None = None
    ) -> Iterator[str | Answer]:
        if len(question) > self.settings.max_question_chars:
            raise QuestionError("too long")
        self.histories.append(list(history or []))
        yield "年均增长"
        yield "10.5%[1]"
        yield Answer(
            question, "年均增长10.5%[1]", True, citations=[citation()], answerer=answerer or "extractive"
        )


def test_chat_handler_streams_then_renders_and_keeps_history_per_session() -> None:
    engine = FakeEngine()
    service = ChatService(engine)
    session = ChatSession()
    steps = list(service.ask("收入增长多少？", "extractive", session))
    assert "rag-streaming" in steps[1][0][-1]["content"]
    chat, session, answer, box = steps[-1]
    assert "<mark>" in chat[-1]["content"] and answer["found"] and box == ""
    list(service.ask("那2020年呢？", "llm", session))
    assert engine.histories[-1][0] == {"role": "user", "content": "收入增长多少？"}
    other = ChatSession()
    list(service.ask("别的问题", "extractive", other))
    assert engine.histories[-1] == [] and len(other.messages) == 2 and len(session.messages) == 4


def test_chat_handler_turns_question_errors_into_a_message() -> None:
    service = ChatService(FakeEngine())
    *_, (chat, _, answer, _) = service.ask("问" * 2001, "extractive", ChatSession())
    assert answer is None and "问题太长" in chat[-1]["content"] and "2000" in chat[-1]["content"]
    assert list(service.ask("   ", "extractive", ChatSession()))[-1][0] == []
