"""The web chat: streamed cited answers, their sources, and a documents tab to upload or remove files.

`build_app(engine)` makes the Gradio Blocks; `create_app(engine)` mounts it with a /healthz route on
FastAPI; `serve(index_dir, host, port)` opens the index and runs it (what `rag serve` calls). All
retrieval and answering happens in the engine; this module only calls it and renders the result.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import logging
import os
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
import httpx
from fastapi import FastAPI
from gradio.utils import get_upload_folder

from rag.collections import Collections
from rag.config import Settings
from rag.errors import LLMError, QuestionError, RagError
from rag.types import Answer, BuildReport, DocumentInfo
from ui import render
from ui.api import include_api
from ui.auth import ApiKeyMiddleware, ApiKeys, api_keys_from, check_bind, gradio_admin_fns
from ui.feedback import Journal, log_questions_from
from ui.uploads import ALLOWED_SUFFIXES, MAX_UPLOAD_BYTES, UploadRejected, sent_by_client, stage_uploads

log = logging.getLogger(__name__)

TITLE = "中文文档问答"
EXAMPLES = [
    "2024年左权县的地区生产总值有多少？",
    "左雲縣一共有多少家活性炭企業？",
    "左权县有机作物种了多少亩？",
    "李征宇擔任什麼職務？",
    "左权县总人口有多少？",
]
ANSWERER_CHOICES = [("抽取式：只引用原文句子", "extractive"), ("大模型：生成后逐句核验", "llm")]
DEFAULT_CONCURRENCY = 4  # chat requests answered at once; more wait in the queue
DEFAULT_QUEUE_SIZE = 64  # requests waiting beyond this are refused with a "busy" message
# Shares of the documents table's width: names and dates wrap inside them, so a 390-px phone shows
# every column without scrolling sideways (Gradio would size columns to their longest unbroken text).
DOCS_COLUMN_WIDTHS: list[str | int] = ["50%", "16%", "34%"]
# A model server on this machine or the LAN lists its models in milliseconds; one that is not there must
# not hold up the start for long (measured: a closed local port is reported in 70 ms, mostly httpx set-up).
LLM_PROBE_TIMEOUT_S = 2.0
LLM_HOWTO = (
    "要启用大模型：启动一个 OpenAI 兼容服务（vLLM、Ollama、llama.cpp server 等），设置 RAG_LLM_BASE_URL "
    "和 RAG_LLM_MODEL；或者设置 RAG_LLM_BACKEND=gguf 和 RAG_LLM_GGUF_PATH 使用本地模型文件。然后重启服务。"
)


@dataclass(frozen=True)
class LlmStatus:
    """Whether the generative answerer can be offered, with a line in Chinese: what answers, or what to set."""

    available: bool
    message: str


def probe_llm(settings: Settings, timeout_s: float = LLM_PROBE_TIMEOUT_S) -> LlmStatus:
    """Check once, at start, that the configured model can answer: the OpenAI-compatible server lists its
    models at {base URL}/models, or the GGUF file exists and llama-cpp-python is installed."""
    if settings.llm_backend == "openai":
        base = settings.llm_base_url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            return LlmStatus(
                False, f"大模型未启用：RAG_LLM_BASE_URL（{base or '空'}）不是 http(s) 地址。{LLM_HOWTO}"
            )
        try:
            response = httpx.get(
                f"{base}/models",
                headers={"Authorization": f"Bearer {settings.llm_api_key or 'not-needed'}"},
                timeout=timeout_s,
            )
        except httpx.HTTPError as e:
            return LlmStatus(False, f"大模型未启用：连不上 {base}（{type(e).__name__}）。{LLM_HOWTO}")
        if response.status_code != 200:
            key = "请检查 RAG_LLM_API_KEY。" if response.status_code in (401, 403) else ""
            return LlmStatus(
                False, f"大模型未启用：{base}/models 返回 HTTP {response.status_code}。{key}{LLM_HOWTO}"
            )
        return LlmStatus(True, f"大模型：{settings.llm_model}（{base}），回答经逐句核验。")
    if settings.llm_backend == "gguf":
        path = settings.llm_gguf_path
        if not path:
            try:
                from rag.llm import default_gguf_path

                path = default_gguf_path()
            except (ImportError, LLMError) as e:
                return LlmStatus(False, f"大模型未启用：没有可用的本地模型文件（{e}）。{LLM_HOWTO}")
        if not Path(path).is_file():
            return LlmStatus(False, f"大模型未启用：找不到模型文件 {path}。{LLM_HOWTO}")
        if importlib.util.find_spec("llama_cpp") is None:
            return LlmStatus(
                False, f"大模型未启用：没有安装 llama-cpp-python（pip install 'rag[llm]'）。{LLM_HOWTO}"
            )
        return LlmStatus(True, f"大模型：本地模型 {Path(path).name}，回答经逐句核验。")
    return LlmStatus(False, f"大模型未启用：不认识的 RAG_LLM_BACKEND={settings.llm_backend!r}。{LLM_HOWTO}")


@dataclass
class _Pending:
    """A question taken from the box, waiting for its turn: its answer goes to messages[index]."""

    question: str
    index: int
    answer_id: str


class ChatSession:
    """One browser session's conversation: what the chat shows, the plain turns the engine reads, and the
    questions sent but not answered yet (answered one at a time, in the order they were sent).

    A plain class, not a dataclass: Gradio serialises a dataclass State value field by field, lock included.
    """

    def __init__(
        self, messages: list[dict[str, str]] | None = None, history: list[dict[str, str]] | None = None
    ) -> None:
        self.messages: list[dict[str, str]] = messages if messages is not None else []
        self.history: list[dict[str, str]] = history if history is not None else []
        self.pending: deque[_Pending | None] = deque()
        self.answering = False
        self.cleared = False
        # A Condition, not a thread-owned lock: Gradio may resume a generator on another thread.
        self.turn = threading.Condition()

    def __deepcopy__(self, memo: dict[int, Any]) -> ChatSession:
        """gr.State copies its initial value for each browser session: the copy has its own turn."""
        return ChatSession(copy.deepcopy(self.messages, memo), copy.deepcopy(self.history, memo))

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
    ):
        self.engine = engine
        self.max_upload_bytes = max_upload_bytes
        self.upload_dir = Path(upload_dir or get_upload_folder())
        self.sent_files: Container[str] | None = None  # what the server received; build_app wires it
        self.llm = llm  # None: not checked here, the engine says what went wrong
        self._write_lock = threading.Lock()
        self._docs: list[DocumentInfo] = list(engine.documents())

    # --- reads -------------------------------------------------------------------------------
    def documents(self) -> list[DocumentInfo]:
        """The document list as of the last change (kept here so /healthz never waits on a write)."""
        return list(self._docs)

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

    def status(self) -> str:
        return render.status_markdown(self.documents(), str(self.engine.index_dir))

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
        if session.cleared:
            return
        if answer is None:
            yield session.show(index, shown or render.notice_html("没有得到回答。")), session, None
            return
        chat = session.show(index, render.answer_html(answer, item.answer_id))
        with session.turn:
            session.history.extend(
                [{"role": "user", "content": question}, {"role": "assistant", "content": answer.text}]
            )
        yield chat, session, dataclasses.asdict(answer)

    def clear(self, session: ChatSession | None = None) -> tuple[list[dict[str, str]], ChatSession, None]:
        """A new conversation; answers still coming for the old one are dropped."""
        if session is not None:
            with session.turn:
                session.cleared = True
        return [], ChatSession(), None

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
        self._docs = list(self.engine.documents())
        names = [d.doc for d in self._docs]
        return (
            message,
            render.document_rows(self._docs),
            gr.update(choices=names, value=None),
            self.status(),
            None,
        )

    def refresh(self) -> DocsOutputs:
        return self._after_change("")

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
            say(1.0, "完成")
            return self._after_change(render.report_markdown(report, rejected))
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
        if name not in {d.doc for d in self._docs}:
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


def _theme() -> gr.themes.Base:
    # System fonts only: the default theme fetches Google Fonts, which an offline server cannot reach.
    cjk = ["system-ui", "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "sans-serif"]
    return gr.themes.Default(font=cjk, font_mono=["ui-monospace", "Noto Sans Mono CJK SC", "monospace"])


def build_app(
    engine: Any,
    *,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    service: ChatService | None = None,
    llm: LlmStatus | None = None,
) -> gr.Blocks:
    """The Gradio Blocks for one engine: a chat tab and a documents tab. `llm` None probes the model."""
    svc = service or ChatService(engine, max_upload_bytes=max_upload_bytes)
    if svc.llm is None:
        svc.llm = llm or probe_llm(engine.settings)
    offered = [c for c in ANSWERER_CHOICES if c[1] != "llm" or svc.llm.available]
    default_answerer = (
        engine.settings.answerer if engine.settings.answerer in {c[1] for c in offered} else "extractive"
    )
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}")
        status = gr.Markdown(svc.status(), elem_id="rag-status")
        with gr.Tab("问答", id="chat"):
            session = gr.State(ChatSession())
            chatbot = gr.Chatbot(
                label="对话",
                elem_id="rag-chat",
                height="62vh",
                min_height=420,
                latex_delimiters=[],
                feedback_options=None,
                buttons=[],  # each answer has its own copy button: plain text with its sources, not HTML
                placeholder="向已索引的文档提问，答案会标注 [n] 并在下方列出原文出处。",
            )
            with gr.Row():
                question = gr.Textbox(
                    show_label=False,
                    placeholder="输入问题，回车发送（简体、繁體均可）",
                    elem_id="rag-question",
                    scale=8,
                    max_lines=4,
                )
                send = gr.Button("发送", variant="primary", scale=1, elem_id="rag-send")
            with gr.Row():
                answerer = gr.Radio(
                    offered,
                    value=default_answerer,
                    label="回答方式",
                    info=svc.llm.message,
                    elem_id="rag-answerer",
                    scale=4,
                )
                clear = gr.Button("清空对话", scale=1, elem_id="rag-clear")
            gr.Examples([[q] for q in EXAMPLES], inputs=[question], label="示例问题（简体 / 繁體）")
            answer_json = gr.JSON(visible=False)
            asked = gr.Textbox(visible=False)  # the question as it left the box, for the answer step
        with gr.Tab("文档", id="docs"):
            table = gr.Dataframe(
                value=render.document_rows(svc.documents()),
                headers=["文档", "段落数", "添加时间"],
                datatype=["str", "number", "str"],
                interactive=False,
                wrap=True,
                column_widths=DOCS_COLUMN_WIDTHS,
                label="已索引的文档",
                elem_id="rag-docs",
            )
            with gr.Row():
                with gr.Column():
                    files = gr.File(
                        label=f"上传文档（{' '.join(ALLOWED_SUFFIXES)}，每个不超过 {max_upload_bytes // 1048576} MB）",
                        file_count="multiple",
                        file_types=list(ALLOWED_SUFFIXES),
                        elem_id="rag-upload",
                    )
                    add = gr.Button("添加到索引", variant="primary", elem_id="rag-add")
                with gr.Column():
                    doc_choice = gr.Dropdown(
                        choices=[d.doc for d in svc.documents()], label="选择要删除的文档", value=None
                    )
                    remove = gr.Button("删除文档", variant="stop", elem_id="rag-remove")
                    with gr.Group(visible=False, elem_id="rag-confirm") as confirm_box:
                        confirm_text = gr.Markdown()
                        with gr.Row():
                            confirm = gr.Button("确认删除", variant="stop", elem_id="rag-confirm-remove")
                            cancel = gr.Button("取消", elem_id="rag-cancel-remove")
                    refresh = gr.Button("刷新列表")
            report = gr.Markdown(elem_id="rag-report", min_height=48)

        # The box is cleared in the browser the moment a question leaves it, and never written again: what
        # is typed while an answer streams stays. A question sent meanwhile is shown at once and answered
        # after the one before it (trigger_mode "multiple": a second send is not dropped).
        for trigger, api in (
            (send.click, {"api_name": "ask"}),
            (question.submit, {"api_visibility": "private"}),
        ):
            trigger(
                None,
                inputs=[question],
                outputs=[question, asked],
                js="(question) => ['', question]",
                queue=False,
                show_progress="hidden",
                trigger_mode="multiple",
                api_visibility="private",
            ).then(
                svc.ask,
                inputs=[asked, answerer, session],
                outputs=[chatbot, session, answer_json],
                show_progress_on=[chatbot],
                show_progress="minimal",
                trigger_mode="multiple",
                concurrency_id="ask",
                **api,
            )
        clear.click(svc.clear, inputs=[session], outputs=[chatbot, session, answer_json], api_name="clear")
        chatbot.clear(
            svc.clear, inputs=[session], outputs=[chatbot, session, answer_json], api_visibility="private"
        )

        docs_out = [report, table, doc_choice, status, files]

        def upload(paths: list[str] | None, progress: gr.Progress = gr.Progress()) -> DocsOutputs:  # noqa: B008
            return svc.upload(paths, lambda fraction, desc: progress(fraction, desc=desc))

        def remove_doc(name: str | None, progress: gr.Progress = gr.Progress()) -> DocsOutputs:  # noqa: B008
            return svc.remove(name, lambda fraction, desc: progress(fraction, desc=desc))

        # One progress bar, on the report; uploads and removals take turns inside the service.
        add.click(upload, inputs=[files], outputs=docs_out, api_name="upload", show_progress_on=[report])
        remove.click(
            svc.confirm_remove,
            inputs=[doc_choice],
            outputs=[confirm_box, confirm_text],
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        )
        confirm.click(
            lambda: gr.update(visible=False),
            outputs=[confirm_box],
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        ).then(
            remove_doc, inputs=[doc_choice], outputs=docs_out, api_name="remove", show_progress_on=[report]
        )
        cancel.click(
            lambda: gr.update(visible=False),
            outputs=[confirm_box],
            queue=False,
            show_progress="hidden",
            api_visibility="private",
        )
        refresh.click(svc.refresh, outputs=docs_out, api_name="documents", show_progress_on=[report])
        demo.load(svc.refresh, outputs=docs_out, api_visibility="private", show_progress="hidden")
    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY, max_size=DEFAULT_QUEUE_SIZE)
    svc.sent_files = demo.upload_file_set  # the files this app received through its upload route
    return demo


def create_app(
    engine: Any,
    *,
    root_path: str | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    llm: LlmStatus | None = None,
    collections: Collections | None = None,
    keys: ApiKeys | None = None,
    journal: Journal | None = None,
) -> FastAPI:
    """FastAPI with /healthz, the HTTP API (ui/api.py: /api, /v1, /docs) and the chat mounted at /, every
    route behind the API key check when keys are given. root_path None reads GRADIO_ROOT_PATH; llm None
    probes the configured model once; collections None serves the engine's index as `default`."""
    service = ChatService(engine, max_upload_bytes=max_upload_bytes, llm=llm or probe_llm(engine.settings))
    demo = build_app(engine, max_upload_bytes=max_upload_bytes, service=service)
    app = FastAPI(title=TITLE, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return service.health()

    # Before Gradio's mount at "/", which answers every path no earlier route took.
    collections = collections or Collections.around(engine)
    include_api(app, collections, journal=journal, max_upload_bytes=max_upload_bytes, title=TITLE)

    app = gr.mount_gradio_app(
        app,
        demo,
        path="/",
        root_path=root_path,
        allowed_paths=[],  # the app serves no local files; uploads live in Gradio's own cache
        blocked_paths=[str(Path(engine.index_dir).resolve())],
        max_file_size=max_upload_bytes,
        show_error=False,
        footer_links=["api", "settings"],
        run_history=False,
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        theme=_theme(),
        css=render.CSS,
        head=render.HEAD,
    )
    # Gradio checks that a file named in a request lies in its upload folder (was sent by a client) only
    # once the Blocks "has launched"; launch() sets that, mount_gradio_app does not, so without this any
    # client could name a server path and have it copied into the public cache.
    demo.has_launched = True
    prefix = (root_path if root_path is not None else os.environ.get("GRADIO_ROOT_PATH", "")).rstrip("/")
    app.add_middleware(
        ApiKeyMiddleware, keys=keys or ApiKeys(), root_path=prefix, gradio_admin_fn_ids=gradio_admin_fns(demo)
    )
    return app


def serve(
    index_dir: str | Path = "index",
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    root_path: str | None = None,
    settings: Settings | None = None,
    max_upload_mb: int = MAX_UPLOAD_BYTES // 1048576,
    open_engine: Callable[..., Any] | None = None,
    collection: str | None = None,
    api_key_file: str | Path | None = None,
) -> None:
    """Serve the collections of the data folder index_dir (the chat on `collection`, default: `default`
    or the first) until interrupted (`rag serve`). Keys come from RAG_API_KEYS and api_key_file; without
    keys only a loopback address is served."""
    import uvicorn

    keys = api_keys_from(os.environ, api_key_file)
    check_bind(host, keys)
    collections = Collections(index_dir, settings)
    served = collections.served(collection)
    if open_engine is None:
        engine = collections.engine(served)
    else:
        engine = open_engine(str(collections.path(served)), settings=settings)
    collections.adopt(served, engine)
    journal = Journal(log_questions_from(os.environ))
    url = f"http://{host}:{port}/"
    prefix = (root_path if root_path is not None else os.environ.get("GRADIO_ROOT_PATH", "")).rstrip("/")
    behind = f"；反向代理下的地址前缀 {prefix}/" if prefix else ""
    count = len(engine.documents())
    llm = probe_llm(engine.settings)
    app = create_app(
        engine,
        root_path=root_path,
        max_upload_bytes=max_upload_mb * 1048576,
        llm=llm,
        collections=collections,
        keys=keys,
        journal=journal,
    )
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.1)
        if server.started:
            print(f"{TITLE}：已加载 {count} 个文档，打开 {url}（就绪检查 {url}healthz{behind}）", flush=True)
            print(llm.message, flush=True)
            names = "、".join(collections.names())
            guard = f"{len(keys.entries)} 个 API 密钥" if keys else "无 API 密钥，仅限本机"
            print(f"问答集合：{served}（全部：{names}）；API {url}v1 {url}api {url}docs；{guard}", flush=True)

    def resume() -> None:
        # Uploads a crashed server left half-embedded in the index's journal are finished in the background.
        resume_pending = getattr(engine, "resume_pending", None)
        if resume_pending is None:
            return
        try:
            for report in resume_pending():
                print(
                    f"已完成上次中断的索引任务：{', '.join(report.added + report.updated) or '（无变化）'}",
                    flush=True,
                )
        except RagError as exc:
            print(f"上次中断的索引任务没有完成：{exc}", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    threading.Thread(target=resume, daemon=True).start()
    server.run()
