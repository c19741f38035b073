import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from rag.errors import RagError
from rag.features.passage import restatement
from rag.question import analyse_question
from rag.retrieval import (
    FUSION_KEY,
    FusionWeights,
    documents_compared,
    fuse,
    fusion_weights_from_json,
    restatement_gain,
    settled_order,
    shipped_fusion_weights,
)
from rag.scoring import WEIGHTS_FILE
from rag.text import char_pairs, question_chars, question_pairs


def uniform(pair: str) -> float:
    return 1.0


def test_character_pairs_skip_punctuation_and_interrogatives():
    assert char_pairs("80亿元,gdp") == {"80", "0亿", "亿元", "gd", "dp"}
    assert question_pairs("左权县有多少家企业?") == {"左权", "权县", "县有", "家企", "企业"}
    assert question_chars("左權縣有多少家企業?") == "左权县有家企业"


def test_the_gain_is_the_weighted_sum_of_the_features():
    features = np.array([[1.0, 0.5, 0.25], [0.0, 0.0, 0.0]], dtype=np.float32)
    w = FusionWeights(pairs=2.0, sentence_pairs=4.0, order=8.0)
    assert restatement_gain(features, w).tolist() == [6.0, 0.0]
    assert restatement(analyse_question("?"), ["任何文字"], uniform).tolist() == [
        [0.0, 0.0, 0.0]
    ]  # nothing asked: no gain


def test_comparisons_of_unnamed_documents_are_recognised():
    assert documents_compared(analyse_question("两个县分别修了哪条旅游公路?")) == 2
    assert documents_compared(analyse_question("兩個縣各有哪個單位被評為核心育種場?")) == 2
    assert documents_compared(analyse_question("三份文件都提到了哪些项目?")) == 3
    assert (
        documents_compared(analyse_question("交战双方分别是哪些人?")) == 0
    )  # the sides of one story, not documents
    assert documents_compared(analyse_question("左云县有多少家活性炭企业?")) == 0


def test_close_calls_are_settled_by_the_closest_sentence_and_the_evidence():
    w = FusionWeights(sentence_dense=50.0, evidence=2.0)
    even = np.array([3.0, 3.0, 3.0])
    scores = np.array([10.0, 9.8, 9.0])
    # the runner-up's closest sentence says what the question asks (cosine 0.85 against 0.80)
    assert settled_order(scores, np.array([0.80, 0.85, 0.82]), even, w) == [1, 0, 2]
    # the leader's best evidence window is weak: the answerer would not cite it
    assert settled_order(scores, np.array([0.8, 0.8, 0.8]), np.array([1.0, 3.0, 3.0]), w) == [1, 2, 0]
    # nothing tells them apart: the order stands
    assert settled_order(scores, np.array([0.8, 0.8, 0.8]), even, w) == [0, 1, 2]


def _weights_file(tmp_path: Path, obj: dict) -> Path:
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_the_shipped_fusion_block_names_fusion_weights_fields_with_their_types():
    block = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))[FUSION_KEY]
    types = {f.name: f.type for f in fields(FusionWeights)}
    assert set(block["values"]) == set(types)
    for name, value in block["values"].items():
        assert type(value).__name__ == types[name], name  # pool, depth, settle_* stay integers
    assert FusionWeights.shipped() == FusionWeights(**block["values"])
    assert {"cmrc2018", "drcd", "seeds"} <= set(block["data"])
    assert all(len(d["sha256"]) == 64 for d in block["data"].values())
    assert block["command"].startswith("evals/fit_fusion.py")
    held_out = block["cross_validated"]["stages"]["settle"]["fitted_held_out"]
    assert 0.5 < held_out["cmrc2018"]["hit_at_1"] <= 1.0 and 0.5 < held_out["drcd"]["hit_at_1"] <= 1.0


def test_a_weights_file_without_a_fusion_block_gives_the_defaults(tmp_path):
    assert fusion_weights_from_json({"format": 1, "models": {}}) == FusionWeights()
    assert shipped_fusion_weights(_weights_file(tmp_path, {"format": 1})) == FusionWeights()
    assert shipped_fusion_weights(tmp_path / "absent.json") == FusionWeights()


def test_a_fusion_block_overrides_the_defaults_it_names():
    w = fusion_weights_from_json({FUSION_KEY: {"values": {"dense": 0.5, "pool": 20, "subject": 2}}})
    assert w == FusionWeights(dense=0.5, pool=20, subject=2.0)
    assert isinstance(w.subject, float) and isinstance(w.pool, int)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"dense": 0.5, "bm25_boost": 2.0}, "bm25_boost"),  # a field the code does not have
        ({"pool": 20.5}, "pool"),  # an integer field given a fraction
        ({"dense": "0.5"}, "dense"),
        ({"depth": True}, "depth"),
    ],
)
def test_a_fusion_block_the_code_cannot_read_says_to_fit_again(tmp_path, values, named):
    with pytest.raises(RagError, match=rf"{named}.*evals/fit_fusion.py"):
        shipped_fusion_weights(_weights_file(tmp_path, {FUSION_KEY: {"values": values}}))
    with pytest.raises(RagError, match="evals/fit_fusion.py"):
        fusion_weights_from_json({FUSION_KEY: {"fitted": "2026-12-02"}})


def test_a_question_in_other_words_leans_on_the_dense_side() -> None:
    # row 0 is what BM25 prefers, row 1 what the embedder prefers
    lexical = np.array([9.0, 1.0, 0.0, 0.0, 0.0])
    dense = np.array([0.80, 0.92, 0.70, 0.70, 0.71])
    subject = np.ones(5)
    w = FusionWeights(dense=0.1, dense_unknown=4.0, pool=5)
    assert int(np.argmax(fuse(dense, lexical, subject, "hybrid", w, unknown=0.0))) == 0
    assert int(np.argmax(fuse(dense, lexical, subject, "hybrid", w, unknown=0.6))) == 1
