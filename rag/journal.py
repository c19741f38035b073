"""Index work that survives a crash: one folder per job under <index>/journal/ (rag/writer.py carries
jobs out: embeds them, commits them, resumes the interrupted ones).

    <index>/journal/<job-id>/
        plan.json            what the job changes: the documents to add or replace (with their paragraphs,
                             so that a resumed job needs neither the input files nor the upload it came from),
                             the documents it found indexed as they are, what a build keeps, what it removes
        owner.lock           held (flock) by the process working on the job; the kernel frees it when that
                             process dies, which is how a writer tells an interrupted job from a running one
        d<doc>-b<batch>.npy  the embedded texts of one document (its windows and its sentences, each
                             distinct text once: rag.store.embedding_plan), one file per embedder call,
                             written as each call finishes: an interrupted job resumes without embedding
                             them again
        d<doc>-tokens.json   the BM25 words of its paragraphs, made beside the embedding
        worker.log           what the embedding child process printed

A folder appears under its name only once planned and owned (it is made as .new-<id>), and leaves the
journal as .committing-<id> just before its commit swaps the live version.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rag.documents import find_documents, paragraphs_from_bytes, sha256_of
from rag.errors import DocumentError, IndexCorruptError
from rag.locking import FileLock, Notify
from rag.store import embedding_plan, index_tokens
from rag.types import Paragraph, Skipped

JOURNAL = "journal"
JOURNAL_FORMAT = 2  # 2: batches hold sentences too; a job of format 1 is dropped, its build runs again
PLAN = "plan.json"
OWNER_LOCK = "owner.lock"
WORKER_LOG = "worker.log"
BATCH_WINDOWS = 32  # texts (windows, sentences) per embedder call and per saved batch (the build's batch)
SWEEP_AFTER_S = 60.0  # a hidden job folder this old whose owner is gone is a dead writer's leftover
ANNOUNCE_READING_BYTES = 5_000_000  # a file this big takes a while to split (3 MB: 9 s on 2 busy cores)


@dataclass
class PlannedDocument:
    """A document a job adds or replaces: its name, content hash, where it was read, its paragraphs."""

    name: str
    sha256: str
    source: str  # the path it was read from ("" for in-memory text)
    paragraphs: list[Paragraph]

    def texts(self) -> list[str]:
        """What is embedded for it: its paragraphs' windows and sentences, each distinct text once."""
        return embedding_plan(self.paragraphs).texts


@dataclass
class Plan:
    """What a job changes, decided before anything is embedded."""

    sync: bool  # a build: the index ends holding exactly the documents of its inputs
    inputs: list[str] = field(default_factory=list)
    documents: list[PlannedDocument] = field(default_factory=list)
    unchanged: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (sha256, source)
    keep: list[str] = field(default_factory=list)  # sync: names in the inputs (unreadable ones included)
    remove: list[str] = field(default_factory=list)  # documents removed by name (rag remove)
    skipped: list[Skipped] = field(default_factory=list)


def plan_files(
    paths: Iterable[str | Path], known: Mapping[str, str], sync: bool, notify: Notify | None = None
) -> Plan:
    """Read the files under paths and plan the documents that are new or changed against known
    (name -> sha256 of the indexed documents); a file that cannot be read is skipped with its reason."""
    inputs = [str(p) for p in paths]
    plan = Plan(sync=sync, inputs=inputs)
    files, left_out = find_documents(inputs)
    plan.skipped.extend(Skipped(p, r) for p, r in left_out)
    seen: dict[str, Path] = {}
    for path in files:
        if path.name in seen:
            plan.skipped.append(
                Skipped(str(path), f"same file name as {seen[path.name]}; rename one of them")
            )
            continue
        seen[path.name] = path
        read = read_planned(path, known, notify)
        if isinstance(read, Skipped):
            plan.skipped.append(read)
        elif isinstance(read, PlannedDocument):
            plan.documents.append(read)
        else:
            plan.unchanged[path.name] = (read, str(path))
    # A build keeps the indexed version of a file it could not read rather than dropping it.
    plan.keep = sorted(set(seen) | {Path(s.path).name for s in plan.skipped})
    return plan


def plan_texts(documents: Mapping[str, Sequence[str]], known: Mapping[str, str]) -> Plan:
    """A build over in-memory documents, each a list of paragraph texts (benchmarks, tests)."""
    plan = Plan(sync=True, inputs=["<texts>"], keep=sorted(documents))
    for name, texts in sorted(documents.items()):
        digest = sha256_of("\n\n".join(texts).encode("utf-8"))
        if known.get(name) == digest:
            plan.unchanged[name] = (digest, "")
            continue
        paragraphs, pos = [], 0
        for i, t in enumerate(texts):
            paragraphs.append(
                Paragraph(doc=name, paragraph=i + 1, text=t.strip(), start=pos, end=pos + len(t))
            )
            pos += len(t) + 2
        plan.documents.append(PlannedDocument(name, digest, "", paragraphs))
    return plan


