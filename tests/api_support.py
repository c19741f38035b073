"""Serve the HTTP API (and the web chat) in this process on loopback, over data folders made from the
session's seeds index by copying it (no embedding): the API tests share the real engine already loaded."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from rag.collections import Collections
from rag.engine import Engine
from ui.auth import ApiKeys
from ui.feedback import Journal

SIMPLIFIED_SEED = "000_8e3a739afda006bb.txt"  # 左权县
TRADITIONAL_SEED = "004_7b7eee9865cdd99f.txt"  # 左云縣
START_TIMEOUT_S = 30.0

ADMIN_KEY = "admin-key-0123456789abcdef"
READ_KEY = "read-key-0123456789abcdef"
KEYS_ENV = {"RAG_API_KEYS": f"admin:{ADMIN_KEY},read:{READ_KEY}"}


def copy_index(engine: Engine, target: Path, keep: set[str] | None = None) -> Path:
    """A copy of an engine's index folder at target, holding only the documents in keep (all when None)."""
    shutil.copytree(engine.index_dir, target, ignore=shutil.ignore_patterns(".lock"))
    if keep is not None:
        copy = Engine.open(target, settings=engine.settings, embedder=engine.embedder)
        for d in copy.documents():
            if d.doc not in keep:
                copy.remove(d.doc)
    return target


def seeds_data_dir(engine: Engine, root: Path) -> Path:
    """A data folder: both seeds at its top (collection default), zuoquan (左权县 only), zuoyun (左云縣 only)."""
    copy_index(engine, root)
    copy_index(engine, root / "zuoquan", {SIMPLIFIED_SEED})
    copy_index(engine, root / "zuoyun", {TRADITIONAL_SEED})
    return root


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread on a free loopback port; yields its base URL (no slash)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def api_app(
    collections: Collections,
    *,
    keys: ApiKeys | None = None,
    journal: Journal | None = None,
    max_upload_bytes: int | None = None,
) -> FastAPI:
    """The app `rag serve` runs: the web chat on the first collection, the API, and the key check."""
    from ui.app import LlmStatus, create_app

    name = collections.served()
    engine = collections.engine(name)
    collections.adopt(name, engine)
    extra: dict[str, Any] = {} if max_upload_bytes is None else {"max_upload_bytes": max_upload_bytes}
    return create_app(
        engine, llm=LlmStatus(False, "off"), collections=collections, keys=keys, journal=journal, **extra
    )
