"""The job journal with the fake embedder: interrupted builds resume, concurrent writers merge, none is lost."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import rag
from rag import journal
from rag.store import Store
from tests.conftest import SEEDS, SIMPLIFIED_SEED, TRADITIONAL_SEED, KeywordEmbedder


class Interrupted(Exception):
    """Stands in for Ctrl-C or a crash in the middle of embedding."""


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    shutil.copytree(SEEDS, folder)
    for i in range(3):  # more documents: more batches to interrupt between
        (folder / f"bridge_{i}.txt").write_text(
            "".join(f"第{i}号县第{j}座桥梁建于{2000 + j}年,全长{100 + j}米。\n\n" for j in range(40)), "utf-8"
        )
    return folder


def vectors_by_paragraph(store: Store) -> dict[tuple[str, int], np.ndarray]:
    """Each paragraph's embedded windows, in order: what an index holds, whatever the ids."""
    out: dict[tuple[str, int], list[np.ndarray]] = {}
    by_pid = {row.pid: row.paragraph for row in store.rows}
    for vid, pid in sorted(store.vector_owner.items()):
        p = by_pid[pid]
        out.setdefault((p.doc, p.paragraph), []).append(store.vectors.reconstruct(vid))
    return {k: np.vstack(v) for k, v in out.items()}


def test_interrupted_build_resumes_embedding_only_what_was_missing(tmp_path: Path, docs: Path) -> None:
    index = tmp_path / "index"
    first = KeywordEmbedder()

    def crash_after_two_batches(done: int, total: int) -> None:
        if first.calls == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        rag.Engine.build([docs], index_dir=index, embedder=first, progress=crash_after_two_batches)
    assert not (index / "CURRENT").exists()  # nothing committed
    [job] = journal.pending(index)
    assert len(list(job.glob("d*-b*.npy"))) == 2  # but the two batches are kept

    second = KeywordEmbedder()
    engine = rag.Engine.build([docs], index_dir=index, embedder=second)
    reference = KeywordEmbedder()
    rag.Engine.build([docs], index_dir=tmp_path / "reference", embedder=reference)

    assert second.calls == reference.calls - 2  # only the batches that were missing
    assert len(second.texts) + len(first.texts) == len(reference.texts)
    assert any("resuming interrupted job" in n for n in engine.last_report.notes)
    assert journal.pending(index) == []
    resumed, uninterrupted = Store.open(index), Store.open(tmp_path / "reference")
    assert resumed.paragraphs == uninterrupted.paragraphs
    assert {k: v.sha256 for k, v in resumed.documents.items()} == {
        k: v.sha256 for k, v in uninterrupted.documents.items()
    }
    got, want = vectors_by_paragraph(resumed), vectors_by_paragraph(uninterrupted)
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)
    assert engine.retrieve("第2号县第7座桥梁全长多少米", k=1)[0].doc == "bridge_2.txt"


def test_a_running_job_is_not_resumed_by_another_writer(tmp_path: Path, docs: Path) -> None:
    index = tmp_path / "index"
    rag.Engine.build([docs / TRADITIONAL_SEED], index_dir=index, embedder=KeywordEmbedder())
    seen: list[list[Path]] = []
    other = KeywordEmbedder()

    def look_while_embedding(done: int, total: int) -> None:
        if not seen:  # another writer starts while this job embeds: it must leave the job alone
            seen.append(journal.pending(index))
            rag.Engine.build([docs / TRADITIONAL_SEED], index_dir=index, embedder=other)

    engine = rag.Engine.open(index, embedder=KeywordEmbedder())
    report = engine.add([docs / SIMPLIFIED_SEED], progress=look_while_embedding)
    assert len(seen[0]) == 1 and other.calls == 0
    assert report.added == [SIMPLIFIED_SEED]
    assert {d.doc for d in rag.Engine.open(index, embedder=other).documents()} == {
        TRADITIONAL_SEED,
        SIMPLIFIED_SEED,
    }


def test_a_build_applies_its_documents_on_top_of_what_another_committed_meanwhile(
    tmp_path: Path, docs: Path
) -> None:
    """Contract: a build's "exactly these documents" holds against the latest version at commit time; the
    build that commits last decides, and says what it removed that the other had added."""
    index = tmp_path / "index"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    shutil.copy(docs / SIMPLIFIED_SEED, a)
    shutil.copy(docs / TRADITIONAL_SEED, b)
    done: list[rag.Engine] = []

    def other_build_commits_meanwhile(done_chars: int, total: int) -> None:
        if not done:
            done.append(rag.Engine.build([b], index_dir=index, embedder=KeywordEmbedder()))

    last = rag.Engine.build(
        [a], index_dir=index, embedder=KeywordEmbedder(), progress=other_build_commits_meanwhile
    )
    assert done[0].last_report.added == [TRADITIONAL_SEED]
    assert last.last_report.added == [SIMPLIFIED_SEED]
    assert last.last_report.removed == [TRADITIONAL_SEED]
    assert any("another writer committed" in n and TRADITIONAL_SEED in n for n in last.last_report.notes)
    assert [d.doc for d in Store.open(index).document_infos()] == [SIMPLIFIED_SEED]


