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
        d<doc>-source.pdf    the bytes of a PDF or image document (.png, .jpg), copied when the job is
                             made: its scanned pages are OCR'd from them after the upload that brought it
                             is gone, and the commit keeps them as the index's stored copy (rag/store.py)
        d<doc>-ocr-p<page>.json  one page OCR'd (its text boxes), written as each page is done: an
                             interrupted job resumes at the next page (rag/writer.py reads them)
        d<doc>-ocr-error.txt why the OCR child could not read the document (it is skipped with this reason)
        worker.log           what the embedding (or OCR) child process printed

A document with scanned pages is planned without its paragraphs (`PlannedDocument.pending_ocr` lists the
pages to OCR): planning never waits for OCR; the job reads it before anything of it is embedded.

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

from rag.documents import ParsedDocument, find_documents, parse_document, sha256_of
from rag.errors import DocumentError, IndexCorruptError
from rag.locking import FileLock, Notify
from rag.ocr import OcrPending, PageText, reading
from rag.store import SOURCE_SUFFIXES, embedding_plan, index_tokens
from rag.types import Paragraph, Skipped

JOURNAL = "journal"
# 3: documents may wait for OCR and keep their source bytes (2 is read as well: it has neither); 2: batches
# hold sentences too; a job of format 1 is dropped, its build runs again.
JOURNAL_FORMAT = 3
READABLE_FORMATS = (2, 3)
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
    pending_ocr: list[int] = field(default_factory=list)  # pages still to OCR before it has paragraphs
    stats: dict[str, Any] = field(default_factory=dict)  # DocumentStats.as_json() once read
    kept: str = ""  # the copy of its bytes in the job folder (PDFs and images), "" when none

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
    """The document at path to embed; Skipped when it cannot be read; its sha256 when known holds it as is.
    A document with scanned pages comes back unread, with the pages to OCR (the job reads it)."""
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
        with reading(None, read_missing=False):  # scanned pages are the job's to OCR, later
            parsed = parse_document(data, path.name)
    except OcrPending as pending:
        return PlannedDocument(path.name, digest, str(path), [], pending_ocr=pending.pages)
    except DocumentError as exc:
        return Skipped(str(path), exc.reason)
    return PlannedDocument(path.name, digest, str(path), parsed.paragraphs, stats=parsed.stats.as_json())


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
        self._keep_sources(0)
        self._write_plan()
        os.replace(staging, journal / job_id)
        self.folder = journal / job_id

    @classmethod
    def read(cls, folder: Path) -> Job:
        """A job's plan, without owning it (the embedding child reads it so)."""
        try:
            data = json.loads((folder / PLAN).read_text("utf-8"))
            if data.get("format") not in READABLE_FORMATS:
                raise ValueError(
                    f"journal format {data.get('format')!r}, this version reads {READABLE_FORMATS}"
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
        first = len(self.plan.documents)
        self.plan.documents += documents
        self._texts = None
        if self.folder is None:
            if self.plan.documents:
                self._make_folder()
        else:
            self._keep_sources(first)
            self._write_plan()

    # ------------------------------------------------------------ sources and OCR

    def _keep_sources(self, first: int) -> None:
        """Copy the bytes of the PDF and image documents from planned document first on into the folder
        (checked against the hash they were planned with); one whose file changed meanwhile and that still
        has pages to OCR is skipped: there is nothing left to read it from."""
        assert self.folder is not None
        for d in range(first, len(self.plan.documents)):
            doc = self.plan.documents[d]
            suffix = Path(doc.name).suffix.lower()
            if doc.kept or not doc.source or suffix not in SOURCE_SUFFIXES:
                continue
            try:
                data: bytes | None = Path(doc.source).read_bytes()
            except OSError:
                data = None
            if data is None or sha256_of(data) != doc.sha256:
                if doc.pending_ocr:
                    doc.pending_ocr = []
                    self.plan.skipped.append(
                        Skipped(doc.source, "changed or removed while it was being planned; add it again")
                    )
                continue
            kept = f"d{d:05d}-source{suffix}"
            tmp = self.folder / f".{kept}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, self.folder / kept)
            doc.kept = kept

    def source_path(self, d: int) -> Path | None:
        """The copy of planned document d's bytes in the folder; None when the job keeps none."""
        kept = self.plan.documents[d].kept
        return self.folder / kept if kept and self.folder is not None else None

    def unread(self) -> list[int]:
        """The planned documents whose scanned pages are still to OCR."""
        return [d for d, doc in enumerate(self.plan.documents) if doc.pending_ocr]

    def pages(self, d: int) -> JobPages:
        """Where the OCR'd pages of planned document d are kept."""
        assert self.folder is not None
        return JobPages(self.folder, d)

    def ocr_error_path(self, d: int) -> Path:
        assert self.folder is not None
        return self.folder / f"d{d:05d}-ocr-error.txt"

    def read_done(self, d: int, parsed: ParsedDocument) -> None:
        """Planned document d is read (its pages OCR'd): its paragraphs and stats join the plan."""
        doc = self.plan.documents[d]
        doc.paragraphs, doc.stats, doc.pending_ocr = parsed.paragraphs, parsed.stats.as_json(), []
        self._texts = None
        self._write_plan()

    def read_failed(self, d: int, reason: str) -> None:
        """Planned document d cannot be read: it is skipped with the reason (its number stays taken)."""
        doc = self.plan.documents[d]
        doc.pending_ocr = []
        self.plan.skipped.append(Skipped(doc.source or doc.name, reason))
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


class JobPages:
    """The OCR'd pages of one planned document, a file each in its job folder (rag.ocr.PageStore): written
    aside and renamed, so a page file is whole or absent; one that cannot be read is read again."""

    def __init__(self, folder: Path, d: int) -> None:
        self.folder = folder
        self.d = d

    def path(self, page: int) -> Path:
        return self.folder / f"d{self.d:05d}-ocr-p{page:05d}.json"

    def get(self, page: int) -> PageText | None:
        try:
            return PageText.from_json(json.loads(self.path(page).read_text("utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, text: PageText) -> None:
        path = self.path(text.page)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(text.as_json(), ensure_ascii=False), "utf-8")
        os.replace(tmp, path)

    def count(self, pages: Sequence[int]) -> int:
        """How many of these pages are read."""
        present = set(os.listdir(self.folder))
        return sum(1 for p in pages if self.path(p).name in present)


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
            PlannedDocument(
                d["name"],
                d["sha256"],
                d["source"],
                [Paragraph(**p) for p in d["paragraphs"]],
                pending_ocr=[int(n) for n in d.get("pending_ocr", [])],
                stats=dict(d.get("stats", {})),
                kept=str(d.get("kept", "")),
            )
            for d in data["documents"]
        ],
        unchanged={str(k): (str(v[0]), str(v[1])) for k, v in data["unchanged"].items()},
        keep=[str(k) for k in data["keep"]],
        remove=[str(k) for k in data["remove"]],
        skipped=[Skipped(**s) for s in data["skipped"]],
    )
