"""Index on disk with the fake embedder: manifest, incremental builds, stable ids, atomic swaps, errors."""

import json
import shutil

import numpy as np
import pytest

import rag
from rag.store import FORMAT_VERSION, Store, embedding_windows
from tests.conftest import SEEDS, SIMPLIFIED_SEED, TRADITIONAL_SEED, KeywordEmbedder


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    shutil.copytree(SEEDS, folder)
    return folder


def live_manifest(index):
    version = (index / "CURRENT").read_text().strip()
    return json.loads((index / version / "manifest.json").read_text())


def test_manifest_records_format_embedder_hashes_and_counts(tmp_path, docs, fake_embedder):
    index = tmp_path / "index"
    engine = rag.Engine.build([docs], index_dir=index, embedder=fake_embedder)
    m = live_manifest(index)
    assert m["format"] == FORMAT_VERSION == 2
    assert m["embedder"] == {"id": fake_embedder.id, "dim": 64}
    assert set(m["documents"]) == {SIMPLIFIED_SEED, TRADITIONAL_SEED}
    assert all(len(d["sha256"]) == 64 for d in m["documents"].values())
    assert m["counts"]["paragraphs"] == len(engine.store.rows) > 50
    assert m["counts"]["vectors"] >= m["counts"]["paragraphs"]
    assert m["counts"]["sentences"] == len(engine.store.sentence_rows) > m["counts"]["paragraphs"]


def test_rebuild_embeds_only_changed_documents_and_never_reuses_ids(tmp_path, docs, fake_embedder):
    index = tmp_path / "index"
    rag.Engine.build([docs], index_dir=index, embedder=fake_embedder)
    first = Store.open(index)
    old_vector_ids = set(first.vector_owner)

    again = rag.Engine.build([docs], index_dir=index, embedder=fake_embedder)
    assert again.last_report.unchanged == sorted([SIMPLIFIED_SEED, TRADITIONAL_SEED])
    assert again.last_report.embedded_chars == 0

    (docs / SIMPLIFIED_SEED).unlink()
    (docs / "new.txt").write_text("某某县新建了3座桥梁。\n\n全县桥梁总长达到1200米。\n", "utf-8")
    embedded_before = len(fake_embedder.texts)
    engine = rag.Engine.build([docs], index_dir=index, embedder=fake_embedder)
    report = engine.last_report
    assert report.added == ["new.txt"] and report.removed == [SIMPLIFIED_SEED]
    assert report.unchanged == [TRADITIONAL_SEED]
    # only the two new paragraphs were embedded (each one sentence: its window and its sentence are one text)
    assert len(fake_embedder.texts) - embedded_before == 2
    store = Store.open(index)
    new_ids = set(store.vector_owner) - old_vector_ids
    assert new_ids and min(new_ids) > max(old_vector_ids)  # FAISS ids are never reused after a delete
    assert {d.doc for d in engine.documents()} == {TRADITIONAL_SEED, "new.txt"}
    assert engine.retrieve("桥梁总长多少米", k=1)[0].doc == "new.txt"


def test_remove_and_add_keep_other_documents(tmp_path, docs, fake_embedder):
    index = tmp_path / "index"
    engine = rag.Engine.build([docs / TRADITIONAL_SEED], index_dir=index, embedder=fake_embedder)
    engine.add([docs / SIMPLIFIED_SEED])
    assert len(engine.documents()) == 2
    engine.remove(SIMPLIFIED_SEED)
    reopened = rag.Engine.open(index, embedder=fake_embedder)
    assert [d.doc for d in reopened.documents()] == [TRADITIONAL_SEED]
    with pytest.raises(rag.RagError, match="no document named"):
        reopened.remove("missing.txt")


def test_bad_file_is_skipped_with_its_reason_and_the_rest_indexed(tmp_path, docs, fake_embedder):
    (docs / "garbled.txt").write_bytes("左云县经济社会发展".encode().decode("latin-1").encode("utf-8"))
    (docs / "image.bmp").write_bytes(b"BM....")  # .png and .jpg are OCR'd now; .bmp is not read
    engine = rag.Engine.build([docs], index_dir=tmp_path / "index", embedder=fake_embedder)
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in engine.last_report.skipped}
    assert "garbled" in reasons["garbled.txt"] and "unsupported" in reasons["image.bmp"]
    assert len(engine.documents()) == 2