def test_a_document_removed_meanwhile_is_read_and_embedded_again(tmp_path: Path, docs: Path) -> None:
    index = tmp_path / "index"
    inputs = [docs / SIMPLIFIED_SEED, docs / TRADITIONAL_SEED]
    rag.Engine.build(inputs, index_dir=index, embedder=KeywordEmbedder())
    new = docs / "bridge_0.txt"
    remover = rag.Engine.open(index, embedder=KeywordEmbedder())

    def removed_meanwhile(done: int, total: int) -> None:
        if TRADITIONAL_SEED in remover.store.documents:
            remover.remove(TRADITIONAL_SEED)

    embedder = KeywordEmbedder()
    engine = rag.Engine.build([*inputs, new], index_dir=index, embedder=embedder, progress=removed_meanwhile)
    report = engine.last_report
    assert sorted(report.added) == sorted(["bridge_0.txt", TRADITIONAL_SEED])
    assert any("re-planned 1" in n for n in report.notes)
    assert {d.doc for d in rag.Engine.open(index, embedder=embedder).documents()} == {
        SIMPLIFIED_SEED,
        TRADITIONAL_SEED,
        "bridge_0.txt",
    }


def test_concurrent_writers_and_readers_in_threads_never_fail(tmp_path: Path, docs: Path) -> None:
    """Old code: a save pruned the other's half-written version (FileNotFoundError, faiss RuntimeError) and
    an open could find manifest.json gone."""
    index = tmp_path / "index"
    rag.Engine.build([docs / SIMPLIFIED_SEED], index_dir=index, embedder=KeywordEmbedder())
    inputs = {"a": [docs / SIMPLIFIED_SEED, docs / "bridge_0.txt"], "b": [docs / "bridge_1.txt"]}
    errors: list[BaseException] = []
    stop = threading.Event()
    opens = [0]

    def writer(name: str) -> None:
        try:
            for _ in range(4):
                rag.Engine.build(inputs[name], index_dir=index, embedder=KeywordEmbedder())
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        while not stop.is_set():
            try:
                Store.open(index)
                opens[0] += 1
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in inputs]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == [] and opens[0] > 0
    final = {d.doc for d in Store.open(index).document_infos()}
    assert final in ({p.name for p in inputs["a"]}, {p.name for p in inputs["b"]})
    assert (
        len([p for p in index.iterdir() if p.name.startswith("v-")]) == 2
    )  # the live one and the one before


def test_an_interrupted_upload_is_resumed_by_the_next_writer_and_keeps_the_rest(
    tmp_path: Path, docs: Path
) -> None:
    index = tmp_path / "index"
    rag.Engine.build([docs / TRADITIONAL_SEED], index_dir=index, embedder=KeywordEmbedder())
    staged = tmp_path / "upload" / SIMPLIFIED_SEED
    staged.parent.mkdir()
    shutil.copy(docs / SIMPLIFIED_SEED, staged)
    server = rag.Engine.open(index, embedder=KeywordEmbedder())

    def crash(done: int, total: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        server.add([staged], progress=crash)
    shutil.rmtree(staged.parent)  # the server deletes its staging folder: the journal holds the text
    restarted = rag.Engine.open(index, embedder=KeywordEmbedder())
    assert len(restarted.documents()) == 1  # a reader does not resume
    [report] = restarted.resume_pending()
    assert report.added == [SIMPLIFIED_SEED] and report.removed == []
    assert {d.doc for d in restarted.documents()} == {TRADITIONAL_SEED, SIMPLIFIED_SEED}
    assert journal.pending(index) == []


KILLED_BUILD = """
import os, signal, sys
import rag
from tests.conftest import KeywordEmbedder
embedder = KeywordEmbedder()

def killed_after_two_batches(done, total):
    if embedder.calls == 2:
        os.kill(os.getpid(), signal.SIGKILL)

rag.Engine.build([sys.argv[1]], index_dir=sys.argv[2], embedder=embedder, progress=killed_after_two_batches)
"""


def test_a_build_killed_mid_embedding_is_resumed_by_the_next(tmp_path: Path, docs: Path) -> None:
    """A process that dies holds no lock: the kernel frees the job's owner lock, the next build adopts it."""
    index = tmp_path / "index"
    root = Path(__file__).resolve().parents[1]
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_BUILD, str(docs), str(index)], cwd=root, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL
    [job] = journal.pending(index)
    assert len(list(job.glob("d*-b*.npy"))) == 2

    embedder, reference = KeywordEmbedder(), KeywordEmbedder()
    engine = rag.Engine.build([docs], index_dir=index, embedder=embedder)
    rag.Engine.build([docs], index_dir=tmp_path / "reference", embedder=reference)
    assert embedder.calls == reference.calls - 2
    assert journal.pending(index) == [] and len(engine.documents()) == 5


def test_a_job_an_earlier_version_left_in_journal_format_2_is_still_resumed(tmp_path: Path) -> None:
    """Format 3 adds documents waiting for OCR; a format-2 plan (none of its fields) reads as before."""
    import json

    index = tmp_path / "index"
    rag.Engine.build_from_texts({"a.txt": ["甲县有三座桥梁。"]}, index, embedder=KeywordEmbedder())
    upload = tmp_path / "b.txt"
    upload.write_text("乙县种植苹果4500亩。\n", "utf-8")
    job = journal.Job.create(index, KeywordEmbedder.id, journal.plan_files([upload], {}, sync=False))
    assert job.folder is not None
    plan = json.loads((job.folder / journal.PLAN).read_text("utf-8"))
    for d in plan["documents"]:
        del d["pending_ocr"], d["stats"], d["kept"]
    plan["format"] = 2
    (job.folder / journal.PLAN).write_text(json.dumps(plan, ensure_ascii=False), "utf-8")
    job.release()  # its writer died

    engine = rag.Engine.open(index, embedder=KeywordEmbedder())
    [report] = engine.resume_pending()
    assert report.added == ["b.txt"] and {d.doc for d in engine.documents()} == {"a.txt", "b.txt"}
