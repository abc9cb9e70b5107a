"""Alt-text for scenes: true, wrong and vague captions, as real web captions come.

A **true** caption states one or two relations that hold strictly in the scene (the shared phrase
table and the prompt templates of :mod:`esplora.core.prompts`, any phrasing of either direction);
a **wrong** caption states the first of them inverted; a **vague** one names the objects and no
relation ("a street with a car and two trees"). Every caption names every object of the scene,
so the pipeline's extractor asks the detector for all of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from esplora.core.grammar import SpatialRelation
from esplora.core.prompts import render_complex, render_simple
from esplora.core.relations import INVERSE, PHRASES, Relation
from esplora.scenes.model import Scene, TruthRelation

__all__ = ["Caption", "CaptionKind", "ClaimedRelation", "caption_scene"]

_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_VAGUE = ("a street with {}", "{} on a city street", "a city scene with {}", "urban view: {}")
_PLAIN = frozenset({"person"})  # a person's palette colour is the shirt: never said of them


class CaptionKind(StrEnum):
    """Whether a caption's relations are true, inverted, or absent."""

    TRUE = "true"
    WRONG = "wrong"
    VAGUE = "vague"


@dataclass(frozen=True, slots=True)
class ClaimedRelation:
    """A relation a caption states, in its own direction, and whether the scene shows it."""

    subject: str
    relation: Relation
    object: str
    holds: bool

    def as_dict(self) -> dict[str, str | bool]:
        """JSON-safe form."""
        return {
            "subject": self.subject,
            "relation": self.relation.value,
            "object": self.object,
            "holds": self.holds,
        }


@dataclass(frozen=True, slots=True)
class Caption:
    """A caption, its kind, and the relations it claims."""

    text: str
    kind: CaptionKind
    claims: tuple[ClaimedRelation, ...]


def _kind(rng: np.random.Generator, wrong_rate: float, vague_rate: float) -> CaptionKind:
    if not (0 <= wrong_rate <= 1 and 0 <= vague_rate <= 1 and wrong_rate + vague_rate <= 1):
        raise ValueError(
            f"caption rates must be shares summing to at most 1: {wrong_rate}, {vague_rate}"
        )
    draw = rng.random()
    if draw < vague_rate:
        return CaptionKind.VAGUE
    return CaptionKind.WRONG if draw < vague_rate + wrong_rate else CaptionKind.TRUE


def _noun(scene: Scene, index: int, rng: np.random.Generator) -> str:
    """An object's noun, with its colour half of the time ("red car", "tree")."""
    obj = scene.objects[index]
    if obj.label in _PLAIN or rng.random() < 0.5:
        return obj.label
    return f"{obj.colour} {obj.label}"


def _plural(label: str) -> str:
    if label == "person":
        return "people"
    return label + ("es" if label.endswith(("s", "sh", "ch", "x")) else "s")


def _listing(counts: Counter[str]) -> str:
    """``a car, two trees and a bench`` (article "an" before a vowel)."""
    parts = []
    for label, n in counts.items():
        if n == 1:
            parts.append(f"{'an' if label[0] in 'aeiou' else 'a'} {label}")
        else:
            parts.append(f"{_NUMBERS[n] if n < len(_NUMBERS) else n} {_plural(label)}")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _candidates(scene: Scene, truth: Sequence[TruthRelation]) -> list[TruthRelation]:
    """True relations between two objects whose labels occur once (so the caption is clear)."""
    counts = Counter(o.label for o in scene.objects)
    return [
        t
        for t in truth
        if counts[scene.objects[t.subject].label] == 1
        and counts[scene.objects[t.object].label] == 1
    ]


def _phrase(relation: Relation, rng: np.random.Generator) -> str:
    return str(rng.choice(PHRASES[relation]))


def _relational(
    scene: Scene, chosen: list[TruthRelation], kind: CaptionKind, rng: np.random.Generator
) -> tuple[str, list[ClaimedRelation], set[int]]:
    """The relation clauses: each fact read from either side; a wrong caption inverts the first."""
    said: list[tuple[int, Relation, int]] = []
    for k, fact in enumerate(chosen):
        s, rel, o = fact.subject, fact.relation, fact.object
        if rng.random() < 0.5:  # the same fact from the object's side
            s, rel, o = o, INVERSE[rel], s
        said.append((s, INVERSE[rel] if kind is CaptionKind.WRONG and k == 0 else rel, o))
    nouns = {i: _noun(scene, i, rng) for s, _, o in said for i in (s, o)}
    claims = [
        ClaimedRelation(
            scene.objects[s].label,
            rel,
            scene.objects[o].label,
            not (kind is CaptionKind.WRONG and k == 0),
        )
        for k, (s, rel, o) in enumerate(said)
    ]
    relations = [SpatialRelation(nouns[s], rel, nouns[o]) for s, rel, o in said]
    phrases = tuple(_phrase(r.relation, rng) for r in relations)
    if len(relations) == 1:
        text = render_simple(
            relations[0].subject, relations[0].relation, relations[0].object, phrase=phrases[0]
        )
    else:
        text = render_complex(relations[0], relations[1], phrases=(phrases[0], phrases[1]))
    return text, claims, set(nouns)


def caption_scene(
    scene: Scene,
    truth: Sequence[TruthRelation],
    rng: np.random.Generator,
    *,
    wrong_rate: float = 0.0,
    vague_rate: float = 0.0,
    complex_rate: float = 0.3,
) -> Caption:
    """A caption for ``scene`` given its strict relations ``truth``.

    With probability ``vague_rate`` it states no relation, with ``wrong_rate`` an inverted one,
    otherwise true ones (two with probability ``complex_rate``). A scene without a clear relation
    (no two objects of distinct, unrepeated labels in a strict relation) gets a vague caption.
    """
    kind = _kind(rng, wrong_rate, vague_rate)
    candidates = _candidates(scene, truth)
    if kind is CaptionKind.VAGUE or not candidates:
        return Caption(_vague(scene, rng), CaptionKind.VAGUE, ())
    n = 2 if len(candidates) > 1 and rng.random() < complex_rate else 1
    picked = [candidates[int(k)] for k in rng.choice(len(candidates), size=n, replace=False)]
    text, claims, named = _relational(scene, picked, kind, rng)
    rest = Counter(o.label for i, o in enumerate(scene.objects) if i not in named)
    if rest:
        text += f", with {_listing(rest)}"
    return Caption(text, kind, tuple(claims))


def _vague(scene: Scene, rng: np.random.Generator) -> str:
    counts = Counter(o.label for o in scene.objects)
    template = str(rng.choice(_VAGUE))
    return template.format(_listing(counts)) if counts else "an empty street"
