"""The only module that imports faiss: vectors + paragraph table + BM25 + manifest, saved atomically.

Layout of an index folder:
    CURRENT                 name of the live version folder (replaced atomically)
    v-<time>-<rand>/        one complete version: manifest.json, paragraphs.jsonl, vectors.faiss,
                            vector_owner.npy, bm25/ (bm25s)
A build writes a new version folder beside the live one and then swaps CURRENT, so a crash mid-build
leaves the previous version in use. Vector and paragraph ids only ever grow: never reused after a delete.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bm25s
import faiss
import numpy as np

from rag.embedding import Embedder
from rag.errors import EmbedderMismatchError, IndexCorruptError, IndexMissingError
from rag.text import char_pairs, normalize, sentences, to_simplified, tokens_for_index
from rag.types import DocumentInfo, Paragraph

FORMAT_VERSION = 1
WHOLE_PARAGRAPH_CHARS = 600  # e5 reads 512 tokens ≈ 650 Chinese characters; longer paragraphs are windowed
WINDOW_CHARS = 450

Progress = Callable[[int, int], None]  # (characters embedded so far, characters to embed)


@dataclass
class Row:
    """One paragraph as stored: stable id, the paragraph, and its index words."""

    pid: int
    paragraph: Paragraph
    tokens: list[str]


@dataclass
class DocEntry:
    sha256: str
    paragraphs: int
    added_at: str
    chars: int


def embedding_windows(text: str) -> list[str]:
    """The texts embedded for one paragraph: itself, or sentence-aligned windows when it is long."""
    plain = to_simplified(text)
    if len(plain) <= WHOLE_PARAGRAPH_CHARS:
        return [plain]
    windows: list[str] = []
    current = ""
    for start, end in sentences(plain):
        piece = plain[start:end]
        if current and len(current) + len(piece) > WINDOW_CHARS:
            windows.append(current)
            current = ""
        while len(piece) > WHOLE_PARAGRAPH_CHARS:  # one endless sentence: cut it
            windows.append(piece[:WINDOW_CHARS])
            piece = piece[WINDOW_CHARS:]
        current += piece
    if current:
        windows.append(current)
    return windows


def index_tokens(p: Paragraph) -> list[str]:
    """BM25 words of a paragraph: its text, the heading it sits under and who speaks it."""
    return tokens_for_index(f"{p.section} {p.speaker} {p.text}")


@dataclass
class Store:
    embedder_id: str
    dim: int
    rows: list[Row] = field(default_factory=list)
    documents: dict[str, DocEntry] = field(default_factory=dict)
    vectors: Any = None  # faiss.IndexIDMap2 over IndexFlatIP
    vector_owner: dict[int, int] = field(default_factory=dict)  # vector id -> pid
    next_vector_id: int = 0
    next_pid: int = 0
    bm25: bm25s.BM25 | None = None
    embedded_chars: int = 0  # characters embedded by the update that made this store

    def __post_init__(self) -> None:
        if self.vectors is None:
            self.vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        self._derive()

    # ------------------------------------------------------------ derived lookups

    def _derive(self) -> None:
        self.row_of_pid = {row.pid: i for i, row in enumerate(self.rows)}
        self.row_of_paragraph = {(r.paragraph.doc, r.paragraph.paragraph): i for i, r in enumerate(self.rows)}
        df: Counter[str] = Counter()
        pair_df: Counter[str] = Counter()
        doc_parts: dict[str, list[str]] = {}
        for row in self.rows:
            df.update(set(row.tokens))
            p = row.paragraph
            text = normalize(f"{p.section} {p.speaker} {p.text}")
            pair_df.update(char_pairs(text))
            doc_parts.setdefault(p.doc, []).append(text)
        n = max(1, len(self.rows))
        self.idf = {w: _idf(n, c) for w, c in df.items()}
        self.pair_idf = {w: _idf(n, c) for w, c in pair_df.items()}
        self.default_idf = _idf(n, 0)
        self.doc_text = {doc: "\n".join(parts) for doc, parts in doc_parts.items()}  # subject checks
        owner = np.full(self.next_vector_id, -1, dtype=np.int64)
        for vid, pid in self.vector_owner.items():
            owner[vid] = self.row_of_pid.get(pid, -1)
        self._owner_rows = owner

    @property
    def paragraphs(self) -> list[Paragraph]:
        return [row.paragraph for row in self.rows]

    def document_infos(self) -> list[DocumentInfo]:
        return [
            DocumentInfo(
                doc=name, paragraphs=e.paragraphs, sha256=e.sha256, added_at=e.added_at, chars=e.chars
            )
            for name, e in sorted(self.documents.items())
        ]

    # ------------------------------------------------------------ search

    def dense_scores(self, query: np.ndarray, k: int) -> np.ndarray:
        """Best window cosine per paragraph row (rows not among the k nearest windows get -1)."""
        scores = np.full(len(self.rows), -1.0, dtype=np.float32)
        assert self.vectors is not None
        total = self.vectors.ntotal
        if total == 0:
            return scores
        k = total if total <= 20000 else min(total, k)
        sims, ids = self.vectors.search(query.reshape(1, -1).astype(np.float32), k)
        rows = self._owner_rows[ids[0][ids[0] >= 0]]
        sims = sims[0][ids[0] >= 0]
        valid = rows >= 0
        np.maximum.at(scores, rows[valid], sims[valid])
        return scores

    def bm25_scores(self, tokens: list[str]) -> np.ndarray:
        if self.bm25 is None or not self.rows or not tokens:
            return np.zeros(len(self.rows), dtype=np.float32)
        return np.asarray(self.bm25.get_scores(tokens), dtype=np.float32)

    # ------------------------------------------------------------ updates

    def updated(
        self,
        changes: dict[str, tuple[list[Paragraph], str]],
        removed: Iterable[str],
        embedder: Embedder,
        progress: Progress | None = None,
    ) -> Store:
        """A new store with documents added or replaced (changes) and dropped (removed); self is untouched."""
        gone = set(removed) | set(changes)
        kept_rows = [row for row in self.rows if row.paragraph.doc not in gone]
        kept_pids = {row.pid for row in kept_rows}
        kept_vids = np.array(
            sorted(v for v, p in self.vector_owner.items() if p in kept_pids), dtype=np.int64
        )

        index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        owner = {int(v): self.vector_owner[int(v)] for v in kept_vids}
        assert self.vectors is not None
        if len(kept_vids):
            old = np.vstack([self.vectors.reconstruct(int(v)) for v in kept_vids]).astype(np.float32)
            index.add_with_ids(old, kept_vids)

        rows = list(kept_rows)
        documents = {k: v for k, v in self.documents.items() if k not in gone}
        next_pid, next_vid = self.next_pid, self.next_vector_id
        units: list[tuple[int, str]] = []  # (pid, text to embed)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for name in sorted(changes):
            paragraphs, sha = changes[name]
            for p in paragraphs:
                rows.append(Row(next_pid, p, index_tokens(p)))
                units.extend((next_pid, w) for w in embedding_windows(p.text))
                next_pid += 1
            documents[name] = DocEntry(sha, len(paragraphs), now, sum(len(p.text) for p in paragraphs))

        total = sum(len(t) for _, t in units)
        done = 0
        batch = 32
        for i in range(0, len(units), batch):
            chunk = units[i : i + batch]
            vecs = embedder.embed_documents([t for _, t in chunk]).astype(np.float32)
            ids = np.arange(next_vid, next_vid + len(chunk), dtype=np.int64)
            index.add_with_ids(vecs, ids)
            for vid, (pid, _) in zip(ids.tolist(), chunk, strict=True):
                owner[vid] = pid
            next_vid += len(chunk)
            done += sum(len(t) for _, t in chunk)
            if progress:
                progress(done, total)

        # Reading order: documents by name, paragraphs by number (pids stay as they were).
        rows.sort(key=lambda r: (r.paragraph.doc, r.paragraph.paragraph))
        store = Store(
            embedder_id=self.embedder_id,
            dim=self.dim,
            rows=rows,
            documents=documents,
            vectors=index,
            vector_owner=owner,
            next_vector_id=next_vid,
            next_pid=next_pid,
            bm25=_bm25_over(rows),
        )
        store.embedded_chars = total
        return store

    # ------------------------------------------------------------ disk

    def save(self, root: str | Path) -> Path:
        """Write a new version folder under root and make it the live one; returns its path."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        name = f"v-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        tmp = root / f".tmp-{name}"
        tmp.mkdir()
        try:
            with open(tmp / "paragraphs.jsonl", "w", encoding="utf-8") as f:
                for row in self.rows:
                    record = {"pid": row.pid, **asdict(row.paragraph), "tokens": row.tokens}
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
            faiss.write_index(self.vectors, str(tmp / "vectors.faiss"))
            pairs = np.array(sorted(self.vector_owner.items()), dtype=np.int64).reshape(-1, 2)
            np.save(tmp / "vector_owner.npy", pairs)
            if self.bm25 is not None:
                self.bm25.save(str(tmp / "bm25"), show_progress=False)
            files = sorted(p for p in tmp.rglob("*") if p.is_file())
            manifest = {
                "format": FORMAT_VERSION,
                "embedder": {"id": self.embedder_id, "dim": self.dim},
                "documents": {k: asdict(v) for k, v in sorted(self.documents.items())},
                "counts": {
                    "documents": len(self.documents),
                    "paragraphs": len(self.rows),
                    "vectors": int(self.vectors.ntotal) if self.vectors is not None else 0,
                },
                "next_vector_id": self.next_vector_id,
                "next_pid": self.next_pid,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "files": {str(p.relative_to(tmp)): _sha256_file(p) for p in files},
            }
            (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1), "utf-8")
            for p in [*files, tmp / "manifest.json"]:
                _fsync(p)
            final = root / name
            os.replace(tmp, final)
            pointer = root / ".CURRENT.tmp"
            pointer.write_text(name + "\n", "utf-8")
            _fsync(pointer)
            os.replace(pointer, root / "CURRENT")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for old in root.iterdir():  # earlier versions and leftovers of crashed builds
            if old.is_dir() and old.name != name and (old.name.startswith(("v-", ".tmp-v-"))):
                shutil.rmtree(old, ignore_errors=True)
        return final

    @classmethod
    def empty(cls, embedder: Embedder) -> Store:
        return cls(embedder_id=embedder.id, dim=embedder.dim)

    @classmethod
    def open(cls, root: str | Path, expect_embedder: str | None = None) -> Store:
        """Load the live version under root, checking every file against the manifest."""
        root = Path(root)
        pointer = root / "CURRENT"
        if not pointer.is_file():
            raise IndexMissingError(f'no index in {root}/: run "rag build seeds/ --index {root}" first')
        version = root / pointer.read_text("utf-8").strip()
        manifest_path = version / "manifest.json"
        manifest = _read_json(manifest_path)
        if manifest.get("format") != FORMAT_VERSION:
            raise IndexCorruptError(
                f"{manifest_path}: index format {manifest.get('format')!r}, this version reads "
                f'{FORMAT_VERSION}; rebuild with "rag build … --index {root}"'
            )
        for rel, digest in manifest.get("files", {}).items():
            path = version / rel
            if not path.is_file() or _sha256_file(path) != digest:
                raise IndexCorruptError(
                    f'{path}: missing, truncated or changed since the build; run "rag build … --index {root}" again'
                )
        embedder = manifest["embedder"]
        if expect_embedder is not None and embedder["id"] != expect_embedder:
            raise EmbedderMismatchError(
                f"the index in {root}/ was built with embedder {embedder['id']!r}, but {expect_embedder!r} "
                f'was asked for; use the same embedder or rebuild with "rag build … --index {root}"'
            )
        try:
            rows = []
            with open(version / "paragraphs.jsonl", encoding="utf-8") as f:
                for line in f:
                    rec = json.loads(line)
                    pid, tokens = rec.pop("pid"), rec.pop("tokens")
                    rows.append(Row(pid, Paragraph(**rec), tokens))
            vectors = faiss.read_index(str(version / "vectors.faiss"))
            pairs = np.load(version / "vector_owner.npy")
            bm25 = bm25s.BM25.load(str(version / "bm25"), show_progress=False) if rows else None
        except Exception as exc:
            raise IndexCorruptError(
                f'{version}: cannot be read ({exc}); run "rag build … --index {root}" again'
            ) from exc
        return cls(
            embedder_id=embedder["id"],
            dim=int(embedder["dim"]),
            rows=rows,
            documents={k: DocEntry(**v) for k, v in manifest["documents"].items()},
            vectors=vectors,
            vector_owner={int(v): int(p) for v, p in pairs},
            next_vector_id=int(manifest["next_vector_id"]),
            next_pid=int(manifest["next_pid"]),
            bm25=bm25,
        )


def _idf(n: int, count: int) -> float:
    """BM25's idf of a word (or character pair) that count of n paragraphs hold."""
    return math.log(1 + (n - count + 0.5) / (count + 0.5))


def _bm25_over(rows: list[Row]) -> bm25s.BM25 | None:
    if not rows:
        return None
    bm25 = bm25s.BM25()
    bm25.index([row.tokens or [""] for row in rows], show_progress=False)
    return bm25


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise IndexCorruptError(f'{path}: missing; run "rag build …" again') from exc
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f'{path}: truncated or corrupt ({exc}); run "rag build …" again') from exc
    if not isinstance(data, dict):
        raise IndexCorruptError(f'{path}: not an index manifest; run "rag build …" again')
    return data


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
