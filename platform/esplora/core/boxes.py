"""Boxes and disparities: validated values, overlaps, IoU and clipping.

A box is ``(x0, y0, x1, y1)`` in pixels, ``x0 < x1``, ``y0 < y1``, the y axis pointing down
(SPATIAL.md, "Conventions"). Everything here computes exactly as that page writes it (centres
as ``(x0 + x1) / 2``) so that scalar and vectorised paths agree bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from esplora.core.errors import InvalidBox, InvalidDisparity, InvalidParameter

FloatArray: TypeAlias = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in image pixels. Construct it with :func:`as_box` to validate it."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def w(self) -> float:
        """Width ``x1 - x0``."""
        return self.x1 - self.x0

    @property
    def h(self) -> float:
        """Height ``y1 - y0``."""
        return self.y1 - self.y0

    @property
    def cx(self) -> float:
        """Horizontal centre ``(x0 + x1) / 2``."""
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        """Vertical centre ``(y0 + y1) / 2``."""
        return (self.y0 + self.y1) / 2

    @property
    def area(self) -> float:
        """Area ``w * h``."""
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def as_tuple(self) -> tuple[float, float, float, float]:
        """The four coordinates ``(x0, y0, x1, y1)``."""
        return (self.x0, self.y0, self.x1, self.y1)


BoxLike: TypeAlias = Box | Sequence[float] | NDArray[np.floating]
DisparityPair: TypeAlias = tuple[float, float]
BoxArrayLike: TypeAlias = ArrayLike | Sequence[Box | Sequence[float]]


def _box_is_valid(x0: float, y0: float, x1: float, y1: float) -> bool:
    # NaN fails every comparison, so ``x0 < x1`` rejects it; isfinite rejects the infinities.
    return all(map(math.isfinite, (x0, y0, x1, y1))) and x0 < x1 and y0 < y1


def as_box(value: BoxLike) -> Box:
    """Return ``value`` as a validated :class:`Box`.

    Accepts a :class:`Box` or any sequence of four numbers. Raises :class:`InvalidBox` naming the
    value when a coordinate is not finite or when ``x0 >= x1`` or ``y0 >= y1``.
    """
    if isinstance(value, Box):
        coords = value.as_tuple()
    else:
        try:
            x0, y0, x1, y1 = (float(v) for v in value)
        except (TypeError, ValueError):
            raise InvalidBox(f"box {value!r} is not four numbers (x0, y0, x1, y1)") from None
        coords = (x0, y0, x1, y1)
    if not _box_is_valid(*coords):
        raise InvalidBox(f"invalid box {value!r}: need finite x0 < x1 and y0 < y1")
    return value if isinstance(value, Box) else Box(*coords)


def _to_float_array(a: BoxArrayLike, columns: int, error: type[ValueError]) -> FloatArray:
    if isinstance(a, Sequence) and any(isinstance(b, Box) for b in a):
        a = [b.as_tuple() if isinstance(b, Box) else b for b in a]
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise error(f"cannot read {a!r} as numbers: {exc}") from None
    if arr.shape in ((0,), (0, columns)):
        return arr.reshape(0, columns)
    if arr.ndim != 2 or arr.shape[1] != columns:
        raise error(f"expected an array of shape (N, {columns}), got shape {arr.shape}")
    return arr


def _sum_is_finite(arr: FloatArray) -> bool:
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(arr.sum()))


def as_box_array(a: BoxArrayLike) -> FloatArray:
    """Return ``a`` as a validated ``(N, 4)`` float64 array of boxes (no copy when already one).

    Raises :class:`InvalidBox` naming the first bad row's index and value.
    """
    arr = _to_float_array(a, 4, InvalidBox)
    ok = arr[:, 0] < arr[:, 2]
    ok &= arr[:, 1] < arr[:, 3]
    # Fast path: a NaN or an infinity makes the sum non-finite, and summing is one cheap pass with
    # no (N, 4) temporary. A finite sum that overflows only sends us to the exact check below.
    if _sum_is_finite(arr) and ok.all():
        return arr
    ok &= np.isfinite(arr).all(axis=1)
    if not ok.all():
        i = int(np.argmin(ok))
        raise InvalidBox(f"invalid box at row {i}: {arr[i].tolist()}: need finite x0 < x1, y0 < y1")
    return arr


def overlap_x(a: Box, b: Box) -> float:
    """Horizontal overlap ``max(0, min(x1_A, x1_B) - max(x0_A, x0_B))``."""
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))


def overlap_y(a: Box, b: Box) -> float:
    """Vertical overlap ``max(0, min(y1_A, y1_B) - max(y0_A, y0_B))``."""
    return max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))


def intersection_area(a: Box, b: Box) -> float:
    """Area of the intersection, ``overlap_x * overlap_y``."""
    return overlap_x(a, b) * overlap_y(a, b)


def iou(a: Box, b: Box) -> float:
    """Intersection over union, ``inter / (area_A + area_B - inter)``.

    The order of operations is T2I-CompBench's ``calculate_iou``, so the peer rule is bit-exact.
    """
    inter = intersection_area(a, b)
    return inter / (a.area + b.area - inter)


def overlap_x_many(a: FloatArray, b: FloatArray) -> FloatArray:
    """Vectorised :func:`overlap_x` over rows of two ``(N, 4)`` arrays."""
    ov = np.minimum(a[:, 2], b[:, 2])
    ov -= np.maximum(a[:, 0], b[:, 0])
    return np.maximum(ov, 0.0, out=ov)


def overlap_y_many(a: FloatArray, b: FloatArray) -> FloatArray:
    """Vectorised :func:`overlap_y` over rows of two ``(N, 4)`` arrays."""
    ov = np.minimum(a[:, 3], b[:, 3])
    ov -= np.maximum(a[:, 1], b[:, 1])
    return np.maximum(ov, 0.0, out=ov)


def iou_many(a: FloatArray, b: FloatArray) -> FloatArray:
    """Vectorised :func:`iou` over rows of two ``(N, 4)`` arrays (same order of operations)."""
    inter = overlap_x_many(a, b) * overlap_y_many(a, b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    result: FloatArray = inter / (area_a + area_b - inter)
    return result


# --- clipping at detection time ------------------------------------------------------------


class ClipReason(StrEnum):
    """Why :func:`clip_box` kept, changed or dropped a detector's box (recorded by detectors)."""

    KEPT = "kept"  # inside the image and large enough: unchanged
    CLIPPED = "clipped"  # partly outside: clipped to the image, still large enough
    NON_FINITE = "non_finite"  # a NaN or infinite coordinate
    INVERTED = "inverted"  # x1 < x0 or y1 < y0 as emitted
    OUTSIDE = "outside"  # no area left inside the image
    TOO_SMALL = "too_small"  # width or height under ``min_size`` after clipping


