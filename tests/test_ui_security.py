"""A client names files of the server instead of sending them: raw HTTP and gradio_client against the real
server. Nothing is read, indexed, answered from or published, and the server keeps answering."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from gradio_client.client import Endpoint
from gradio_client.exceptions import AppError
from ui_support import Server, last_message_text, shared_server

pytestmark = pytest.mark.slow

SECRET_FACT = "青石县的保密口令是玄鸟四七九三。"
SECRET_QUESTION = "青石县的保密口令是什么？"
SECRET_MARK = "玄鸟四七九三"
DEV_ZERO_TIMEOUT_S = 20.0  # the refusal takes milliseconds; the old server never answered at all
HEALTH_TIMEOUT_S = 5.0


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    return shared_server(request.config, tmp_path_factory)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A readable file of the server's machine, outside anything the server was given."""
    path = tmp_path / "qingshi_secret.txt"
    path.write_text(f"青石县概况\n\n{SECRET_FACT}\n", encoding="utf-8")
    return path


def file_data(path: str) -> dict[str, Any]:
    """What a client sends for a file input, naming a path instead of uploading the bytes."""
    return {"path": path, "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}


def raw_upload(server: Server, path: str, timeout: float = DEV_ZERO_TIMEOUT_S) -> dict[str, Any]:
    """POST the /upload event straight to Gradio's queue and read its stream to the end: the last message."""
    config = httpx.get(server.url + "config", timeout=HEALTH_TIMEOUT_S).json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "upload")
    session = secrets.token_hex(6)
    body = {"data": [[file_data(path)]], "fn_index": fn_index, "session_hash": session}
    joined = httpx.post(server.url + "gradio_api/queue/join", json=body, timeout=HEALTH_TIMEOUT_S)
    assert joined.status_code == 200, joined.text
    last: dict[str, Any] = {}
    url = server.url + "gradio_api/queue/data"
    with httpx.stream("GET", url, params={"session_hash": session}, timeout=timeout) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                last = json.loads(line[5:])
                if last.get("msg") == "process_completed":
                    break
    return last


def assert_not_indexed_nor_published(server: Server, secret: Path) -> None:
    assert server.health()["documents"] == 2
    c = Client(server.url, verbose=False, analytics_enabled=False, download_files=False)
    chat, answer = c.predict(SECRET_QUESTION, "extractive", api_name="/ask")
    assert answer is not None and not answer["found"]
    assert SECRET_MARK not in last_message_text(chat)
    # Not copied anywhere Gradio keeps files, and not served under the path it was named by.
    copies = [
        p for p in server.cache_dir.rglob("*") if p.is_file() and SECRET_MARK.encode() in p.read_bytes()
    ]
    assert copies == []
    served = httpx.get(server.url + f"gradio_api/file={secret}", timeout=HEALTH_TIMEOUT_S)
    assert served.status_code != 200 and SECRET_MARK not in served.text


def test_raw_http_upload_naming_a_server_file_is_refused(server: Server, secret: Path) -> None:
    result = raw_upload(server, str(secret))
    assert result.get("msg") == "process_completed"
    assert result["success"] is False  # refused before the handler: the file was not sent by a client
    assert_not_indexed_nor_published(server, secret)


def test_raw_http_upload_of_dev_zero_is_refused_and_the_server_keeps_answering(server: Server) -> None:
    start = time.monotonic()
    result = raw_upload(server, "/dev/zero")
    assert result.get("msg") == "process_completed" and result["success"] is False
    assert time.monotonic() - start < DEV_ZERO_TIMEOUT_S
    health = httpx.get(server.url + "healthz", timeout=HEALTH_TIMEOUT_S).json()
    assert health["status"] == "ok" and health["documents"] == 2


def test_gradio_client_naming_a_server_file_is_refused(
    server: Server, secret: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gradio_client uploads every local file it is given; a hostile client skips that and sends the path.
    monkeypatch.setattr(Endpoint, "_upload_file", lambda self, f, data_index: f)
    c = Client(server.url, verbose=False, analytics_enabled=False, download_files=False)
    with pytest.raises(AppError):
        c.predict([file_data(str(secret))], api_name="/upload")
    with pytest.raises(AppError):
        c.predict([file_data("/dev/zero")], api_name="/upload")
    monkeypatch.undo()
    assert_not_indexed_nor_published(server, secret)
