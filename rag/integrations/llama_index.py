"""A llama-index retriever over this library's hybrid Chinese retrieval, local or through a server's REST API.

    from rag.integrations.llama_index import RagRetriever
    retriever = RagRetriever.local("index")                                   # an index on disk
    retriever = RagRetriever.remote("http://127.0.0.1:7860", "default", api_key="…")   # a running server
    RetrieverQueryEngine.from_args(retriever, llm=…).query("左云县有多少家活性炭企业?")

Each node is one paragraph (`id_` "doc#paragraph"), scored by the fused ranking, with doc, paragraph,
section, speaker and quote in its metadata. The quote is the sentence our answerer cites from that paragraph
("" for a paragraph it does not cite), so a llama-index pipeline can show the same evidence the chat shows.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from rag.config import Settings
from rag.errors import RagError

DEFAULT_K = 5
REMOTE_TIMEOUT_S = 120.0  # an answer takes about a second; a server busy indexing may queue it for a while
# Metadata keys the LLM sees with each node's text (the rest is for the caller): where the text came from.
LLM_METADATA = ("doc", "paragraph", "section", "speaker")

AnswerSource = Callable[[str, int, Sequence[Mapping[str, str]]], Mapping[str, Any]]


class RemoteApiError(RagError):
    """The server answered with an error; status and code as its JSON envelope gave them."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} (HTTP {status}, {code})")
        self.status = status
        self.code = code


def nodes_from_answer(answer: Mapping[str, Any]) -> list[NodeWithScore]:
    """The answer's ranked paragraphs as nodes, the cited ones carrying their quote (the Answer as JSON)."""
    quotes: dict[tuple[str, int], tuple[str, int]] = {}
    for c in answer.get("citations", []):
        quotes.setdefault((c["doc"], int(c["paragraph"])), (c["quote"], int(c["n"])))
    nodes = []
    for p in answer.get("passages", []):
        quote, n = quotes.get((p["doc"], int(p["paragraph"])), ("", None))
        metadata = {
            "doc": p["doc"],
            "paragraph": int(p["paragraph"]),
            "section": p.get("section", ""),
            "speaker": p.get("speaker", ""),
            "quote": quote,
            "cited_as": n,
        }
        node = TextNode(
            id_=f"{p['doc']}#{p['paragraph']}",
            text=p["text"],
            metadata=metadata,
            excluded_llm_metadata_keys=[k for k in metadata if k not in LLM_METADATA],
            excluded_embed_metadata_keys=list(metadata),
        )
        nodes.append(NodeWithScore(node=node, score=float(p["score"])))
    return nodes


class RagRetriever(BaseRetriever):
    """A BaseRetriever whose nodes come from our engine: the k best paragraphs for the question."""

    def __init__(
        self,
        source: AnswerSource,
        k: int = DEFAULT_K,
        history: Sequence[Mapping[str, str]] = (),
        callback_manager: CallbackManager | None = None,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self._source = source
        self.k = k
        self.history = list(history)  # earlier turns, when the questions are follow-ups

    @classmethod
    def from_engine(cls, engine: Any, k: int = DEFAULT_K, **kwargs: Any) -> RagRetriever:
        """Over an opened rag.Engine."""

        def ask(question: str, k: int, history: Sequence[Mapping[str, str]]) -> Mapping[str, Any]:
            return dataclasses.asdict(engine.ask(question, history=list(history), k=k))

        return cls(ask, k, **kwargs)

    @classmethod
    def local(
        cls,
        index_dir: str | Path = "index",
        collection: str | None = None,
        settings: Settings | None = None,
        k: int = DEFAULT_K,
        **kwargs: Any,
    ) -> RagRetriever:
        """Over an index on disk (a collection of a data folder when `collection` is given)."""
        from rag.collections import collection_dir
        from rag.engine import Engine

        folder = collection_dir(index_dir, collection) if collection is not None else Path(index_dir)
        return cls.from_engine(Engine.open(folder, settings=settings), k, **kwargs)

    @classmethod
    def remote(
        cls,
        base_url: str,
        collection: str = "default",
        api_key: str | None = None,
        k: int = DEFAULT_K,
        timeout_s: float = REMOTE_TIMEOUT_S,
        **kwargs: Any,
    ) -> RagRetriever:
        """Over a running server's REST API (`rag serve`), with an API key when the server has keys."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

        def ask(question: str, k: int, history: Sequence[Mapping[str, str]]) -> Mapping[str, Any]:
            response = client.post(
                f"/api/collections/{collection}/ask",
                json={"question": question, "k": k, "history": list(history)},
            )
            if response.status_code != 200:
                try:
                    error = response.json()["error"]
                    raise RemoteApiError(response.status_code, str(error["code"]), str(error["message"]))
                except (ValueError, KeyError, TypeError):
                    raise RemoteApiError(response.status_code, "http_error", response.text[:200]) from None
            return dict(response.json())

        return cls(ask, k, **kwargs)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return nodes_from_answer(self._source(query_bundle.query_str, self.k, self.history))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)
