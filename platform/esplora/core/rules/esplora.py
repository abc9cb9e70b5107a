"""The ESPLoRA τ-strictness rule (SPATIAL.md, "The ESPLoRA rule").

Soft reads the direction only; strict also bounds the overlap along the axis by ``min(w) / τ``
(heights for above/below) or, in depth, requires a disparity gap of ``g · max(d_A, d_B)``. The
margin is the signed distance to the strict region's boundary. Every expression is computed in
the order SPATIAL.md writes it, in both the scalar and the vectorised paths, so that boundary
cases agree bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from esplora.core.boxes import (
    Box,
    BoxLike,
    FloatArray,
    as_box,
    as_disparity_pair,
    overlap_x,
    overlap_y,
)
from esplora.core.errors import InvalidParameter
from esplora.core.relations import CANONICAL, DEPTH_RELATIONS, Axis, Relation
from esplora.core.rules.base import (
    BoolArray,
    DisparityLike,
    RelationResult,
    as_parameter,
    disparity_rows,
    pair_arrays,
    resolve_relation,
)

NAME = "esplora"  # how the free functions name the rule in errors
DEFAULT_TAU = 3.0
DEFAULT_DEPTH_GAP = 1 / 3

SUPPORTED: frozenset[Relation] = frozenset(
    {
        Relation.LEFT_OF,
        Relation.RIGHT_OF,
        Relation.ABOVE,
        Relation.BELOW,
        Relation.IN_FRONT_OF,
        Relation.BEHIND,
    }
)
# The relations in which the subject has the smaller coordinate (left of, above).
_SUBJECT_FIRST = frozenset({Relation.LEFT_OF, Relation.ABOVE})
_HORIZONTAL = frozenset({Relation.LEFT_OF, Relation.RIGHT_OF})


def check_tau(tau: object) -> float:
    """Validate τ: a finite number ≥ 1 (:class:`InvalidParameter` naming the value)."""
    value = as_parameter("tau", tau)
    if value < 1.0:
        raise InvalidParameter(f"tau must be >= 1, got {tau!r}")
    return value


def check_depth_gap(depth_gap: object) -> float:
    """Validate the depth gap: a finite number in the open interval (0, 1)."""
    value = as_parameter("depth_gap", depth_gap)
    if not 0.0 < value < 1.0:
        raise InvalidParameter(f"depth_gap must be in (0, 1), got {depth_gap!r}")
    return value


# --- scalar path ----------------------------------------------------------------------------


def planar_result(relation: Relation, a: Box, b: Box, tau: float) -> RelationResult:
    """Soft, strict and margin of a 2D relation for validated boxes ``a`` (subject), ``b``."""
    if relation in _HORIZONTAL:
        c_a, c_b, ov, m = a.cx, b.cx, overlap_x(a, b), min(a.w, b.w)
    else:
        c_a, c_b, ov, m = a.cy, b.cy, overlap_y(a, b), min(a.h, b.h)
    if relation in _SUBJECT_FIRST:
        soft, ahead = c_a < c_b, c_b - c_a
    else:
        soft, ahead = c_a > c_b, c_a - c_b
    limit = m / tau
    strict = soft and ov <= limit
    return RelationResult(soft, strict, min(ahead / m, (limit - ov) / m))


def depth_result(relation: Relation, d_a: float, d_b: float, depth_gap: float) -> RelationResult:
    """Soft, strict and margin of ``in_front_of`` / ``behind`` for validated disparities."""
    near, far = (d_a, d_b) if relation is Relation.IN_FRONT_OF else (d_b, d_a)
    big = max(d_a, d_b)
    soft = near > far
    strict = soft and near - far >= depth_gap * big
    # Both disparities zero: no depth evidence at all, so the pair sits g outside the region.
    margin = -depth_gap if big == 0 else (near - far) / big - depth_gap
    return RelationResult(soft, strict, margin)


def evaluate(
    relation: str | Relation,
    subject: BoxLike,
    object: BoxLike,  # noqa: A002 - the spec's word for the second box
    *,
    disparity: DisparityLike | None = None,
    tau: float = DEFAULT_TAU,
    depth_gap: float = DEFAULT_DEPTH_GAP,
) -> RelationResult:
    """Evaluate "subject <relation> object" under the ESPLoRA rule.

    ``disparity`` is ``(d_subject, d_object)`` (box medians of the normalised map) and is needed
    for ``in_front_of``/``behind`` only (ignored for the 2D relations). Raises
    :class:`InvalidParameter` for a bad ``tau``/``depth_gap``.
    """
    tau, depth_gap = check_tau(tau), check_depth_gap(depth_gap)
    return _evaluate(NAME, relation, subject, object, disparity, tau, depth_gap)


def _evaluate(
    rule: str,
    relation: str | Relation,
    subject: BoxLike,
    object: BoxLike,  # noqa: A002
    disparity: DisparityLike | None,
    tau: float,
    depth_gap: float,
) -> RelationResult:
    """:func:`evaluate` with parameters already validated; errors name ``rule``."""
    rel = resolve_relation(rule, relation, SUPPORTED)
    a, b = as_box(subject), as_box(object)  # validated for depth too, as in the vectorised path
    if rel in DEPTH_RELATIONS:
        d_a, d_b = as_disparity_pair(disparity)
        return depth_result(rel, d_a, d_b, depth_gap)
    return planar_result(rel, a, b, tau)


# --- vectorised path ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelationArrays:
    """Vectorised :class:`RelationResult`: three arrays of length ``N``."""

    soft: BoolArray
    strict: BoolArray
    margin: FloatArray


def _columns(relation: Relation) -> tuple[int, int]:
    return (0, 2) if relation in _HORIZONTAL else (1, 3)


def planar_soft_many(relation: Relation, a: FloatArray, b: FloatArray) -> BoolArray:
    """Vectorised soft verdict: centre order along the relation's axis."""
    lo, hi = _columns(relation)
    c_a = a[:, lo] + a[:, hi]
    c_a /= 2
    c_b = b[:, lo] + b[:, hi]
    c_b /= 2
    if relation in _SUBJECT_FIRST:
        return np.less(c_a, c_b)
    return np.greater(c_a, c_b)


