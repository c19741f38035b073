"""The HTTP API beside the web chat, on the same port: REST under /api, OpenAI-compatible chat under /v1,
the OpenAPI schema at /openapi.json and its page at /docs.

    GET    /api/collections                          the collections and their document counts
    POST   /api/collections            {"name"}      create an empty collection              (admin key)
    DELETE /api/collections/{name}                   delete a collection                     (admin key)
    GET    /api/collections/{name}/documents         its documents
    POST   /api/collections/{name}/documents         upload files (multipart "files")        (admin key)
                                                     200, or 202 with a job when scans are read later
    GET    /api/collections/{name}/jobs/{id}         how far a job reading scanned uploads got
    GET    /api/collections/{name}/documents/{doc}/source   the stored PDF or image (open at #page=N)
    DELETE /api/collections/{name}/documents/{doc}   remove one document                     (admin key)
    POST   /api/collections/{name}/retrieve          {"question", "k", "history"} -> passages
    POST   /api/collections/{name}/ask               {"question", "history"} -> the Answer as JSON
    POST   /api/feedback                             mark an answer wrong (optionally with the right one)
    GET    /v1/models                                the collections, as models
    POST   /v1/chat/completions                      model = collection; stream gives server-sent events

Every error is `{"error": {"message", "type", "code"}}` (OpenAI's envelope) with a stable `code`; the RagError
tree maps to statuses in ERROR_STATUS. Handlers only call the engines (rag/collections.py holds them): no
retrieval or answering happens here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from rag.collections import DEFAULT, Collections, check_name
from rag.errors import (
    CollectionExistsError,
    CollectionInUseError,
    CollectionNameError,
    DocumentError,
    EmbedderError,
    EmbedderMismatchError,
    IndexCorruptError,
    IndexMissingError,
    LLMError,
    QuestionError,
    UnknownCollectionError,
)
from rag.store import source_file
from rag.text import HANS, HANT, script_of
from rag.types import Answer, Citation
from rag.writer import ScanJob, job_status, queue_scans
from ui.auth import READ_ONLY, error_body
from ui.feedback import Feedback, Journal, cited_of
from ui.uploads import MAX_UPLOAD_BYTES, read_stats, safe_name, split_scans, stage_uploads

log = logging.getLogger(__name__)

API_VERSION = "1"
# Questions answered at once through the API, and how many more may wait: the web chat's figures (4 and 64,
# ui/app.py). Embedding a question holds the model's lock, so more at once only adds waiting inside.
API_CONCURRENCY = 4
API_WAITING = 64
MAX_FILES_PER_UPLOAD = 20  # files in one upload request; a folder's worth a person sends at once
MAX_FORM_FIELDS = 8  # an upload needs no text fields; a few are tolerated
MAX_FORM_FIELD_BYTES = 64 * 1024
STREAM_PIECE_CHARS = 8  # characters per chunk when a finished text is streamed (the engine's own piece size)
OWNED_BY = "rag"
SOURCE_TYPES = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

# RagError subclasses (and ours) -> HTTP status and stable code; the first isinstance match wins.
ERROR_STATUS: tuple[tuple[type[BaseException], int, str], ...] = (
    (QuestionError, 400, "bad_question"),
    (CollectionNameError, 400, "bad_collection_name"),
    (DocumentError, 400, "bad_document"),
    (UnknownCollectionError, 404, "unknown_collection"),
    (CollectionExistsError, 409, "collection_exists"),
    (CollectionInUseError, 409, "collection_in_use"),
    (EmbedderMismatchError, 409, "embedder_mismatch"),
    (IndexMissingError, 503, "index_not_ready"),
    (IndexCorruptError, 503, "index_not_ready"),
    (EmbedderError, 503, "embedder_unavailable"),
    (LLMError, 503, "llm_unavailable"),
)
SOURCES_HEADING = {HANS: "来源：", HANT: "來源："}


class ApiError(Exception):
    """An error answered with a status and a stable code (ones the RagError tree does not name)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def status_of(exc: BaseException) -> tuple[int, str, str]:
    """(status, code, message) for an exception raised while handling a request."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code, exc.message
    for kind, status, code in ERROR_STATUS:
        if isinstance(exc, kind):
            return status, code, str(exc)
    if isinstance(exc, RequestValidationError):
        return 400, "bad_request", _validation_message(exc)
    if isinstance(exc, HTTPException):
        return exc.status_code, "http_error", str(exc.detail)
    return 500, "internal_error", "internal error; the server log has the details"


def _validation_message(exc: RequestValidationError) -> str:
    problems = []
    for e in exc.errors()[:3]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        problems.append(f"{where or 'body'}: {e.get('msg', 'invalid')}")
    return "the request does not have the expected shape (" + "; ".join(problems) + "); see /docs"


def error_response(exc: BaseException, renames: dict[str, str] | None = None) -> JSONResponse:
    status, code, message = status_of(exc)
    if status == 500:
        log.error("API request failed", exc_info=(type(exc), exc, exc.__traceback__))
    code = (renames or {}).get(code, code)
    return JSONResponse(json.loads(error_body(status, code, message)), status_code=status)


class EnvelopeRoute(APIRoute):
    """A route whose every error, request validation included, is answered in the JSON envelope."""

    renames: dict[str, str] = {}

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        renames = self.renames

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return error_response(exc, renames)

        return guarded


class OpenAIRoute(EnvelopeRoute):
    renames = {"unknown_collection": "model_not_found"}  # OpenAI's code for an unknown model


class AnswerGate:
    """At most `concurrent` answers at once through the API, at most `waiting` more queued; beyond that a
    503 `busy` at once rather than a client timing out."""

    def __init__(self, concurrent: int = API_CONCURRENCY, waiting: int = API_WAITING) -> None:
        self.limit = concurrent + waiting
        self._slots = threading.BoundedSemaphore(concurrent)
        self._lock = threading.Lock()
        self._inside = 0

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._lock:
            if self._inside >= self.limit:
                raise ApiError(503, "busy", "the server is answering too many questions; try again shortly")
            self._inside += 1
        try:
            with self._slots:
                yield
        finally:
            with self._lock:
                self._inside -= 1


@dataclass
class ApiContext:
    """What the handlers share: the collections, the logs, the upload limit, the concurrency gate."""

    collections: Collections
    journal: Journal
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    gate: AnswerGate = dataclasses.field(default_factory=AnswerGate)

    def folder(self, name: str) -> Path:
        return self.collections.path(name)

    def log_request(self, name: str, endpoint: str, rid: str, start: float, question: str, **kw: Any) -> None:
        try:
            self.journal.request(
                self.folder(name),
                collection=name,
                endpoint=endpoint,
                request_id=rid,
                seconds=time.perf_counter() - start,
                question=question,
                **kw,
            )
        except OSError as exc:  # a full disk must not fail the answer
            log.warning("request log not written: %s", exc)


def require_admin(request: Request) -> None:
    """Admin-only routes: ApiKeyMiddleware leaves the key's role in the scope (admin when keys are off)."""
    role = request.scope.get("state", {}).get("api_role")
    if role != "admin":
        raise ApiError(403, *READ_ONLY)


