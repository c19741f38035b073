"""Errors a user can act on.

RagError
├── QuestionError          empty, whitespace-only or over-long question
├── DocumentError          a document that cannot be read or decoded (skipped at build time)
├── IndexMissingError      no index at the given folder
├── IndexCorruptError      an index file that is truncated, corrupt or of another format
├── EmbedderMismatchError  an index built with another embedder than the one asked for
├── EmbedderError          an embedder backend that cannot be loaded
├── LLMError               a generative backend that is misconfigured or unreachable
├── CollectionNameError    a collection name that is not allowed                  (HTTP 400)
├── UnknownCollectionError no collection of that name in the data folder          (HTTP 404)
├── CollectionExistsError  a collection (or another folder) of that name is there (HTTP 409)
└── CollectionInUseError   the web chat's collection, or the top-level index      (HTTP 409)

The HTTP statuses are ui/api.py's ERROR_STATUS; rag/collections.py raises the collection errors.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class of every error this library raises on purpose."""


class QuestionError(RagError, ValueError):
    pass


class DocumentError(RagError):
    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class IndexMissingError(RagError, FileNotFoundError):
    pass


class IndexCorruptError(RagError):
    pass


class EmbedderMismatchError(RagError):
    pass


class EmbedderError(RagError):
    pass


class LLMError(RagError):
    pass


class CollectionNameError(RagError, ValueError):
    """A collection name that is not allowed (HTTP 400)."""


class UnknownCollectionError(RagError, LookupError):
    """No collection of that name in the data folder (HTTP 404)."""


class CollectionExistsError(RagError):
    """A collection (or another folder) of that name is already there (HTTP 409)."""


class CollectionInUseError(RagError):
    """A collection that cannot be deleted now: the web chat serves it, or it is the top-level index (HTTP 409)."""