def _overlap_and_limit(
    relation: Relation, a: FloatArray, b: FloatArray, tau: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``ov``, ``m`` and ``m / τ`` along the relation's axis, with few temporaries."""
    lo, hi = _columns(relation)
    ov = np.minimum(a[:, hi], b[:, hi])
    ov -= np.maximum(a[:, lo], b[:, lo])
    np.maximum(ov, 0.0, out=ov)
    m = a[:, hi] - a[:, lo]
    np.minimum(m, b[:, hi] - b[:, lo], out=m)
    return ov, m, m / tau


def planar_strict_many(
    relation: Relation, a: FloatArray, b: FloatArray, tau: float, soft: BoolArray
) -> BoolArray:
    """Vectorised strict verdict, given the soft one."""
    ov, _, limit = _overlap_and_limit(relation, a, b, tau)
    strict = np.less_equal(ov, limit)
    strict &= soft
    return strict


def planar_many(relation: Relation, a: FloatArray, b: FloatArray, tau: float) -> RelationArrays:
    """Vectorised :func:`planar_result` over validated ``(N, 4)`` arrays."""
    soft = planar_soft_many(relation, a, b)
    ov, m, limit = _overlap_and_limit(relation, a, b, tau)
    strict = np.less_equal(ov, limit)
    strict &= soft
    lo, hi = _columns(relation)
    c_a = (a[:, lo] + a[:, hi]) / 2
    c_b = (b[:, lo] + b[:, hi]) / 2
    ahead = c_b - c_a if relation in _SUBJECT_FIRST else c_a - c_b
    ahead /= m
    room = limit - ov
    room /= m
    return RelationArrays(soft, strict, np.minimum(ahead, room, out=ahead))


def _depth_parts(
    relation: Relation, d: FloatArray, depth_gap: float
) -> tuple[BoolArray, BoolArray, FloatArray, FloatArray]:
    """Soft, strict, ``near - far`` and ``max(d_A, d_B)`` for validated disparities."""
    d_a, d_b = d[:, 0], d[:, 1]
    near, far = (d_a, d_b) if relation is Relation.IN_FRONT_OF else (d_b, d_a)
    big = np.maximum(d_a, d_b)
    soft = np.greater(near, far)
    gap = near - far
    strict = np.greater_equal(gap, depth_gap * big)
    strict &= soft
    return soft, strict, gap, big


def depth_verdict_many(
    relation: Relation, d: FloatArray, depth_gap: float, strict: bool
) -> BoolArray:
    """Vectorised soft or strict depth verdict alone (no margin)."""
    if not strict:
        d_a, d_b = d[:, 0], d[:, 1]
        return np.greater(d_a, d_b) if relation is Relation.IN_FRONT_OF else np.greater(d_b, d_a)
    return _depth_parts(relation, d, depth_gap)[1]


def depth_many(relation: Relation, d: FloatArray, depth_gap: float) -> RelationArrays:
    """Vectorised :func:`depth_result` over a validated ``(N, 2)`` disparity array."""
    soft, strict, gap, big = _depth_parts(relation, d, depth_gap)
    with np.errstate(divide="ignore", invalid="ignore"):
        margin = gap / big
    margin -= depth_gap
    margin[big == 0] = -depth_gap
    return RelationArrays(soft, strict, margin)


def evaluate_many(
    relation: str | Relation,
    subjects: ArrayLike,
    objects: ArrayLike,
    *,
    disparity: ArrayLike | None = None,
    tau: float = DEFAULT_TAU,
    depth_gap: float = DEFAULT_DEPTH_GAP,
) -> RelationArrays:
    """Vectorised :func:`evaluate`: ``(N, 4)`` boxes, ``(N, 2)`` disparities for depth relations."""
    tau, depth_gap = check_tau(tau), check_depth_gap(depth_gap)
    return _evaluate_many(NAME, relation, subjects, objects, disparity, tau, depth_gap)


def _evaluate_many(
    rule: str,
    relation: str | Relation,
    subjects: ArrayLike,
    objects: ArrayLike,
    disparity: ArrayLike | None,
    tau: float,
    depth_gap: float,
) -> RelationArrays:
    """:func:`evaluate_many` with parameters already validated; errors name ``rule``."""
    rel = resolve_relation(rule, relation, SUPPORTED)
    a, b = pair_arrays(subjects, objects)
    if rel in DEPTH_RELATIONS:
        return depth_many(rel, disparity_rows(disparity, a.shape[0]), depth_gap)
    return planar_many(rel, a, b, tau)


# --- the two named rules ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EsploraRule:
    """``esplora-soft`` (``strict=False``) or ``esplora-strict``: 1.0 when the reading holds."""

    strict: bool = True
    tau: float = DEFAULT_TAU
    depth_gap: float = DEFAULT_DEPTH_GAP

    def __post_init__(self) -> None:
        # Normalise to validated floats once, so every call can trust them.
        object.__setattr__(self, "tau", check_tau(self.tau))
        object.__setattr__(self, "depth_gap", check_depth_gap(self.depth_gap))

    @property
    def name(self) -> str:
        """``esplora-strict`` or ``esplora-soft``."""
        return "esplora-strict" if self.strict else "esplora-soft"

    @property
    def relations(self) -> frozenset[Relation]:
        """The six directional relations (``near`` is never validated by this rule)."""
        return SUPPORTED

    def evaluate(
        self,
        relation: str | Relation,
        subject: BoxLike,
        object: BoxLike,  # noqa: A002
        *,
        disparity: DisparityLike | None = None,
    ) -> RelationResult:
        """Soft, strict and margin for one pair with this rule's parameters."""
        return _evaluate(self.name, relation, subject, object, disparity, self.tau, self.depth_gap)

    def evaluate_many(
        self,
        relation: str | Relation,
        subjects: ArrayLike,
        objects: ArrayLike,
        *,
        disparity: ArrayLike | None = None,
    ) -> RelationArrays:
        """Vectorised :meth:`evaluate`."""
        return _evaluate_many(
            self.name, relation, subjects, objects, disparity, self.tau, self.depth_gap
        )

    def score(
        self,
        relation: str | Relation,
        subject: BoxLike,
        object: BoxLike,  # noqa: A002
        *,
        disparity: DisparityLike | None = None,
    ) -> float:
        """1.0 when the rule's reading (soft or strict) holds, else 0.0."""
        result = self.evaluate(relation, subject, object, disparity=disparity)
        return 1.0 if (result.strict if self.strict else result.soft) else 0.0

    def score_many(
        self,
        relation: str | Relation,
        subjects: ArrayLike,
        objects: ArrayLike,
        *,
        disparity: ArrayLike | None = None,
    ) -> FloatArray:
        """Vectorised :meth:`score`; computes only what the reading needs (no margin)."""
        rel = resolve_relation(self.name, relation, SUPPORTED)
        a, b = pair_arrays(subjects, objects)
        if rel in DEPTH_RELATIONS:
            d = disparity_rows(disparity, a.shape[0])
            verdict = depth_verdict_many(rel, d, self.depth_gap, self.strict)
        else:
            verdict = planar_soft_many(rel, a, b)
            if self.strict:
                verdict = planar_strict_many(rel, a, b, self.tau, verdict)
        return verdict.astype(np.float64)


# --- canonical geometric rows ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CanonicalRelation:
    """One stored geometric row: ``subject_index`` (0 = box_a, 1 = box_b) <relation> the other."""

    subject_index: int
    relation: Relation
    soft: bool
    strict: bool
    margin: float


def _canonical_row(
    relation: Relation, a: Box, b: Box, disparity: tuple[float, float] | None, tau: float, g: float
) -> CanonicalRelation | None:
    """The row of one axis, in canonical direction, or ``None`` when neither direction is soft."""
    for index in (0, 1):
        s, o = (a, b) if index == 0 else (b, a)
        if relation is Relation.IN_FRONT_OF:
            assert disparity is not None
            d_s, d_o = disparity if index == 0 else disparity[::-1]
            result = depth_result(relation, d_s, d_o, g)
        else:
            result = planar_result(relation, s, o, tau)
        if result.soft:
            return CanonicalRelation(index, relation, result.soft, result.strict, result.margin)
    return None  # an exact tie on this axis: no direction holds, so no row


def canonical_relations(
    box_a: BoxLike,
    box_b: BoxLike,
    *,
    disparity: DisparityLike | None = None,
    tau: float = DEFAULT_TAU,
    depth_gap: float = DEFAULT_DEPTH_GAP,
) -> list[CanonicalRelation]:
    """The geometric rows of one pair: at most one per axis, each in its canonical direction.

    The subject of each row is the box that is left (``left_of``), upper (``above``) or nearer
    (``in_front_of``, only when ``disparity`` = ``(d_a, d_b)`` is given). An exact tie of the
    centres (or of the disparities) gives no row for that axis: neither direction holds softly.
    """
    a, b = as_box(box_a), as_box(box_b)
    tau, g = check_tau(tau), check_depth_gap(depth_gap)
    pair = None if disparity is None else as_disparity_pair(disparity)
    axes = [Axis.HORIZONTAL, Axis.VERTICAL] + ([Axis.DEPTH] if pair is not None else [])
    rows = (_canonical_row(CANONICAL[axis], a, b, pair, tau, g) for axis in axes)
    return [row for row in rows if row is not None]