def test_failed_build_leaves_the_previous_index_usable(tmp_path, docs, monkeypatch):
    index = tmp_path / "index"
    rag.Engine.build([docs], index_dir=index, embedder=KeywordEmbedder())
    before = (index / "CURRENT").read_text()

    class Exploding(KeywordEmbedder):
        def embed_documents(self, texts):
            raise RuntimeError("crash mid-build")

    (docs / "new.txt").write_text("新的一段文字,讲述了桥梁。", "utf-8")
    with pytest.raises(RuntimeError):
        rag.Engine.build([docs], index_dir=index, embedder=Exploding())
    assert (index / "CURRENT").read_text() == before
    engine = rag.Engine.open(index, embedder=KeywordEmbedder())
    assert len(engine.documents()) == 2 and engine.retrieve("活性炭企业", k=1)


def test_missing_corrupt_and_mismatched_indexes_are_refused(tmp_path, docs, fake_embedder):
    with pytest.raises(rag.IndexMissingError, match="rag build"):
        rag.Engine.open(tmp_path / "nowhere", embedder=fake_embedder)
    index = tmp_path / "index"
    rag.Engine.build([docs], index_dir=index, embedder=fake_embedder)

    class Other(KeywordEmbedder):
        id = "fake:other:64"

    with pytest.raises(rag.EmbedderMismatchError) as err:
        rag.Engine.open(index, embedder=Other())
    assert "fake:keywords:64" in str(err.value) and "fake:other:64" in str(err.value)

    version = index / (index / "CURRENT").read_text().strip()
    faiss_file = version / "vectors.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])  # truncated
    with pytest.raises(rag.IndexCorruptError, match="vectors.faiss"):
        rag.Engine.open(index, embedder=fake_embedder)
    (version / "manifest.json").write_text("{not json")
    with pytest.raises(rag.IndexCorruptError, match="manifest.json"):
        rag.Engine.open(index, embedder=fake_embedder)


def test_long_paragraphs_are_windowed_but_cite_their_paragraph(tmp_path, fake_embedder):
    long = "".join(f"第{i}句话讲述了一个关于桥梁和道路的事实。" for i in range(80))
    assert len(embedding_windows(long)) > 1 and all(len(w) <= 600 for w in embedding_windows(long))
    doc = tmp_path / "long.txt"
    doc.write_text("开头一段。\n\n" + long + "第99句话提到了隧道。\n", "utf-8")
    engine = rag.Engine.build([doc], index_dir=tmp_path / "index", embedder=fake_embedder)
    assert engine.store.vectors.ntotal > len(engine.store.rows)
    hit = engine.retrieve("隧道", k=1)[0]
    assert hit.paragraph == 2 and hit.text.endswith("隧道。")
    assert np.isclose(hit.dense, max(engine.store.dense_scores(fake_embedder.embed_query("隧道"), 50)))


def rebuild_advice(index):
    return f'"rag build … --index {index}"'


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda index, version: (index / "CURRENT").write_bytes(b"\xff\xfe v-\x80"), "CURRENT"),
        (lambda index, version: (index / "CURRENT").write_text(""), "CURRENT"),
        (lambda index, version: (index / "CURRENT").write_text("../elsewhere"), "CURRENT"),
        (lambda index, version: edit_manifest(version, lambda m: m.pop("embedder")), "manifest.json"),
        (lambda index, version: edit_manifest(version, lambda m: m.pop("documents")), "manifest.json"),
        (lambda index, version: edit_manifest(version, lambda m: m.update(format=0)), "manifest.json"),
        (lambda index, version: shutil.rmtree(version), "manifest.json"),
    ],
    ids=[
        "current-not-utf8",
        "current-empty",
        "current-path",
        "no-embedder",
        "no-documents",
        "old-format",
        "gone",
    ],
)
def test_damaged_index_is_refused_with_advice_that_works(tmp_path, docs, fake_embedder, damage, named):
    index = tmp_path / "index"
    rag.Engine.build([docs], index_dir=index, embedder=fake_embedder)
    damage(index, index / (index / "CURRENT").read_text().strip())
    with pytest.raises(rag.IndexCorruptError, match=named) as err:
        rag.Engine.open(index, embedder=fake_embedder)
    assert rebuild_advice(index) in str(err.value)
    rebuilt = rag.Engine.build([docs], index_dir=index, embedder=fake_embedder)  # the advice works
    assert len(rebuilt.documents()) == 2 and rebuilt.last_report.notes
    assert len(rag.Engine.open(index, embedder=fake_embedder).documents()) == 2


def edit_manifest(version, change):
    manifest = json.loads((version / "manifest.json").read_text())
    change(manifest)
    (version / "manifest.json").write_text(json.dumps(manifest))


