"""CoMPaSS's SCOP pair filter (the paper's baseline data engine) and its relation label.

SPATIAL.md, "compass-scop": a pair is kept when each box is at least 32·32 px², the two cover at
least 20 % of the image, they are of different categories, their centres are at most 2 shorter
diagonals apart, they intersect by less than 30 % of the smaller box and the smaller box is at
least half the larger. Every threshold is a parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike

from esplora.core.boxes import (
    BoxLike,
    as_box,
    intersection_area,
    overlap_x,
    overlap_y,
)
from esplora.core.errors import InvalidParameter
from esplora.core.relations import Relation
from esplora.core.rules.base import BoolArray, as_parameter, pair_arrays

NAME = "compass-scop"


def _image_area(image_size: tuple[float, float]) -> float:
    try:
        width, height = (float(v) for v in image_size)
    except (TypeError, ValueError):
        raise InvalidParameter(f"image_size must be (width, height), got {image_size!r}") from None
    if not (width > 0 and height > 0 and math.isfinite(width * height)):
        raise InvalidParameter(f"image_size must be finite and positive, got {image_size!r}")
    return width * height


def _diagonal(w: float, h: float) -> float:
    return math.sqrt(w * w + h * h)


@dataclass(frozen=True, slots=True)
class CompassScop:
    """The SCOP filter with every threshold of SPATIAL.md as a parameter (defaults = CoMPaSS)."""

    min_box_area: float = 1024.0  # each box at least 32 · 32 px²
    min_total_area: float = 0.2  # area_A + area_B >= this share of the image
    max_centre_distance: float = 2.0  # centre distance <= this many shorter diagonals
    max_intersection: float = 0.3  # intersection < this share of the smaller box's area
    min_area_ratio: float = 0.5  # smaller area >= this share of the larger one
    both_axes_overlap: float = 1 / 3  # both relative overlaps below this: label both axes

    def __post_init__(self) -> None:
        for f in fields(self):
            value = as_parameter(f.name, getattr(self, f.name))
            if value < 0:
                raise InvalidParameter(f"{f.name} must be >= 0, got {value!r}")
            object.__setattr__(self, f.name, value)

    @property
    def name(self) -> str:
        """``compass-scop``."""
        return NAME

    def accept(
        self,
        subject: BoxLike,
        object: BoxLike,  # noqa: A002 - the spec's word for the second box
        *,
        image_size: tuple[float, float],
        same_category: bool = False,
    ) -> bool:
        """Whether SCOP keeps the pair, in an image of ``image_size = (width, height)`` px."""
        image_area = _image_area(image_size)
        a, b = as_box(subject), as_box(object)
        if same_category:
            return False
        small, large = sorted((a.area, b.area))
        dx, dy = a.cx - b.cx, a.cy - b.cy
        return (
            small >= self.min_box_area
            and a.area + b.area >= self.min_total_area * image_area
            and math.sqrt(dx * dx + dy * dy)
            <= self.max_centre_distance * min(_diagonal(a.w, a.h), _diagonal(b.w, b.h))
            and intersection_area(a, b) < self.max_intersection * small
            and small >= self.min_area_ratio * large
        )

    def label(self, subject: BoxLike, object: BoxLike) -> list[str]:  # noqa: A002
        """SCOP's relation label(s) of subject relative to object, horizontal first.

        A centre tie counts as ``right_of`` / ``below``. The values are :class:`Relation` members.
        """
        a, b = as_box(subject), as_box(object)
        horizontal = Relation.LEFT_OF if a.cx < b.cx else Relation.RIGHT_OF
        vertical = Relation.ABOVE if a.cy < b.cy else Relation.BELOW
        x_ov = overlap_x(a, b) / min(a.w, b.w)
        y_ov = overlap_y(a, b) / min(a.h, b.h)
        if x_ov < self.both_axes_overlap and y_ov < self.both_axes_overlap:
            return [horizontal, vertical]
        return [horizontal] if x_ov < y_ov else [vertical]

    def accept_many(
        self,
        subjects: ArrayLike,
        objects: ArrayLike,
        *,
        image_size: tuple[float, float],
        same_category: ArrayLike | None = None,
    ) -> BoolArray:
        """Vectorised :meth:`accept` over ``(N, 4)`` arrays (``same_category``: optional bools)."""
        image_area = _image_area(image_size)
        a, b = pair_arrays(subjects, objects)
        w_a, h_a, w_b, h_b = (
            a[:, 2] - a[:, 0],
            a[:, 3] - a[:, 1],
            b[:, 2] - b[:, 0],
            b[:, 3] - b[:, 1],
        )
        area_a, area_b = w_a * h_a, w_b * h_b
        small, large = np.minimum(area_a, area_b), np.maximum(area_a, area_b)
        dx = (a[:, 0] + a[:, 2]) / 2 - (b[:, 0] + b[:, 2]) / 2
        dy = (a[:, 1] + a[:, 3]) / 2 - (b[:, 1] + b[:, 3]) / 2
        diagonal = np.minimum(np.sqrt(w_a * w_a + h_a * h_a), np.sqrt(w_b * w_b + h_b * h_b))
        ov_x = np.maximum(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0.0)
        ov_y = np.maximum(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0.0)
        keep = small >= self.min_box_area
        keep &= area_a + area_b >= self.min_total_area * image_area
        keep &= np.sqrt(dx * dx + dy * dy) <= self.max_centre_distance * diagonal
        keep &= ov_x * ov_y < self.max_intersection * small
        keep &= small >= self.min_area_ratio * large
        if same_category is not None:
            same = np.asarray(same_category, dtype=bool).reshape(-1)
            if same.shape != keep.shape:
                raise InvalidParameter(
                    f"same_category has {same.size} values for {keep.size} pairs"
                )
            keep &= ~same
        return keep
