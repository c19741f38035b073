"""Pure ranking over values: hybrid fusion and the three ranking stages (their passage features live in
rag/features/passage.py).

Why not plain reciprocal-rank fusion: on short, similar press releases RRF lets a weak dense ranking
outvote a confident BM25 one. Here each retriever's scores are standardised over its own top
candidates (z-scores), so a retriever only moves a paragraph as far as it stands out, and a
subject term (a place, organisation or person named in the question) missing from a paragraph's
document costs it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import RagError
from rag.features.passage import holds
from rag.question import Question
from rag.text import normalize

# Each side of a comparison is ranked on its own (an embedding and a ranking each): a question naming more
# subjects than this is a long text that happens to name places, not a comparison, and is ranked once.
MAX_COMPARED_SUBJECTS = 4
_COMPARISON = re.compile(r"和|与|及|跟|、|同|分别|各|哪个|比较|相比|对比|两")


JOURNALIST = "记者"


def is_questioner(speaker: str) -> bool:
    """A journalist's turn at a press conference (记者, 山西农民报记者)."""
    return normalize(speaker).endswith(JOURNALIST)


_EACH_DOCUMENT = re.compile(
    r"(两|二|三|四)(?:个|份|篇|家)?(?:县|市|区|省|州|镇|乡|村|地|文件|文档|报道|材料|发布会)"
    r"[^，。？?]{0,16}(?:分别|各自|各|都)"
)
_COUNT = {"两": 2, "二": 2, "三": 3, "四": 4}


def documents_compared(question: Question) -> int:
    """How many documents a question compares without naming them (两个县分别…: 2), else 0."""
    m = _EACH_DOCUMENT.search(question.standalone_normalized)
    return _COUNT[m.group(1)] if m else 0


def split_subjects(question: Question, doc_text: Mapping[str, str]) -> list[Question]:
    """One question per subject when it names several that no single document holds together (a
    comparison such as 左权县和左云县哪个GDP更高): each is then ranked on its own, without the others' words."""
    entities = question.entities
    if not 2 <= len(entities) <= MAX_COMPARED_SUBJECTS or not _COMPARISON.search(
        question.standalone_normalized
    ):
        return [question]
    if any(all(holds(t, e) for e in entities) for t in doc_text.values()):
        return [question]
    if not all(any(holds(t, e) for t in doc_text.values()) for e in entities):
        return [question]  # a subject no document holds: nothing to split, the answerer will refuse
    out = []
    for e in entities:
        others = [o for o in entities if o != e]
        text = question.standalone
        for o in others:
            text = text.replace(o, "")

        def mine(ws: Sequence[str], others: list[str] = others) -> tuple[str, ...]:
            return tuple(w for w in ws if not any(w in o or o in w for o in others))

        out.append(
            replace(
                question,
                standalone=text,
                focus=mine(question.focus),
                keywords=tuple((w, x) for w, x in question.keywords if mine([w])),
                entities=(e,),
            )
        )
    return out


FUSION_KEY = "fusion"  # the block of rag/weights.json that evals/fit_fusion.py writes


@dataclass(frozen=True)
class FusionWeights:
    """The weights of the three ranking stages."""

    # The shipped values come from rag/weights.json (shipped(); evals/fit_fusion.py); these are fallbacks.
    # First stage: BM25 and dense z-scores fused, less a missing-subject cost, plus an answer-kind bonus.
    lexical: float = 1.0
    dense: float = 0.2
    subject: float = 3.0  # cost of a document that lacks every subject word, in standard deviations
    pool: int = 50  # candidates per retriever whose scores set the standardisation
    dense_floor: float = 0.0  # least cosine spread: among near-identical paragraphs dense noise is not signal
    kind: float = 1.0  # bonus for a leading paragraph that holds the kind of answer asked for
    # added to `dense` per share of the question's keyword weight that no indexed paragraph uses: a question
    # in other words than the documents' (固投 for 固定资产投资, 厕所 for 公厕) is matched by meaning
    dense_unknown: float = 0.0
    # Second stage over the leading `depth` paragraphs: how much of the question the paragraph and its best
    # sentence restate.
    depth: int = 5
    pairs: float = 4.0  # weighted share of the question's character pairs the paragraph holds
    sentence_pairs: float = 4.0  # the same for its best sentence
    order: float = 4.0  # share of the question's characters its best sentence holds in the same order
    # Third stage, close calls only (the two leading paragraphs within `settle_margin`): the `settle_depth`
    # leading paragraphs are reordered by what their sentences say.
    settle_margin: float = 1.5
    settle_depth: int = 3
    settle_sentences: int = 3  # sentences of each paragraph compared, those holding most of the question
    sentence_dense: float = 50.0  # per unit of cosine between the question and its closest sentence
    evidence: float = 2.0  # per unit of the strength of the evidence window the answerer would cite

    @classmethod
    def shipped(cls) -> FusionWeights:
        """The fitted weights of rag/weights.json (read once), or the defaults when it has no fusion block."""
        return shipped_fusion_weights()


