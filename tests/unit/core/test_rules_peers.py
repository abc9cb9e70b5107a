"""Peer rules (t2i-compbench, geneval, visor): SPATIAL.md cases, the published code, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from esplora.core.boxes import Box, as_box, as_box_array
from esplora.core.errors import InvalidDisparity, InvalidParameter, UnsupportedRelation
from esplora.core.relations import DEPTH_RELATIONS, Relation
from esplora.core.rules import Rule, get_rule

coord = st.one_of(
    st.integers(-400, 400).map(float),
    st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
)
extent = st.one_of(st.integers(1, 400).map(float), st.floats(1e-3, 1e4))
disparity = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0, 1))


@st.composite
def boxes(draw: st.DrawFn) -> Box:
    x0, y0 = draw(coord), draw(coord)
    return as_box((x0, y0, x0 + draw(extent), y0 + draw(extent)))


# --- the peers' published code, transcribed as executable references --------------------------


def _t2i_iou(b1: dict[str, float], b2: dict[str, float]) -> float:
    # T2I-CompBench calculate_iou
    x1, y1 = max(b1["x_min"], b2["x_min"]), max(b1["y_min"], b2["y_min"])
    x2, y2 = min(b1["x_max"], b2["x_max"]), min(b1["y_max"], b2["y_max"])
    intersection = max(0, x2 - x1) * max(0, y2 - y1)
    area1 = (b1["x_max"] - b1["x_min"]) * (b1["y_max"] - b1["y_min"])
    area2 = (b2["x_max"] - b2["x_min"]) * (b2["y_max"] - b2["y_min"])
    return intersection / (area1 + area2 - intersection)


def t2i_reference(locality: str, a: Box, b: Box, depth: tuple[float, float] = (0, 0)) -> float:
    """T2I-CompBench ``determine_position`` (2D) and T2I-CompBench++'s 3D branch, as published."""
    box1 = {"x_min": a.x0, "y_min": a.y0, "x_max": a.x1, "y_max": a.y1}
    box2 = {"x_min": b.x0, "y_min": b.y0, "x_max": b.x1, "y_max": b.y1}
    c1 = ((box1["x_min"] + box1["x_max"]) / 2, (box1["y_min"] + box1["y_max"]) / 2)
    c2 = ((box2["x_min"] + box2["x_max"]) / 2, (box2["y_min"] + box2["y_max"]) / 2)
    x_distance, y_distance = c2[0] - c1[0], c2[1] - c1[1]
    iou = _t2i_iou(box1, box2)
    score: float = 0
    if locality in ("next to", "on side of", "near"):
        if abs(x_distance) < 150 or abs(y_distance) < 150:
            score = 1
        else:
            score = 150 / max(abs(x_distance), abs(y_distance))
    elif locality in ("on the right of", "on the left of", "on the bottom of", "on the top of"):
        main, other = (
            (x_distance, y_distance) if "right" in locality or "left" in locality
            else (y_distance, x_distance)
        )  # fmt: skip
        positive = locality in ("on the left of", "on the top of")
        if (main > 0) if positive else (main < 0):
            if abs(main) > abs(other) and iou < 0.1:
                score = 1
            elif abs(main) > abs(other) and iou >= 0.1:
                score = 0.1 / iou
    elif locality in ("in front of", "behind"):
        d1, d2 = depth
        ordered = d1 > d2 if locality == "in front of" else d1 < d2
        if iou > 0.5:
            score = 1 if ordered else 0
        elif iou < 0.5 and iou > 0:
            score = iou / 0.5 if ordered else 0
        else:
            score = 0
    return float(score)


def geneval_reference(a: Box, b: Box) -> set[str]:
    """GenEval ``relative_position`` (evaluate_images.py), as published."""
    boxes = np.array([a.as_tuple(), b.as_tuple()])[:, :4].reshape(2, 2, 2)
    center_a, center_b = boxes.mean(axis=-2)
    dim_a, dim_b = np.abs(np.diff(boxes, axis=-2))[..., 0, :]
    offset = center_a - center_b
    revised_offset = np.maximum(np.abs(offset) - 0.1 * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised_offset) < 1e-3):
        return set()
    dx, dy = revised_offset / np.linalg.norm(offset)
    relations = set()
    if dx < -0.5:
        relations.add("left of")
    if dx > 0.5:
        relations.add("right of")
    if dy < -0.5:
        relations.add("above")
    if dy > 0.5:
        relations.add("below")
    return relations


T2I_LOCALITY = {
    Relation.LEFT_OF: "on the left of",
    Relation.RIGHT_OF: "on the right of",
    Relation.ABOVE: "on the top of",
    Relation.BELOW: "on the bottom of",
    Relation.NEAR: "near",
    Relation.IN_FRONT_OF: "in front of",
    Relation.BEHIND: "behind",
}
GENEVAL_NAME = {
    Relation.LEFT_OF: "left of",
    Relation.RIGHT_OF: "right of",
    Relation.ABOVE: "above",
    Relation.BELOW: "below",
}

