"""Reliability bins, ECE and the precision-coverage curve, on tables worked out by hand."""

from __future__ import annotations

import pytest

from rag.eval_calibration import (
    CoveragePoint,
    balanced_weights,
    coverage_at_precision,
    expected_calibration_error,
    precision_coverage,
    reliability_bins,
)

T, F = True, False


@pytest.mark.parametrize(
    ("confidences", "labels", "weights", "ece"),
    [
        ([1.0, 1.0], [T, T], None, 0.0),  # sure and right
        ([0.0, 0.0], [F, F], None, 0.0),  # sure it is wrong, and it is
        ([0.5] * 4, [T, F, T, F], None, 0.0),  # a constant at the base rate
        ([0.5] * 4, [T, T, F, F], None, 0.0),  # ... whatever the order of the questions
        ([0.8] * 5, [F] * 5, None, 0.8),  # over-confident
        ([0.2, 0.2, 0.9, 0.9], [F, F, T, T], None, 0.15),  # bins 0.2 (0 right) and 0.9 (all right)
        ([0.9, 0.1], [T, F], [1.0, 3.0], 0.1),  # weighted: 3/4 × 0.1 + 1/4 × 0.1
        ([0.6, 0.6, 0.6], [T, T, F], None, pytest.approx(1 / 15)),  # |2/3 − 0.6|
    ],
)
def test_expected_calibration_error(
    confidences: list[float], labels: list[bool], weights: list[float] | None, ece: float
) -> None:
    assert expected_calibration_error(confidences, labels, weights) == pytest.approx(ece)


def test_ece_of_nothing_is_none() -> None:
    assert expected_calibration_error([], []) is None


def test_bins_have_equal_mass() -> None:
    confidences = [i / 30 for i in range(30)]
    bins = reliability_bins(confidences, [i % 2 == 0 for i in range(30)])
    assert [b.count for b in bins] == [2] * 15
    assert sum(b.share for b in bins) == pytest.approx(1.0)
    assert [b.confidence for b in bins] == sorted(b.confidence for b in bins)


def test_equal_confidences_share_a_bin() -> None:
    bins = reliability_bins([0.3] * 10 + [0.7] * 2, [F] * 10 + [T] * 2, bins=4)
    assert [(b.count, b.accuracy) for b in bins] == [(10, 0.0), (2, 1.0)]


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        expected_calibration_error([0.1, 0.2], [T])


@pytest.mark.parametrize(
    ("confidences", "labels", "curve"),
    [
        (
            [0.9, 0.8, 0.8, 0.1],
            [T, F, T, F],
            [CoveragePoint(0.9, 0.25, 1.0), CoveragePoint(0.8, 0.75, 2 / 3), CoveragePoint(0.1, 1.0, 0.5)],
        ),
        ([0.5, 0.5], [T, F], [CoveragePoint(0.5, 1.0, 0.5)]),  # one threshold for equal confidences
        ([], [], []),
    ],
)
def test_precision_coverage(confidences: list[float], labels: list[bool], curve: list[CoveragePoint]) -> None:
    assert precision_coverage(confidences, labels) == pytest.approx(curve)


@pytest.mark.parametrize(
    ("precision", "coverage"),
    [(0.99, 0.25), (0.9, 0.25), (0.6, 0.75), (0.5, 1.0), (1.01, 0.0)],
)
def test_coverage_at_precision(precision: float, coverage: float) -> None:
    curve = precision_coverage([0.9, 0.8, 0.8, 0.1], [T, F, T, F])
    assert coverage_at_precision(curve, precision) == pytest.approx(coverage)


@pytest.mark.parametrize(
    ("negative", "weights"),
    [
        ([F, F, F, T], [1 / 6, 1 / 6, 1 / 6, 1 / 2]),  # each side half the mass
        ([F, T], [0.5, 0.5]),
        ([F, F], [0.5, 0.5]),  # one side only: plain weights
        ([], []),
    ],
)
def test_balanced_weights(negative: list[bool], weights: list[float]) -> None:
    assert balanced_weights(negative) == pytest.approx(weights)