def test_manifest_without_its_file_list_does_not_skip_the_checksums(tmp_path, docs, fake_embedder):
    index = tmp_path / "index"
    rag.Engine.build([docs], index_dir=index, embedder=fake_embedder)
    version = index / (index / "CURRENT").read_text().strip()
    (version / "vectors.faiss").write_bytes((version / "vectors.faiss").read_bytes()[:100])
    edit_manifest(version, lambda m: m.pop("files"))
    with pytest.raises(rag.IndexCorruptError, match="lists no checksums"):
        rag.Engine.open(index, embedder=fake_embedder)


def test_rebuild_sets_a_damaged_version_aside_and_recovers(tmp_path, docs, fake_embedder):
    index = tmp_path / "index"
    rag.Engine.build([docs], index_dir=index, embedder=fake_embedder)
    name = (index / "CURRENT").read_text().strip()
    faiss_file = index / name / "vectors.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])

    engine = rag.Engine.build([docs], index_dir=index, embedder=KeywordEmbedder())
    report = engine.last_report
    assert report.set_aside == f"damaged-{name}" and (index / report.set_aside / "vectors.faiss").is_file()
    assert sorted(report.added) == [SIMPLIFIED_SEED, TRADITIONAL_SEED]  # everything embedded again
    assert any("kept it aside" in n and "vectors.faiss" in n for n in report.notes)
    assert rag.Engine.open(index, embedder=fake_embedder).retrieve("活性炭企业", k=1)
    again = rag.Engine.build([docs], index_dir=index, embedder=fake_embedder).last_report
    assert again.set_aside == "" and again.embedded_chars == 0  # recovered for good


def test_the_version_before_the_live_one_is_kept_for_readers(tmp_path, docs, fake_embedder):
    index = tmp_path / "index"
    names = []
    for doc in (SIMPLIFIED_SEED, TRADITIONAL_SEED, SIMPLIFIED_SEED):
        rag.Engine.build([docs / doc], index_dir=index, embedder=fake_embedder)
        names.append((index / "CURRENT").read_text().strip())
    assert sorted(p.name for p in index.iterdir() if p.name.startswith("v-")) == sorted(names[1:])
    assert [d.doc for d in Store.open(index).document_infos()] == [SIMPLIFIED_SEED]


def test_a_reader_that_loses_the_race_with_a_swap_opens_again(tmp_path, docs, fake_embedder, monkeypatch):
    index = tmp_path / "index"
    rag.Engine.build([docs / SIMPLIFIED_SEED], index_dir=index, embedder=fake_embedder)
    first = (index / "CURRENT").read_text().strip()
    rag.Engine.build([docs / TRADITIONAL_SEED], index_dir=index, embedder=fake_embedder)
    second = (index / "CURRENT").read_text().strip()
    (index / "CURRENT").write_text(first + "\n")
    real = Store._open_version.__func__
    calls = []

    def swapped_meanwhile(cls, root, name, expect):
        calls.append(name)
        if len(calls) == 1:  # a writer swaps CURRENT and prunes the version this reader just read
            (index / "CURRENT").write_text(second + "\n")
            shutil.rmtree(index / first)
        return real(cls, root, name, expect)

    monkeypatch.setattr(Store, "_open_version", classmethod(swapped_meanwhile))
    store = Store.open(index)
    assert calls == [first, second]
    assert [d.doc for d in store.document_infos()] == [TRADITIONAL_SEED]


@pytest.mark.parametrize("exact_up_to", [20_000, 10], ids=["every-window", "k-nearest-from-faiss"])
def test_dense_scores_are_each_paragraphs_best_window_cosine(
    tmp_path, docs, fake_embedder, monkeypatch, exact_up_to
):
    monkeypatch.setattr("rag.store.EXACT_DENSE_WINDOWS", exact_up_to)
    long = "".join(f"第{i}句话讲述了一个关于桥梁和道路的事实。" for i in range(80)) + "最后一句提到了隧道。"
    (docs / "long.txt").write_text(long + "\n", "utf-8")
    rag.Engine.build([docs], index_dir=tmp_path / "index", embedder=fake_embedder)
    store = Store.open(tmp_path / "index")
    query = fake_embedder.embed_query("隧道和桥梁")
    best = np.full(len(store.rows), -1.0, np.float32)
    for vid, pid in store.vector_owner.items():
        row = store.row_of_pid[pid]
        best[row] = max(best[row], float(store.vectors.reconstruct(vid) @ query))
    got = store.dense_scores(query, 5)
    if exact_up_to > store.vectors.ntotal:
        assert np.allclose(got, best, atol=1e-6)
    else:  # the 5 nearest windows' paragraphs get their exact score, the rest -1
        assert (got > -1).sum() <= 5 and np.allclose(got[got > -1], best[got > -1], atol=1e-6)
        assert int(np.argmax(got)) == int(np.argmax(best))
