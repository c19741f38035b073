"""The chat of one collection: a browser session's conversation (`ChatSession`) and the event handlers over
one engine (`ChatService`): streamed cited answers, "答案有误" records, uploads and removals.

All retrieval and answering happens in the engine; this module only calls it and renders the result
(ui/render.py). ui/chat_collections.py puts one ChatService per collection behind the page's picker.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.utils import get_upload_folder

from rag.collections import DEFAULT
from rag.errors import LLMError, QuestionError, RagError
from rag.types import Answer, BuildReport, DocumentInfo
from rag.writer import ScanJob, queue_scans, scan_jobs
from ui import render, stored_chat
from ui.feedback import Feedback, Journal, cited_of_answer
from ui.uploads import (
    MAX_UPLOAD_BYTES,
    UploadRejected,
    sent_by_client,
    split_scans,
    stage_uploads,
    upload_notes,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LlmStatus:
    """Whether the generative answerer can be offered, with a line in Chinese: what answers, or what to set."""

    available: bool
    message: str


@dataclass
class _Pending:
    """A question taken from the box, waiting for its turn: its answer goes to messages[index]."""

    question: str
    index: int
    answer_id: str


class ChatSession:
    """One browser session's conversation: what the chat shows, the plain turns the engine reads, and the
    questions sent but not answered yet (answered one at a time, in the order they were sent).

    It belongs to one collection, and keeps per answer id what a "答案有误" report records (`answers`).
    A plain class, not a dataclass: Gradio serialises a dataclass State value field by field, lock included.
    """

    def __init__(
        self,
        messages: list[dict[str, str]] | None = None,
        history: list[dict[str, str]] | None = None,
        *,
        collection: str = DEFAULT,
        answers: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.messages: list[dict[str, str]] = messages if messages is not None else []
        self.history: list[dict[str, str]] = history if history is not None else []
        self.collection = collection
        self.answers: dict[str, dict[str, Any]] = answers if answers is not None else {}
        self.pending: deque[_Pending | None] = deque()
        self.unanswered: set[int] = set()  # chat positions of answers not finished yet
        self.answering = False
        self.cleared = False
        # A Condition, not a thread-owned lock: Gradio may resume a generator on another thread.
        self.turn = threading.Condition()

    def __deepcopy__(self, memo: dict[int, Any]) -> ChatSession:
        """gr.State copies its initial value for each browser session: the copy has its own turn."""
        return ChatSession(
            copy.deepcopy(self.messages, memo),
            copy.deepcopy(self.history, memo),
            collection=self.collection,
            answers=copy.deepcopy(self.answers, memo),
        )

    @classmethod
    def restored(cls, conversation: stored_chat.Conversation, collection: str) -> ChatSession:
        """A session that goes on with a conversation the browser kept."""
        return cls(
            conversation.messages, conversation.history, collection=collection, answers=conversation.answers
        )

    def conversation(self) -> stored_chat.Conversation:
        """What the browser keeps: the questions answered so far (one still waiting is left out)."""
        with self.turn:
            messages = [
                m
                for i, m in enumerate(self.messages)
                if (i + 1 if m.get("role") == "user" else i) not in self.unanswered  # where its answer is
            ]
            return stored_chat.Conversation(
                copy.deepcopy(messages), copy.deepcopy(self.history), copy.deepcopy(self.answers)
            )

    def show(self, index: int, content: str) -> list[dict[str, str]]:
        """Put one answer's current content in place; the whole chat as it now stands."""
        with self.turn:
            self.messages[index] = {"role": "assistant", "content": content}
            return list(self.messages)


AskOutputs = tuple[Any, Any, Any]  # the chat, the session, the answer as JSON (or gr.skip() for each)
DocsOutputs = tuple[str, list[list[str | int]], Any, str, None]
ProgressFn = Callable[[float, str], None]


def _no_progress(fraction: float, desc: str) -> None:
    """Progress sink when no browser is watching."""


