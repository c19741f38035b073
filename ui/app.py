"""The web chat: streamed cited answers, their sources, and a documents tab to upload or remove files.

`build_app(engine)` makes the Gradio Blocks; `create_app(engine)` mounts it with a /healthz route on
FastAPI; `serve(index_dir, host, port)` opens the index and runs it (what `rag serve` calls). All
retrieval and answering happens in the engine; this module only calls it and renders the result.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI

from rag.config import Settings
from rag.errors import LLMError, QuestionError, RagError
from rag.types import Answer, BuildReport, DocumentInfo
from ui import render
from ui.uploads import ALLOWED_SUFFIXES, MAX_UPLOAD_BYTES, stage_uploads

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


class ReadWriteLock:
    """Many readers or one writer. Not tied to threads: Gradio may resume a generator on another thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


@dataclass
class ChatSession:
    """One browser session's conversation: what the chat shows, and the plain turns the engine reads."""

    messages: list[dict[str, str]] = field(default_factory=list)
    history: list[dict[str, str]] = field(default_factory=list)


ChatOutputs = tuple[list[dict[str, str]], ChatSession, Any, str]
DocsOutputs = tuple[str, list[list[str | int]], Any, str, None]
ProgressFn = Callable[[float, str], None]


def _no_progress(fraction: float, desc: str) -> None:
    """Progress sink when no browser is watching."""


class ChatService:
    """Event handlers over one engine. Mutations take the write lock; questions share the read lock."""

    def __init__(
        self, engine: Any, lock: ReadWriteLock | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES
    ):
        self.engine = engine
        self.lock = lock or ReadWriteLock()
        self.max_upload_bytes = max_upload_bytes
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
        }

    def status(self) -> str:
        return render.status_markdown(self.documents(), str(self.engine.index_dir))

    def _question_problem(self, question: str, error: QuestionError) -> str:
        limit = self.engine.settings.max_question_chars
        if len(question) > limit:
            return f"问题太长：{len(question)} 个字符，上限 {limit} 个。请缩短后再问。"
        return f"这个问题无法处理：{error}"

    def ask(self, question: str, answerer: str, session: ChatSession) -> Iterator[ChatOutputs]:
        """Stream one answer into the session's chat, then replace it with the cited, rendered answer."""
        question = (question or "").strip()
        if not question:
            yield list(session.messages), session, gr.skip(), ""
            return
        answer_id = f"a{len(session.messages)}-{secrets.token_hex(3)}"
        session.messages.append({"role": "user", "content": question})
        session.messages.append({"role": "assistant", "content": render.streaming_html("")})
        yield list(session.messages), session, gr.skip(), ""
        answer: Answer | None = None
        partial = ""
        try:
            with self.lock.read():
                for item in self.engine.ask_stream(
                    question, history=list(session.history), answerer=answerer
                ):
                    if isinstance(item, Answer):
                        answer = item
                    else:
                        partial += item
                        session.messages[-1] = {
                            "role": "assistant",
                            "content": render.streaming_html(partial),
                        }
                        yield list(session.messages), session, gr.skip(), ""
        except QuestionError as e:
            session.messages[-1] = {
                "role": "assistant",
                "content": render.notice_html(self._question_problem(question, e)),
            }
        except LLMError as e:
            message = f"大模型暂时不可用：{e}。可以改用“抽取式”回答方式。"
            session.messages[-1] = {"role": "assistant", "content": render.notice_html(message)}
        except RagError as e:
            session.messages[-1] = {"role": "assistant", "content": render.notice_html(f"出错了：{e}")}
        except Exception:
            log.exception("answering %r failed", question[:200])
            session.messages[-1] = {
                "role": "assistant",
                "content": render.notice_html("内部错误，请查看服务日志。"),
            }
        if answer is None:
            if session.messages[-1]["content"].startswith('<div class="rag-answer rag-streaming"'):
                session.messages[-1] = {"role": "assistant", "content": render.notice_html("没有得到回答。")}
            yield list(session.messages), session, None, ""
            return
        session.messages[-1] = {"role": "assistant", "content": render.answer_html(answer, answer_id)}
        session.history.extend(
            [{"role": "user", "content": question}, {"role": "assistant", "content": answer.text}]
        )
        yield list(session.messages), session, dataclasses.asdict(answer), ""

    def clear(self) -> tuple[list[dict[str, str]], ChatSession, None]:
        return [], ChatSession(), None

    # --- writes ------------------------------------------------------------------------------
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
        """Check, stage and index uploaded files; the index is left as it was when anything fails."""
        say: ProgressFn = progress or _no_progress
        if not files:
            return self._after_change("请先选择要上传的文件。")
        staging = Path(tempfile.mkdtemp(prefix="rag-upload-"))
        try:
            say(0.02, "检查文件…")
            accepted, rejected = stage_uploads([Path(f) for f in files], staging, self.max_upload_bytes)
            report: BuildReport | None = None
            if accepted:
                say(0.05, f"等待其他索引操作结束，然后索引 {len(accepted)} 个文件…")

                def embedded(done: int, total: int) -> None:
                    say(0.05 + 0.9 * done / max(total, 1), f"正在生成向量：{done}/{total} 字")

                try:
                    with self.lock.write():
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

    def remove(self, name: str | None) -> DocsOutputs:
        """Drop one document from the index."""
        if not name:
            return self._after_change("请先选择要删除的文档。")
        if name not in {d.doc for d in self._docs}:
            return self._after_change(f"索引里没有文档 `{name}`。")
        try:
            with self.lock.write():
                report = self.engine.remove(name)
        except RagError as e:
            return self._after_change(f"索引没有改变：{e}")
        return self._after_change(render.report_markdown(report, []))


