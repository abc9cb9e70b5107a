"""The ESPLoRA τ rule: the SPATIAL.md table, margins, properties, canonical rows and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from esplora.core.boxes import Box, as_box, as_box_array
from esplora.core.errors import (
    InvalidBox,
    InvalidDisparity,
    InvalidParameter,
    UnknownRelation,
    UnsupportedRelation,
)
from esplora.core.relations import DEPTH_RELATIONS, INVERSE, PLANAR, Relation
from esplora.core.rules import (
    RULE_NAMES,
    EsploraRule,
    RelationResult,
    canonical_relations,
    get_rule,
)
from esplora.core.rules.esplora import SUPPORTED, evaluate, evaluate_many

coord = st.one_of(
    st.integers(-20, 20).map(float),  # a coarse grid: ties, touching and exact τ boundaries
    st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
)
extent = st.one_of(st.integers(1, 20).map(float), st.floats(1e-3, 1e4))
disparity = st.one_of(
    st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.floats(0, 1), st.floats(0, 1e6)
)
taus = st.one_of(st.sampled_from([1.0, 1.5, 2.0, 3.0, 4.0, 5.0]), st.floats(1, 100))
gaps = st.one_of(st.sampled_from([0.25, 1 / 3, 0.5]), st.floats(1e-6, 1 - 1e-6))


@st.composite
def boxes(draw: st.DrawFn) -> Box:
    x0, y0 = draw(coord), draw(coord)
    return as_box((x0, y0, x0 + draw(extent), y0 + draw(extent)))


A = (0, 0, 10, 10)

# (relation, subject, object, disparity, tau, soft, strict, margin) — worked by hand from SPATIAL.md
TABLE = [
    # apart: m = 10, ov = 0, margin = min(20 / 10, (10/3 - 0) / 10)
    (Relation.LEFT_OF, A, (20, 0, 30, 10), None, 3.0, True, True, (10 / 3) / 10),
    (Relation.RIGHT_OF, A, (20, 0, 30, 10), None, 3.0, False, False, -2.0),
    # touching: ov = 0
    (Relation.LEFT_OF, A, (10, 0, 20, 10), None, 3.0, True, True, (10 / 3) / 10),
    # ov = 5 > 10/3: soft only; margin = (10/3 - 5) / 10
    (Relation.LEFT_OF, A, (5, 0, 15, 10), None, 3.0, True, False, (10 / 3 - 5) / 10),
    # exactly on the τ boundary: m = 30, ov = 10 = 30/3 -> strict (<=), margin 0
    (Relation.LEFT_OF, (0, 0, 30, 10), (20, 0, 50, 10), None, 3.0, True, True, 0.0),
    (Relation.LEFT_OF, (0, 0, 30, 10), (20, 0, 50, 10), None, 4.0, True, False, (7.5 - 10) / 30),
    # τ = 1: strict == soft even for heavy overlap
    (Relation.LEFT_OF, A, (1, 0, 11, 10), None, 1.0, True, True, 0.1),
    # identical boxes: no direction, margin = min(0, (10/3 - 10)/10) = -2/3
    (Relation.LEFT_OF, A, A, None, 3.0, False, False, (10 / 3 - 10) / 10),
    (Relation.BELOW, A, A, None, 3.0, False, False, (10 / 3 - 10) / 10),
    # nested: the small box's centre is left of the big one's, but it overlaps fully
    (Relation.LEFT_OF, (1, 4, 3, 6), (0, 0, 20, 10), None, 3.0, True, False, (2 / 3 - 2) / 2),
    # vertical (y down): subject higher up is above
    (Relation.ABOVE, (0, 0, 10, 4), (0, 10, 10, 30), None, 3.0, True, True, (4 / 3) / 4),
    (Relation.BELOW, (0, 10, 10, 30), (0, 0, 10, 4), None, 3.0, True, True, (4 / 3) / 4),
    (Relation.ABOVE, (0, 10, 10, 30), (0, 0, 10, 4), None, 3.0, False, False, -18 / 4),
    # depth: larger disparity = closer; g = 1/3 by default
    (Relation.IN_FRONT_OF, A, A, (0.9, 0.3), 3.0, True, True, 0.6 / 0.9 - 1 / 3),
    (Relation.IN_FRONT_OF, A, A, (0.9, 0.8), 3.0, True, False, (0.9 - 0.8) / 0.9 - 1 / 3),
    (Relation.BEHIND, A, A, (0.9, 0.3), 3.0, False, False, -0.6 / 0.9 - 1 / 3),
    (Relation.BEHIND, A, A, (0.3, 0.9), 3.0, True, True, 0.6 / 0.9 - 1 / 3),
    (Relation.IN_FRONT_OF, A, A, (0.5, 0.5), 3.0, False, False, -1 / 3),
    # zero disparity on both: D == 0 -> margin -g
    (Relation.IN_FRONT_OF, A, A, (0.0, 0.0), 3.0, False, False, -1 / 3),
    (Relation.BEHIND, A, A, (0.0, 0.0), 3.0, False, False, -1 / 3),
    # the farther object at disparity 0: any positive d_A is a full gap
    (Relation.IN_FRONT_OF, A, A, (1e-9, 0.0), 3.0, True, True, 1 - 1 / 3),
]


@pytest.mark.parametrize(
    ("relation", "subject", "obj", "disp", "tau", "soft", "strict", "margin"), TABLE
)
def test_spec_table(
    relation: Relation,
    subject: tuple[float, ...],
    obj: tuple[float, ...],
    disp: tuple[float, float] | None,
    tau: float,
    soft: bool,
    strict: bool,
    margin: float,
) -> None:
    result = evaluate(relation, subject, obj, disparity=disp, tau=tau)
    assert (result.soft, result.strict) == (soft, strict)
    assert result.margin == pytest.approx(margin, rel=1e-12, abs=1e-15)
    arrays = evaluate_many(
        relation, [subject], [obj], disparity=None if disp is None else [disp], tau=tau
    )
    assert (bool(arrays.soft[0]), bool(arrays.strict[0]), float(arrays.margin[0])) == (
        result.soft,
        result.strict,
        result.margin,
    )


def test_depth_gap_boundary_is_inclusive() -> None:
    # d_A - d_B = 0.5 = g * max(d_A, d_B) exactly in binary
    result = evaluate(Relation.IN_FRONT_OF, A, A, disparity=(1.0, 0.5), depth_gap=0.5)
    assert result == RelationResult(True, True, 0.0)


def test_scores_of_the_named_rules() -> None:
    soft, strict = get_rule("esplora-soft"), get_rule("esplora-strict")
    overlapping = ((0, 0, 10, 10), (5, 0, 15, 10))
    assert soft.score("left_of", *overlapping) == 1.0
    assert strict.score("left_of", *overlapping) == 0.0
    assert strict.score(Relation.LEFT_OF, A, (20, 0, 30, 10)) == 1.0
    assert soft.score_many("left_of", [overlapping[0]], [overlapping[1]]).tolist() == [1.0]
    assert strict.score_many("left_of", [overlapping[0]], [overlapping[1]]).tolist() == [0.0]
    assert (soft.name, strict.name) == ("esplora-soft", "esplora-strict")
    assert soft.relations == strict.relations == SUPPORTED == PLANAR | DEPTH_RELATIONS


def test_relation_names_are_parsed_leniently() -> None:
    assert evaluate("Left Of", A, (20, 0, 30, 10)).soft
    assert evaluate("in-front-of", A, A, disparity=(1, 0)).strict


def test_empty_batches() -> None:
    arrays = evaluate_many("left_of", np.empty((0, 4)), np.empty((0, 4)))
    assert arrays.soft.shape == arrays.strict.shape == arrays.margin.shape == (0,)
    assert get_rule("esplora-strict").score_many("behind", [], [], disparity=[]).shape == (0,)


# --- properties -------------------------------------------------------------------------------


@given(st.sampled_from(sorted(PLANAR - {Relation.NEAR})), boxes(), boxes(), taus)
def test_inverse_relations_agree(relation: Relation, a: Box, b: Box, tau: float) -> None:
    forward = evaluate(relation, a, b, tau=tau)
    backward = evaluate(INVERSE[relation], b, a, tau=tau)
    assert forward == backward  # soft, strict and margin bit for bit


@given(st.sampled_from(sorted(DEPTH_RELATIONS)), disparity, disparity, gaps)
def test_inverse_depth_relations_agree(
    relation: Relation, d_a: float, d_b: float, g: float
) -> None:
    forward = evaluate(relation, A, A, disparity=(d_a, d_b), depth_gap=g)
    backward = evaluate(INVERSE[relation], A, A, disparity=(d_b, d_a), depth_gap=g)
    assert forward == backward


@given(st.sampled_from(sorted(PLANAR)), boxes(), boxes())
def test_tau_one_makes_strict_equal_soft(relation: Relation, a: Box, b: Box) -> None:
    result = evaluate(relation, a, b, tau=1.0)
    assert result.strict == result.soft


@given(st.sampled_from(sorted(PLANAR)), boxes(), boxes(), taus, taus)
def test_larger_tau_is_never_more_permissive(
    relation: Relation, a: Box, b: Box, t1: float, t2: float
) -> None:
    low, high = sorted((t1, t2))
    loose, tight = evaluate(relation, a, b, tau=low), evaluate(relation, a, b, tau=high)
    assert loose.soft == tight.soft
    assert tight.strict <= loose.strict
    assert tight.margin <= loose.margin


@given(st.sampled_from(sorted(DEPTH_RELATIONS)), disparity, disparity, gaps, gaps)
def test_larger_depth_gap_is_never_more_permissive(
    relation: Relation, d_a: float, d_b: float, g1: float, g2: float
) -> None:
    low, high = sorted((g1, g2))
    loose = evaluate(relation, A, A, disparity=(d_a, d_b), depth_gap=low)
    tight = evaluate(relation, A, A, disparity=(d_a, d_b), depth_gap=high)
    assert tight.strict <= loose.strict and tight.soft == loose.soft


@given(boxes(), boxes(), taus)
def test_strict_implies_soft_and_positive_margin_implies_strict(a: Box, b: Box, tau: float) -> None:
    for relation in PLANAR:
        result = evaluate(relation, a, b, tau=tau)
        assert result.soft or not result.strict
        if result.margin > 0:
            assert result.strict


@given(
    st.sampled_from(sorted(SUPPORTED)),
    st.lists(st.tuples(boxes(), boxes(), disparity, disparity), min_size=1, max_size=30),
    taus,
    gaps,
)
def test_scalar_and_vectorised_agree_bit_for_bit(
    relation: Relation,
    rows: list[tuple[Box, Box, float, float]],
    tau: float,
    g: float,
) -> None:
    subjects = as_box_array([r[0] for r in rows])
    objects = as_box_array([r[1] for r in rows])
    disp = np.array([(r[2], r[3]) for r in rows])
    arrays = evaluate_many(relation, subjects, objects, disparity=disp, tau=tau, depth_gap=g)
    scalar = [
        evaluate(relation, s, o, disparity=(ds, do), tau=tau, depth_gap=g) for s, o, ds, do in rows
    ]
    assert arrays.soft.tolist() == [r.soft for r in scalar]
    assert arrays.strict.tolist() == [r.strict for r in scalar]
    assert arrays.margin.tolist() == [r.margin for r in scalar]
    for strict in (False, True):
        rule = EsploraRule(strict=strict, tau=tau, depth_gap=g)
        many = rule.score_many(relation, subjects, objects, disparity=disp)
        one = [rule.score(relation, s, o, disparity=(ds, do)) for s, o, ds, do in rows]
        assert many.dtype == np.float64 and many.tolist() == one


# --- canonical rows ----------------------------------------------------------------------------


def test_canonical_rows_of_a_pair() -> None:
    rows = canonical_relations((20, 0, 30, 10), (0, 5, 10, 15), disparity=(0.2, 0.9))
    assert [(r.subject_index, r.relation) for r in rows] == [
        (1, Relation.LEFT_OF),
        (0, Relation.ABOVE),
        (1, Relation.IN_FRONT_OF),
    ]
    left = evaluate("left_of", (0, 5, 10, 15), (20, 0, 30, 10))
    assert (rows[0].soft, rows[0].strict, rows[0].margin) == (left.soft, left.strict, left.margin)


def test_canonical_rows_skip_ties_and_missing_depth() -> None:
    assert canonical_relations(A, A, disparity=(0.5, 0.5)) == []
    rows = canonical_relations(A, (0, 20, 10, 30))  # same cx: no horizontal row, no depth
    assert [(r.subject_index, r.relation) for r in rows] == [(0, Relation.ABOVE)]


@given(boxes(), boxes(), disparity, disparity, taus, gaps)
def test_canonical_rows_match_evaluate_and_swap(
    a: Box, b: Box, d_a: float, d_b: float, tau: float, g: float
) -> None:
    rows = canonical_relations(a, b, disparity=(d_a, d_b), tau=tau, depth_gap=g)
    swapped = canonical_relations(b, a, disparity=(d_b, d_a), tau=tau, depth_gap=g)
    assert [(1 - r.subject_index, r.relation, r.strict, r.margin) for r in rows] == [
        (r.subject_index, r.relation, r.strict, r.margin) for r in swapped
    ]
    for row in rows:
        s, o = (a, b) if row.subject_index == 0 else (b, a)
        disp = (d_a, d_b) if row.subject_index == 0 else (d_b, d_a)
        result = evaluate(row.relation, s, o, disparity=disp, tau=tau, depth_gap=g)
        assert result.soft and row.soft
        assert (row.strict, row.margin) == (result.strict, result.margin)
    assume(a.cx != b.cx)
    assert any(r.relation is Relation.LEFT_OF for r in rows)


# --- bad input -----------------------------------------------------------------------------


def test_near_is_unsupported_and_names_rule_and_relation() -> None:
    for name in ("esplora-soft", "esplora-strict"):
        with pytest.raises(UnsupportedRelation) as err:
            get_rule(name).score("near", A, A)
        assert (err.value.rule, err.value.relation) == (name, "near")
        with pytest.raises(UnsupportedRelation):
            get_rule(name).score_many(Relation.NEAR, [A], [A])


def test_unknown_relation() -> None:
    with pytest.raises(UnknownRelation, match="on_top"):
        get_rule("esplora-strict").score("on_top", A, A)


@pytest.mark.parametrize("relation", sorted(DEPTH_RELATIONS))
def test_depth_needs_valid_disparity(relation: Relation) -> None:
    rule = get_rule("esplora-strict")
    with pytest.raises(InvalidDisparity):
        rule.score(relation, A, A)
    with pytest.raises(InvalidDisparity):
        rule.score_many(relation, [A], [A])
    with pytest.raises(InvalidDisparity, match=r"-0\.1"):
        rule.score(relation, A, A, disparity=(-0.1, 0.5))
    with pytest.raises(InvalidDisparity, match="nan"):
        rule.score(relation, A, A, disparity=(math.nan, 0.5))
    with pytest.raises(InvalidDisparity):
        rule.score_many(relation, [A, A], [A, A], disparity=[[0.1, 0.2]])


@pytest.mark.parametrize(
    "subject", [(10, 0, 0, 10), (0, 0, 10, 0), (0, 0, math.nan, 10), (0, 0, math.inf, 10)]
)
def test_bad_boxes(subject: tuple[float, ...]) -> None:
    rule = get_rule("esplora-strict")
    with pytest.raises(InvalidBox):
        rule.score("left_of", subject, A)
    with pytest.raises(InvalidBox, match="row 1"):
        rule.score_many("left_of", [A, subject], [A, A])


def test_mismatched_batch_lengths() -> None:
    with pytest.raises(InvalidBox, match="differ in length"):
        get_rule("esplora-strict").score_many("left_of", [A, A], [A])


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"tau": 0.5}, "0.5"),
        ({"tau": 0.999}, "0.999"),
        ({"tau": math.nan}, "nan"),
        ({"tau": math.inf}, "inf"),
        ({"tau": "3"}, "'3'"),
        ({"tau": True}, "True"),
        ({"depth_gap": 0}, "0"),
        ({"depth_gap": 1}, "1"),
        ({"depth_gap": -0.2}, "-0.2"),
        ({"depth_gap": math.nan}, "nan"),
        ({"taux": 2}, "taux"),
    ],
)
def test_bad_parameters_are_named(params: dict[str, object], shown: str) -> None:
    for name in ("esplora-soft", "esplora-strict"):
        with pytest.raises(InvalidParameter, match=shown):
            get_rule(name, **params)


def test_parameters_are_kept() -> None:
    rule = get_rule("esplora-strict", tau=5, depth_gap=0.25)
    assert isinstance(rule, EsploraRule)
    assert (rule.tau, rule.depth_gap) == (5.0, 0.25)
    assert get_rule("esplora-strict", tau=1).score("left_of", A, (1, 0, 11, 10)) == 1.0


def test_unknown_rule_lists_the_names() -> None:
    with pytest.raises(ValueError, match="esplora-strict") as err:
        get_rule("esplora")
    assert all(name in str(err.value) for name in RULE_NAMES)
