"""What the engine does with malformed or oversized inputs: a QuestionError that says what to do, and a
bounded amount of work for any question or history."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag.conversation import HISTORY_BUDGET_CHARS
from rag.engine import MAX_QUERY_EMBED_CHARS, Engine
from rag.errors import QuestionError
from rag.question import analyse_question as analyse
from rag.retrieval import MAX_COMPARED_SUBJECTS, split_subjects
from tests.conftest import KeywordEmbedder

PARAGRAPHS = {
    "a.txt": ["左云县共有活性炭企业14家，其中规模以上企业7家。", "左云县地区生产总值增长5%。"],
    "b.txt": ["左权县有机作物种植面积3万亩。", "左权县森林覆盖率达到60%。"],
}


class RecordingEmbedder(KeywordEmbedder):
    """The keyword embedder, remembering every question text it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    def embed_query(self, text: str) -> np.ndarray:
        self.queries.append(text)
        return super().embed_query(text)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine.build_from_texts(PARAGRAPHS, tmp_path / "index", embedder=RecordingEmbedder())


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda e: e.retrieve("左云县有几家企业?", k=0), "k must be at least 1"),
        (lambda e: e.retrieve("左云县有几家企业?", k=-2), "k must be at least 1"),
        (lambda e: e.ask("左云县有几家企业?", k=0), "k must be at least 1"),
        (
            lambda e: e.ask("其中规模以上的有几家?", history=["左云县有几家企业?"]),
            "history must be a list of turns",
        ),
        (lambda e: e.retrieve("其中规模以上的有几家?", history="左云县"), "history must be a list of turns"),
        (lambda e: e.ask("左云县\ud800有几家企业?"), "U\\+D800"),
        (lambda e: e.ask(b"\xe5\xb7\xa6"), "bytes"),
    ],
)
def test_malformed_inputs_are_question_errors(engine: Engine, call: Any, says: str) -> None:
    with pytest.raises(QuestionError, match=says):
        call(engine)


def test_a_long_question_embeds_a_bounded_text(engine: Engine) -> None:
    question = "左云县" * 600 + "有多少家活性炭企业?"
    engine.ask(question)
    embedder = engine.embedder
    assert isinstance(embedder, RecordingEmbedder)
    assert embedder.queries and max(len(q) for q in embedder.queries) <= MAX_QUERY_EMBED_CHARS
    assert embedder.queries[-1].endswith("有多少家活性炭企业?")  # the asked part is kept


def test_a_huge_history_is_read_only_up_to_its_budget(engine: Engine) -> None:
    history = [{"role": "user", "content": "左权县" * 10_000 + "左云县有几家企业?"}]
    question = "其中规模以上的有几家?"
    answer = engine.ask(question, history=history)
    assert answer.standalone_question.endswith("左云县有几家企业? " + question)
    assert len(answer.standalone_question) <= HISTORY_BUDGET_CHARS + len(question) + 1


def test_a_text_naming_many_places_is_not_split_into_a_comparison() -> None:
    places = ["左云县", "左权县", "大同市", "晋中市", "太原市", "阳泉市"][: MAX_COMPARED_SUBJECTS + 2]
    question = "和".join(places) + "的地区生产总值分别是多少?"
    query = analyse(question)
    assert len(query.entities) > MAX_COMPARED_SUBJECTS
    docs = {f"{p}.txt": f"{p}地区生产总值100亿元。" for p in places}
    assert split_subjects(query, docs) == [query]
    two = analyse("左云县和左权县的地区生产总值分别是多少?")
    assert len(split_subjects(two, {"a": "左云县…", "b": "左权县…"})) == 2


@pytest.mark.slow
def test_cli_question_with_undecodable_bytes_gets_a_message(seeds_engine: Engine) -> None:
    argv = [sys.executable, "-m", "rag.cli", "ask", "--index", str(seeds_engine.index_dir)]
    done = subprocess.run(
        [*argv, b"\xd7\xf3\xd4\xc6\xcf\xd8?"], capture_output=True, timeout=120
    )  # GBK bytes
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, err
    assert "Traceback" not in err
    assert "UTF-8" in err