def _rid(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


# ------------------------------------------------------------------------------------------- request bodies

QUESTION_EXAMPLES: list[Any] = [
    {"question": "左云县有多少家活性炭企业?"},
    {"question": "左雲縣有多少家活性炭企業？"},
    {
        "question": "其中规模以上的有几家?",
        "history": [{"role": "user", "content": "左云县有多少家活性炭企业?"}],
    },
]


class Turn(BaseModel):
    role: Literal["user", "assistant", "system"] = "user"
    content: str


class AskRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": QUESTION_EXAMPLES})

    question: str
    history: list[Turn] = Field(default_factory=list, description="earlier turns, oldest first (follow-ups)")
    k: int | None = Field(default=None, description="paragraphs to consider (default: the server's top_k)")
    answerer: Literal["extractive", "llm"] | None = None


class RetrieveRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"question": "2024年左权县的地区生产总值有多少？", "k": 3},
                {"question": "左雲縣活性炭產量", "k": 5},
            ]
        }
    )

    question: str
    k: int = 5
    history: list[Turn] = Field(default_factory=list)


class CollectionRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "zuoquan"}, {"name": "policies_2024"}]}
    )

    name: str


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "collection": "default",
                    "question": "左权县有多少家活性炭企业?",
                    "answer": "…集聚了14家活性炭企业…[1]",
                    "correct_answer": "文档中没有",
                    "comment": "14家是左云县的",
                },
                {"collection": "default", "question": "左雲縣的可網辦率是多少？", "correct_answer": "99.8%"},
            ]
        }
    )

    collection: str = DEFAULT
    question: str
    answer: str = ""
    correct_answer: str = ""
    comment: str = ""
    history: list[Turn] = Field(default_factory=list)
    id: str = Field(default="", description="the id the API gave the answer")
    citations: list[dict[str, Any]] = Field(default_factory=list, description="the answer's citations")


