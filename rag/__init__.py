"""Cited answers over Chinese documents (Simplified and Traditional as one language).

import rag
engine = rag.Engine.build(["seeds"], index_dir="index")
answer = engine.ask("左云县有多少家活性炭企业?")
"""

from __future__ import annotations

from rag.config import Settings
from rag.engine import Engine
from rag.errors import (
    DocumentError,
    EmbedderError,
    EmbedderMismatchError,
    IndexCorruptError,
    IndexMissingError,
    LLMError,
    QuestionError,
    RagError,
)
from rag.types import Answer, BuildReport, Citation, DocumentInfo, Paragraph, Passage, Skipped

__all__ = [
    "Answer",
    "BuildReport",
    "Citation",
    "DocumentError",
    "DocumentInfo",
    "EmbedderError",
    "EmbedderMismatchError",
    "Engine",
    "IndexCorruptError",
    "IndexMissingError",
    "LLMError",
    "Paragraph",
    "Passage",
    "QuestionError",
    "RagError",
    "Settings",
    "Skipped",
]
__version__ = "0.1.0"
