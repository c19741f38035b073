"""Collections under one data folder: names, where each lives, create/list/delete, and isolation of answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_support import SIMPLIFIED_SEED, TRADITIONAL_SEED, copy_index, seeds_data_dir

from rag.collections import (
    DEFAULT,
    CollectionExistsError,
    CollectionInUseError,
    CollectionNameError,
    Collections,
    UnknownCollectionError,
    check_name,
    collection_dir,
    collection_names,
    create_collection,
    delete_collection,
)
from rag.engine import Engine
from rag.errors import IndexMissingError


@pytest.mark.parametrize(
    "name",
    ["default", "a", "zuoquan_2024", "x" * 63, "a1_b2"],
)
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "A", "Zuoquan", "1abc", "_abc", "a-b", "a.b", "a b", "../etc", "左权", "x" * 64, "journal", None, 3],
)
def test_invalid_names_are_refused_with_the_rule(name: object) -> None:
    with pytest.raises(CollectionNameError, match="collection name|reserved"):
        check_name(name)


def _fake_index(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "CURRENT").write_text("v-1")


def test_an_index_at_the_top_is_default_and_stays_where_it_is(tmp_path: Path) -> None:
    _fake_index(tmp_path)
    _fake_index(tmp_path / "beta")
    _fake_index(tmp_path / "alpha")
    (tmp_path / "journal").mkdir()  # the top-level index's own folder, never a collection
    _fake_index(tmp_path / "Upper")  # not a valid name: not listed
    (tmp_path / "empty").mkdir()  # no index inside
    _fake_index(tmp_path / ".deleted-gamma-1234")
    assert collection_names(tmp_path) == [DEFAULT, "alpha", "beta"]
    assert collection_dir(tmp_path, DEFAULT) == tmp_path
    assert collection_dir(tmp_path, "alpha") == tmp_path / "alpha"


def test_without_a_top_index_default_is_a_subfolder(tmp_path: Path) -> None:
    _fake_index(tmp_path / "default")
    assert collection_names(tmp_path) == [DEFAULT]
    assert collection_dir(tmp_path, DEFAULT) == tmp_path / "default"
    assert collection_names(tmp_path / "missing") == []


def test_the_top_level_default_is_not_deleted(tmp_path: Path) -> None:
    _fake_index(tmp_path)
    with pytest.raises(CollectionInUseError, match="top of"):
        delete_collection(tmp_path, DEFAULT)
    assert (tmp_path / "CURRENT").is_file()


def test_served_collection_when_none_is_asked(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError, match="rag build"):
        Collections(tmp_path).served()
    _fake_index(tmp_path / "beta")
    assert Collections(tmp_path).served() == "beta"
    with pytest.raises(UnknownCollectionError, match="beta"):
        Collections(tmp_path).served("alpha")


@pytest.mark.slow
def test_create_list_delete_with_the_real_engine(tmp_path: Path) -> None:
    folder = create_collection(tmp_path, "fresh")
    assert folder == tmp_path / "fresh"
    assert collection_names(tmp_path) == ["fresh"]
    engine = Engine.open(folder)
    assert engine.documents() == []
    assert not engine.ask("左云县有多少家活性炭企业?").found
    with pytest.raises(CollectionExistsError):
        create_collection(tmp_path, "fresh")
    (tmp_path / "stray").mkdir()
    (tmp_path / "stray" / "notes.txt").write_text("x")
    with pytest.raises(CollectionExistsError, match="not a collection"):
        create_collection(tmp_path, "stray")
    delete_collection(tmp_path, "fresh")
    assert collection_names(tmp_path) == []
    assert not any(p.name.startswith(".deleted") for p in tmp_path.iterdir())
    with pytest.raises(UnknownCollectionError, match="rag collections create"):
        delete_collection(tmp_path, "fresh")


@pytest.mark.slow
def test_collections_keep_their_documents_apart(seeds_engine: Engine, tmp_path: Path) -> None:
    data = seeds_data_dir(seeds_engine, tmp_path / "data")
    collections = Collections(data, seeds_engine.settings)
    assert collections.names() == [DEFAULT, "zuoquan", "zuoyun"]
    assert [collections.documents(n) for n in collections.names()] == [2, 1, 1]
    zuoyun, zuoquan = collections.engine("zuoyun"), collections.engine("zuoquan")
    assert collections.engine("zuoyun") is zuoyun  # one engine per collection, opened once
    question = "左云县有多少家活性炭企业?"
    there = zuoyun.ask(question)
    assert there.found and "14" in there.text
    assert {c.doc for c in there.citations} == {TRADITIONAL_SEED}
    elsewhere = zuoquan.ask(question)
    assert not elsewhere.found
    assert {p.doc for p in elsewhere.passages} <= {SIMPLIFIED_SEED}
    other = zuoyun.ask("2024年左权县的地区生产总值有多少？")
    assert not other.found


@pytest.mark.slow
def test_a_pinned_collection_is_not_deleted_and_a_deleted_one_is_forgotten(
    seeds_engine: Engine, tmp_path: Path
) -> None:
    copy_index(seeds_engine, tmp_path / "one")
    copy_index(seeds_engine, tmp_path / "two")
    collections = Collections(tmp_path, seeds_engine.settings)
    collections.adopt("one", collections.engine("one"))
    with pytest.raises(CollectionInUseError, match="web chat"):
        collections.delete("one")
    collections.engine("two")
    collections.delete("two")
    assert collections.names() == ["one"]
    with pytest.raises(UnknownCollectionError):
        collections.engine("two")


@pytest.mark.slow
def test_engine_open_takes_a_collection(seeds_engine: Engine, tmp_path: Path) -> None:
    data = seeds_data_dir(seeds_engine, tmp_path / "data")
    assert [d.doc for d in Engine.open(data, collection="zuoquan").documents()] == [SIMPLIFIED_SEED]
    assert len(Engine.open(data, collection=DEFAULT).documents()) == 2
    assert len(Engine.open(data).documents()) == 2  # the top-level index is opened as before
    with pytest.raises(CollectionNameError):
        Engine.open(data, collection="../zuoquan")


@pytest.mark.slow
def test_command_line_collections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rag.cli import main

    data = str(tmp_path / "data")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "yunwu.txt").write_text("云雾县概况\n\n2024年，云雾县共种植紫色茶树3721亩。\n", encoding="utf-8")
    assert main(["collections", "create", "tea", "--data", data]) == 0
    assert main(["build", str(docs), "--index", data, "--collection", "tea", "--quiet"]) == 0
    assert main(["collections", "list", "--data", data]) == 0
    assert "tea\t1 documents" in capsys.readouterr().out
    assert main(["ask", "云雾县种植了多少亩紫色茶树？", "--index", data, "--collection", "tea"]) == 0
    assert "3721" in capsys.readouterr().out
    assert main(["docs", "--index", data, "--collection", "tea"]) == 0
    assert "yunwu.txt" in capsys.readouterr().out
    assert main(["collections", "create", "Tea-2", "--data", data]) == 2
    assert "not a valid collection name" in capsys.readouterr().err
    assert main(["ask", "云雾县?", "--index", data, "--collection", "nosuch"]) == 2
    assert "rag build" in capsys.readouterr().err
    assert main(["collections", "delete", "tea", "--data", data]) == 0
    assert collection_names(data) == []


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        ("CollectionNameError", 400, "bad_collection_name"),
        ("UnknownCollectionError", 404, "unknown_collection"),
        ("CollectionExistsError", 409, "collection_exists"),
        ("CollectionInUseError", 409, "collection_in_use"),
    ],
)
def test_collection_errors_are_in_the_error_tree_and_keep_their_http_status(
    error: str, status: int, code: str
) -> None:
    import rag.collections
    import rag.errors
    from ui.api import status_of

    kind = getattr(rag.errors, error)
    assert issubclass(kind, rag.errors.RagError)
    assert getattr(rag.collections, error) is kind  # the old import keeps working
    assert status_of(kind("what to do"))[:2] == (status, code)