def _turns(history: list[Turn]) -> list[dict[str, str]]:
    return [{"role": t.role, "content": t.content} for t in history]


# ------------------------------------------------------------------------------------------- REST


def api_router(ctx: ApiContext) -> APIRouter:
    """The REST routes under /api."""
    router = APIRouter(prefix="/api", route_class=EnvelopeRoute, tags=["rest"])
    admin = [Depends(require_admin)]

    @router.get("/collections", summary="List the collections")
    def list_collections() -> dict[str, Any]:
        return {"collections": [_collection_info(ctx, n) for n in ctx.collections.names()]}

    @router.post("/collections", status_code=201, dependencies=admin, summary="Create an empty collection")
    def create_collection(body: CollectionRequest) -> dict[str, Any]:
        check_name(body.name)
        ctx.collections.create(body.name)
        return _collection_info(ctx, body.name)

    @router.delete("/collections/{name}", dependencies=admin, summary="Delete a collection and its documents")
    def delete_collection(name: str) -> dict[str, Any]:
        ctx.collections.delete(name)
        return {"deleted": name}

    @router.get("/collections/{name}/documents", summary="The documents of a collection")
    def documents(name: str) -> dict[str, Any]:
        engine = ctx.collections.engine(name)
        return {"collection": name, "documents": [dataclasses.asdict(d) for d in engine.documents()]}

    @router.post(
        "/collections/{name}/documents",
        dependencies=admin,
        summary="Upload documents (multipart field 'files': .txt .md .html .docx .pdf .xlsx .csv .png .jpg); "
        "202 with a job when scanned pages are read in the background",
        openapi_extra={"requestBody": _MULTIPART_FILES},
    )
    async def upload(name: str, request: Request) -> JSONResponse:
        engine = await run_in_threadpool(ctx.collections.engine, name)
        files = await _receive_files(request, ctx.max_upload_bytes)
        try:
            result = await run_in_threadpool(_index_uploads, engine, files, ctx.max_upload_bytes)
        finally:
            for _, f in files:
                await f.close()
        job = result.get("job")
        if job is not None:
            job["url"] = f"/api/collections/{name}/jobs/{job['id']}"
        return JSONResponse({"collection": name, **result}, status_code=202 if job else 200)

    @router.get("/collections/{name}/jobs/{job_id}", summary="How far a job reading scanned uploads got")
    def job(name: str, job_id: str) -> dict[str, Any]:
        engine = ctx.collections.engine(name)
        found = job_status(engine.index_dir, job_id)
        if found is None:
            raise ApiError(
                404,
                "unknown_job",
                f"collection {name!r} has no job {job_id!r} running or waiting (a job that finished before the "
                f"server started is not remembered); GET /api/collections/{name}/documents lists what is indexed",
            )
        return {"collection": name, **found.as_json()}

    @router.get(
        "/collections/{name}/documents/{doc:path}/source",
        summary="The stored copy of a PDF or image document (open a page with #page=N)",
        response_class=FileResponse,
    )
    def source(name: str, doc: str) -> FileResponse:
        engine = ctx.collections.engine(name)
        entry = engine.store.documents.get(doc)  # a name of the live version, nothing else makes the path
        if entry is None:
            raise ApiError(
                404,
                "unknown_document",
                f"collection {name!r} has no document {doc!r}; GET /api/collections/{name}/documents lists them",
            )
        path = source_file(Path(engine.index_dir), doc, entry.sha256)
        if path is None:
            raise ApiError(
                404,
                "no_source",
                f"{doc} is not a PDF or an image: the index keeps its text only (the answers quote it)",
            )
        if not path.is_file():
            raise ApiError(
                404,
                "no_source",
                f"the index holds no copy of {doc}: it was indexed before copies were kept; rebuild to enable "
                f'("rag build … --index {engine.index_dir}" over it, or upload it again)',
            )
        return FileResponse(
            path,
            media_type=SOURCE_TYPES[path.suffix],
            filename=doc,
            content_disposition_type="inline",
            headers={"x-content-type-options": "nosniff"},
        )

    @router.delete("/collections/{name}/documents/{doc}", dependencies=admin, summary="Remove one document")
    def remove_document(name: str, doc: str) -> dict[str, Any]:
        engine = ctx.collections.engine(name)
        if doc not in {d.doc for d in engine.documents()}:
            raise ApiError(
                404,
                "unknown_document",
                f"collection {name!r} has no document {doc!r}; GET /api/collections/{name}/documents lists them",
            )
        report = engine.remove(doc)
        return {"collection": name, "removed": report.removed or [doc], "documents": len(engine.documents())}

    @router.post("/collections/{name}/retrieve", summary="The paragraphs most likely to hold the answer")
    def retrieve(name: str, body: RetrieveRequest) -> dict[str, Any]:
        engine = ctx.collections.engine(name)
        rid, start = _rid("ret"), time.perf_counter()
        with ctx.gate.turn():
            passages = engine.retrieve(body.question, k=body.k, history=_turns(body.history))
        ctx.log_request(name, "retrieve", rid, start, body.question, passages=len(passages))
        return {"id": rid, "collection": name, "passages": [dataclasses.asdict(p) for p in passages]}

    @router.post("/collections/{name}/ask", summary="A cited answer (the Answer as JSON)")
    def ask(name: str, body: AskRequest) -> dict[str, Any]:
        engine = ctx.collections.engine(name)
        rid, start = _rid("ask"), time.perf_counter()
        with ctx.gate.turn():
            answer = engine.ask(body.question, history=_turns(body.history), k=body.k, answerer=body.answerer)
        ctx.log_request(name, "ask", rid, start, body.question, answer=answer)
        return {"id": rid, "collection": name, **dataclasses.asdict(answer)}

    @router.post("/feedback", status_code=201, summary="Mark an answer wrong, with the right answer if known")
    def feedback(body: FeedbackRequest) -> dict[str, Any]:
        if not ctx.collections.exists(body.collection):
            raise UnknownCollectionError(
                f"no collection {body.collection!r}; GET /api/collections lists them"
            )
        if not body.question.strip():
            raise QuestionError("feedback needs the question that was answered wrongly")
        item = Feedback(
            collection=body.collection,
            question=body.question,
            answer=body.answer,
            correct_answer=body.correct_answer,
            comment=body.comment,
            history=tuple(t.content for t in body.history if t.role == "user"),
            request_id=body.id,
            cited=cited_of(body.citations),
        )
        ctx.journal.feedback(ctx.folder(body.collection), item)
        return {"recorded": True, "collection": body.collection}

    return router


