"""rag.scoring: the fitted models applied with numpy, the weights file, and answer_span end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag.features.sentence import SENTENCE_FEATURE_NAMES
from rag.question import analyse_question
from rag.scoring import (
    SENTENCE_CONFIDENCE_FEATURES,
    SHORT_CONFIDENCE_FEATURES,
    SPAN_MODEL_FEATURES,
    WEIGHTS_FILE,
    LogisticModel,
    TreeEnsemble,
    WeightsError,
    answer_span,
    averaged_trees_to_json,
    load_weights,
    logistic_to_json,
    model_from_json,
    rival_spans,
    sentence_confidence_row,
    short_confidence_row,
    trees_to_json,
    weights_from_json,
)


def _data(rows: int = 400, cols: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, cols))
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take the side the fit chose
    y = np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) ** 2 > 0.3
    return x, y


def test_trees_written_and_walked_agree_with_scikit_learn() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = _data()
    fitted = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=8, random_state=0).fit(x, y)
    model = model_from_json(json.loads(json.dumps(trees_to_json(fitted, ["a", "b", "c", "d"]))))
    assert isinstance(model, TreeEnsemble)
    assert np.allclose(model.logits(x), fitted.decision_function(x), atol=1e-4)
    assert model.logits(np.zeros((0, 4))).shape == (0,)


def test_bagged_trees_walk_to_the_mean_of_their_members_log_odds() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = _data()
    members = [
        HistGradientBoostingClassifier(max_iter=20, max_leaf_nodes=8, random_state=0).fit(x[k::2], y[k::2])
        for k in range(2)
    ]
    model = model_from_json(json.loads(json.dumps(averaged_trees_to_json(members, ["a", "b", "c", "d"]))))
    mean = np.mean([m.decision_function(x) for m in members], axis=0)
    assert isinstance(model, TreeEnsemble)
    assert np.allclose(model.logits(x), mean, atol=1e-4)
    assert not np.allclose(model.logits(x), members[0].decision_function(x), atol=1e-2)


def test_logistic_written_and_applied_agree_with_scikit_learn() -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = _data()
    x = np.nan_to_num(x)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    fitted = LogisticRegression().fit((x - mean) / scale, y)
    obj = logistic_to_json(["a", "b", "c", "d"], mean, scale, fitted.coef_[0], float(fitted.intercept_[0]))
    model = model_from_json(obj)
    assert isinstance(model, LogisticModel)
    assert np.allclose(model.logits(x), fitted.decision_function((x - mean) / scale), atol=1e-4)


def test_a_missing_or_garbled_weights_file_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="fit_answer.py"):
        load_weights(tmp_path / "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(WeightsError, match="fit_answer.py"):
        load_weights(broken)
    with pytest.raises(WeightsError, match="format"):
        weights_from_json({"format": 0})


def test_weights_fitted_on_other_features_are_refused() -> None:
    obj = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    obj["models"]["sentence"]["features"] = obj["models"]["sentence"]["features"][:-1]
    with pytest.raises(WeightsError, match="other features"):
        weights_from_json(obj)


def test_shipped_weights_match_the_code_and_say_where_they_came_from() -> None:
    w = load_weights()
    assert w.sentence.features == SENTENCE_FEATURE_NAMES
    assert w.span.features == SPAN_MODEL_FEATURES
    assert w.sentence_confidence.features == SENTENCE_CONFIDENCE_FEATURES
    assert w.short_confidence.features == SHORT_CONFIDENCE_FEATURES
    data = w.provenance["data"]
    assert {"cmrc2018", "drcd"} <= set(data) and all(len(d["sha256"]) == 64 for d in data.values())
    figures = w.provenance["cross_validated"]
    assert figures["cmrc2018"]["short_em"] > 0 and figures["drcd"]["short_f1"] > 0
    assert 0.0 < w.short_threshold <= 1.0


@pytest.mark.parametrize(
    ("logits", "best", "sentence_margin", "rivals", "expected_head"),
    [
        ([2.0, 0.5, -1.0], 0, 3.0, None, [2.0, 1.5, 1.5, 3.0]),
        ([2.0, 0.5, -1.0], 1, -30.0, None, [0.5, -1.5, -1.5, -10.0]),  # margins are clipped to ±MAX_MARGIN
        ([0.7], 0, 0.2, None, [0.7, 10.0, 10.0, 0.2]),  # a lone candidate leads by the most
        # the runner-up is the same answer with other bounds: the lead over a rival is over the third span
        ([2.0, 1.8, -1.0], 0, 3.0, [False, False, True], [2.0, 0.2, 3.0, 3.0]),
        ([2.0, 1.8], 0, 3.0, [False, False], [2.0, 0.2, 10.0, 3.0]),  # no rival: the most
    ],
)
def test_short_confidence_row_is_the_score_the_leads_and_the_spans_features(
    logits: list[float],
    best: int,
    sentence_margin: float,
    rivals: list[bool] | None,
    expected_head: list[float],
) -> None:
    features = np.arange(len(logits) * len(SPAN_MODEL_FEATURES), dtype=float).reshape(len(logits), -1)
    row = short_confidence_row(
        np.asarray(logits), best, features, sentence_margin, None if rivals is None else np.asarray(rivals)
    )
    assert len(row) == len(SHORT_CONFIDENCE_FEATURES)
    assert row[:4] == pytest.approx(expected_head)
    assert row[4:] == list(features[best])


@pytest.mark.parametrize(
    ("spans", "texts", "chosen", "expected"),
    [
        # in one sentence: the same figure with its unit, an overlapping span, and another figure
        (
            [(0, 5, 8), (0, 5, 10), (0, 7, 12), (0, 20, 23)],
            ["152", "152公里", "2公里以", "132"],
            1,
            [0, 0, 0, 1],
        ),
        # in another sentence the same words are the same answer, other words another
        ([(0, 5, 10), (1, 0, 5), (1, 8, 11)], ["152公里", "152公里", "132"], 0, [0, 0, 1]),
        # a figure that holds another's digits is another figure
        ([(0, 0, 2), (0, 3, 6), (1, 0, 2)], ["5个", "45个", "左云"], 0, [0, 1, 1]),
        ([(0, 0, 3)], ["左云县"], 0, [0]),  # alone: no rival
    ],
)
def test_rival_spans_are_other_answers_not_other_bounds_of_the_same(
    spans: list[tuple[int, int, int]], texts: list[str], chosen: int, expected: list[int]
) -> None:
    assert rival_spans(chosen, spans, texts).tolist() == [bool(e) for e in expected]


def test_sentence_confidence_row_is_the_log_odds_the_lead_the_features_and_the_short_row() -> None:
    logits = np.asarray([0.5, 2.5, -1.0])
    features = np.arange(3 * len(SENTENCE_FEATURE_NAMES), dtype=float).reshape(3, -1)
    short_row = [0.25] * len(SHORT_CONFIDENCE_FEATURES)
    row = sentence_confidence_row(logits, 0, features, short_row)
    assert len(row) == len(SENTENCE_CONFIDENCE_FEATURES)
    assert row[:2] == pytest.approx([0.5, -2.0])  # behind the best other sentence by 2
    assert row[2 : 2 + len(SENTENCE_FEATURE_NAMES)] == list(features[0])
    assert row[2 + len(SENTENCE_FEATURE_NAMES) :] == short_row


def test_shipped_confidences_read_every_sentence_and_span_feature() -> None:
    w = load_weights()
    for model, names in (
        (w.short_confidence, SPAN_MODEL_FEATURES),
        (w.sentence_confidence, tuple(f"sentence.{n}" for n in SENTENCE_FEATURE_NAMES)),
    ):
        assert isinstance(model, TreeEnsemble)
        assert set(names) <= set(model.features)
        # a finite log-odds for any row the code computes
        assert np.all(np.isfinite(model.logits(np.zeros((2, len(model.features))))))


PARAGRAPH = (
    "我县于2023年1月10日开始进行事项梳理、系统建设工作，共梳理全县38个部门1047个事项，"
    "系统于2023年3月15日进入试运行。目前，全县活性炭产业已形成完整产业链，集聚了14家活性炭企业，"
    "其中生产企业12家。该产业链由山西鹊盛碳产业有限公司牵头建设。"
)


@pytest.mark.parametrize(
    ("question", "short", "sentence_holds"),
    [
        ("左云县有多少家活性炭企业?", "14家", "集聚了14家活性炭企业"),
        ("不见面审批系统是哪天开始试运行的?", "2023年3月15日", "进入试运行"),
        # the noun after the measure word tells two counts of one clause apart
        ("全县梳理了多少个部门?", "38个", "38个部门"),
        ("全县梳理了多少个事项?", "1047个", "1047个事项"),
    ],
)
def test_answer_span_finds_the_short_answer_and_its_sentence(
    question: str, short: str, sentence_holds: str
) -> None:
    got = answer_span(analyse_question(question), [(PARAGRAPH, 1.0)])
    assert got is not None
    assert got.short == short
    sentence = PARAGRAPH[got.sentence_start : got.sentence_end]
    assert sentence_holds in sentence
    assert sentence[got.span_start : got.span_end] == got.short
    assert 0.0 <= got.short_confidence <= 1.0 and 0.0 <= got.sentence_probability <= 1.0
    assert set(got.span_features) == set(SPAN_MODEL_FEATURES)


def test_answer_span_reads_traditional_passages_and_ranks_passages() -> None:
    traditional = "目前，全縣活性炭產業已形成完整產業鏈，集聚了14家活性炭企業，其中生產企業12家。"
    got = answer_span(
        analyse_question("左云县有多少家活性炭企业?"), [("今天天气很好。", 2.0), (traditional, 1.0)]
    )
    assert got is not None and got.passage == 1 and got.short == "14家"


def test_no_sentence_no_answer() -> None:
    assert answer_span(analyse_question("谁发明了电话?"), []) is None
    assert answer_span(analyse_question("谁发明了电话?"), [("", 0.0)]) is None
