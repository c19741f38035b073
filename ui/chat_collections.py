"""The web chat's collection picker: one ChatService per collection, made on first use
(`ChatCollections`), and the page's event handlers that take the chosen collection (`ChatPage`): each
collection keeps its own conversation in the browser (ui/stored_chat.py) and its own documents tab.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import gradio as gr

from rag.collections import Collections
from rag.errors import RagError, UnknownCollectionError
from ui import render, stored_chat
from ui.chat import AskOutputs, ChatService, ChatSession, ProgressFn

# How often an open page looks for collections and document changes made elsewhere (the API, another
# tab): one small request that reads a version name and lists a folder, answered without the queue.
POLL_S = 5.0


class ChatCollections:
    """The collections the web chat offers, one ChatService each, made on first use; they share the upload
    folder and limit, the model status and the feedback journal with the first (the served one)."""

    def __init__(self, first: ChatService, collections: Collections | None = None) -> None:
        self.first = first
        self.collections = collections
        self._services: dict[str, ChatService] = {first.collection: first}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Every collection of the data folder (one created through the API included), the first always."""
        names = self.collections.names() if self.collections is not None else []
        return names if self.first.collection in names else [self.first.collection, *names]

    def service(self, name: str | None) -> ChatService:
        """The chat of one collection; a RagError saying what exists when there is no such collection."""
        if not name or name == self.first.collection:
            return self.first
        if self.collections is None:
            raise UnknownCollectionError(f"this chat serves only {self.first.collection!r}, not {name!r}")
        engine = self.collections.engine(name)  # checks the name; deleted since: UnknownCollectionError
        with self._lock:
            svc = self._services.get(name)
            if svc is None or svc.engine is not engine:  # deleted and created again: another engine
                first = self.first
                svc = ChatService(
                    engine,
                    max_upload_bytes=first.max_upload_bytes,
                    upload_dir=first.upload_dir,
                    llm=first.llm,
                    collection=name,
                    journal=first.journal,
                )
                svc.sent_files = first.sent_files
                self._services[name] = svc
        return svc


PageDocs = tuple[Any, Any, Any, Any, Any]  # the documents tab: report, table, removal choice, status, files
FeedbackOutputs = tuple[
    Any, Any, Any, Any
]  # the 答案有误 panel, its prompt, its correct-answer box, the note


def _missing(name: str | None, error: RagError) -> str:
    return f"没有文档集合 `{name}`，请在上方重新选择（{error}）。"


