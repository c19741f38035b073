"""The llama-index retriever over the real engine, local and through a real server's REST API, inside
llama-index's own RetrieverQueryEngine with llama-index's MockLLM (which echoes its prompt)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_support import ADMIN_KEY, KEYS_ENV, TRADITIONAL_SEED, api_app, seeds_data_dir, serving
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import QueryBundle

from rag.collections import Collections
from rag.engine import Engine
from rag.integrations.llama_index import RagRetriever, RemoteApiError, nodes_from_answer
from ui.auth import api_keys_from

QUESTION = "左云县有多少家活性炭企业?"


def test_nodes_carry_the_cited_quote_only_on_cited_paragraphs() -> None:
    answer = {
        "citations": [{"n": 1, "doc": "b.txt", "paragraph": 4, "quote": "第二句。"}],
        "passages": [
            {
                "doc": "b.txt",
                "paragraph": 4,
                "text": "第一句。第二句。",
                "score": 3.5,
                "section": "一、",
                "speaker": "",
            },
            {"doc": "a.txt", "paragraph": 9, "text": "别的段落。", "score": 1.25},
        ],
    }
    first, second = nodes_from_answer(answer)
    assert first.node.node_id == "b.txt#4" and first.score == 3.5
    assert first.node.metadata == {
        "doc": "b.txt",
        "paragraph": 4,
        "section": "一、",
        "speaker": "",
        "quote": "第二句。",
        "cited_as": 1,
    }
    assert second.node.metadata["quote"] == "" and second.node.metadata["cited_as"] is None
    # the LLM sees where a text came from, not the bookkeeping
    assert "doc: b.txt" in first.node.get_content(metadata_mode="llm")  # type: ignore[arg-type]
    assert "cited_as" not in first.node.get_content(metadata_mode="llm")  # type: ignore[arg-type]


@pytest.mark.slow
def test_local_retriever_under_a_llama_index_query_engine(seeds_engine: Engine) -> None:
    retriever = RagRetriever.from_engine(seeds_engine, k=3)
    nodes = retriever.retrieve(QUESTION)
    assert len(nodes) == 3
    top = nodes[0]
    assert (top.node.metadata["doc"], top.node.metadata["paragraph"]) == (TRADITIONAL_SEED, 21)
    assert top.node.metadata["quote"] and top.node.metadata["quote"] in top.node.get_content()
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query(QUESTION)
    assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in nodes]
    assert top.node.metadata["quote"] in str(response)  # MockLLM echoes the prompt: our paragraph is in it


@pytest.fixture(scope="module")
def url(seeds_engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = seeds_data_dir(seeds_engine, tmp_path_factory.mktemp("llama") / "data")
    app = api_app(Collections(data, seeds_engine.settings), keys=api_keys_from(KEYS_ENV))
    with serving(app) as base:
        yield base


async def _aretrieve(retriever: RagRetriever) -> list[str]:
    return [n.node.node_id for n in await retriever.aretrieve(QUESTION)]


@pytest.mark.slow
def test_remote_retriever_through_the_rest_api(url: str) -> None:
    import asyncio

    retriever = RagRetriever.remote(url, "zuoyun", api_key=ADMIN_KEY, k=2)
    nodes = retriever.retrieve(QueryBundle(QUESTION))
    assert [n.node.metadata["doc"] for n in nodes] == [TRADITIONAL_SEED] * 2
    assert nodes[0].node.metadata["paragraph"] == 21 and nodes[0].node.metadata["quote"]
    assert asyncio.run(_aretrieve(retriever)) == [n.node.node_id for n in nodes]
    response = RetrieverQueryEngine.from_args(retriever, llm=MockLLM()).query(QUESTION)
    assert nodes[0].node.metadata["quote"] in str(response)
    with pytest.raises(RemoteApiError, match="zuoquan") as unknown:
        RagRetriever.remote(url, "nosuch", api_key=ADMIN_KEY).retrieve(QUESTION)
    assert unknown.value.status == 404 and unknown.value.code == "unknown_collection"
    with pytest.raises(RemoteApiError) as no_key:
        RagRetriever.remote(url, "zuoyun").retrieve(QUESTION)
    assert no_key.value.status == 401
