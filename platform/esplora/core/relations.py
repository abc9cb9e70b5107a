"""The relation vocabulary and the phrase table shared by parsing, prompt synthesis and TORE.

See ``docs/relations.md``; the table follows SPATIAL.md exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from esplora.core.errors import UnknownRelation


class Relation(StrEnum):
    """A spatial relation of a subject relative to an object ("A left_of B")."""

    LEFT_OF = "left_of"
    RIGHT_OF = "right_of"
    ABOVE = "above"
    BELOW = "below"
    IN_FRONT_OF = "in_front_of"
    BEHIND = "behind"
    NEAR = "near"


class Axis(StrEnum):
    """The axis along which a directional relation is measured."""

    HORIZONTAL = "horizontal"
    VERTICAL = "vertical"
    DEPTH = "depth"


INVERSE: Mapping[Relation, Relation] = MappingProxyType(
    {
        Relation.LEFT_OF: Relation.RIGHT_OF,
        Relation.RIGHT_OF: Relation.LEFT_OF,
        Relation.ABOVE: Relation.BELOW,
        Relation.BELOW: Relation.ABOVE,
        Relation.IN_FRONT_OF: Relation.BEHIND,
        Relation.BEHIND: Relation.IN_FRONT_OF,
        Relation.NEAR: Relation.NEAR,
    }
)

AXIS_OF: Mapping[Relation, Axis] = MappingProxyType(
    {
        Relation.LEFT_OF: Axis.HORIZONTAL,
        Relation.RIGHT_OF: Axis.HORIZONTAL,
        Relation.ABOVE: Axis.VERTICAL,
        Relation.BELOW: Axis.VERTICAL,
        Relation.IN_FRONT_OF: Axis.DEPTH,
        Relation.BEHIND: Axis.DEPTH,
    }
)

# The direction in which a geometric relation row is stored: subject = the object that is
# left, above or nearer. The inverse reading is a view, never a second row.
CANONICAL: Mapping[Axis, Relation] = MappingProxyType(
    {
        Axis.HORIZONTAL: Relation.LEFT_OF,
        Axis.VERTICAL: Relation.ABOVE,
        Axis.DEPTH: Relation.IN_FRONT_OF,
    }
)

DIRECTIONAL: frozenset[Relation] = frozenset(AXIS_OF)
PLANAR: frozenset[Relation] = frozenset(r for r, a in AXIS_OF.items() if a is not Axis.DEPTH)
DEPTH_RELATIONS: frozenset[Relation] = frozenset(r for r, a in AXIS_OF.items() if a is Axis.DEPTH)


def parse_relation(name: str | Relation) -> Relation:
    """Return the :class:`Relation` called ``name`` (case- and separator-insensitive).

    Raises :class:`UnknownRelation` naming the value and the accepted names.
    """
    if isinstance(name, Relation):
        return name
    key = str(name).strip().lower().replace(" ", "_").replace("-", "_")
    try:
        return Relation(key)
    except ValueError:
        accepted = ", ".join(r.value for r in Relation)
        raise UnknownRelation(f"unknown relation {name!r}; expected one of: {accepted}") from None


def inverse(relation: str | Relation) -> Relation:
    """The relation of (object, subject) when ``relation`` holds for (subject, object)."""
    return INVERSE[parse_relation(relation)]


@dataclass(frozen=True, slots=True)
class Phrase:
    """One surface form of a relation, and what TORE rewrites it to when the relation is weak."""

    text: str
    relation: Relation
    rewrite: str | None  # None: never rewritten (``near``)


def _phrases(relation: Relation, pairs: tuple[tuple[str, str | None], ...]) -> tuple[Phrase, ...]:
    return tuple(Phrase(text, relation, rewrite) for text, rewrite in pairs)


# SPATIAL.md, "The phrase table". Order within a relation is the order of preference when a
# prompt is rendered (the first phrase is the canonical one).
PHRASE_TABLE: tuple[Phrase, ...] = (
    *_phrases(
        Relation.LEFT_OF,
        (
            ("to the left of", "to the right of"),
            ("on the left of", "on the right of"),
            ("on the left side of", "on the right side of"),
            ("left of", "right of"),
        ),
    ),
    *_phrases(
        Relation.RIGHT_OF,
        (
            ("to the right of", "to the left of"),
            ("on the right of", "on the left of"),
            ("on the right side of", "on the left side of"),
            ("right of", "left of"),
        ),
    ),
    *_phrases(
        Relation.ABOVE,
        (
            ("above", "below"),
            ("over", "under"),
            ("on top of", "on the bottom of"),
            ("on the top of", "on the bottom of"),
        ),
    ),
    *_phrases(
        Relation.BELOW,
        (
            ("below", "above"),
            ("under", "above"),
            ("beneath", "above"),
            ("underneath", "above"),
            ("on the bottom of", "on the top of"),
        ),
    ),
    *_phrases(Relation.IN_FRONT_OF, (("in front of", "behind"),)),
    *_phrases(Relation.BEHIND, (("behind", "in front of"), ("in back of", "in front of"))),
    *_phrases(
        Relation.NEAR,
        (("near", None), ("next to", None), ("beside", None), ("on side of", None)),
    ),
)

PHRASES: Mapping[Relation, tuple[str, ...]] = MappingProxyType(
    {r: tuple(p.text for p in PHRASE_TABLE if p.relation is r) for r in Relation}
)

PHRASE_BY_TEXT: Mapping[str, Phrase] = MappingProxyType({p.text: p for p in PHRASE_TABLE})