class ChatPage:
    """The page's event handlers: each takes the collection chosen in the picker (the public /ask, /upload,
    /remove and /documents endpoints take it as their last, optional, argument) and keeps each collection's
    conversation in the browser (stored_chat)."""

    def __init__(self, chats: ChatCollections) -> None:
        self.chats = chats

    def _known(self) -> list[str]:
        return self.chats.names()

    # --- the page and the picker --------------------------------------------------------------
    def open(self, stored: Any) -> tuple[Any, ...]:
        """A page (re)load: the collection it was on and its conversation, from the browser's storage."""
        names = self._known()
        collection = stored_chat.stored_collection(stored)
        if collection not in names:
            collection = self.chats.first.collection
        try:
            svc = self.chats.service(collection)
        except RagError:
            svc = self.chats.first
            collection = svc.collection
        session = ChatSession.restored(stored_chat.conversation_of(stored, collection), collection)
        return (gr.update(choices=names, value=collection), list(session.messages), session, *svc.refresh())

    def choices(self) -> Any:
        """The picker's choices as the data folder holds them now (when it is opened)."""
        return gr.update(choices=self._known())

    def switch(self, collection: str | None, session: ChatSession, stored: Any) -> tuple[Any, ...]:
        """Another collection chosen: keep this conversation in the browser, show the other's and its
        documents. An answer still coming for the collection left is dropped."""
        names = self._known()
        try:
            svc = self.chats.service(collection)
        except RagError as e:
            back = gr.update(choices=names, value=session.collection)
            skip = gr.skip()
            return (back, skip, skip, skip, skip, _missing(collection, e), skip, skip, skip, skip, skip)
        with session.turn:
            session.cleared = True
        stored = stored_chat.with_conversation(stored, session.collection, session.conversation(), names)
        conversation = stored_chat.conversation_of(stored, svc.collection)
        chosen = ChatSession.restored(conversation, svc.collection)
        stored = stored_chat.with_conversation(stored, svc.collection, conversation, names)
        hide = gr.update(visible=False)
        return (gr.update(choices=names), list(chosen.messages), chosen, stored, None, *svc.refresh(), hide)

    # --- the conversation ---------------------------------------------------------------------
    def ask(
        self, question: str, answerer: str, session: ChatSession, collection: str | None = None
    ) -> Iterator[AskOutputs]:
        """/ask: a question to the chosen collection, in this session's conversation of it."""
        try:
            svc = self.chats.service(collection or session.collection)
        except RagError as e:
            raise gr.Error(_missing(collection, e)) from None
        if session.collection != svc.collection:  # a client naming another collection: its own conversation
            session = ChatSession(collection=svc.collection)
        yield from svc.ask(question, answerer, session)

    def clear(self, session: ChatSession | None) -> tuple[list[dict[str, str]], ChatSession, None]:
        return self.chats.first.clear(session)

    def save(self, session: ChatSession, stored: Any) -> dict[str, Any]:
        """The browser's copy after an answer: this collection's conversation as it now stands."""
        return stored_chat.with_conversation(
            stored, session.collection, session.conversation(), self._known()
        )

    def forget(self, session: ChatSession, stored: Any) -> dict[str, Any]:
        """新对话: the browser forgets this collection's conversation."""
        return stored_chat.with_conversation(stored, session.collection, None, self._known())

    # --- 答案有误 ------------------------------------------------------------------------------
    def open_feedback(self, answer_id: str, session: ChatSession) -> FeedbackOutputs:
        with session.turn:
            record = session.answers.get(answer_id or "")
        if record is None:
            return gr.update(visible=False), "", "", "没有找到这个回答（可能已经开始了新对话）。"
        return gr.update(visible=True), render.feedback_prompt(record["question"]), "", ""

    def send_feedback(self, answer_id: str, correct_answer: str, session: ChatSession) -> tuple[Any, str]:
        """Record the answer as wrong in the feedback file of the collection it came from."""
        try:
            svc = self.chats.service(session.collection)
        except RagError as e:
            return gr.update(visible=False), _missing(session.collection, e)
        return gr.update(visible=False), svc.mark_wrong(answer_id, correct_answer, session)

    # --- the documents tab --------------------------------------------------------------------
    def _docs_missing(self, collection: str | None, error: RagError) -> PageDocs:
        skip = gr.skip()
        return _missing(collection, error), skip, skip, skip, skip

    def documents(self, collection: str | None = None) -> PageDocs:
        """/documents: the chosen collection's documents."""
        try:
            return self.chats.service(collection).refresh()
        except RagError as e:
            return self._docs_missing(collection, e)

    def upload(
        self, paths: list[str] | None, collection: str | None = None, progress: ProgressFn | None = None
    ) -> PageDocs:
        """/upload: files into the chosen collection."""
        try:
            svc = self.chats.service(collection)
        except RagError as e:
            return self._docs_missing(collection, e)
        return svc.upload(paths, progress)

    def remove(
        self, doc: str | None, collection: str | None = None, progress: ProgressFn | None = None
    ) -> PageDocs:
        """/remove: one document of the chosen collection."""
        try:
            svc = self.chats.service(collection)
        except RagError as e:
            return self._docs_missing(collection, e)
        return svc.remove(doc, progress)

    def listing(self, collection: str | None) -> tuple[Any, Any, Any]:
        """The documents tab opened: its list as it is now (an upload through the API included)."""
        try:
            return self.chats.service(collection).listing()
        except RagError as e:
            return gr.skip(), gr.skip(), _missing(collection, e)

    def poll(self, collection: str | None, seen: Any) -> tuple[Any, ...]:
        """Every POLL_S: new picker choices when collections came or went, the documents list when the
        chosen collection's version changed, the status line when the reading of its scanned uploads got
        further; nothing at all (no re-render) when none of these did."""
        names = self._known()
        try:
            svc: ChatService | None = self.chats.service(collection)
        except RagError:
            svc = None
        version = svc.version() if svc is not None else None
        scans = svc.scan_progress() if svc is not None else None
        now = {"names": names, "collection": collection, "version": version, "scans": scans}
        if now == seen:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen
        last = seen if isinstance(seen, dict) else {}
        picker = gr.update(choices=names) if last.get("names") != names else gr.skip()
        if svc is None:
            listing: tuple[Any, Any, Any] = (
                gr.skip(),
                gr.skip(),
                f"文档集合 `{collection}` 已不存在，请在上方重新选择。",
            )
        elif (last.get("collection"), last.get("version")) != (collection, version):
            listing = svc.listing()
        elif last.get("scans") != scans:
            listing = (gr.skip(), gr.skip(), svc.status())
        else:
            listing = (gr.skip(), gr.skip(), gr.skip())
        return (picker, *listing, now)