class ChatService:
    """Event handlers over one engine.

    Questions take no lock: the engine gives each question one consistent index while an upload or a
    removal builds the next. Uploads and removals take turns among themselves (one plain lock).
    """

    def __init__(
        self,
        engine: Any,
        *,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        upload_dir: str | Path | None = None,
        llm: LlmStatus | None = None,
        collection: str = DEFAULT,
        journal: Journal | None = None,
    ):
        self.engine = engine
        self.max_upload_bytes = max_upload_bytes
        self.upload_dir = Path(upload_dir or get_upload_folder())
        self.sent_files: Container[str] | None = None  # what the server received; build_app wires it
        self.llm = llm  # None: not checked here, the engine says what went wrong
        self.collection = collection
        # Where "答案有误" goes: the API's feedback file of the collection.
        self.journal = journal or Journal()
        self._write_lock = threading.Lock()
        self._docs_at: tuple[str, list[DocumentInfo]] = (self.version(), list(engine.documents()))

    # --- reads -------------------------------------------------------------------------------
    def version(self) -> str:
        """The engine's live index version: a new one after every upload or removal, through the chat or
        the API ('' for an engine that does not say). Reading it takes no lock."""
        return str(getattr(getattr(self.engine, "store", None), "version", ""))

    def documents(self) -> list[DocumentInfo]:
        """The document list of the live version, read again only when the version changed."""
        version = self.version()
        seen, docs = self._docs_at
        if version != seen:
            docs = list(self.engine.documents())
            self._docs_at = (version, docs)
        return list(docs)

    def health(self) -> dict[str, Any]:
        docs = self.documents()
        return {
            "status": "ok",
            "index": str(self.engine.index_dir),
            "documents": len(docs),
            "paragraphs": sum(d.paragraphs for d in docs),
            "llm": None
            if self.llm is None
            else {"available": self.llm.available, "message": self.llm.message},
        }

    def scan_progress(self) -> str:
        """How far the background reading of this collection's scanned uploads got ("" when none is left)."""
        return render.scan_progress(scan_jobs(self.engine.index_dir))

    def status(self) -> str:
        return render.status_markdown(self.documents(), str(self.engine.index_dir), self.scan_progress())

    def _question_problem(self, question: str, error: QuestionError) -> str:
        limit = self.engine.settings.max_question_chars
        if len(question) > limit:
            return f"问题太长：{len(question)} 个字符，上限 {limit} 个。请缩短后再问。"
        return f"这个问题无法处理：{error}"

    def _enqueue(self, question: str, session: ChatSession) -> None:
        """Show the question with a placeholder and queue it; an empty one queues a no-op (one per send)."""
        question = (question or "").strip()
        with session.turn:
            if not question:
                session.pending.append(None)
                return
            busy = session.answering or any(session.pending)
            placeholder = render.waiting_html() if busy else render.streaming_html("")
            answer_id = f"a{len(session.messages)}-{secrets.token_hex(3)}"
            session.messages.extend(
                [{"role": "user", "content": question}, {"role": "assistant", "content": placeholder}]
            )
            session.pending.append(_Pending(question, len(session.messages) - 1, answer_id))
            session.unanswered.add(len(session.messages) - 1)

    def answer_next(self, answerer: str, session: ChatSession) -> Iterator[AskOutputs]:
        """Answer the oldest queued question of this session once the one before it is done."""
        with session.turn:
            while session.answering:
                session.turn.wait()
            session.answering = True
            item = session.pending.popleft() if session.pending else None
        try:
            if session.cleared:  # a new conversation began: leave it alone
                yield gr.skip(), gr.skip(), gr.skip()
                return
            if item is None:  # an empty question
                yield list(session.messages), session, None
                return
            yield from self._answer(item, answerer, session)
        finally:
            with session.turn:
                if item is not None:
                    session.unanswered.discard(item.index)
                session.answering = False
                session.turn.notify_all()

    def ask(self, question: str, answerer: str, session: ChatSession) -> Iterator[AskOutputs]:
        """Show the question at once, then answer it after the ones sent before it in this session (the
        /ask endpoint): the chat, the session, the answer as JSON."""
        self._enqueue(question, session)
        with session.turn:
            chat = list(session.messages)
        yield chat, session, gr.skip()
        yield from self.answer_next(answerer, session)

    def _answer(self, item: _Pending, answerer: str, session: ChatSession) -> Iterator[AskOutputs]:
        """Stream one answer into its place in the chat, then replace it with the cited, rendered answer."""
        question, index = item.question, item.index
        if answerer == "llm" and self.llm is not None and not self.llm.available:
            yield session.show(index, render.notice_html(self.llm.message)), session, None
            return
        yield session.show(index, render.streaming_html("")), session, gr.skip()
        started = time.perf_counter()
        answer: Answer | None = None
        shown: str | None = None
        partial = ""
        try:
            history = _history_before(session, index)
            for piece in self.engine.ask_stream(question, history=history, answerer=answerer):
                if session.cleared:
                    return
                if isinstance(piece, Answer):
                    answer = piece
                else:
                    partial += piece
                    yield session.show(index, render.streaming_html(partial)), session, gr.skip()
        except QuestionError as e:
            shown = render.notice_html(self._question_problem(question, e))
        except LLMError as e:
            shown = render.notice_html(f"大模型暂时不可用：{e}。可以改用“抽取式”回答方式。")
        except RagError as e:
            shown = render.notice_html(f"出错了：{e}")
        except Exception:
            log.exception("answering %r failed", question[:200])
            shown = render.notice_html("内部错误，请查看服务日志。")
        self._log_request(item, started, answer, "" if answer is not None else "no answer")
        if session.cleared:
            return
        if answer is None:
            yield session.show(index, shown or render.notice_html("没有得到回答。")), session, None
            return
        chat = session.show(index, render.answer_html(answer, item.answer_id, collection=self.collection))
        with session.turn:
            session.history.extend(
                [{"role": "user", "content": question}, {"role": "assistant", "content": answer.text}]
            )
            session.answers[item.answer_id] = {
                "question": question,
                "answer": answer.text,
                "cited": list(cited_of_answer(answer)),
                "history": [t["content"] for t in history if t.get("role") == "user"],
            }
        yield chat, session, dataclasses.asdict(answer)

    def clear(self, session: ChatSession | None = None) -> tuple[list[dict[str, str]], ChatSession, None]:
        """A new conversation; answers still coming for the old one are dropped."""
        if session is not None:
            with session.turn:
                session.cleared = True
        return [], ChatSession(collection=session.collection if session else self.collection), None

    def _log_request(self, item: _Pending, started: float, answer: Answer | None, error: str) -> None:
        """One line in the collection's request log, as the API writes for its questions."""
        try:
            self.journal.request(
                Path(self.engine.index_dir),
                collection=self.collection,
                endpoint="web.chat",
                request_id=item.answer_id,
                seconds=time.perf_counter() - started,
                answer=answer,
                question=item.question,
                error=error,
            )
        except OSError as e:  # a full disk must not fail the answer
            log.warning("request log not written: %s", e)

    # --- feedback ----------------------------------------------------------------------------
    def mark_wrong(self, answer_id: str, correct_answer: str, session: ChatSession) -> str:
        """Record one answer of this session as wrong (the record POST /api/feedback writes, with the
        answer's id); what to tell the user."""
        with session.turn:
            record = session.answers.get(answer_id)
        if record is None:
            return "没有找到这个回答（可能已经开始了新对话），没有记录。"
        item = Feedback(
            collection=self.collection,
            question=record["question"],
            answer=record["answer"],
            correct_answer=(correct_answer or "").strip(),
            history=tuple(record["history"]),
            request_id=answer_id,
            cited=tuple(record["cited"]),
        )
        try:
            self.journal.feedback(Path(self.engine.index_dir), item)
        except OSError as e:
            log.warning("feedback not written: %s", e)
            return f"没有记录成功：{e.strerror or e}。请稍后再试。"
        given = "附正确答案" if item.correct_answer else "未填正确答案"
        return f"已记录：这个回答已标为有误（{given}），谢谢。"

    # --- writes ------------------------------------------------------------------------------
    @contextmanager
    def _writing(self, say: ProgressFn, waiting: str) -> Iterator[None]:
        """Take the write turn; say `waiting` only when another upload or removal really holds it."""
        if not self._write_lock.acquire(blocking=False):
            say(0.05, waiting)
            self._write_lock.acquire()
        try:
            yield
        finally:
            self._write_lock.release()

    def _after_change(self, message: str) -> DocsOutputs:
        version = self.version()
        docs = list(self.engine.documents())
        self._docs_at = (version, docs)
        names = [d.doc for d in docs]
        return (
            message,
            render.document_rows(docs),
            gr.update(choices=names, value=None),
            self.status(),
            None,
        )

    def refresh(self) -> DocsOutputs:
        return self._after_change("")

    def listing(self) -> tuple[list[list[str | int]], Any, str]:
        """The documents table, the removal choices and the status line as they are now; the choice made
        for removal is kept (a refresh must not undo what the user is doing)."""
        docs = self.documents()
        return render.document_rows(docs), gr.update(choices=[d.doc for d in docs]), self.status()

    def upload(self, files: list[str] | None, progress: ProgressFn | None = None) -> DocsOutputs:
        """Check, stage and index uploaded files; the index is left as it was when anything fails.

        Only files a client sent are read: each must be a regular file in the upload folder (and, where
        the server keeps the record, one it received), so a path naming a file of the server is refused.
        """
        say: ProgressFn = progress or _no_progress
        if not files:
            return self._after_change("请先选择要上传的文件。")
        staging = Path(tempfile.mkdtemp(prefix="rag-upload-"))
        try:
            say(0.02, "检查文件…")
            sent: list[Path] = []
            refused: list[tuple[str, str]] = []
            for f in files:
                try:
                    sent.append(sent_by_client(str(f), self.upload_dir, self.sent_files))
                except UploadRejected as e:
                    refused.append((Path(str(f)).name, str(e)))
            accepted, rejected = stage_uploads(sent, staging, self.max_upload_bytes)
            rejected = refused + rejected
            accepted, scans = split_scans(accepted)  # scanned pages are OCR'd in the background, not here
            report: BuildReport | None = None
            if accepted:
                count = len(accepted)

                def embedded(done: int, total: int) -> None:
                    say(0.05 + 0.9 * done / max(total, 1), f"正在生成向量：{done}/{total} 字")

                try:
                    with self._writing(say, f"另一个上传或删除正在进行，等它完成后再索引 {count} 个文件…"):
                        say(0.05, f"正在索引 {count} 个文件…")
                        report = self.engine.add([str(a.path) for a in accepted], progress=embedded)
                except RagError as e:
                    return self._after_change(
                        render.report_markdown(None, rejected) + f"\n\n索引没有改变：{e}"
                    )
                except Exception:
                    log.exception("indexing uploads failed")
                    return self._after_change("索引没有改变：内部错误，请查看服务日志。")
            queued: ScanJob | None = None
            if scans:
                try:
                    queued = queue_scans(self.engine, [str(a.path) for a in scans])
                except RagError as e:
                    rejected += [(a.name, f"无法排队识别：{e}") for a in scans]
            say(1.0, "完成")
            notes = upload_notes(self.engine, report, queued)
            listed = report is not None or rejected or not notes
            shown = render.report_markdown(report, rejected) if listed else ""
            return self._after_change("\n".join(filter(None, [shown, notes])))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def confirm_remove(self, name: str | None) -> tuple[Any, str]:
        """The question asked before a removal: shown only when a document is chosen."""
        if not name:
            return gr.update(visible=False), "请先选择要删除的文档。"
        return gr.update(visible=True), render.confirm_remove_markdown(name)

    def remove(self, name: str | None, progress: ProgressFn | None = None) -> DocsOutputs:
        """Drop one document from the index."""
        say: ProgressFn = progress or _no_progress
        if not name:
            return self._after_change("请先选择要删除的文档。")
        if name not in {d.doc for d in self.documents()}:
            return self._after_change(f"索引里没有文档 `{name}`。")
        try:
            with self._writing(say, f"另一个上传或删除正在进行，等它完成后再删除 {name}…"):
                say(0.1, f"正在删除 {name}…")
                report = self.engine.remove(name)
        except RagError as e:
            return self._after_change(f"索引没有改变：{e}")
        return self._after_change(render.report_markdown(report, []))


def _history_before(session: ChatSession, index: int) -> list[dict[str, str]]:
    """The turns a question at chat position `index` follows: the answered ones, then any question shown
    before it whose answer is not in (a question sent while the one before it was still being answered)."""
    with session.turn:
        turns = list(session.history)
        shown = [m["content"] for m in session.messages[: max(0, index - 1)] if m.get("role") == "user"]
    last = next((t["content"] for t in reversed(turns) if t.get("role") == "user"), None)
    if last in shown:  # only the questions shown after the last answered one are still unanswered
        shown = shown[len(shown) - shown[::-1].index(last) :]
    return turns + [{"role": "user", "content": q} for q in shown]
