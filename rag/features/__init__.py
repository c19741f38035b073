"""Named features per level, each a small function with a one-line docstring (see docs in each module).

`passage` scores paragraphs for the ranking stages; `sentence` scores the sentences of the leading passages;
`span` scores candidate answer spans inside a sentence. The fitted weights that combine them live in
rag/weights.json (evals/fit_fusion.py for the ranking, evals/fit_answer.py for sentences and spans).
"""

from __future__ import annotations

from rag.features.sentence import SENTENCE_FEATURE_NAMES, SentenceView, sentence_matrix, sentence_views
from rag.features.span import SPAN_FEATURE_NAMES, SentenceAlignment, SpanView, span_matrix, span_views

__all__ = [
    "SENTENCE_FEATURE_NAMES",
    "SPAN_FEATURE_NAMES",
    "SentenceAlignment",
    "SentenceView",
    "SpanView",
    "sentence_matrix",
    "sentence_views",
    "span_matrix",
    "span_views",
]