def _theme() -> gr.themes.Base:
    # System fonts only: the default theme fetches Google Fonts, which an offline server cannot reach.
    cjk = ["system-ui", "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", "sans-serif"]
    return gr.themes.Default(font=cjk, font_mono=["ui-monospace", "Noto Sans Mono CJK SC", "monospace"])


def build_app(
    engine: Any, *, max_upload_bytes: int = MAX_UPLOAD_BYTES, service: ChatService | None = None
) -> gr.Blocks:
    """The Gradio Blocks for one engine: a chat tab and a documents tab."""
    svc = service or ChatService(engine, max_upload_bytes=max_upload_bytes)
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
                buttons=["copy"],
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
                    ANSWERER_CHOICES,
                    value=engine.settings.answerer,
                    label="回答方式",
                    scale=4,
                )
                clear = gr.Button("清空对话", scale=1, elem_id="rag-clear")
            gr.Examples([[q] for q in EXAMPLES], inputs=[question], label="示例问题（简体 / 繁體）")
            answer_json = gr.JSON(visible=False)
        with gr.Tab("文档", id="docs"):
            table = gr.Dataframe(
                value=render.document_rows(svc.documents()),
                headers=["文档", "段落数", "添加时间"],
                datatype=["str", "number", "str"],
                interactive=False,
                label="已索引的文档",
            )
            with gr.Row():
                with gr.Column():
                    files = gr.File(
                        label=f"上传文档（{' '.join(ALLOWED_SUFFIXES)}，每个不超过 {max_upload_bytes // 1048576} MB）",
                        file_count="multiple",
                        file_types=list(ALLOWED_SUFFIXES),
                        elem_id="rag-upload",
                    )
                    add = gr.Button("添加到索引", variant="primary")
                with gr.Column():
                    doc_choice = gr.Dropdown(
                        choices=[d.doc for d in svc.documents()], label="选择要删除的文档", value=None
                    )
                    remove = gr.Button("删除文档", variant="stop")
                    refresh = gr.Button("刷新列表")
            report = gr.Markdown(elem_id="rag-report")

        ask_io: dict[str, Any] = {
            "fn": svc.ask,
            "inputs": [question, answerer, session],
            "outputs": [chatbot, session, answer_json, question],
        }
        send.click(**ask_io, api_name="ask")
        question.submit(**ask_io, api_visibility="private")
        clear.click(svc.clear, outputs=[chatbot, session, answer_json], api_name="clear")
        chatbot.clear(svc.clear, outputs=[chatbot, session, answer_json], api_visibility="private")

        docs_out = [report, table, doc_choice, status, files]

        def upload(paths: list[str] | None, progress: gr.Progress = gr.Progress()) -> DocsOutputs:  # noqa: B008
            return svc.upload(paths, lambda fraction, desc: progress(fraction, desc=desc))

        add.click(upload, inputs=[files], outputs=docs_out, api_name="upload", concurrency_limit=1)
        remove.click(
            svc.remove, inputs=[doc_choice], outputs=docs_out, api_name="remove", concurrency_limit=1
        )
        refresh.click(svc.refresh, outputs=docs_out, api_name="documents")
        demo.load(svc.refresh, outputs=docs_out, api_visibility="private")
    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY, max_size=DEFAULT_QUEUE_SIZE)
    return demo


def create_app(
    engine: Any,
    *,
    root_path: str | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
) -> FastAPI:
    """FastAPI with /healthz and the chat mounted at /. root_path None reads GRADIO_ROOT_PATH."""
    service = ChatService(engine, max_upload_bytes=max_upload_bytes)
    demo = build_app(engine, max_upload_bytes=max_upload_bytes, service=service)
    app = FastAPI(title=TITLE, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return service.health()

    return gr.mount_gradio_app(
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
    )


def serve(
    index_dir: str | Path = "index",
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    root_path: str | None = None,
    settings: Settings | None = None,
    max_upload_mb: int = MAX_UPLOAD_BYTES // 1048576,
    open_engine: Callable[..., Any] | None = None,
) -> None:
    """Open the index and serve the chat until interrupted (`rag serve`)."""
    import uvicorn

    if open_engine is None:
        from rag.engine import Engine

        open_engine = Engine.open
    engine = open_engine(str(index_dir), settings=settings)
    app = create_app(engine, root_path=root_path, max_upload_bytes=max_upload_mb * 1048576)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    url = f"http://{host}:{port}/"
    prefix = (root_path if root_path is not None else os.environ.get("GRADIO_ROOT_PATH", "")).rstrip("/")
    behind = f"；反向代理下的地址前缀 {prefix}/" if prefix else ""
    count = len(engine.documents())

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.1)
        if server.started:
            print(f"{TITLE}：已加载 {count} 个文档，打开 {url}（就绪检查 {url}healthz{behind}）", flush=True)

    threading.Thread(target=announce, daemon=True).start()
    server.run()
