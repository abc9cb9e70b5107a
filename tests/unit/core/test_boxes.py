"""Boxes, overlaps, IoU, clipping and disparity validation (esplora.core.boxes)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from esplora.core.boxes import (
    Box,
    ClipReason,
    as_box,
    as_box_array,
    as_disparity,
    as_disparity_array,
    as_disparity_pair,
    clip_box,
    intersection_area,
    iou,
    iou_many,
    overlap_x,
    overlap_x_many,
    overlap_y,
    overlap_y_many,
)
from esplora.core.errors import InvalidBox, InvalidDisparity, InvalidParameter

coord = st.one_of(
    st.integers(-20, 20).map(float),  # a coarse grid, so ties and touching boxes occur
    st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
)
extent = st.one_of(st.integers(1, 20).map(float), st.floats(1e-3, 1e4))


@st.composite
def boxes(draw: st.DrawFn) -> Box:
    x0, y0 = draw(coord), draw(coord)
    return as_box((x0, y0, x0 + draw(extent), y0 + draw(extent)))


def test_box_geometry_follows_the_spec() -> None:
    b = as_box((1, 2, 5, 10))
    assert (b.w, b.h, b.cx, b.cy, b.area) == (4.0, 8.0, 3.0, 6.0, 32.0)
    assert b.as_tuple() == (1.0, 2.0, 5.0, 10.0)


def test_as_box_accepts_box_sequence_and_array() -> None:
    b = Box(0.0, 0.0, 1.0, 1.0)
    assert as_box(b) is b
    assert as_box([0, 0, 1, 1]) == b
    assert as_box(np.array([0, 0, 1, 1], dtype=np.float32)) == b


@pytest.mark.parametrize(
    "value",
    [
        (5, 0, 5, 1),  # x0 == x1
        (6, 0, 5, 1),  # x0 > x1
        (0, 3, 1, 3),  # y0 == y1
        (0, 0, math.nan, 1),
        (0, 0, math.inf, 1),
        (-math.inf, 0, 1, 1),
        (0, 0, 1),
        (0, 0, 1, 1, 1),
        ("a", 0, 1, 1),
        None,
    ],
)
def test_as_box_rejects_bad_boxes_naming_them(value: object) -> None:
    with pytest.raises(InvalidBox) as err:
        as_box(value)  # type: ignore[arg-type]
    assert repr(value) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_as_box_array_shapes() -> None:
    arr = as_box_array([[0, 0, 1, 1], [2, 2, 3, 4]])
    assert arr.dtype == np.float64 and arr.shape == (2, 4)
    assert as_box_array([]).shape == (0, 4)
    assert as_box_array(np.empty((0, 4))).shape == (0, 4)
    assert as_box_array([Box(0, 0, 1, 1), Box(1, 1, 2, 2)]).tolist() == [[0, 0, 1, 1], [1, 1, 2, 2]]
    same = np.array([[0.0, 0.0, 1.0, 1.0]])
    assert as_box_array(same) is same  # no copy when already valid float64
    huge = [[0.0, 0.0, 1e308, 1e308]] * 3  # finite, but their sum overflows
    assert as_box_array(huge).shape == (3, 4)
    assert as_disparity_array([[1e308, 1e308]] * 3).shape == (3, 2)


@pytest.mark.parametrize(
    ("rows", "index"),
    [
        ([[0, 0, 1, 1], [3, 0, 2, 1]], 1),
        ([[0, 0, 1, 1], [0, 0, 1, 1], [0, math.nan, 1, 1]], 2),
        ([[0, 0, math.inf, 1]], 0),
        ([[0, 2, 1, 2]], 0),
    ],
)
def test_as_box_array_names_the_first_bad_row(rows: list[list[float]], index: int) -> None:
    with pytest.raises(InvalidBox, match=rf"row {index}\b"):
        as_box_array(rows)


@pytest.mark.parametrize("value", [[0, 0, 1, 1], [[0, 0, 1]], np.zeros((2, 4, 1)), "box"])
def test_as_box_array_rejects_wrong_shapes(value: object) -> None:
    with pytest.raises(InvalidBox):
        as_box_array(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("a", "b", "ov_x", "ov_y", "expected_iou"),
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 10, 10, 1.0),  # identical
        ((0, 0, 10, 10), (10, 0, 20, 10), 0, 10, 0.0),  # touching
        ((0, 0, 10, 10), (20, 20, 30, 30), 0, 0, 0.0),  # apart
        ((0, 0, 10, 10), (2, 2, 4, 4), 2, 2, 0.04),  # nested
        ((0, 0, 20, 10), (0, 0, 10, 10), 10, 10, 0.5),
        ((0, 0, 10, 10), (5, 5, 15, 15), 5, 5, 25 / 175),
    ],
)
def test_overlaps_and_iou(
    a: tuple[float, ...], b: tuple[float, ...], ov_x: float, ov_y: float, expected_iou: float
) -> None:
    ba, bb = as_box(a), as_box(b)
    assert overlap_x(ba, bb) == ov_x and overlap_y(ba, bb) == ov_y
    assert intersection_area(ba, bb) == ov_x * ov_y
    assert iou(ba, bb) == pytest.approx(expected_iou, abs=0, rel=1e-15)


@given(st.lists(st.tuples(boxes(), boxes()), min_size=1, max_size=20))
def test_vectorised_overlaps_agree_bit_for_bit(pairs: list[tuple[Box, Box]]) -> None:
    a = as_box_array([p[0] for p in pairs])
    b = as_box_array([p[1] for p in pairs])
    assert overlap_x_many(a, b).tolist() == [overlap_x(*p) for p in pairs]
    assert overlap_y_many(a, b).tolist() == [overlap_y(*p) for p in pairs]
    assert iou_many(a, b).tolist() == [iou(*p) for p in pairs]


@given(boxes(), boxes())
def test_iou_is_symmetric_and_bounded(a: Box, b: Box) -> None:
    assert iou(a, b) == iou(b, a)
    assert 0.0 <= iou(a, b) <= 1.0


@pytest.mark.parametrize(
    ("coords", "reason", "kept"),
    [
        ((10, 10, 50, 50), ClipReason.KEPT, (10, 10, 50, 50)),
        ((0, 0, 100, 80), ClipReason.KEPT, (0, 0, 100, 80)),
        ((-10, 5, 50, 90), ClipReason.CLIPPED, (0, 5, 50, 80)),
        ((90, 70, 130, 95), ClipReason.CLIPPED, (90, 70, 100, 80)),
        ((110, 10, 150, 50), ClipReason.OUTSIDE, None),
        ((-20, 10, 0, 50), ClipReason.OUTSIDE, None),
        ((10, 10, 10.5, 50), ClipReason.TOO_SMALL, None),
        ((10, 10, 10, 50), ClipReason.TOO_SMALL, None),
        ((99.5, 10, 120, 50), ClipReason.TOO_SMALL, None),  # 0.5 px left inside
        ((10, 10, 11, 11), ClipReason.KEPT, (10, 10, 11, 11)),  # exactly 1 px is kept
        ((50, 10, 40, 50), ClipReason.INVERTED, None),
        ((math.nan, 10, 40, 50), ClipReason.NON_FINITE, None),
        ((0, 10, math.inf, 50), ClipReason.NON_FINITE, None),
    ],
)
def test_clip_box(
    coords: tuple[float, ...], reason: ClipReason, kept: tuple[float, ...] | None
) -> None:
    result = clip_box(coords, 100, 80)
    assert result.reason is reason
    assert result.kept == (kept is not None)
    assert (result.box.as_tuple() if result.box else None) == kept


def test_clip_box_min_size_and_bad_image() -> None:
    assert clip_box((0, 0, 3, 3), 10, 10, min_size=4).reason is ClipReason.TOO_SMALL
    for width, height in [(0, 10), (10, -1), (math.inf, 10), (math.nan, 10)]:
        with pytest.raises(InvalidParameter):
            clip_box((0, 0, 1, 1), width, height)
    with pytest.raises(InvalidParameter):
        clip_box((0, 0, 1, 1), 10, 10, min_size=-1)


@given(st.tuples(coord, coord, coord, coord), st.integers(1, 500), st.integers(1, 500))
def test_clipped_boxes_are_valid_and_inside(
    coords: tuple[float, float, float, float], width: int, height: int
) -> None:
    result = clip_box(coords, width, height)
    if result.box is not None:
        b = as_box(result.box)
        assert 0 <= b.x0 and b.x1 <= width and 0 <= b.y0 and b.y1 <= height
        assert b.w >= 1 and b.h >= 1


def test_disparity_validation() -> None:
    assert as_disparity_pair((0.5, 0)) == (0.5, 0.0)
    assert as_disparity(np.float32(0.25)) == 0.25
    assert as_disparity_array([[0.0, 1.0], [0.5, 0.5]]).shape == (2, 2)
    assert as_disparity_array([]).shape == (0, 2)


@pytest.mark.parametrize("pair", [(-0.1, 0.5), (0.5, math.nan), (math.inf, 0.1), ("x", 1)])
def test_bad_disparity_pairs_are_named(pair: tuple[object, object]) -> None:
    with pytest.raises(InvalidDisparity) as err:
        as_disparity_pair(pair)  # type: ignore[arg-type]
    bad = next(v for v in pair if not (isinstance(v, float) and 0 <= v < math.inf))
    assert repr(bad) in str(err.value)


@pytest.mark.parametrize("value", [None, (0.1,), (0.1, 0.2, 0.3), 0.5])
def test_disparity_pair_needs_two_values(value: object) -> None:
    with pytest.raises(InvalidDisparity):
        as_disparity_pair(value)  # type: ignore[arg-type]


def test_disparity_array_names_the_first_bad_row() -> None:
    with pytest.raises(InvalidDisparity, match=r"row 1\b.*-0\.5"):
        as_disparity_array([[0.1, 0.2], [0.3, -0.5], [math.nan, 0]])
    with pytest.raises(InvalidDisparity):
        as_disparity_array(None)
    with pytest.raises(InvalidDisparity):
        as_disparity_array([[0.1, 0.2, 0.3]])