_MULTIPART_FILES = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                "required": ["files"],
            }
        }
    },
}


def _collection_info(ctx: ApiContext, name: str) -> dict[str, Any]:
    return {"name": name, "documents": ctx.collections.documents(name)}


class _FileTooLarge(MultiPartException):
    pass


class _LimitedParser(MultiPartParser):
    """Starlette's multipart parser, stopping as soon as one file passes max_file_bytes (the rest of the
    request is never read)."""

    def __init__(self, request: Request, stream: AsyncGenerator[bytes, None], max_file_bytes: int) -> None:
        super().__init__(
            request.headers,
            stream,
            max_files=MAX_FILES_PER_UPLOAD,
            max_fields=MAX_FORM_FIELDS,
            max_part_size=MAX_FORM_FIELD_BYTES,
        )
        self.max_file_bytes = max_file_bytes
        self.file_bytes = 0
        self.too_large = ""

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self.file_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current_part
        if part.file is not None:
            self.file_bytes += end - start
            if self.file_bytes > self.max_file_bytes:
                self.too_large = part.file.filename or "?"
                raise _FileTooLarge(self.too_large)
        super().on_part_data(data, start, end)


def _too_large(name: str, limit: int) -> ApiError:
    return ApiError(
        413,
        "too_large",
        f"{name} is larger than the limit of {limit / 1048576:.0f} MB per file; split it or shrink it",
    )


