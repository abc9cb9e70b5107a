"""VISOR / SR2D: the sign of the centroid difference, no margin, no overlap test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from esplora.core.boxes import Box, FloatArray
from esplora.core.relations import Relation
from esplora.core.rules.base import DisparityLike, PeerRule

NAME = "visor"
SUPPORTED: frozenset[Relation] = frozenset(
    {Relation.LEFT_OF, Relation.RIGHT_OF, Relation.ABOVE, Relation.BELOW}
)


def holds(relation: Relation, a: Box, b: Box) -> bool:
    """Whether "a <relation> b" holds for VISOR: ``cx_A < cx_B`` for ``left_of`` and so on."""
    if relation is Relation.LEFT_OF:
        return a.cx < b.cx
    if relation is Relation.RIGHT_OF:
        return a.cx > b.cx
    if relation is Relation.ABOVE:
        return a.cy < b.cy
    return a.cy > b.cy


def holds_many(relation: Relation, a: FloatArray, b: FloatArray) -> FloatArray:
    """Vectorised :func:`holds` as 1.0/0.0."""
    lo, hi = (0, 2) if relation in (Relation.LEFT_OF, Relation.RIGHT_OF) else (1, 3)
    c_a = (a[:, lo] + a[:, hi]) / 2
    c_b = (b[:, lo] + b[:, hi]) / 2
    hit = c_a < c_b if relation in (Relation.LEFT_OF, Relation.ABOVE) else c_a > c_b
    return hit.astype(np.float64)


@dataclass(frozen=True, slots=True)
class VisorRule(PeerRule):
    """``visor``: 1.0 when the centroids are in the relation's order, else 0.0 (``left_of``,
    ``right_of``, ``above``, ``below``; the disparity is unused)."""

    NAME: ClassVar[str] = NAME
    SUPPORTED: ClassVar[frozenset[Relation]] = SUPPORTED

    def _score(self, rel: Relation, a: Box, b: Box, disparity: DisparityLike | None) -> float:
        return 1.0 if holds(rel, a, b) else 0.0

    def _score_many(
        self, rel: Relation, a: FloatArray, b: FloatArray, disparity: ArrayLike | None
    ) -> FloatArray:
        return holds_many(rel, a, b)
