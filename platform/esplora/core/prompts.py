"""Prompts as the platform uses them: what an image must show, and rendering from relations.

:func:`prompt_spec` turns a parsed prompt into the objects (label, count) and relations a
generated image is validated against; :func:`render_simple` and :func:`render_complex` write
prompts from structured relations with the shared phrase table (SPATIAL.md, "Prompt templates").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from esplora.core.errors import InvalidParameter
from esplora.core.grammar import Mention, ParsedPrompt, SpatialRelation, parse
from esplora.core.lexicon import DEFAULT_LEXICON, Count, Lexicon
from esplora.core.relations import PHRASES, Relation, parse_relation

__all__ = [
    "IndexedRelation",
    "PromptObject",
    "PromptSpec",
    "prompt_spec",
    "render_complex",
    "render_simple",
]


# --- what the verdicts consume --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromptObject:
    """One object the prompt asks for: its canonical label, count and first mention's text."""

    label: str
    count: Count
    mention: str


class IndexedRelation(NamedTuple):
    """A prompted relation between two objects of a :class:`PromptSpec`, by index."""

    subject: int
    relation: Relation
    object: int


@dataclass(frozen=True, slots=True)
class PromptSpec:
    """The objects and relations an image generated from a prompt must show."""

    objects: tuple[PromptObject, ...]
    relations: tuple[IndexedRelation, ...]

    def label_counts(self) -> dict[str, Count]:
        """The count each label needs, summed over its objects ("a dog left of a dog": 2)."""
        totals: dict[str, Count] = {}
        for obj in self.objects:
            totals[obj.label] = totals[obj.label] + obj.count if obj.label in totals else obj.count
        return totals


def _resolve(
    mention: Mention, clause_index: int, objects: list[PromptObject], owners: list[int]
) -> int:
    """The object a mention names: "the dog" after a clause that named a dog is that dog."""
    if mention.definite:
        for i in reversed(range(len(objects))):
            if objects[i].label == mention.label and owners[i] < clause_index:
                return i
    objects.append(PromptObject(mention.label, mention.count, mention.text))
    owners.append(clause_index)
    return len(objects) - 1


def prompt_spec(parsed: ParsedPrompt | str, *, lexicon: Lexicon = DEFAULT_LEXICON) -> PromptSpec:
    """The objects and relations of the unambiguous clauses of ``parsed`` (a prompt or its parse).

    Every mention is an object, except a definite one ("the dog") that names the label of an
    object from an earlier clause, which refers back to it; so "a dog to the left of a dog" asks
    for two dogs and "a cat left of a dog, and the dog above a bird" for one dog. A coordinated
    subject or object relates each of its mentions.
    """
    if isinstance(parsed, str):
        parsed = parse(parsed, lexicon=lexicon)
    objects: list[PromptObject] = []
    owners: list[int] = []
    relations: list[IndexedRelation] = []
    for ci, clause in enumerate(parsed.unambiguous):
        subjects = [_resolve(m, ci, objects, owners) for m in clause.subject_mentions]
        targets = [_resolve(m, ci, objects, owners) for m in clause.object_mentions]
        relations += [IndexedRelation(s, clause.relation, o) for s in subjects for o in targets]
    return PromptSpec(tuple(objects), tuple(relations))


# --- rendering (SPATIAL.md, "Prompt templates") ---------------------------------------------


def _phrase_for(relation: str | Relation, phrase: str | None) -> tuple[Relation, str]:
    rel = parse_relation(relation)
    if phrase is None:
        return rel, PHRASES[rel][0]
    key = " ".join(phrase.lower().split())
    if key not in PHRASES[rel]:
        accepted = ", ".join(repr(p) for p in PHRASES[rel])
        raise InvalidParameter(f"phrase {phrase!r} does not express {rel}; use one of {accepted}")
    return rel, key


def _noun_phrase(det: str, noun: str) -> str:
    noun = noun.strip()
    if not noun:
        raise InvalidParameter("a rendered subject or object must not be empty")
    if det == "a" and noun[0].lower() in "aeiou":
        det = "an"
    return f"{det} {noun}" if det else noun


def render_simple(
    subject: str,
    relation: str | Relation,
    object: str,  # noqa: A002 - the spec's own word
    *,
    phrase: str | None = None,
    det: str = "a",
) -> str:
    """``"{det} {subject} {phrase} {det} {object}"``; "a" becomes "an" before a vowel.

    ``phrase`` defaults to the relation's canonical phrase and must be one of its phrases.
    """
    _, text = _phrase_for(relation, phrase)
    return f"{_noun_phrase(det, subject)} {text} {_noun_phrase(det, object)}"


def render_complex(
    first: SpatialRelation,
    second: SpatialRelation,
    *,
    phrases: tuple[str | None, str | None] = (None, None),
    det: str = "a",
) -> str:
    """Two relations in one prompt, each checkable on its own.

    When ``second`` starts where ``first`` ends (A rel1 B, B rel2 C) the chain form
    ``"a A rel1 a B, and the B rel2 a C"``; otherwise two simple clauses joined by ``and``. A
    noun of the second clause already named in the first is rendered with "the", so that
    :func:`prompt_spec` reads it as the same object.
    """
    head = render_simple(first.subject, first.relation, first.object, phrase=phrases[0], det=det)
    named = {first.subject, first.object}
    _, text = _phrase_for(second.relation, phrases[1])
    subject = _noun_phrase("the" if second.subject in named else det, second.subject)
    obj = _noun_phrase("the" if second.object in named else det, second.object)
    joint = ", and" if second.subject == first.object else " and"
    return f"{head}{joint} {subject} {text} {obj}"