async def _receive_files(request: Request, max_bytes: int) -> list[tuple[str, UploadFile]]:
    """The uploaded files of a multipart request, read as they arrive and cut off at the size limit."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "bad_request", "send the files as multipart/form-data in the field 'files'")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FILES_PER_UPLOAD * (max_bytes + MAX_FORM_FIELD_BYTES):
        raise _too_large("the request", max_bytes)
    parser = _LimitedParser(request, request.stream(), max_bytes)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if parser.too_large:
            raise _too_large(parser.too_large, max_bytes) from None
        raise ApiError(
            400, "bad_request", f"the upload could not be read ({exc}); send multipart/form-data"
        ) from None
    files = [
        (value.filename or "document", value)
        for key, value in form.multi_items()
        if isinstance(value, UploadFile)
    ]
    if not files:
        raise ApiError(400, "bad_request", "no file in the request: send them in the multipart field 'files'")
    return files


def _index_uploads(engine: Any, files: list[tuple[str, UploadFile]], max_bytes: int) -> dict[str, Any]:
    """Check the uploads as the web chat does (ui/uploads.py), index the acceptable ones in one change,
    and say what happened to each and what reading it found (`read`); documents with scanned pages are
    queued as a background job (`job`) that adds them once OCR'd. Nothing acceptable: 400
    upload_rejected with the reasons."""
    work = Path(tempfile.mkdtemp(prefix="rag-api-upload-"))
    try:
        received: list[Path] = []
        for i, (name, upload) in enumerate(files):
            target = work / "in" / str(i) / safe_name(name)
            target.parent.mkdir(parents=True)
            upload.file.seek(0)
            with open(target, "wb") as out:
                shutil.copyfileobj(upload.file, out)
            received.append(target)
        staging = work / "staged"
        staging.mkdir()
        accepted, rejected = stage_uploads(received, staging, max_bytes)
        refused = [{"name": n, "reason": r} for n, r in rejected]
        if not accepted:
            reasons = "; ".join(f"{r['name']}: {r['reason']}" for r in refused)
            raise ApiError(400, "upload_rejected", f"no file was indexed ({reasons})")
        now, scans = split_scans(accepted)
        added: list[str] = []
        updated: list[str] = []
        unchanged: list[str] = []
        if now:
            report = engine.add([str(a.path) for a in now])
            added, updated, unchanged = report.added, report.updated, report.unchanged
            refused += [{"name": Path(s.path).name, "reason": s.reason} for s in report.skipped]
        queued: ScanJob | None = queue_scans(engine, [str(a.path) for a in scans]) if scans else None
        result: dict[str, Any] = {
            "added": added,
            "updated": updated,
            "unchanged": unchanged,
            "rejected": refused,
            "documents": len(engine.documents()),
            "read": read_stats(engine, added + updated),
        }
        if queued is not None:
            result["unchanged"] = unchanged + queued.unchanged
            result["rejected"] = refused + [
                {"name": Path(s.path).name, "reason": s.reason} for s in queued.skipped
            ]
            if queued.state != "done":
                result["job"] = {
                    k: v for k, v in queued.as_json().items() if k not in ("unchanged", "skipped")
                }
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------------------- OpenAI /v1


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat request; sampling fields (temperature, max_tokens…) are accepted and do not apply."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {"model": "default", "messages": [{"role": "user", "content": "左云县有多少家活性炭企业?"}]},
                {
                    "model": "default",
                    "stream": True,
                    "messages": [
                        {"role": "user", "content": "左雲縣有多少家活性炭企業？"},
                        {"role": "assistant", "content": "…集聚了14家活性炭企業…[1]"},
                        {"role": "user", "content": "其中規模以上的有幾家？"},
                    ],
                },
            ]
        },
    )

    model: str = Field(description="the collection to answer from (GET /v1/models lists them)")
    messages: list[ChatMessage]
    stream: bool = False
    answerer: Literal["extractive", "llm"] | None = Field(default=None, description="extension: the answerer")


def message_text(content: str | list[dict[str, Any]] | None) -> str:
    """The text of a message's content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")


