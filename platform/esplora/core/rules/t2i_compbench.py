"""T2I-CompBench's 2D spatial rule and T2I-CompBench++'s 3D (depth) rule, bit-exact.

SPATIAL.md, "Peer rules": ``dx = cx_B - cx_A``, ``dy = cy_B - cy_A`` (object minus subject), the
IoU in the order of the published ``calculate_iou``, the 0.1 IoU threshold and the 150 px
distance threshold; disparities are the box *means* of the normalised map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from esplora.core.boxes import (
    Box,
    FloatArray,
    as_disparity_pair,
    iou,
    iou_many,
)
from esplora.core.relations import DEPTH_RELATIONS, Relation
from esplora.core.rules.base import (
    DisparityLike,
    PeerRule,
    disparity_rows,
)

NAME = "t2i-compbench"
IOU_THRESHOLD = 0.1
DISTANCE_THRESHOLD = 150.0
DEPTH_IOU = 0.5
SUPPORTED: frozenset[Relation] = frozenset(Relation)

# relation -> (component of (dx, dy) that must dominate, required sign of it)
_PLANAR: dict[Relation, tuple[int, int]] = {
    Relation.LEFT_OF: (0, 1),
    Relation.RIGHT_OF: (0, -1),
    Relation.ABOVE: (1, 1),
    Relation.BELOW: (1, -1),
}


def _iou_score(value: float) -> float:
    return 1.0 if value < IOU_THRESHOLD else IOU_THRESHOLD / value


def planar_score(relation: Relation, a: Box, b: Box) -> float:
    """The 2D score of "a <relation> b" for ``left_of``/``right_of``/``above``/``below``."""
    dx, dy = b.cx - a.cx, b.cy - a.cy
    axis, sign = _PLANAR[relation]
    main, other = (dx, dy) if axis == 0 else (dy, dx)
    direction_ok = main > 0 if sign > 0 else main < 0
    if direction_ok and abs(main) > abs(other):
        return _iou_score(iou(a, b))
    return 0.0


def near_score(a: Box, b: Box) -> float:
    """``near``: 1 when ``|dx| < 150`` or ``|dy| < 150``, else ``150 / max(|dx|, |dy|)``."""
    adx, ady = abs(b.cx - a.cx), abs(b.cy - a.cy)
    if adx < DISTANCE_THRESHOLD or ady < DISTANCE_THRESHOLD:
        return 1.0
    return DISTANCE_THRESHOLD / max(adx, ady)


def depth_score(relation: Relation, a: Box, b: Box, d_a: float, d_b: float) -> float:
    """``in_front_of``/``behind`` from the IoU and the mean disparities (larger = closer)."""
    ordered = d_a > d_b if relation is Relation.IN_FRONT_OF else d_a < d_b
    overlap = iou(a, b)
    if not ordered:
        return 0.0
    if overlap > DEPTH_IOU:
        return 1.0
    if 0 < overlap < DEPTH_IOU:
        return overlap / DEPTH_IOU
    return 0.0  # no overlap, or exactly 0.5 (the published code's gap between its branches)


def _planar_many(relation: Relation, a: FloatArray, b: FloatArray) -> FloatArray:
    dx = (b[:, 0] + b[:, 2]) / 2 - (a[:, 0] + a[:, 2]) / 2
    dy = (b[:, 1] + b[:, 3]) / 2 - (a[:, 1] + a[:, 3]) / 2
    axis, sign = _PLANAR[relation]
    main, other = (dx, dy) if axis == 0 else (dy, dx)
    ok = main > 0 if sign > 0 else main < 0
    ok &= np.abs(main) > np.abs(other)
    overlap = iou_many(a, b)
    high = overlap >= IOU_THRESHOLD
    score = np.ones_like(overlap)
    np.divide(IOU_THRESHOLD, overlap, out=score, where=high)
    score[~ok] = 0.0
    return score


def _near_many(a: FloatArray, b: FloatArray) -> FloatArray:
    adx = np.abs((b[:, 0] + b[:, 2]) / 2 - (a[:, 0] + a[:, 2]) / 2)
    ady = np.abs((b[:, 1] + b[:, 3]) / 2 - (a[:, 1] + a[:, 3]) / 2)
    close = (adx < DISTANCE_THRESHOLD) | (ady < DISTANCE_THRESHOLD)
    score = np.ones_like(adx)
    np.divide(DISTANCE_THRESHOLD, np.maximum(adx, ady), out=score, where=~close)
    return score


def _depth_many(relation: Relation, a: FloatArray, b: FloatArray, d: FloatArray) -> FloatArray:
    d_a, d_b = d[:, 0], d[:, 1]
    ordered = d_a > d_b if relation is Relation.IN_FRONT_OF else d_a < d_b
    overlap = iou_many(a, b)
    score = overlap / DEPTH_IOU
    score[overlap > DEPTH_IOU] = 1.0
    score[(overlap <= 0) | (overlap == DEPTH_IOU) | ~ordered] = 0.0
    return score


@dataclass(frozen=True, slots=True)
class T2ICompBenchRule(PeerRule):
    """``t2i-compbench``: the peer's graded scores in [0, 1] for all seven relations (``near``
    included); the depth relations need the two mean disparities."""

    NAME: ClassVar[str] = NAME
    SUPPORTED: ClassVar[frozenset[Relation]] = SUPPORTED

    def _score(self, rel: Relation, a: Box, b: Box, disparity: DisparityLike | None) -> float:
        if rel in DEPTH_RELATIONS:
            d_a, d_b = as_disparity_pair(disparity)
            return depth_score(rel, a, b, d_a, d_b)
        if rel is Relation.NEAR:
            return near_score(a, b)
        return planar_score(rel, a, b)

    def _score_many(
        self, rel: Relation, a: FloatArray, b: FloatArray, disparity: ArrayLike | None
    ) -> FloatArray:
        if rel in DEPTH_RELATIONS:
            return _depth_many(rel, a, b, disparity_rows(disparity, a.shape[0]))
        if rel is Relation.NEAR:
            return _near_many(a, b)
        return _planar_many(rel, a, b)
