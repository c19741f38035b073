"""Calibration of a confidence: equal-mass reliability bins, ECE and the precision-coverage curve.

Pure functions over (confidence, right or not, weight) triples; rag/evaluation.py builds the triples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ECE_BINS = 15  # the choice: 15 equal-mass bins


@dataclass(frozen=True)
class CalibrationBin:
    """One bin of a reliability diagram: mean confidence, share right, and its weight share."""

    confidence: float
    accuracy: float
    share: float
    count: int


def _weighted(
    confidences: Sequence[float], labels: Sequence[bool], weights: Sequence[float] | None
) -> list[tuple[float, float, float]]:
    if len(confidences) != len(labels) or (weights is not None and len(weights) != len(labels)):
        raise ValueError("confidences, labels and weights must have the same length")
    ws = [1.0] * len(labels) if weights is None else list(weights)
    return [(float(c), float(bool(y)), float(w)) for c, y, w in zip(confidences, labels, ws, strict=True)]


def reliability_bins(
    confidences: Sequence[float],
    labels: Sequence[bool],
    weights: Sequence[float] | None = None,
    bins: int = ECE_BINS,
) -> list[CalibrationBin]:
    """Equal-mass bins by confidence (by weight when given). Equal confidences share a bin, so a constant
    predictor gets one bin, whatever the order of the questions."""
    rows = sorted(_weighted(confidences, labels, weights))
    total = sum(w for _, _, w in rows)
    if not rows or total <= 0:
        return []
    groups: dict[int, list[tuple[float, float, float]]] = {}
    before = 0.0  # weight of the rows with a lower confidence
    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and rows[j][0] == rows[i][0]:
            j += 1
        tie = rows[i:j]
        groups.setdefault(min(int(before / total * bins), bins - 1), []).extend(tie)
        before += sum(w for _, _, w in tie)
        i = j
    out = []
    for _, group in sorted(groups.items()):
        weight = sum(w for _, _, w in group)
        if weight <= 0:
            continue
        out.append(
            CalibrationBin(
                confidence=sum(c * w for c, _, w in group) / weight,
                accuracy=sum(y * w for _, y, w in group) / weight,
                share=weight / total,
                count=len(group),
            )
        )
    return out


def expected_calibration_error(
    confidences: Sequence[float],
    labels: Sequence[bool],
    weights: Sequence[float] | None = None,
    bins: int = ECE_BINS,
) -> float | None:
    """Σ over equal-mass bins of (bin share) × |share right − mean confidence|; None for no questions."""
    got = reliability_bins(confidences, labels, weights, bins)
    return sum(b.share * abs(b.accuracy - b.confidence) for b in got) if got else None


@dataclass(frozen=True)
class CoveragePoint:
    """Answering only when confidence ≥ threshold: the share answered and the share of those right."""

    threshold: float
    coverage: float
    precision: float


def precision_coverage(
    confidences: Sequence[float], labels: Sequence[bool], weights: Sequence[float] | None = None
) -> list[CoveragePoint]:
    """One point per distinct confidence, from the highest threshold (least answered) down."""
    rows = sorted(_weighted(confidences, labels, weights), key=lambda r: -r[0])
    total = sum(w for _, _, w in rows)
    points: list[CoveragePoint] = []
    answered = right = 0.0
    for i, (c, y, w) in enumerate(rows):
        answered += w
        right += y * w
        if (i + 1 == len(rows) or rows[i + 1][0] != c) and answered > 0:
            points.append(CoveragePoint(threshold=c, coverage=answered / total, precision=right / answered))
    return points


def coverage_at_precision(curve: Sequence[CoveragePoint], precision: float) -> float:
    """The largest share answered while the precision stays at or above `precision` (0 when never)."""
    return max((p.coverage for p in curve if p.precision >= precision - 1e-12), default=0.0)


def balanced_weights(negative: Sequence[bool]) -> list[float]:
    """Weights that give answerable and negative questions equal mass (1:1), each summing to 1/2."""
    n_neg = sum(negative)
    n_pos = len(negative) - n_neg
    if not n_neg or not n_pos:
        return [1.0 / len(negative)] * len(negative) if negative else []
    return [0.5 / n_neg if neg else 0.5 / n_pos for neg in negative]