_SOURCES_SPLIT = re.compile("\n\n(?:" + "|".join(map(re.escape, SOURCES_HEADING.values())) + ")\n")


def without_sources(text: str) -> str:
    """An assistant turn as the engine should read it: the sources list this API appended cut off."""
    return _SOURCES_SPLIT.split(text, maxsplit=1)[0]


def question_and_history(messages: list[ChatMessage]) -> tuple[str, list[dict[str, str]]]:
    """The question (the last message, a user's) and the conversation before it as the engine's history;
    system, developer and tool messages are not part of what the documents are asked."""
    if not messages or messages[-1].role != "user":
        raise QuestionError("the last message must be the user's question (role 'user')")
    history = [
        {
            "role": m.role,
            "content": without_sources(message_text(m.content))
            if m.role == "assistant"
            else message_text(m.content),
        }
        for m in messages[:-1]
        if m.role in ("user", "assistant")
    ]
    return message_text(messages[-1].content), history


def _marker_offsets(text: str, n: int) -> list[list[int]]:
    marker = f"[{n}]"
    return [[m.start(), m.end()] for m in re.finditer(re.escape(marker), text)]


def reference(c: Citation, answer_text: str) -> dict[str, Any]:
    """One source as the /v1 replies carry it. page (and page_end, where the quote runs onto the next page),
    table and row are null for a document without pages or a paragraph that is no table row."""
    return {
        "n": c.n,
        "doc": c.doc,
        "paragraph": c.paragraph,
        "page": c.page or None,
        "page_end": (c.page_end or c.page) or None,
        "table": c.table or None,
        "row": c.row or None,
        "section": c.section,
        "speaker": c.speaker,
        "quote": c.quote,
        "quote_start": c.quote_start,
        "quote_end": c.quote_end,
        "answer_offsets": _marker_offsets(answer_text, c.n),
        "short_start": c.answer_start,  # the short answer's offsets inside quote (equal: none)
        "short_end": c.answer_end,
        "score": round(c.score, 4),
    }


def sources_text(answer: Answer) -> str:
    """The plain-text list of sources appended to a reply ("" for a refusal): chat front ends that ignore
    extra fields still show where the answer came from."""
    if not answer.citations:
        return ""
    lines = []
    for c in answer.citations:
        where = c.section or c.speaker
        lines.append(
            f"[{c.n}] {c.doc} 第{c.paragraph}段"
            + (f" 第{c.page}页" if c.page else "")
            + (f" · {where}" if where else "")
            + f"：“{c.quote}”"
        )
    return "\n\n" + SOURCES_HEADING[script_of(answer.question)] + "\n" + "\n".join(lines)


def answer_fields(answer: Answer) -> dict[str, Any]:
    """What travels beside the content: the references, found, and the confidences."""
    return {
        "references": [reference(c, answer.text) for c in answer.citations],
        "found": answer.found,
        "short": answer.short,
        "short_confidence": round(answer.short_confidence, 4),
        "short_stated": answer.short_stated,
        "confidence": round(answer.confidence, 4),
        "verified": answer.verified,
        "answerer": answer.answerer,
    }


def openai_router(ctx: ApiContext) -> APIRouter:
    """OpenAI-compatible routes under /v1: models are the collections."""
    router = APIRouter(prefix="/v1", route_class=OpenAIRoute, tags=["openai"])

    def model_card(name: str) -> dict[str, Any]:
        current = ctx.folder(name) / "CURRENT"
        created = int(current.stat().st_mtime) if current.exists() else 0
        return {"id": name, "object": "model", "created": created, "owned_by": OWNED_BY}

    @router.get("/models", summary="The collections, as models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card(n) for n in ctx.collections.names()]}

    @router.get("/models/{model}", summary="One collection, as a model")
    def model(model: str) -> dict[str, Any]:
        ctx.collections.engine(model)
        return model_card(model)

    @router.post("/chat/completions", summary="A cited answer from the collection named by `model`")
    def chat(body: ChatCompletionRequest) -> Any:
        engine = ctx.collections.engine(body.model)
        question, history = question_and_history(body.messages)
        rid, start, created = _rid("chatcmpl"), time.perf_counter(), int(time.time())
        if body.stream:
            return _stream(ctx, engine, body, question, history, rid, start, created)
        with ctx.gate.turn():
            answer = engine.ask(question, history=history, answerer=body.answerer)
        ctx.log_request(body.model, "chat", rid, start, question, answer=answer)
        message = {
            "role": "assistant",
            "content": answer.text + sources_text(answer),
            **answer_fields(answer),
        }
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }

    return router