# --- t2i-compbench ----------------------------------------------------------------------------

T2I = get_rule("t2i-compbench")
SQ = (0, 0, 100, 100)


@pytest.mark.parametrize(
    ("relation", "subject", "obj", "disp", "expected"),
    [
        (Relation.LEFT_OF, SQ, (200, 0, 300, 100), None, 1.0),  # iou 0 < 0.1
        (Relation.LEFT_OF, SQ, (50, 0, 150, 100), None, 0.1 / (1 / 3)),  # iou 1/3 -> 0.1/iou
        (Relation.LEFT_OF, SQ, (200, 300, 300, 400), None, 0.0),  # |dy| > |dx|
        (Relation.LEFT_OF, SQ, (200, 200, 300, 300), None, 0.0),  # |dx| == |dy|: not greater
        (Relation.RIGHT_OF, (200, 0, 300, 100), SQ, None, 1.0),
        (Relation.RIGHT_OF, SQ, (200, 0, 300, 100), None, 0.0),
        (Relation.ABOVE, SQ, (0, 200, 100, 300), None, 1.0),  # "on the top of": dy > 0
        (Relation.BELOW, (0, 200, 100, 300), SQ, None, 1.0),
        (Relation.BELOW, SQ, (0, 200, 100, 300), None, 0.0),
        (Relation.LEFT_OF, SQ, SQ, None, 0.0),  # identical: no direction
        (Relation.NEAR, SQ, (149, 500, 249, 600), None, 1.0),  # |dx| = 149 < 150
        (Relation.NEAR, SQ, (150, 500, 250, 600), None, 150 / 500),
        (Relation.NEAR, SQ, (300, 150, 400, 250), None, 0.5),  # both >= 150 -> 150 / 300
        # in_front_of: iou > 0.5 -> 1 when d_A > d_B
        (Relation.IN_FRONT_OF, SQ, (0, 0, 100, 90), (0.9, 0.1), 1.0),
        (Relation.IN_FRONT_OF, SQ, (0, 0, 100, 90), (0.1, 0.9), 0.0),
        (Relation.BEHIND, SQ, (0, 0, 100, 90), (0.1, 0.9), 1.0),
        # iou exactly 0.5 -> 0 (the published code's gap)
        (Relation.IN_FRONT_OF, SQ, (0, 0, 50, 100), (0.9, 0.1), 0.0),
        (Relation.BEHIND, SQ, (0, 0, 50, 100), (0.1, 0.9), 0.0),
        # 0 < iou < 0.5 -> iou / 0.5
        (Relation.IN_FRONT_OF, SQ, (50, 0, 150, 100), (0.9, 0.1), (1 / 3) / 0.5),
        (Relation.BEHIND, SQ, (50, 0, 150, 100), (0.9, 0.1), 0.0),
        # no overlap -> 0 whatever the depth
        (Relation.IN_FRONT_OF, SQ, (200, 0, 300, 100), (0.9, 0.1), 0.0),
        # equal disparities -> 0
        (Relation.IN_FRONT_OF, SQ, SQ, (0.5, 0.5), 0.0),
    ],
)
def test_t2i_compbench_cases(
    relation: Relation,
    subject: tuple[float, ...],
    obj: tuple[float, ...],
    disp: tuple[float, float] | None,
    expected: float,
) -> None:
    assert T2I.score(relation, subject, obj, disparity=disp) == pytest.approx(expected, rel=1e-15)
    many = T2I.score_many(relation, [subject], [obj], disparity=None if disp is None else [disp])
    assert many.tolist() == [T2I.score(relation, subject, obj, disparity=disp)]


@given(st.sampled_from(sorted(Relation)), boxes(), boxes(), disparity, disparity)
def test_t2i_compbench_matches_published_code(
    relation: Relation, a: Box, b: Box, d_a: float, d_b: float
) -> None:
    expected = t2i_reference(T2I_LOCALITY[relation], a, b, (d_a, d_b))
    assert T2I.score(relation, a, b, disparity=(d_a, d_b)) == expected


# --- geneval ----------------------------------------------------------------------------------

GENEVAL = get_rule("geneval")


