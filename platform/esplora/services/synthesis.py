"""Spatial prompts synthesized from natural images' relations that hold strictly.

A label pair's relation counts only when it holds strictly for **every** pair of instances of
the two labels in the image — the all-pairs rule the validator applies to generated images —
so an image with three cars that disagree about the tree gives no "car left of tree" prompt.
Relations a reviewer rejected are left out. Prompts are balanced across the six relations and,
within a relation, across label pairs; phrasing comes from the shared phrase table.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, select, true
from sqlalchemy.orm import Session, aliased

from esplora.core.grammar import SpatialRelation
from esplora.core.prompts import render_complex, render_simple
from esplora.core.relations import INVERSE, PHRASES, Relation
from esplora.db.detections import DetectedObject
from esplora.db.engine import Store
from esplora.db.enums import Origin, PromptKind, ReviewTarget, VoteVerdict
from esplora.db.images import Image
from esplora.db.relations import GeometricRelation
from esplora.db.review import Override
from esplora.db.synthetic import SpatialPrompt

Fact = tuple[int, SpatialRelation]  # (image id, a relation that holds for all instance pairs)


@dataclass
class SynthesisReport:
    facts: int = 0
    added: int = 0
    existing: int = 0
    per_relation: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "per_relation": dict(sorted(self.per_relation.items()))}


def strict_facts(session: Session, producer: str | None = None) -> list[Fact]:
    """Per natural image, label-pair relations that hold strictly for every instance pair
    (relations of ``producer`` only, when given: one rule configuration at a time)."""
    subject, obj = aliased(DetectedObject), aliased(DetectedObject)
    rejected = select(Override.target_id).where(
        Override.target_type == ReviewTarget.RELATION,
        Override.decision == VoteVerdict.REJECT,
        Override.superseded_by.is_(None),
    )
    rows = session.execute(
        select(
            GeometricRelation.image_id,
            GeometricRelation.axis,
            GeometricRelation.relation,
            GeometricRelation.strict,
            subject.label,
            obj.label,
            GeometricRelation.id.in_(rejected),
            subject.id,
            obj.id,
        )
        .join(subject, subject.id == GeometricRelation.subject_id)
        .join(obj, obj.id == GeometricRelation.object_id)
        .join(Image, and_(Image.id == GeometricRelation.image_id, Image.origin == Origin.NATURAL))
        .where(true() if producer is None else GeometricRelation.producer == producer)
    ).all()
    instances: dict[int, dict[int, str]] = defaultdict(dict)  # image → object id → label
    groups: dict[tuple[int, str, str, str], list[tuple[str, bool, bool]]] = defaultdict(list)
    for image_id, axis, relation, strict, s_label, o_label, is_rejected, s_id, o_id in rows:
        instances[image_id].update({s_id: s_label, o_id: o_label})
        if s_label == o_label:
            continue
        a, b = sorted((s_label, o_label))
        reading = relation if s_label == a else INVERSE[Relation(relation)].value
        groups[(image_id, axis, a, b)].append((reading, bool(strict), bool(is_rejected)))
    facts = []
    for (image_id, _axis, a, b), readings in sorted(groups.items()):
        labels = Counter(instances[image_id].values())
        pairs = labels[a] * labels[b]
        agreed = {r for r, _, _ in readings}
        if len(readings) == pairs and len(agreed) == 1 and all(s and not x for _, s, x in readings):
            facts.append((image_id, SpatialRelation(a, Relation(agreed.pop()), b)))
    return facts


def _both_readings(facts: list[Fact]) -> dict[Relation, list[Fact]]:
    """Each fact under its own relation and, read from the object's side, the inverse one."""
    by_relation: dict[Relation, list[Fact]] = defaultdict(list)
    for image_id, fact in facts:
        by_relation[fact.relation].append((image_id, fact))
        by_relation[INVERSE[fact.relation]].append((image_id, fact.inverse()))
    return by_relation


def _pick_balanced(
    by_relation: dict[Relation, list[Fact]], n: int, rng: random.Random
) -> list[Fact]:
    """Round-robin over relations; within one, the least-used label pair first."""
    used: Counter[tuple[str, str]] = Counter()
    pools = {r: rng.sample(f, len(f)) for r, f in sorted(by_relation.items())}
    picked: list[Fact] = []
    while len(picked) < n and any(pools.values()):
        for relation in sorted(pools):
            if not pools[relation] or len(picked) >= n:
                continue
            pool = pools[relation]
            best = min(
                range(len(pool)), key=lambda i: used[(pool[i][1].subject, pool[i][1].object)]
            )
            fact = pool.pop(best)
            used[(fact[1].subject, fact[1].object)] += 1
            picked.append(fact)
    return picked


def _text(fact: SpatialRelation, rng: random.Random) -> str:
    return render_simple(
        fact.subject, fact.relation, fact.object, phrase=rng.choice(PHRASES[fact.relation])
    )


def _complex(
    first: Fact, pool: list[Fact], rng: random.Random
) -> tuple[str, list[SpatialRelation]] | None:
    """Pair a fact with another of the same image on different labels (or a chain)."""
    mates = [
        f
        for i, f in pool
        if i == first[0] and {f.subject, f.object} != {first[1].subject, first[1].object}
    ]
    if not mates:
        return None
    second = rng.choice(mates)
    phrases = (rng.choice(PHRASES[first[1].relation]), rng.choice(PHRASES[second.relation]))
    return render_complex(first[1], second, phrases=phrases), [first[1], second]


def synthesize(
    store: Store,
    n: int,
    *,
    complex_prompts: bool = False,
    seed: int = 0,
    producer: str | None = None,
) -> SynthesisReport:
    """Store up to ``n`` new prompts (simple, or complex with two relations) from the relations
    of ``producer`` (one rule configuration; default: all)."""
    rng = random.Random(seed)
    with store.reader() as session:
        facts = strict_facts(session, producer)
    report = SynthesisReport(facts=len(facts))
    by_relation = _both_readings(facts)
    every = [f for fs in by_relation.values() for f in fs]
    rows: dict[str, SpatialPrompt] = {}
    for image_id, fact in _pick_balanced(by_relation, n * 2, rng):
        made = (
            _complex((image_id, fact), every, rng)
            if complex_prompts
            else (_text(fact, rng), [fact])
        )
        if made is None or made[0] in rows or len(rows) >= n:
            continue
        text, relations = made
        rows[text] = SpatialPrompt(
            text=text,
            kind=PromptKind.COMPLEX if complex_prompts else PromptKind.SIMPLE,
            relations=[
                {"subject": r.subject, "relation": r.relation.value, "object": r.object}
                for r in relations
            ],
            origin="synthesized",
            origin_image_id=image_id,
        )
        report.per_relation.update(r.relation.value for r in relations)
    with store.unit_of_work() as session:
        known = set(session.scalars(select(SpatialPrompt.text).where(SpatialPrompt.text.in_(rows))))
        session.add_all(row for text, row in rows.items() if text not in known)
    report.added, report.existing = len(rows) - len(known), len(known)
    return report