def read_planned(
    path: Path, known: Mapping[str, str], notify: Notify | None = None
) -> PlannedDocument | Skipped | str:
    """The document at path to embed; Skipped when it cannot be read; its sha256 when known holds it as is."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Skipped(str(path), f"cannot be read ({exc.strerror or exc})")
    digest = sha256_of(data)
    if known.get(path.name) == digest:
        return digest
    if notify is not None and len(data) >= ANNOUNCE_READING_BYTES:
        notify(f"splitting {path} ({len(data) / 1e6:.0f} MB) into paragraphs…")
    try:
        return PlannedDocument(path.name, digest, str(path), paragraphs_from_bytes(data, path.name))
    except DocumentError as exc:
        return Skipped(str(path), exc.reason)


class Job:
    """One planned change of an index, owned by the process that holds its owner.lock. A job with nothing
    to embed (a removal, a build that only drops documents) lives in memory only: there is nothing to resume."""

    def __init__(self, root: Path, folder: Path | None, embedder_id: str, plan: Plan, owner: FileLock | None):
        self.root = root
        self.folder = folder
        self.embedder_id = embedder_id
        self.plan = plan
        self._owner = owner
        self._texts: list[list[str]] | None = None

    @property
    def id(self) -> str:
        return self.folder.name if self.folder is not None else "(in memory)"

    @classmethod
    def create(cls, root: Path, embedder_id: str, plan: Plan) -> Job:
        """A new job of root's, owned by this process; in a journal folder when it has anything to embed."""
        job = cls(root, None, embedder_id, plan, None)
        if plan.documents:
            job._make_folder()
        return job

    def _make_folder(self) -> None:
        journal = self.root / JOURNAL
        journal.mkdir(parents=True, exist_ok=True)
        job_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
        # Made under a hidden name and renamed once owned and planned: a writer looking for interrupted
        # jobs never sees a folder without its owner lock taken or without its plan.
        staging = journal / f".new-{job_id}"
        staging.mkdir()
        owner = FileLock(staging / OWNER_LOCK)
        owner.acquire(blocking=False)
        self.folder, self._owner = staging, owner
        self._write_plan()
        os.replace(staging, journal / job_id)
        self.folder = journal / job_id

    @classmethod
    def read(cls, folder: Path) -> Job:
        """A job's plan, without owning it (the embedding child reads it so)."""
        try:
            data = json.loads((folder / PLAN).read_text("utf-8"))
            if data.get("format") != JOURNAL_FORMAT:
                raise ValueError(
                    f"journal format {data.get('format')!r}, this version reads {JOURNAL_FORMAT}"
                )
            return cls(folder.parent.parent, folder, str(data["embedder"]), _plan_from_json(data), None)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"{folder / PLAN}: cannot be read ({exc})") from exc

    @classmethod
    def adopt(cls, folder: Path) -> Job | None:
        """Own the job in folder if the process that made it is gone; None while that process works on it."""
        owner = FileLock(folder / OWNER_LOCK)
        try:
            if not owner.acquire(blocking=False):
                return None
        except FileNotFoundError:  # committed and deleted by its owner meanwhile
            return None
        try:
            job = cls.read(folder)
        except BaseException:
            owner.release()
            raise
        job._owner = owner
        return job

    def _write_plan(self) -> None:
        assert self.folder is not None
        p = self.plan
        data = {
            "format": JOURNAL_FORMAT,
            "embedder": self.embedder_id,
            "pid": os.getpid(),
            "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "sync": p.sync,
            "inputs": p.inputs,
            "documents": [asdict(d) for d in p.documents],
            "unchanged": {k: list(v) for k, v in p.unchanged.items()},
            "keep": p.keep,
            "remove": p.remove,
            "skipped": [asdict(s) for s in p.skipped],
        }
        tmp = self.folder / f".{PLAN}.tmp"
        tmp.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
        os.replace(tmp, self.folder / PLAN)

    def replan(self, documents: Sequence[PlannedDocument], stale: Iterable[str]) -> None:
        """Stale names (counted as indexed at planning) are not any more; documents, those of them read
        again, are appended to the plan, so the batches already written keep their numbers."""
        for name in stale:
            self.plan.unchanged.pop(name, None)
        self.plan.documents += documents
        self._texts = None
        if self.folder is None:
            if self.plan.documents:
                self._make_folder()
        else:
            self._write_plan()

    # ------------------------------------------------------------ batches

    def texts(self) -> list[list[str]]:
        """The texts to embed (windows and sentences), per planned document."""
        if self._texts is None:
            self._texts = [d.texts() for d in self.plan.documents]
        return self._texts

    def batches(self) -> list[tuple[int, int]]:
        """Every (document, batch) of the job."""
        return [
            (d, b)
            for d, t in enumerate(self.texts())
            for b in range((len(t) + BATCH_WINDOWS - 1) // BATCH_WINDOWS)
        ]

    def batch_texts(self, d: int, b: int) -> list[str]:
        return self.texts()[d][b * BATCH_WINDOWS : (b + 1) * BATCH_WINDOWS]

    def batch_path(self, d: int, b: int) -> Path:
        assert self.folder is not None
        return self.folder / f"d{d:05d}-b{b:06d}.npy"

    def missing(self) -> list[tuple[int, int]]:
        if self.folder is None:
            return []
        present = set(os.listdir(self.folder))
        return [(d, b) for d, b in self.batches() if self.batch_path(d, b).name not in present]

    def write_batch(self, d: int, b: int, vectors: np.ndarray) -> None:
        """Save one embedded batch; written aside and renamed, so a batch file is whole or absent."""
        assert self.folder is not None
        tmp = self.folder / f".{self.batch_path(d, b).name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(vectors, dtype=np.float32))
        os.replace(tmp, self.batch_path(d, b))

    def tokens_path(self, d: int) -> Path:
        assert self.folder is not None
        return self.folder / f"d{d:05d}-tokens.json"

    def write_tokens(self, d: int) -> None:
        """Save the index words of planned document d's paragraphs (a child does it, beside embedding)."""
        tokens = [index_tokens(p) for p in self.plan.documents[d].paragraphs]
        path = self.tokens_path(d)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(tokens, ensure_ascii=False), "utf-8")
        os.replace(tmp, path)

    def tokens(self, d: int) -> list[list[str]] | None:
        """The index words the child saved for planned document d; None when it did not get that far."""
        if self.folder is None:
            return None
        try:
            words = json.loads(self.tokens_path(d).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return words if isinstance(words, list) else None

    def vectors(self, d: int, dim: int) -> np.ndarray:
        """The embedded texts of planned document d (Store.updated's vectors), from its batches."""
        n = len(self.texts()[d])
        parts = [np.load(self.batch_path(d, b)) for b in range((n + BATCH_WINDOWS - 1) // BATCH_WINDOWS)]
        return np.vstack(parts).astype(np.float32) if parts else np.zeros((0, dim), np.float32)

    def chars(self, batches: Iterable[tuple[int, int]]) -> int:
        return sum(len(t) for d, b in batches for t in self.batch_texts(d, b))

    # ------------------------------------------------------------ ending

    def release(self) -> None:
        """Give up ownership; the folder stays for the next writer to resume."""
        if self._owner is not None:
            self._owner.release()
            self._owner = None

    def finish(self) -> None:
        """The job is committed (or dropped): delete its folder."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.release()


def pending(root: Path) -> list[Path]:
    """Job folders under root/journal/, oldest first (hidden ones are being made or committed)."""
    journal = root / JOURNAL
    if not journal.is_dir():
        return []
    return sorted(p for p in journal.iterdir() if p.is_dir() and not p.name.startswith("."))


def sweep(root: Path) -> None:
    """Delete what dead writers left half made: new jobs never named, and jobs taken out to commit."""
    journal = root / JOURNAL
    if not journal.is_dir():
        return
    for folder in journal.iterdir():
        # A new job is locked by its maker right after it is made: leave young ones alone.
        try:
            young = folder.name.startswith(".new-") and time.time() - folder.stat().st_mtime < SWEEP_AFTER_S
        except FileNotFoundError:  # its maker named it (or swept it) since the listing
            continue
        if folder.is_dir() and folder.name.startswith((".new-", ".committing-")) and not young:
            owner = FileLock(folder / OWNER_LOCK)
            try:
                if owner.acquire(blocking=False):
                    shutil.rmtree(folder, ignore_errors=True)
                    owner.release()
            except FileNotFoundError:
                pass


def _plan_from_json(data: dict[str, Any]) -> Plan:
    return Plan(
        sync=bool(data["sync"]),
        inputs=[str(p) for p in data["inputs"]],
        documents=[
            PlannedDocument(d["name"], d["sha256"], d["source"], [Paragraph(**p) for p in d["paragraphs"]])
            for d in data["documents"]
        ],
        unchanged={str(k): (str(v[0]), str(v[1])) for k, v in data["unchanged"].items()},
        keep=[str(k) for k in data["keep"]],
        remove=[str(k) for k in data["remove"]],
        skipped=[Skipped(**s) for s in data["skipped"]],
    )
