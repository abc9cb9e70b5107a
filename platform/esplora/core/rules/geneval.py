"""GenEval's "position" rule (``relative_position`` in its ``evaluate_images.py``), bit-exact.

``off = c_A - c_B``; ``rev = max(|off| - 0.1 · (dims_A + dims_B), 0) · sign(off)``; no relation
when both ``|rev|`` components are below ``1e-3``; else ``(dx, dy) = rev / ||off||`` and each
component beyond ±0.5 names a relation. The norm is ``sqrt(ox·ox + oy·oy)`` with plain IEEE
rounding (GenEval's ``np.linalg.norm`` goes through BLAS, which may differ in the last bit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike

from esplora.core.boxes import Box, FloatArray
from esplora.core.relations import Relation
from esplora.core.rules.base import DisparityLike, PeerRule

NAME = "geneval"
POSITION_THRESHOLD = 0.1
MIN_OFFSET = 1e-3
DIRECTION_THRESHOLD = 0.5
SUPPORTED: frozenset[Relation] = frozenset(
    {Relation.LEFT_OF, Relation.RIGHT_OF, Relation.ABOVE, Relation.BELOW}
)


def _sign(value: float) -> float:
    return float((value > 0) - (value < 0))


def _revised(offset: float, dim_a: float, dim_b: float) -> float:
    return max(abs(offset) - POSITION_THRESHOLD * (dim_a + dim_b), 0.0) * _sign(offset)


def relative_position(a: Box, b: Box) -> frozenset[Relation]:
    """The set of relations GenEval sees for "a relative to b" (possibly empty)."""
    ox, oy = a.cx - b.cx, a.cy - b.cy
    rx, ry = _revised(ox, a.w, b.w), _revised(oy, a.h, b.h)
    if abs(rx) < MIN_OFFSET and abs(ry) < MIN_OFFSET:
        return frozenset()
    norm = math.sqrt(ox * ox + oy * oy)
    dx, dy = rx / norm, ry / norm
    found = set()
    if dx < -DIRECTION_THRESHOLD:
        found.add(Relation.LEFT_OF)
    if dx > DIRECTION_THRESHOLD:
        found.add(Relation.RIGHT_OF)
    if dy < -DIRECTION_THRESHOLD:
        found.add(Relation.ABOVE)
    if dy > DIRECTION_THRESHOLD:
        found.add(Relation.BELOW)
    return frozenset(found)


def _revised_many(offset: FloatArray, dim_a: FloatArray, dim_b: FloatArray) -> FloatArray:
    dims = dim_a + dim_b
    dims *= POSITION_THRESHOLD
    rev = np.abs(offset)
    rev -= dims
    np.maximum(rev, 0.0, out=rev)
    rev *= np.sign(offset)
    return rev


def _component_many(relation: Relation, a: FloatArray, b: FloatArray) -> FloatArray:
    """The revised direction component (dx or dy) that decides ``relation``; NaN when none."""
    ox = (a[:, 0] + a[:, 2]) / 2 - (b[:, 0] + b[:, 2]) / 2
    oy = (a[:, 1] + a[:, 3]) / 2 - (b[:, 1] + b[:, 3]) / 2
    rx = _revised_many(ox, a[:, 2] - a[:, 0], b[:, 2] - b[:, 0])
    ry = _revised_many(oy, a[:, 3] - a[:, 1], b[:, 3] - b[:, 1])
    none = (np.abs(rx) < MIN_OFFSET) & (np.abs(ry) < MIN_OFFSET)
    norm = np.sqrt(ox * ox + oy * oy)
    rev = rx if relation in (Relation.LEFT_OF, Relation.RIGHT_OF) else ry
    with np.errstate(divide="ignore", invalid="ignore"):
        component = rev / norm
    component[none] = np.nan  # NaN fails every comparison below: no relation
    return component


@dataclass(frozen=True, slots=True)
class GenEvalRule(PeerRule):
    """``geneval``: 1.0 when GenEval's ``relative_position`` holds ``relation`` for the subject
    relative to the object, else 0.0 (``left_of``, ``right_of``, ``above``, ``below``; the
    disparity is unused)."""

    NAME: ClassVar[str] = NAME
    SUPPORTED: ClassVar[frozenset[Relation]] = SUPPORTED

    def _score(self, rel: Relation, a: Box, b: Box, disparity: DisparityLike | None) -> float:
        return 1.0 if rel in relative_position(a, b) else 0.0

    def _score_many(
        self, rel: Relation, a: FloatArray, b: FloatArray, disparity: ArrayLike | None
    ) -> FloatArray:
        component = _component_many(rel, a, b)
        if rel in (Relation.LEFT_OF, Relation.ABOVE):
            hit = component < -DIRECTION_THRESHOLD
        else:
            hit = component > DIRECTION_THRESHOLD
        return hit.astype(np.float64)
