"""Command-line options of the generative answerer, kept apart from rag.llm so `rag` starts fast
(llama-index is imported only when a model is used)."""

from __future__ import annotations

import argparse

from rag.config import Settings

BACKENDS = ("openai", "gguf")


def add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    """The answerer and LLM backend flags; values left out fall back to Settings (RAG_* variables)."""
    group = parser.add_argument_group("generative answers")
    group.add_argument(
        "--answerer",
        choices=["extractive", "llm"],
        default=None,
        help="extractive (default) or llm: a language model's answer, checked against the cited paragraphs",
    )
    group.add_argument("--llm-backend", choices=BACKENDS, default=None, help="openai (a server) or gguf")
    group.add_argument(
        "--llm-base-url", default=None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1"
    )
    group.add_argument("--llm-model", default=None, help="model name the server knows")
    group.add_argument(
        "--gguf", default=None, metavar="PATH", help="local GGUF file (implies --llm-backend gguf)"
    )
    group.add_argument(
        "--no-llm-fallback",
        action="store_true",
        default=None,
        help="return the model's answer even when verification fails (marked unverified)",
    )


def settings_from_args(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings with the flags of add_llm_arguments applied; flags not given change nothing."""
    gguf = getattr(args, "gguf", None)
    backend = getattr(args, "llm_backend", None) or ("gguf" if gguf else None)
    return settings.with_(
        answerer=getattr(args, "answerer", None),
        llm_backend=backend,
        llm_base_url=getattr(args, "llm_base_url", None),
        llm_model=getattr(args, "llm_model", None),
        llm_gguf_path=gguf,
        llm_fallback=False if getattr(args, "no_llm_fallback", None) else None,
    )
