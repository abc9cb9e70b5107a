"""Errors raised by the pure core: all ``ValueError``, so callers treat bad input uniformly."""

from __future__ import annotations


class SpatialError(ValueError):
    """Base class: a value given to the spatial core is not acceptable. The message names it."""


class UnknownRelation(SpatialError):
    """A relation name that is not part of the vocabulary."""


class UnsupportedRelation(SpatialError):
    """A rule was asked about a relation it does not support."""

    def __init__(self, rule: str, relation: str) -> None:
        super().__init__(f"rule {rule!r} does not support relation {relation!r}")
        self.rule = rule
        self.relation = relation


class InvalidBox(SpatialError):
    """A box that is not finite or not ordered (``x0 < x1`` and ``y0 < y1``)."""


class InvalidDisparity(SpatialError):
    """A disparity that is missing, not finite or negative."""


class InvalidParameter(SpatialError):
    """A rule parameter outside its domain (for example ``tau < 1``)."""


class UnparsablePrompt(SpatialError):
    """A prompt in which the grammar finds no usable spatial clause."""


class UnknownRule(SpatialError):
    """A rule or pair-filter name that is not registered."""
