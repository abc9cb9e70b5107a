"""CoMPaSS's SCOP pair filter and its relation label (compass-scop)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esplora.core.boxes import Box, as_box, as_box_array
from esplora.core.errors import InvalidBox, InvalidParameter
from esplora.core.relations import INVERSE, Relation
from esplora.core.rules import CompassScop, get_pair_filter

SCOP = get_pair_filter("compass-scop")
coord = st.one_of(st.integers(0, 300).map(float), st.floats(0, 500))
extent = st.one_of(st.integers(1, 200).map(float), st.floats(1, 300))


@st.composite
def boxes(draw: st.DrawFn) -> Box:
    x0, y0 = draw(coord), draw(coord)
    return as_box((x0, y0, x0 + draw(extent), y0 + draw(extent)))


@pytest.mark.parametrize(
    ("subject", "obj", "image", "kept"),
    [
        ((0, 0, 40, 40), (50, 0, 90, 40), (100, 100), True),  # a good pair
        ((0, 0, 32, 32), (40, 0, 72, 32), (64, 64), True),  # area exactly 1024 is enough
        ((0, 0, 31, 33), (40, 0, 80, 40), (64, 64), False),  # 1023 px² < 1024
        ((0, 0, 40, 40), (50, 0, 90, 40), (200, 100), False),  # 3200 < 0.2 · 20000
        ((0, 0, 30, 40), (100, 0, 130, 40), (130, 40), True),  # distance 100 = 2 · diagonal 50
        ((0, 0, 30, 40), (101, 0, 131, 40), (131, 40), False),  # distance 101 > 100
        ((0, 0, 40, 40), (20, 0, 60, 40), (60, 40), False),  # intersection 800 >= 0.3 · 1600
        ((0, 0, 40, 40), (30, 0, 70, 40), (70, 40), True),  # intersection 400 < 480
        ((0, 0, 80, 80), (90, 0, 170, 40), (170, 80), True),  # areas 6400 / 3200: ratio 0.5
        ((0, 0, 80, 80), (90, 0, 169, 40), (170, 80), False),  # ratio just under 0.5
    ],
)
def test_accept_cases(
    subject: tuple[float, ...], obj: tuple[float, ...], image: tuple[int, int], kept: bool
) -> None:
    assert SCOP.accept(subject, obj, image_size=image) is kept
    assert SCOP.accept(obj, subject, image_size=image) is kept  # the filter is symmetric
    assert SCOP.accept_many([subject], [obj], image_size=image).tolist() == [kept]


def test_same_category_is_rejected() -> None:
    pair = ((0, 0, 40, 40), (50, 0, 90, 40))
    assert not SCOP.accept(*pair, image_size=(100, 100), same_category=True)
    assert SCOP.accept_many(
        [pair[0]] * 2, [pair[1]] * 2, image_size=(100, 100), same_category=[True, False]
    ).tolist() == [False, True]
    with pytest.raises(InvalidParameter):
        SCOP.accept_many([pair[0]], [pair[1]], image_size=(100, 100), same_category=[1, 0])


@pytest.mark.parametrize(
    ("subject", "obj", "label"),
    [
        ((0, 0, 40, 40), (50, 0, 90, 40), ["left_of"]),  # x_ov 0 < y_ov 1
        ((50, 0, 90, 40), (0, 0, 40, 40), ["right_of"]),
        ((0, 0, 40, 40), (0, 50, 40, 90), ["above"]),  # x_ov 1, y_ov 0
        ((0, 50, 40, 90), (0, 0, 40, 40), ["below"]),
        ((0, 0, 40, 40), (50, 50, 90, 90), ["left_of", "above"]),  # both overlaps < 1/3
        ((0, 0, 40, 40), (30, 50, 70, 90), ["left_of", "above"]),  # x_ov 0.25 < 1/3
        ((0, 0, 40, 40), (20, 50, 60, 90), ["above"]),  # x_ov 0.5 >= 1/3, y_ov 0
        ((0, 0, 40, 40), (20, 10, 60, 50), ["left_of"]),  # x_ov 0.5 < y_ov 0.75: less x overlap
        # a centre tie counts as right / below: identical boxes have both overlaps 1 -> below
        ((0, 0, 40, 40), (0, 0, 40, 40), ["below"]),
        ((10, 10, 30, 30), (0, 0, 40, 40), ["below"]),  # concentric
    ],
)
def test_label_cases(subject: tuple[float, ...], obj: tuple[float, ...], label: list[str]) -> None:
    result = SCOP.label(subject, obj)
    assert result == label
    assert all(isinstance(r, Relation) for r in result)


def test_label_with_equal_overlaps_picks_the_vertical_axis() -> None:
    # x_ov == y_ov == 0.5: not x_ov < y_ov, so above/below
    assert SCOP.label((0, 0, 40, 40), (20, 20, 60, 60)) == ["above"]


def test_label_tie_on_one_axis_counts_as_right() -> None:
    # the centre tie on x only matters when both overlaps are small; a custom threshold shows it
    scop = get_pair_filter("compass-scop", both_axes_overlap=1.5)
    assert scop.label((0, 0, 40, 40), (0, 50, 40, 90)) == ["right_of", "above"]


@given(boxes(), boxes())
def test_label_is_antisymmetric_without_ties(a: Box, b: Box) -> None:
    forward, backward = SCOP.label(a, b), SCOP.label(b, a)
    if a.cx != b.cx and a.cy != b.cy:
        assert [INVERSE[Relation(r)] for r in forward] == backward


@given(
    st.lists(st.tuples(boxes(), boxes(), st.booleans()), min_size=1, max_size=30),
    st.integers(50, 800),
    st.integers(50, 800),
)
def test_accept_many_agrees_with_accept(
    rows: list[tuple[Box, Box, bool]], width: int, height: int
) -> None:
    subjects = as_box_array([r[0] for r in rows])
    objects = as_box_array([r[1] for r in rows])
    same = [r[2] for r in rows]
    many = SCOP.accept_many(subjects, objects, image_size=(width, height), same_category=same)
    one = [SCOP.accept(s, o, image_size=(width, height), same_category=c) for s, o, c in rows]
    assert many.tolist() == one


def test_thresholds_are_parameters() -> None:
    pair = ((0, 0, 40, 40), (50, 0, 90, 40))
    assert SCOP.accept(*pair, image_size=(100, 100))
    assert not get_pair_filter("compass-scop", min_box_area=2000).accept(
        *pair, image_size=(100, 100)
    )
    assert get_pair_filter("compass-scop", min_total_area=0.0).accept(*pair, image_size=(1e4, 1e4))
    custom = get_pair_filter("compass-scop", max_centre_distance=0.5)
    assert not custom.accept(*pair, image_size=(100, 100))
    assert isinstance(custom, CompassScop) and custom.max_centre_distance == 0.5
    assert SCOP == CompassScop()


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"min_box_area": -1}, "-1"),
        ({"max_intersection": math.nan}, "nan"),
        ({"min_area_ratio": "half"}, "half"),
        ({"min_areaa": 3}, "min_areaa"),
    ],
)
def test_bad_thresholds(params: dict[str, object], shown: str) -> None:
    with pytest.raises(InvalidParameter, match=shown):
        get_pair_filter("compass-scop", **params)


def test_unknown_filter_and_bad_input() -> None:
    with pytest.raises(ValueError, match="compass-scop"):
        get_pair_filter("scop")
    with pytest.raises(InvalidParameter):
        SCOP.accept((0, 0, 40, 40), (50, 0, 90, 40), image_size=(0, 100))
    with pytest.raises(InvalidParameter):
        SCOP.accept((0, 0, 40, 40), (50, 0, 90, 40), image_size=(100,))  # type: ignore[arg-type]
    with pytest.raises(InvalidBox):
        SCOP.accept((40, 0, 0, 40), (50, 0, 90, 40), image_size=(100, 100))
    with pytest.raises(InvalidBox):
        SCOP.label((0, 0, 40, math.nan), (50, 0, 90, 40))