def _stream(
    ctx: ApiContext,
    engine: Any,
    body: ChatCompletionRequest,
    question: str,
    history: list[dict[str, str]],
    rid: str,
    start: float,
    created: int,
) -> StreamingResponse:
    """Server-sent events in OpenAI's chunk format: the answer in pieces, then its sources as text, then a
    last chunk with finish_reason "stop" and the references. The first piece is computed before the reply
    starts, so a bad question or a missing index is still an HTTP error, not a broken stream. A generated
    answer (llm) is sent once verified: the check may replace it, and sent text cannot be taken back."""
    stack = ExitStack()
    stack.enter_context(ctx.gate.turn())
    try:
        items = engine.ask_stream(question, history=history, answerer=body.answerer)
        first = next(items)
    except BaseException:
        stack.close()
        raise
    live = (body.answerer or engine.settings.answerer) != "llm"

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    def events() -> Iterator[str]:
        answer: Answer | None = None
        with stack:
            yield chunk({"role": "assistant", "content": ""})
            try:
                for item in _chain(first, items):
                    if isinstance(item, Answer):
                        answer = item
                    elif live and item:
                        yield chunk({"content": item})
            except Exception as exc:
                status, code, message = status_of(exc)
                if status == 500:
                    log.error("streamed answer failed", exc_info=(type(exc), exc, exc.__traceback__))
                yield f"data: {error_body(status, code, message).decode()}\n\n"
                return
        assert answer is not None
        if not live:
            for i in range(0, len(answer.text), STREAM_PIECE_CHARS):
                yield chunk({"content": answer.text[i : i + STREAM_PIECE_CHARS]})
        sources = sources_text(answer)
        if sources:
            yield chunk({"content": sources})
        yield chunk(answer_fields(answer), "stop")
        yield "data: [DONE]\n\n"
        ctx.log_request(body.model, "chat.stream", rid, start, question, answer=answer)

    # A client gone before the first chunk leaves events() unstarted; the slot is still handed back, when
    # the gate's own context manager is collected with the stack (tests/test_api_rest.py).
    headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


# ------------------------------------------------------------------------------------------- docs and wiring


def docs_router(routers: list[APIRouter], title: str) -> APIRouter:
    """/openapi.json for the API's routes only (not Gradio's), and the Swagger page at /docs."""
    router = APIRouter(include_in_schema=False)
    schema: dict[str, Any] = {}

    @router.get("/openapi.json")
    def openapi() -> dict[str, Any]:
        if not schema:
            routes = [r for rt in routers for r in rt.routes]
            schema.update(
                get_openapi(
                    title=title,
                    version=API_VERSION,
                    description=__doc__.split("\n\n")[0] if __doc__ else "",
                    routes=routes,
                )
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key, when the server has keys",
                }
            }
            schema["security"] = [{"bearer": []}]
        return schema

    @router.get("/docs")
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title=f"{title} API")

    return router


def include_api(
    app: FastAPI,
    collections: Collections,
    *,
    journal: Journal | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    title: str = "rag",
) -> ApiContext:
    """Add /api, /v1, /openapi.json and /docs to app. Call before Gradio is mounted at "/" (a mount at the
    root answers every path that no earlier route took)."""
    ctx = ApiContext(collections, journal or Journal(), max_upload_bytes)
    routers = [api_router(ctx), openai_router(ctx)]
    for router in routers:
        app.include_router(router)
    app.include_router(docs_router(routers, title))
    return ctx
