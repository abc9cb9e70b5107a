"""Disparity normalisation and per-box statistics (esplora.core.depth)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from esplora.core.boxes import Box
from esplora.core.depth import (
    DepthStats,
    box_depth_array,
    box_depth_stats,
    normalise_disparity,
    pixel_regions,
)
from esplora.core.errors import InvalidBox, InvalidDisparity


def test_normalise_min_max() -> None:
    raw = np.array([[2.0, 4.0], [6.0, 10.0]])
    out = normalise_disparity(raw)
    assert out.tolist() == [[0.0, 0.25], [0.5, 1.0]]
    assert raw.tolist() == [[2.0, 4.0], [6.0, 10.0]]  # the input is left alone


def test_normalise_accepts_negative_raw_values_and_ints() -> None:
    assert normalise_disparity([[-1, 1]]).tolist() == [[0.0, 1.0]]


def test_constant_map_becomes_zeros() -> None:
    assert normalise_disparity(np.full((3, 4), 7.5)).tolist() == np.zeros((3, 4)).tolist()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_maps_are_rejected_naming_the_pixel(bad: float) -> None:
    raw = np.zeros((3, 4))
    raw[1, 2] = bad
    with pytest.raises(InvalidDisparity, match=r"row 1, col 2"):
        normalise_disparity(raw)


@pytest.mark.parametrize("shape", [(0, 0), (5,), (2, 2, 2)])
def test_maps_must_be_non_empty_2d(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidDisparity):
        normalise_disparity(np.ones(shape))


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=12),
        elements=st.floats(-1e6, 1e6),
    )
)
def test_normalised_maps_span_zero_to_one_and_keep_order(raw: np.ndarray) -> None:
    out = normalise_disparity(raw)
    assert out.min() >= 0.0 and out.max() <= 1.0
    if raw.max() > raw.min():
        assert out.min() == 0.0 and out.max() == 1.0
    flat_raw, flat_out = raw.ravel(), out.ravel()
    order = np.argsort(flat_raw, kind="stable")
    assert np.all(np.diff(flat_out[order]) >= 0)


@pytest.mark.parametrize(
    ("box", "region"),
    [
        ((0, 0, 10, 8), (0, 8, 0, 10)),  # the whole map
        ((0.4, 0, 2.5, 1), (0, 1, 0, 2)),  # centre 0.5 >= 0.4 in; centre 2.5 not < 2.5
        ((0.6, 0, 2.6, 1), (0, 1, 1, 3)),  # centre 0.5 < 0.6 out; centre 2.5 < 2.6 in
        ((1.1, 1.1, 1.3, 1.3), (1, 2, 1, 2)),  # covers no pixel centre: the nearest pixel
        ((3.0, 2.0, 3.5, 7.0), (2, 7, 3, 4)),  # thin in x only: nearest column, full rows
        ((-5, -5, 0.2, 0.2), (0, 1, 0, 1)),  # off the map: clamped to the edge pixel
        ((9.9, 7.9, 12, 12), (7, 8, 9, 10)),
        ((-3, -3, 20, 20), (0, 8, 0, 10)),
    ],
)
def test_pixel_regions(box: tuple[float, ...], region: tuple[int, ...]) -> None:
    assert pixel_regions([box], (8, 10)).tolist() == [list(region)]


def test_box_depth_stats_on_a_ramp() -> None:
    ramp = np.tile(np.arange(10, dtype=np.float64) / 9, (4, 1))  # disparity grows to the right
    mixed: list[Box | tuple[float, ...]] = [(0, 0, 10, 4), Box(0, 0, 2, 4), (9, 0, 10, 4)]
    stats = box_depth_stats(ramp, mixed)
    full = ramp.ravel()
    assert stats[0] == DepthStats(
        float(np.median(full)),
        float(full.mean()),
        float(np.percentile(full, 10)),
        float(np.percentile(full, 90)),
    )
    assert stats[1].median == pytest.approx(0.5 / 9) and stats[1].p10 <= stats[1].p90
    assert stats[2] == DepthStats(1.0, 1.0, 1.0, 1.0)
    assert box_depth_array(ramp, []).shape == (0, 4)


@st.composite
def map_and_boxes(draw: st.DrawFn) -> tuple[np.ndarray, list[tuple[float, ...]]]:
    h, w = draw(st.integers(1, 15)), draw(st.integers(1, 15))
    depth = draw(hnp.arrays(np.float64, (h, w), elements=st.floats(0, 1)))
    coord = st.one_of(st.integers(-2, 17).map(float), st.floats(-2, 17))
    found: list[tuple[float, ...]] = []
    for _ in range(draw(st.integers(1, 5))):
        x0, y0 = draw(coord), draw(coord)
        found.append((x0, y0, x0 + draw(st.floats(0.01, 15)), y0 + draw(st.floats(0.01, 15))))
    return depth, found


@given(map_and_boxes())
def test_box_stats_match_a_pixel_centre_mask(
    case: tuple[np.ndarray, list[tuple[float, ...]]],
) -> None:
    depth, boxes = case
    h, w = depth.shape
    rows, cols = np.mgrid[0:h, 0:w] + 0.5
    for (x0, y0, x1, y1), stats in zip(boxes, box_depth_stats(depth, boxes), strict=True):
        mask = (cols >= x0) & (cols < x1) & (rows >= y0) & (rows < y1)
        values = depth[mask]
        if values.size == 0:
            continue  # the nearest-pixel fallback, covered by test_pixel_regions
        # the mask gives the values in the same row-major order as the region slice
        assert stats.median == float(np.median(values))
        assert stats.mean == pytest.approx(float(values.mean()), rel=1e-12, abs=1e-15)
        assert (stats.p10, stats.p90) == tuple(float(v) for v in np.percentile(values, (10, 90)))
        assert values.min() <= stats.p10 <= stats.median <= stats.p90 <= values.max()


def test_box_stats_reject_bad_input() -> None:
    with pytest.raises(InvalidDisparity, match=r"-0\.5"):
        box_depth_stats(np.array([[0.0, -0.5]]), [(0, 0, 1, 1)])
    with pytest.raises(InvalidDisparity):
        box_depth_stats(np.array([[0.0, math.nan]]), [(0, 0, 1, 1)])
    with pytest.raises(InvalidBox, match="row 1"):
        box_depth_stats(np.zeros((4, 4)), [(0, 0, 1, 1), (2, 0, 1, 1)])