@dataclass(frozen=True, slots=True)
class ClipResult:
    """The outcome of :func:`clip_box`: the box to keep (``None`` when dropped) and why."""

    box: Box | None
    reason: ClipReason

    @property
    def kept(self) -> bool:
        """Whether a box survives."""
        return self.box is not None


def _drop_reason(x0: float, y0: float, x1: float, y1: float) -> ClipReason | None:
    if not all(map(math.isfinite, (x0, y0, x1, y1))):
        return ClipReason.NON_FINITE
    if x1 < x0 or y1 < y0:
        return ClipReason.INVERTED
    return None


def clip_box(
    coords: Sequence[float], width: float, height: float, min_size: float = 1.0
) -> ClipResult:
    """Clip a raw detector box to ``[0, width] x [0, height]``; drop it under ``min_size``.

    ``coords`` is ``(x0, y0, x1, y1)`` as the detector emitted it (it may be degenerate). A box
    whose clipped width or height is below ``min_size`` pixels is dropped, so the core never sees
    it. Raises :class:`InvalidParameter` for a non-positive image size or a negative ``min_size``.
    """
    if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
        raise InvalidParameter(f"image size must be finite and positive, got {(width, height)!r}")
    if not (min_size >= 0 and math.isfinite(min_size)):
        raise InvalidParameter(f"min_size must be finite and >= 0, got {min_size!r}")
    x0, y0, x1, y1 = (float(v) for v in coords)
    reason = _drop_reason(x0, y0, x1, y1)
    if reason is not None:
        return ClipResult(None, reason)
    cx0, cy0 = min(max(x0, 0.0), width), min(max(y0, 0.0), height)
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    if cx1 - cx0 <= 0 or cy1 - cy0 <= 0:
        # Touching the border counts as outside: nothing of the box is in the image.
        clipped_away = (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1)
        return ClipResult(None, ClipReason.OUTSIDE if clipped_away else ClipReason.TOO_SMALL)
    if cx1 - cx0 < min_size or cy1 - cy0 < min_size:
        return ClipResult(None, ClipReason.TOO_SMALL)
    changed = (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1)
    return ClipResult(Box(cx0, cy0, cx1, cy1), ClipReason.CLIPPED if changed else ClipReason.KEPT)


# --- disparities ----------------------------------------------------------------------------


def as_disparity(value: float | np.floating) -> float:
    """Return ``value`` as a float disparity; :class:`InvalidDisparity` unless finite and >= 0."""
    try:
        d = float(value)
    except (TypeError, ValueError):
        raise InvalidDisparity(f"disparity {value!r} is not a number") from None
    if not (math.isfinite(d) and d >= 0.0):
        raise InvalidDisparity(f"invalid disparity {value!r}: need a finite value >= 0")
    return d


def as_disparity_pair(value: Sequence[float] | NDArray[np.floating] | None) -> DisparityPair:
    """Return ``(d_subject, d_object)`` validated; :class:`InvalidDisparity` naming the bad value.

    ``None`` (no depth available) is an error too: depth relations need a disparity pair.
    """
    if value is None:
        raise InvalidDisparity("depth relations need a disparity pair (d_subject, d_object)")
    try:
        d_s, d_o = value
    except (TypeError, ValueError):
        raise InvalidDisparity(f"disparity {value!r} is not a pair (d_subject, d_object)") from None
    return as_disparity(d_s), as_disparity(d_o)


def as_disparity_array(a: ArrayLike | None) -> FloatArray:
    """Return ``a`` as a validated ``(N, 2)`` float64 array of ``(d_subject, d_object)`` rows.

    Raises :class:`InvalidDisparity` naming the first bad row's index and value.
    """
    if a is None:
        raise InvalidDisparity("depth relations need an (N, 2) disparity array")
    arr = _to_float_array(a, 2, InvalidDisparity)
    # Fast path as in as_box_array: NaN fails ``>= 0`` and poisons the sum, inf poisons the sum.
    if arr.size == 0 or (_sum_is_finite(arr) and arr.min() >= 0.0):
        return arr
    ok = np.isfinite(arr).all(axis=1)
    ok &= (arr >= 0.0).all(axis=1)
    if not ok.all():
        i = int(np.argmin(ok))
        raise InvalidDisparity(f"invalid disparity at row {i}: {arr[i].tolist()}: need finite >= 0")
    return arr