@pytest.mark.parametrize(
    ("subject", "obj", "holds"),
    [
        (SQ, (200, 0, 300, 100), {Relation.LEFT_OF}),
        ((200, 0, 300, 100), SQ, {Relation.RIGHT_OF}),
        (SQ, (0, 200, 100, 300), {Relation.ABOVE}),
        (SQ, (200, 200, 300, 300), {Relation.LEFT_OF, Relation.ABOVE}),  # diagonal: both
        (SQ, (15, 0, 115, 100), set()),  # |off| = 15 < 0.1 * (100 + 100): revised to 0
        (SQ, (60, 0, 160, 100), {Relation.LEFT_OF}),  # rev 40 / |off| 60 = 0.67 > 0.5
        (SQ, (35, 0, 135, 100), set()),  # rev 15 / |off| 35 = 0.43: too close to call
        (SQ, SQ, set()),
        # the 1e-3 floor: tiny boxes (0.001 wide), offset 0.0011 -> |rev| 0.0009 < 1e-3
        ((0, 0, 0.001, 0.001), (0.0011, 0, 0.0021, 0.001), set()),
        ((0, 0, 0.001, 0.001), (0.0015, 0, 0.0025, 0.001), {Relation.LEFT_OF}),
    ],
)
def test_geneval_cases(
    subject: tuple[float, ...], obj: tuple[float, ...], holds: set[Relation]
) -> None:
    a, b = as_box(subject), as_box(obj)
    assert {r for r in GENEVAL.relations if GENEVAL.score(r, a, b) == 1.0} == holds
    assert {GENEVAL_NAME[r] for r in holds} == geneval_reference(a, b)


@given(boxes(), boxes())
def test_geneval_matches_published_code(a: Box, b: Box) -> None:
    found = {GENEVAL_NAME[r] for r in GENEVAL.relations if GENEVAL.score(r, a, b) == 1.0}
    assert found == geneval_reference(a, b)


# --- visor ------------------------------------------------------------------------------------

VISOR = get_rule("visor")


@pytest.mark.parametrize(
    ("relation", "subject", "obj", "expected"),
    [
        (Relation.LEFT_OF, SQ, (1, 0, 101, 100), 1.0),  # any centre difference, overlap ignored
        (Relation.RIGHT_OF, SQ, (1, 0, 101, 100), 0.0),
        (Relation.LEFT_OF, SQ, (-50, 0, 150, 100), 0.0),  # centre tie: neither
        (Relation.RIGHT_OF, SQ, (-50, 0, 150, 100), 0.0),
        (Relation.ABOVE, SQ, (0, 1, 100, 101), 1.0),
        (Relation.BELOW, (0, 1, 100, 101), SQ, 1.0),
    ],
)
def test_visor_cases(
    relation: Relation, subject: tuple[float, ...], obj: tuple[float, ...], expected: float
) -> None:
    assert VISOR.score(relation, subject, obj) == expected


@given(boxes(), boxes())
def test_visor_agrees_with_esplora_soft(a: Box, b: Box) -> None:
    soft = get_rule("esplora-soft")
    for relation in VISOR.relations:
        assert VISOR.score(relation, a, b) == soft.score(relation, a, b)


# --- every rule: scalar == vectorised, unsupported relations, parameters ----------------------

ALL_RULES = ["esplora-soft", "esplora-strict", "t2i-compbench", "geneval", "visor"]


@pytest.mark.parametrize("name", ALL_RULES)
@given(
    data=st.data(),
    rows=st.lists(st.tuples(boxes(), boxes(), disparity, disparity), min_size=1, max_size=25),
)
def test_scalar_and_vectorised_agree_for_every_rule(
    name: str, data: st.DataObject, rows: list[tuple[Box, Box, float, float]]
) -> None:
    rule: Rule = get_rule(name)
    relation = data.draw(st.sampled_from(sorted(rule.relations)))
    subjects = as_box_array([r[0] for r in rows])
    objects = as_box_array([r[1] for r in rows])
    disp = np.array([(r[2], r[3]) for r in rows])
    many = rule.score_many(relation, subjects, objects, disparity=disp)
    one = [rule.score(relation, s, o, disparity=(ds, do)) for s, o, ds, do in rows]
    assert many.dtype == np.float64 and many.shape == (len(rows),)
    assert many.tolist() == one
    assert all(0.0 <= v <= 1.0 for v in one)


@pytest.mark.parametrize(
    ("name", "relation"),
    [
        ("geneval", Relation.NEAR),
        ("geneval", Relation.IN_FRONT_OF),
        ("visor", Relation.BEHIND),
        ("visor", Relation.NEAR),
    ],
)
def test_unsupported_relations(name: str, relation: Relation) -> None:
    rule = get_rule(name)
    with pytest.raises(UnsupportedRelation) as err:
        rule.score(relation, SQ, SQ, disparity=(0.1, 0.2))
    assert (err.value.rule, err.value.relation) == (name, relation.value)
    with pytest.raises(UnsupportedRelation):
        rule.score_many(relation, [SQ], [SQ], disparity=[(0.1, 0.2)])


@pytest.mark.parametrize("relation", sorted(DEPTH_RELATIONS))
def test_t2i_depth_needs_disparity(relation: Relation) -> None:
    with pytest.raises(InvalidDisparity):
        T2I.score(relation, SQ, SQ)
    with pytest.raises(InvalidDisparity):
        T2I.score_many(relation, [SQ], [SQ], disparity=[(0.1, -1.0)])


@pytest.mark.parametrize("name", ["t2i-compbench", "geneval", "visor"])
def test_peers_take_no_parameters(name: str) -> None:
    assert get_rule(name).name == name
    with pytest.raises(InvalidParameter, match="tau"):
        get_rule(name, tau=3)
