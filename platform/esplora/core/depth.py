"""Disparity maps: per-image min–max normalisation and per-box statistics.

Depth models (Depth Anything, MiDaS) predict relative inverse depth (disparity: larger is closer)
with an arbitrary per-image scale and shift, so every map is min–max normalised to [0, 1] before
any statistic (SPATIAL.md, "Depth values"). Per box the store keeps the median (ESPLoRA rule), the
mean (peer rules) and the 10th/90th percentiles.

Box pixel region: boxes are in pixel coordinates of the map, pixel ``(row i, col j)`` covering
``[j, j + 1) x [i, i + 1)``. A box holds the pixels whose **centre** ``(j + 0.5, i + 0.5)`` lies in
``[x0, x1) x [y0, y1)``, that is columns ``ceil(x0 - 0.5) .. ceil(x1 - 0.5) - 1`` (rows alike),
clipped to the map. Along an axis where that range is empty (a box thinner than a pixel, or off
the map) the box gets the one pixel nearest its centre, ``clip(floor(cx), 0, W - 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from esplora.core.boxes import BoxArrayLike, FloatArray, as_box_array
from esplora.core.errors import InvalidDisparity


@dataclass(frozen=True, slots=True)
class DepthStats:
    """Statistics of the normalised disparity inside one box (larger = closer)."""

    median: float
    mean: float
    p10: float
    p90: float


def _as_map(disparity: ArrayLike) -> FloatArray:
    arr = np.asarray(disparity, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0:
        raise InvalidDisparity(
            f"a disparity map must be a non-empty 2D array, got shape {arr.shape}"
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise InvalidDisparity(
            f"non-finite disparity {arr[row, col]!r} at pixel (row {row}, col {col})"
        )
    return arr


def normalise_disparity(disparity: ArrayLike) -> FloatArray:
    """Min–max normalise one image's disparity map to [0, 1] (a new float64 array).

    A constant map carries no depth order, so it becomes all zeros. Raises
    :class:`InvalidDisparity` for a map that is not 2D or holds a non-finite value.
    """
    arr = _as_map(disparity)
    lo, hi = arr.min(), arr.max()
    if hi == lo:
        return np.zeros_like(arr)
    out: FloatArray = arr - lo
    out /= hi - lo
    return out


def _axis_ranges(lo: FloatArray, hi: FloatArray, size: int) -> tuple[FloatArray, FloatArray]:
    """Pixel index ranges ``[start, stop)`` along one axis, per box (see the module docstring)."""
    start = np.clip(np.ceil(lo - 0.5), 0, size)
    stop = np.clip(np.ceil(hi - 0.5), 0, size)
    empty = start >= stop
    nearest = np.clip(np.floor((lo + hi) / 2), 0, size - 1)
    start[empty] = nearest[empty]
    stop[empty] = nearest[empty] + 1
    return start, stop


def pixel_regions(boxes: BoxArrayLike, shape: tuple[int, int]) -> NDArray[np.intp]:
    """Integer pixel ranges ``(row0, row1, col0, col1)`` of boxes in a map of ``shape``: ``(N, 4)``.

    Every range is non-empty (see the module docstring for the rounding).
    """
    arr = as_box_array(boxes)
    height, width = shape
    c0, c1 = _axis_ranges(arr[:, 0], arr[:, 2], width)
    r0, r1 = _axis_ranges(arr[:, 1], arr[:, 3], height)
    return np.stack([r0, r1, c0, c1], axis=1).astype(np.intp)


def box_depth_array(normalised: ArrayLike, boxes: BoxArrayLike) -> FloatArray:
    """Rows ``(median, mean, p10, p90)`` per box, ``(N, 4)``; see :func:`box_depth_stats`."""
    arr = _as_map(normalised)
    if (arr < 0).any():
        raise InvalidDisparity(f"disparities must be >= 0, the map's minimum is {arr.min()!r}")
    regions = pixel_regions(boxes, (arr.shape[0], arr.shape[1]))
    out = np.empty((regions.shape[0], 4), dtype=np.float64)
    for i, (r0, r1, c0, c1) in enumerate(regions.tolist()):
        values = arr[r0:r1, c0:c1]
        p10, p90 = np.percentile(values, (10, 90))
        out[i] = (np.median(values), values.mean(), p10, p90)
    return out


def box_depth_stats(normalised: ArrayLike, boxes: BoxArrayLike) -> list[DepthStats]:
    """Disparity statistics inside each box of a normalised map (boxes in the map's pixels).

    Percentiles use numpy's default linear interpolation; the median is ``np.median``. Raises
    :class:`InvalidDisparity` for a non-finite or negative map, :class:`InvalidBox` for a bad box.
    """
    return [DepthStats(*map(float, row)) for row in box_depth_array(normalised, boxes).tolist()]
