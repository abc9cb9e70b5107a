"""Canonical geometric rows for many pairs at once (the vectorised twin of
:func:`esplora.core.rules.esplora.canonical_relations`).

The relate stage scores every pair of objects of a batch of images in one call per axis: for
each pair and axis, at most one direction holds softly, and the stored row takes that direction
(subject = the box that is left, upper or nearer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from esplora.core.relations import CANONICAL, Axis
from esplora.core.rules.esplora import (
    DEFAULT_DEPTH_GAP,
    DEFAULT_TAU,
    check_depth_gap,
    check_tau,
    evaluate_many,
)


@dataclass(frozen=True, slots=True)
class CanonicalArrays:
    """Per pair, one axis: whether a row exists, which box is its subject, and its verdicts."""

    axis: Axis
    present: NDArray[np.bool_]
    subject_is_a: NDArray[np.bool_]
    soft: NDArray[np.bool_]
    strict: NDArray[np.bool_]
    margin: NDArray[np.float64]


def canonical_relations_many(
    boxes_a: ArrayLike,
    boxes_b: ArrayLike,
    *,
    disparity: ArrayLike | None = None,
    tau: float = DEFAULT_TAU,
    depth_gap: float = DEFAULT_DEPTH_GAP,
) -> list[CanonicalArrays]:
    """Rows for ``(N, 4)`` box pairs on each axis (depth only with ``(N, 2)`` disparities).

    Agrees with the scalar ``canonical_relations`` pair by pair (the tests check it).
    """
    tau, depth_gap = check_tau(tau), check_depth_gap(depth_gap)
    a = np.asarray(boxes_a, dtype=np.float64)
    b = np.asarray(boxes_b, dtype=np.float64)
    axes = [Axis.HORIZONTAL, Axis.VERTICAL]
    flipped = None
    if disparity is not None:
        axes.append(Axis.DEPTH)
        flipped = np.ascontiguousarray(np.asarray(disparity, dtype=np.float64)[:, ::-1])
    out = []
    for axis in axes:
        relation = CANONICAL[axis]
        forward = evaluate_many(relation, a, b, disparity=disparity, tau=tau, depth_gap=depth_gap)
        backward = evaluate_many(relation, b, a, disparity=flipped, tau=tau, depth_gap=depth_gap)
        subject_is_a = forward.soft
        out.append(
            CanonicalArrays(
                axis=axis,
                present=forward.soft | backward.soft,
                subject_is_a=subject_is_a,
                soft=forward.soft | backward.soft,
                strict=np.where(subject_is_a, forward.strict, backward.strict),
                margin=np.where(subject_is_a, forward.margin, backward.margin),
            )
        )
    return out
