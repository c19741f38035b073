"""The web chat's page: a collection picker, a chat tab and a documents tab, mounted beside the HTTP API.

`build_app(engine)` makes the Gradio Blocks; `create_app(engine)` mounts it with a /healthz route on
FastAPI; `serve(index_dir, host, port)` opens the index and runs it (what `rag serve` calls). The handlers
live in ui/chat.py (one collection's chat) and ui/chat_collections.py (the picker over them); all retrieval
and answering happens in the engine.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
from fastapi import FastAPI

from rag.collections import DEFAULT, Collections
from rag.config import Settings
from rag.errors import LLMError, RagError
from ui import render, stored_chat
from ui.api import include_api
from ui.auth import ApiKeyMiddleware, ApiKeys, api_keys_from, check_bind, gradio_admin_fns
from ui.chat import ChatService, ChatSession, LlmStatus
from ui.chat_collections import POLL_S, ChatCollections, ChatPage, PageDocs
from ui.feedback import Journal, log_questions_from
from ui.uploads import ALLOWED_SUFFIXES, MAX_UPLOAD_BYTES

__all__ = [
    "POLL_S",
    "ChatCollections",
    "ChatPage",
    "ChatService",
    "ChatSession",
    "LlmStatus",
    "build_app",
    "create_app",
    "probe_llm",
    "serve",
]

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
    collections: Collections | None = None,
) -> gr.Blocks:
    """The Gradio Blocks for one engine (the served collection) and, with `collections`, every other
    collection of its data folder: a collection picker, a chat tab and a documents tab. `llm` None probes
    the model."""
    svc = service or ChatService(engine, max_upload_bytes=max_upload_bytes)
    if svc.llm is None:
        svc.llm = llm or probe_llm(engine.settings)
    chats = ChatCollections(svc, collections)
    page = ChatPage(chats)
    offered = [c for c in ANSWERER_CHOICES if c[1] != "llm" or svc.llm.available]
    default_answerer = (
        engine.settings.answerer if engine.settings.answerer in {c[1] for c in offered} else "extractive"
    )
    data_dir = collections.data_dir if collections is not None else Path(engine.index_dir)
    storage_key, secret = stored_chat.storage_key(str(Path(data_dir).resolve()))
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"# {TITLE}")
        with gr.Row(equal_height=True):
            # Any name is taken (a collection made through the API after this page was built); the handlers
            # check it and say what exists.
            picker = gr.Dropdown(
                choices=chats.names(),
                value=svc.collection,
                label="文档集合",
                allow_custom_value=True,
                elem_id="rag-collection",
                scale=1,
                min_width=180,
            )
            with gr.Column(scale=3):
                status = gr.Markdown(svc.status(), elem_id="rag-status")
        stored = gr.BrowserState(stored_chat.empty(svc.collection), storage_key=storage_key, secret=secret)
        seen = gr.State({})  # what the last poll saw: the collections, the chosen one, its version and scans
        with gr.Tab("问答", id="chat"):
            session = gr.State(ChatSession(collection=svc.collection))
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
            with gr.Group(visible=False, elem_id="rag-feedback") as feedback_box:
                feedback_prompt = gr.Markdown()
                correct = gr.Textbox(
                    label="正确答案（可选）",
                    placeholder="知道正确答案的话写在这里，会随反馈一起记录",
                    elem_id="rag-feedback-correct",
                    max_lines=4,
                )
                with gr.Row():
                    feedback_send = gr.Button("提交反馈", variant="primary", elem_id="rag-feedback-send")
                    feedback_cancel = gr.Button("取消", elem_id="rag-feedback-cancel")
            feedback_note = gr.Markdown(elem_id="rag-feedback-note")
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
                clear = gr.Button("新对话", scale=1, elem_id="rag-clear")
            gr.Examples([[q] for q in EXAMPLES], inputs=[question], label="示例问题（简体 / 繁體）")
            answer_json = gr.JSON(visible=False)
            asked = gr.Textbox(visible=False)  # the question as it left the box, for the answer step
            wrong_id = gr.Textbox(visible=False)  # the answer whose 答案有误 was pressed
            # Pressed by HEAD's script for an answer's 答案有误 button (in the DOM, never seen).
            wrong_open = gr.Button("反馈", visible="hidden", elem_id=render.WRONG_TRIGGER_ID)
        with gr.Tab("文档", id="docs") as docs_tab:
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
        timer = gr.Timer(POLL_S)

        private: dict[str, Any] = {"api_visibility": "private"}
        quiet: dict[str, Any] = {"queue": False, "show_progress": "hidden", **private}
        docs_out = [report, table, doc_choice, status, files]
        listing_out = [table, doc_choice, status]

        # The box is cleared in the browser the moment a question leaves it, and never written again: what
        # is typed while an answer streams stays. A question sent meanwhile is shown at once and answered
        # after the one before it (trigger_mode "multiple": a second send is not dropped). Once answered,
        # the conversation is kept in the browser (a private step: the public /ask is unchanged).
        for trigger, api in (
            (send.click, {"api_name": "ask"}),
            (question.submit, private),
        ):
            trigger(
                None,
                inputs=[question],
                outputs=[question, asked],
                js="(question) => ['', question]",
                trigger_mode="multiple",
                **quiet,
            ).then(
                page.ask,
                inputs=[asked, answerer, session, picker],
                outputs=[chatbot, session, answer_json],
                show_progress_on=[chatbot],
                show_progress="minimal",
                trigger_mode="multiple",
                concurrency_id="ask",
                **api,
            ).then(page.save, inputs=[session, stored], outputs=[stored], **quiet)
        for clearing, api in ((clear.click, {"api_name": "clear"}), (chatbot.clear, private)):
            clearing(page.clear, inputs=[session], outputs=[chatbot, session, answer_json], **api).then(
                page.forget, inputs=[session, stored], outputs=[stored], **quiet
            )

        # 答案有误: the answer's id comes from the page (HEAD's script), then the panel asks for the right one.
        wrong_open.click(
            None, outputs=[wrong_id, feedback_note], js="() => [window.ragWrongAnswer || '', '']", **quiet
        ).then(
            page.open_feedback,
            inputs=[wrong_id, session],
            outputs=[feedback_box, feedback_prompt, correct, feedback_note],
            **quiet,
        )
        for sending in (feedback_send.click, correct.submit):
            sending(
                page.send_feedback,
                inputs=[wrong_id, correct, session],
                outputs=[feedback_box, feedback_note],
                **quiet,
            )
        feedback_cancel.click(lambda: gr.update(visible=False), outputs=[feedback_box], **quiet)

        # The picker: its choices read again when it is opened; another collection brings its own
        # conversation and documents.
        picker.focus(page.choices, outputs=[picker], **quiet)
        picker.input(
            page.switch,
            inputs=[picker, session, stored],
            outputs=[picker, chatbot, session, stored, answer_json, *docs_out, feedback_box],
            **quiet,
        )

        def upload(
            paths: list[str] | None,
            collection: str | None = None,
            progress: gr.Progress = gr.Progress(),  # noqa: B008
        ) -> PageDocs:
            return page.upload(paths, collection, lambda fraction, desc: progress(fraction, desc=desc))

        def remove_doc(
            doc: str | None,
            collection: str | None = None,
            progress: gr.Progress = gr.Progress(),  # noqa: B008
        ) -> PageDocs:
            return page.remove(doc, collection, lambda fraction, desc: progress(fraction, desc=desc))

        # One progress bar, on the report; uploads and removals take turns inside the service.
        add.click(
            upload, inputs=[files, picker], outputs=docs_out, api_name="upload", show_progress_on=[report]
        )
        remove.click(svc.confirm_remove, inputs=[doc_choice], outputs=[confirm_box, confirm_text], **quiet)
        confirm.click(lambda: gr.update(visible=False), outputs=[confirm_box], **quiet).then(
            remove_doc,
            inputs=[doc_choice, picker],
            outputs=docs_out,
            api_name="remove",
            show_progress_on=[report],
        )
        cancel.click(lambda: gr.update(visible=False), outputs=[confirm_box], **quiet)
        refresh.click(
            page.documents, inputs=[picker], outputs=docs_out, api_name="documents", show_progress_on=[report]
        )
        # Changes made elsewhere (the API, another tab) show up when the tab is opened, and within POLL_S.
        docs_tab.select(page.listing, inputs=[picker], outputs=listing_out, **quiet)
        timer.tick(page.poll, inputs=[picker, seen], outputs=[picker, *listing_out, seen], **quiet)
        demo.load(page.open, inputs=[stored], outputs=[picker, chatbot, session, *docs_out], **quiet)
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
    probes the configured model once; collections None serves the engine's index as `default`. The chat
    offers every collection; its 答案有误 goes to the same feedback files as POST /api/feedback."""
    collections = collections or Collections.around(engine)
    journal = journal or Journal()
    service = ChatService(
        engine,
        max_upload_bytes=max_upload_bytes,
        llm=llm or probe_llm(engine.settings),
        collection=collections.name_of(engine) or DEFAULT,
        journal=journal,
    )
    demo = build_app(engine, max_upload_bytes=max_upload_bytes, service=service, collections=collections)
    app = FastAPI(title=TITLE, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return service.health()

    # Before Gradio's mount at "/", which answers every path no earlier route took.
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
            from rag.writer import resume_scans  # scanned uploads: OCR goes on at the next page

            for job in resume_scans(engine, notify=lambda message: print(message, flush=True)):
                print(
                    f"上次中断的识别任务 {job.id}：{job.state} {', '.join(job.added + job.updated)}",
                    flush=True,
                )
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
