"""Errors a user can act on.

RagError
├── QuestionError          empty, whitespace-only or over-long question
├── DocumentError          a document that cannot be read or decoded (skipped at build time)
├── IndexMissingError      no index at the given folder
├── IndexCorruptError      an index file that is truncated, corrupt or of another format
├── EmbedderMismatchError  an index built with another embedder than the one asked for
├── EmbedderError          an embedder backend that cannot be loaded
└── LLMError               a generative backend that is misconfigured or unreachable
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
