"""End to end against a real OpenAI-compatible server on loopback: llama-cpp-python's server with the
bundled Gemma 3 270M GGUF. The tiny model's wording is not asserted; the checks around it are."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.config import Settings
from rag.generate import generative_answer, generative_stream
from rag.llm import check_llama_cpp_build, default_gguf_path, make_llm
from rag.types import Answer, Citation, Passage

pytestmark = pytest.mark.slow

SEED = Path(__file__).resolve().parent.parent / "seeds" / "004_7b7eee9865cdd99f.txt"
STARTUP_S = 120
QUESTION = "左云县可网办率是多少？"


def seed_passages() -> list[Passage]:
    lines = [ln.strip() for ln in SEED.read_text(encoding="utf-8").splitlines() if ln.strip()]
    wanted = ("可網辦率", "集聚了14家活性炭企業", "全縣GDP")
    found = [next((i, ln) for i, ln in enumerate(lines, start=1) if w in ln) for w in wanted]
    return [
        Passage(doc=SEED.name, paragraph=i, text=ln, score=1.0 - k / 10) for k, (i, ln) in enumerate(found)
    ]


def fallback_for(passages: list[Passage]) -> Answer:
    p = next(p for p in passages if "可網辦率" in p.text)
    quote = "我縣可網辦事項1034個,可網辦率98.75%"
    return Answer(
        question=QUESTION,
        text="截至目前，我县可网办事项1034个，可网办率98.75%[1]。",
        found=True,
        citations=[Citation(n=1, doc=p.doc, paragraph=p.paragraph, text=p.text, quote=quote)],
        passages=passages,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start llama_cpp.server on a free loopback port, wait (bounded) until it lists its model, stop it after."""
    import llama_cpp

    check_llama_cpp_build(llama_cpp.llama_print_system_info())  # fail with the fix, not a server crash
    port = free_port()
    log = tmp_path_factory.mktemp("llm") / "server.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", default_gguf_path(), "--model_alias", "gemma",
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--chat_format", "gemma",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server not ready after {STARTUP_S}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def settings_for(base: str, fallback: bool = True) -> Settings:
    return Settings(
        llm_backend="openai",
        llm_base_url=base,
        llm_model="gemma",
        llm_max_tokens=96,
        llm_timeout_s=120.0,
        llm_fallback=fallback,
    )


def assert_citations_valid(answer: Answer, passages: list[Passage]) -> None:
    given = {(p.doc, p.paragraph) for p in passages}
    for c in answer.citations:
        assert (c.doc, c.paragraph) in given
        assert 1 <= c.n <= len(passages)
        assert f"[{c.n}]" in answer.text
        assert c.quote in c.text


def test_answer_through_openai_compatible_server(server: str) -> None:
    passages = seed_passages()
    answer = generative_answer(QUESTION, None, passages, fallback_for(passages), settings_for(server))
    assert answer.text.strip()
    assert answer.verified is not None
    assert answer.verification, "verification gives its reasons"
    assert_citations_valid(answer, passages)
    if answer.verified is False:
        assert answer.text == fallback_for(passages).text


def test_unverified_model_answer_keeps_only_valid_citations(server: str) -> None:
    passages = seed_passages()
    answer = generative_answer(QUESTION, None, passages, fallback_for(passages), settings_for(server, False))
    assert answer.verified is not None
    assert_citations_valid(answer, passages)
    if answer.found:
        assert answer.answerer == "llm"


def test_stream_and_follow_up_through_server(server: str) -> None:
    passages = seed_passages()
    history = [
        {"role": "user", "content": "左云县集聚了多少家活性炭企业？"},
        {"role": "assistant", "content": "14家[1]。"},
    ]
    items = list(
        generative_stream("其中生产企业呢？", history, passages, fallback_for(passages), settings_for(server))
    )
    final = items[-1]
    assert isinstance(final, Answer)
    assert all(isinstance(i, str) for i in items[:-1])
    assert final.standalone_question
    assert final.verified is not None
    assert_citations_valid(final, passages)


def test_unreachable_server_is_a_clear_error() -> None:
    from rag.errors import LLMError

    passages = seed_passages()
    settings = settings_for(f"http://127.0.0.1:{free_port()}/v1").with_(llm_timeout_s=3.0)
    with pytest.raises(LLMError, match="did not answer"):
        generative_answer(QUESTION, None, passages, fallback_for(passages), settings)


def test_local_gguf_backend() -> None:
    passages = seed_passages()
    settings = Settings(llm_backend="gguf", llm_max_tokens=64)
    llm = make_llm(settings)
    answer = generative_answer(QUESTION, None, passages, fallback_for(passages), settings, llm=llm)
    assert answer.verified is not None
    assert_citations_valid(answer, passages)