def fusion_weights_from_json(obj: Mapping[str, Any]) -> FusionWeights:
    """FusionWeights from a parsed weights file: its "fusion" block's values over the defaults (the defaults
    alone when there is no block). A value for a field the code lacks, or of the wrong type, is a RagError."""
    block = obj.get(FUSION_KEY)
    if block is None:
        return FusionWeights()
    values = block.get("values") if isinstance(block, Mapping) else None
    if not isinstance(values, Mapping):
        raise RagError(
            f'the "{FUSION_KEY}" block of the weights file has no values: run evals/fit_fusion.py again'
        )
    known = {f.name: f for f in fields(FusionWeights)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise RagError(
            f'the "{FUSION_KEY}" block of the weights file names {", ".join(unknown)}, which FusionWeights '
            "does not have: run evals/fit_fusion.py again"
        )
    checked: dict[str, Any] = {}
    for name, value in values.items():
        wanted = int if known[name].type in (int, "int") else float
        ok = isinstance(value, int) if wanted is int else isinstance(value, int | float)
        if isinstance(value, bool) or not ok:
            raise RagError(
                f'the "{FUSION_KEY}" block of the weights file gives {name} = {value!r}, not '
                f"{'an integer' if wanted is int else 'a number'}: "
                "run evals/fit_fusion.py again"
            )
        checked[name] = wanted(value)
    return FusionWeights(**checked)


@lru_cache(maxsize=4)
def shipped_fusion_weights(path: Path | None = None) -> FusionWeights:
    """The fusion weights of the weights file (rag/weights.json unless `path`), read once."""
    # Imported here: rag.scoring imports rag.question, which imports this module.
    from rag.scoring import WEIGHTS_FILE, WeightsError

    path = path or WEIGHTS_FILE
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return FusionWeights()
    except json.JSONDecodeError as e:
        raise WeightsError(f"{path} is not valid JSON ({e}): run evals/fit_answer.py to fit it again") from e
    return fusion_weights_from_json(obj)


def standardise(scores: np.ndarray, pool: int, floor: float = 0.0) -> np.ndarray:
    """z-scores against the top `pool` scores; 0 where the retriever said nothing."""
    if scores.size == 0:
        return scores
    top = np.sort(scores)[::-1][: max(2, pool)]
    spread = max(float(top.std()), floor)
    if spread < 1e-9:
        return np.zeros_like(scores)
    return (scores - float(top.mean())) / spread


def fuse(
    dense: np.ndarray,
    lexical: np.ndarray,
    subject: np.ndarray,
    mode: str = "hybrid",
    weights: FusionWeights | None = None,
    unknown: float = 0.0,
) -> np.ndarray:
    """One fused score per row: standardised dense and BM25 scores, less a missing-subject cost; the dense
    side weighs more by the share of the question's words the documents do not use (`unknown`)."""
    w = weights or FusionWeights()
    if mode == "bm25":
        return lexical.astype(np.float32)
    if mode == "dense":
        return dense.astype(np.float32)
    if mode != "hybrid":
        raise ValueError(f"unknown fusion mode {mode!r}; use hybrid, bm25 or dense")
    z_lex = standardise(lexical, w.pool) if lexical.any() else np.zeros_like(dense)
    z_dense = standardise(dense, w.pool, w.dense_floor)
    dense_weight = w.dense + w.dense_unknown * unknown
    return (w.lexical * z_lex + dense_weight * z_dense - w.subject * (1.0 - subject)).astype(np.float32)


def restatement_gain(features: np.ndarray, weights: FusionWeights | None = None) -> np.ndarray:
    """The second stage's addition to each leading paragraph's fused score."""
    w = weights or FusionWeights()
    return features @ np.array([w.pairs, w.sentence_pairs, w.order], dtype=np.float32)


def settled_order(
    scores: np.ndarray, closest: np.ndarray, strength: np.ndarray, weights: FusionWeights | None = None
) -> list[int]:
    """The third stage's order of the leading paragraphs (indices into the arguments, best first): their
    scores, less how far each one's closest sentence (cosine with the question) and its best evidence
    window fall behind the best of them."""
    w = weights or FusionWeights()
    settled = scores + w.sentence_dense * (closest - closest.max()) + w.evidence * (strength - strength.max())
    return sorted(range(len(scores)), key=lambda i: (-float(settled[i]), i))


def top_rows(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the k best scores, best first (stable for ties)."""
    if scores.size == 0 or k <= 0:
        return []
    k = min(k, scores.size)
    part = np.argpartition(-scores, k - 1)[:k]
    return sorted(part.tolist(), key=lambda i: (-float(scores[i]), i))
