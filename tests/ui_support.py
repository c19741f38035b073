"""Run the real web chat in a subprocess on loopback over a fresh index of seeds/, for the UI tests.

One server is shared by every UI test module of a pytest run (`shared_server`): building the index and
starting Gradio costs about 20 s on two cores. Tests that change the index put it back as they found it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
ARTIFACTS = REPO / "test-artifacts"
READY_TIMEOUT_S = 240.0

# A fictional county with a fact that is in no seed document.
FICTIONAL_NAME = "yunwu_county.txt"
FICTIONAL_TEXT = """云雾县概况

云雾县是一个虚构的县，只用于测试问答系统。

2024年，云雾县共种植紫色茶树3721亩，茶叶年产量达到412吨。

云雾县的县花是蓝色杜鹃，每年四月举办杜鹃花节。
"""
FICTIONAL_QUESTION = "云雾县种植了多少亩紫色茶树？"
FICTIONAL_ANSWER = "3721"


# Characters drawn from an emoji font: on a machine without one they show as empty boxes.
EMOJI_RE = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f]")


@dataclass
class Server:
    url: str  # ends with "/"
    index_dir: Path
    log: Path
    proc: subprocess.Popen[bytes]
    cache_dir: Path  # GRADIO_TEMP_DIR: every file Gradio keeps (uploads, and what it can serve)

    def health(self) -> dict[str, object]:
        with urllib.request.urlopen(self.url + "healthz", timeout=5) as r:
            return dict(json.loads(r.read()))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_seed_index(index_dir: Path) -> None:
    from rag.engine import Engine

    Engine.build([SEEDS], index_dir=index_dir)


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"rag serve exited with {server.proc.returncode}:\n{server.log.read_text()[-3000:]}"
            )
        try:
            if server.health().get("status") == "ok":
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"rag serve not ready after {timeout:.0f} s:\n{server.log.read_text()[-3000:]}")


@contextmanager
def running_server(workdir: Path) -> Iterator[Server]:
    """Build an index of seeds/ under workdir, serve it with ui.app.serve on a free port, stop it after."""
    index_dir = workdir / "index"
    build_seed_index(index_dir)
    port = free_port()
    log = workdir / "serve.log"
    cache_dir = workdir / "gradio-cache"
    env = dict(
        os.environ,
        GRADIO_ANALYTICS_ENABLED="False",
        GRADIO_TEMP_DIR=str(cache_dir),
        NO_PROXY="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
        # No language model: a port nothing listens on, so the chat must not offer 大模型.
        RAG_LLM_BACKEND="openai",
        RAG_LLM_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
    )
    env.pop("GRADIO_ROOT_PATH", None)
    code = "import sys; from ui.app import serve; serve(sys.argv[1], '127.0.0.1', int(sys.argv[2]))"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(index_dir), str(port)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(f"http://127.0.0.1:{port}/", index_dir, log, proc, cache_dir)
    try:
        _wait_ready(server, READY_TIMEOUT_S)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


_shared: dict[str, Server] = {}


def shared_server(config: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """The one server of this pytest run, started on first use and stopped when the run ends."""
    if "server" not in _shared:
        stack = ExitStack()
        _shared["server"] = stack.enter_context(running_server(tmp_path_factory.mktemp("ui-server")))
        config.add_cleanup(stack.close)
        config.add_cleanup(_shared.clear)
    return _shared["server"]


def last_message_text(chat: list[dict[str, object]]) -> str:
    """The text of the last chat message as gradio_client returns it (content is a list of parts)."""
    content = chat[-1]["content"]
    if isinstance(content, str):
        return content
    assert isinstance(content, list)
    return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
