"""What every relation rule shares: the :class:`Rule` protocol, results and input checks."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from esplora.core.boxes import (
    Box,
    BoxArrayLike,
    BoxLike,
    FloatArray,
    as_box,
    as_box_array,
    as_disparity_array,
)
from esplora.core.errors import InvalidBox, InvalidDisparity, InvalidParameter, UnsupportedRelation
from esplora.core.relations import Relation, parse_relation

BoolArray: TypeAlias = NDArray[np.bool_]
DisparityLike: TypeAlias = tuple[float, float] | list[float] | NDArray[np.floating]


@dataclass(frozen=True, slots=True)
class RelationResult:
    """One relation between one pair: soft and strict verdicts and the signed margin."""

    soft: bool
    strict: bool
    margin: float


class Rule(Protocol):
    """A named rule scoring "subject <relation> object" for boxes (and disparities for depth).

    ``score`` returns a float in [0, 1] (1.0/0.0 for the boolean rules); ``score_many`` is its
    vectorised twin over ``(N, 4)`` box arrays and an optional ``(N, 2)`` disparity array and
    agrees with ``score`` bit for bit.
    """

    @property
    def name(self) -> str: ...

    @property
    def relations(self) -> frozenset[Relation]: ...

    def score(
        self,
        relation: str | Relation,
        subject: BoxLike,
        object: BoxLike,  # noqa: A002 - the spec's own word for the second box
        *,
        disparity: DisparityLike | None = None,
    ) -> float: ...

    def score_many(
        self,
        relation: str | Relation,
        subjects: ArrayLike,
        objects: ArrayLike,
        *,
        disparity: ArrayLike | None = None,
    ) -> FloatArray: ...


def resolve_relation(
    rule: str, relation: str | Relation, supported: Collection[Relation]
) -> Relation:
    """Parse ``relation`` and check that ``rule`` supports it.

    Raises :class:`UnknownRelation` for a name outside the vocabulary and
    :class:`UnsupportedRelation` (naming the rule and the relation) for one the rule lacks.
    """
    parsed = parse_relation(relation)
    if parsed not in supported:
        raise UnsupportedRelation(rule, parsed.value)
    return parsed


def pair_arrays(subjects: BoxArrayLike, objects: BoxArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate two box arrays of the same length ``N``."""
    a, b = as_box_array(subjects), as_box_array(objects)
    if a.shape[0] != b.shape[0]:
        raise InvalidBox(f"subjects and objects differ in length: {a.shape[0]} != {b.shape[0]}")
    return a, b


def disparity_rows(disparity: ArrayLike | None, n: int) -> FloatArray:
    """Validate an ``(n, 2)`` disparity array for ``n`` pairs."""
    d = as_disparity_array(disparity)
    if d.shape[0] != n:
        raise InvalidDisparity(f"disparity has {d.shape[0]} rows for {n} box pairs")
    return d


def as_parameter(name: str, value: object) -> float:
    """Return a rule parameter as a finite float; :class:`InvalidParameter` naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise InvalidParameter(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidParameter(f"{name} must be finite, got {value!r}")
    return number


def check_params(owner: str, given: Collection[str], accepted: Collection[str]) -> None:
    """Raise :class:`InvalidParameter` when ``given`` holds a name ``owner`` does not accept."""
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        allowed = ", ".join(sorted(accepted)) or "none"
        raise InvalidParameter(
            f"{owner} has no parameter {', '.join(unknown)}; accepted: {allowed}"
        )


class PeerRule:
    """The shape the parameterless peer rules share: a fixed name and relation set, and the
    input checks; a subclass sets ``NAME`` and ``SUPPORTED`` and scores checked boxes."""

    __slots__ = ()
    NAME: ClassVar[str]
    SUPPORTED: ClassVar[frozenset[Relation]]

    @property
    def name(self) -> str:
        """The rule's name (``NAME``)."""
        return self.NAME

    @property
    def relations(self) -> frozenset[Relation]:
        """The relations it scores (``SUPPORTED``)."""
        return self.SUPPORTED

    def score(
        self,
        relation: str | Relation,
        subject: BoxLike,
        object: BoxLike,  # noqa: A002
        *,
        disparity: DisparityLike | None = None,
    ) -> float:
        """The rule's score of "subject <relation> object" (see the subclass)."""
        rel = resolve_relation(self.NAME, relation, self.SUPPORTED)
        return self._score(rel, as_box(subject), as_box(object), disparity)

    def score_many(
        self,
        relation: str | Relation,
        subjects: ArrayLike,
        objects: ArrayLike,
        *,
        disparity: ArrayLike | None = None,
    ) -> FloatArray:
        """Vectorised :meth:`score`, equal to it bit for bit."""
        rel = resolve_relation(self.NAME, relation, self.SUPPORTED)
        a, b = pair_arrays(subjects, objects)
        return self._score_many(rel, a, b, disparity)

    def _score(self, rel: Relation, a: Box, b: Box, disparity: DisparityLike | None) -> float:
        raise NotImplementedError

    def _score_many(
        self, rel: Relation, a: FloatArray, b: FloatArray, disparity: ArrayLike | None
    ) -> FloatArray:
        raise NotImplementedError
