"""Relation statistics over the store: what the geometry says and what the captions claim."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, aliased

from esplora.db.detections import DetectedObject
from esplora.db.relations import CaptionClaim, GeometricRelation


@dataclass(frozen=True, slots=True)
class RelationStats:
    """Pairs per canonical relation (soft, strict), claims per relation by agreement, and the
    most frequent label pairs with their strict count."""

    relations: list[dict[str, Any]]
    claims: list[dict[str, Any]]
    label_pairs: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"relations": self.relations, "claims": self.claims, "label_pairs": self.label_pairs}


def relation_stats(session: Session, *, top: int = 10) -> RelationStats:
    """The statistics of every stored relation and claim."""
    return RelationStats(_relations(session), _claims(session), _label_pairs(session, top))


def _relations(session: Session) -> list[dict[str, Any]]:
    strict = func.sum(case((GeometricRelation.strict, 1), else_=0))
    rows = session.execute(
        select(GeometricRelation.relation, func.count(), strict, func.avg(GeometricRelation.margin))
        .group_by(GeometricRelation.relation)
        .order_by(GeometricRelation.relation)
    )
    return [
        {"relation": r, "soft": int(n), "strict": int(s or 0), "mean_margin": float(m or 0.0)}
        for r, n, s, m in rows
    ]


def _claims(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(
        select(CaptionClaim.relation, CaptionClaim.agreement, func.count())
        .group_by(CaptionClaim.relation, CaptionClaim.agreement)
        .order_by(CaptionClaim.relation)
    )
    table: dict[str, dict[str, Any]] = {}
    for relation, agreement, n in rows:
        row = table.setdefault(
            relation, {"relation": relation, "confirmed": 0, "contradicted": 0, "unresolved": 0}
        )
        row[agreement.value] = int(n)
    return list(table.values())


def _label_pairs(session: Session, top: int) -> list[dict[str, Any]]:
    subject, obj = aliased(DetectedObject), aliased(DetectedObject)
    strict = func.sum(case((GeometricRelation.strict, 1), else_=0))
    rows = session.execute(
        select(subject.label, GeometricRelation.relation, obj.label, func.count(), strict)
        .join(subject, subject.id == GeometricRelation.subject_id)
        .join(obj, obj.id == GeometricRelation.object_id)
        .group_by(subject.label, GeometricRelation.relation, obj.label)
        .order_by(func.count().desc(), subject.label, obj.label)
        .limit(top)
    )
    return [
        {"subject": s, "relation": r, "object": o, "pairs": int(n), "strict": int(k or 0)}
        for s, r, o, n, k in rows
    ]
