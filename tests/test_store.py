"""Index on disk with the fake embedder: manifest, incremental builds, stable ids, atomic swaps, errors."""

import json
import shutil

import numpy as np
import pytest

import rag
from rag.store import Store, embedding_windows
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
    assert m["format"] == 1
    assert m["embedder"] == {"id": fake_embedder.id, "dim": 64}
    assert set(m["documents"]) == {SIMPLIFIED_SEED, TRADITIONAL_SEED}
    assert all(len(d["sha256"]) == 64 for d in m["documents"].values())
    assert m["counts"]["paragraphs"] == len(engine.store.rows) > 50
    assert m["counts"]["vectors"] >= m["counts"]["paragraphs"]


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
    assert len(fake_embedder.texts) - embedded_before == 2  # only the two new paragraphs were embedded
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
    (docs / "image.png").write_bytes(b"\x89PNG....")
    engine = rag.Engine.build([docs], index_dir=tmp_path / "index", embedder=fake_embedder)
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in engine.last_report.skipped}
    assert "garbled" in reasons["garbled.txt"] and "unsupported" in reasons["image.png"]
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
