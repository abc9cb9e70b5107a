"""VISOR / SR2D: the sign of the centroid difference, no margin, no overlap test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from esplora.core.boxes import Box, BoxLike, FloatArray, as_box
from esplora.core.relations import Relation
from esplora.core.rules.base import DisparityLike, pair_arrays, resolve_relation

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
class VisorRule:
    """``visor``: 1.0 when the centroids are in the relation's order, else 0.0."""

    @property
    def name(self) -> str:
        """``visor``."""
        return NAME

    @property
    def relations(self) -> frozenset[Relation]:
        """``left_of``, ``right_of``, ``above``, ``below``."""
        return SUPPORTED

    def score(
        self,
        relation: str | Relation,
        subject: BoxLike,
        object: BoxLike,  # noqa: A002
        *,
        disparity: DisparityLike | None = None,
    ) -> float:
        """1.0 when the centroid order matches ``relation`` (disparity unused)."""
        rel = resolve_relation(NAME, relation, SUPPORTED)
        return 1.0 if holds(rel, as_box(subject), as_box(object)) else 0.0

    def score_many(
        self,
        relation: str | Relation,
        subjects: ArrayLike,
        objects: ArrayLike,
        *,
        disparity: ArrayLike | None = None,
    ) -> FloatArray:
        """Vectorised :meth:`score`."""
        rel = resolve_relation(NAME, relation, SUPPORTED)
        a, b = pair_arrays(subjects, objects)
        return holds_many(rel, a, b)
