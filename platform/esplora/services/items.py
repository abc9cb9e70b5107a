"""Read-only views of the store for the review UI and scripts: one item's detail (its rows,
relations with machine / human / effective values, and review history), stage and review
progress, and the machine-vs-votes confusion.

The public functions take the :class:`~esplora.db.engine.Store` and open one read-only session
each; the ``*_in`` helpers take a session for callers that already hold one. Nothing here
writes: the UI's writes all go through :mod:`esplora.services.review`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from esplora.core.relations import inverse
from esplora.db.detections import DetectedObject
from esplora.db.engine import Store
from esplora.db.enums import ReviewTarget
from esplora.db.images import Image, ImageStage, Sample
from esplora.db.relations import CaptionClaim, GeometricRelation
from esplora.db.review import Override, ReviewVote
from esplora.services.relation_stats import relation_stats
from esplora.services.review_state import effective_state


@dataclass(frozen=True, slots=True)
class ObjectRow:
    id: int
    label: str
    x0: float
    y0: float
    x1: float
    y1: float
    score: float | None
    producer: str


@dataclass(frozen=True, slots=True)
class RelationRow:
    """A relation with its machine values, the latest human decision and the effective value."""

    id: int
    subject_id: int
    object_id: int
    subject_label: str
    object_label: str
    axis: str
    relation: str
    soft: bool
    strict: bool
    margin: float
    version: int
    human: str | None
    effective_relation: str
    effective_strict: bool
    review_state: str = "unreviewed"


@dataclass(frozen=True, slots=True)
class ItemView:
    """Everything the Sample and Review pages show about one image (and one of its samples)."""

    image_id: int
    sample_id: int | None
    caption: str
    image_uri: str
    depth_uri: str | None
    width: int
    height: int
    excluded: bool
    objects: list[ObjectRow]
    relations: list[RelationRow]
    claims: list[dict[str, Any]]
    stages: list[dict[str, Any]]
    history: list[dict[str, Any]] = field(default_factory=list)


def image_of_in(session: Session, target_type: str, target_id: int) -> int | None:
    """The image a review target belongs to."""
    model: Any = {
        "relation": GeometricRelation,
        "object": DetectedObject,
        "sample": Sample,
        "claim": CaptionClaim,
    }.get(target_type)
    if model is None:
        return None
    if model is CaptionClaim:
        stmt = select(Sample.image_id).join(CaptionClaim, CaptionClaim.sample_id == Sample.id)
        return session.scalar(stmt.where(CaptionClaim.id == target_id))
    value: int | None = session.scalar(select(model.image_id).where(model.id == target_id))
    return value


def item_view_in(session: Session, image_id: int, sample_id: int | None = None) -> ItemView | None:
    """The item of ``image_id`` (its first sample unless ``sample_id`` is given)."""
    image = session.get(Image, image_id)
    if image is None:
        return None
    samples = select(Sample).where(Sample.image_id == image_id).order_by(Sample.id)
    if sample_id is not None:
        samples = samples.where(Sample.id == sample_id)
    sample = session.scalars(samples.limit(1)).first()
    objects = _objects(session, image_id)
    relations = _relations(session, image_id, {o.id: o.label for o in objects})
    claims = _claims(session, sample.id) if sample else []
    view = ItemView(
        image_id=image.id,
        sample_id=sample.id if sample else None,
        caption=sample.caption if sample else "",
        image_uri=image.uri,
        depth_uri=image.depth_map_uri,
        width=image.width,
        height=image.height,
        excluded=bool(sample.excluded) if sample else False,
        objects=objects,
        relations=relations,
        claims=claims,
        stages=_stages(session, image_id),
    )
    targets = [("relation", r.id) for r in relations] + [("object", o.id) for o in objects]
    targets += [("claim", int(c["id"])) for c in claims]
    if sample:
        targets.append(("sample", sample.id))
    view.history.extend(history_in(session, targets))
    return view


def _objects(session: Session, image_id: int) -> list[ObjectRow]:
    rows = session.scalars(
        select(DetectedObject)
        .where(DetectedObject.image_id == image_id)
        .order_by(DetectedObject.id)
    )
    return [ObjectRow(o.id, o.label, o.x0, o.y0, o.x1, o.y1, o.score, o.producer) for o in rows]


def _current_overrides(session: Session, target_type: str, ids: list[int]) -> dict[int, Override]:
    """The latest, not superseded, override of each target."""
    if not ids:
        return {}
    rows = session.scalars(
        select(Override)
        .where(
            Override.target_type == ReviewTarget(target_type),
            Override.target_id.in_(ids),
            Override.superseded_by.is_(None),
        )
        .order_by(Override.id)
    )
    return {o.target_id: o for o in rows}


def _relations(session: Session, image_id: int, labels: dict[int, str]) -> list[RelationRow]:
    rows = list(
        session.scalars(
            select(GeometricRelation)
            .where(GeometricRelation.image_id == image_id)
            .order_by(GeometricRelation.id)
        )
    )
    ids = [r.id for r in rows]
    overrides = _current_overrides(session, "relation", ids)
    states = effective_state(session, ReviewTarget.RELATION, ids)
    return [
        replace(
            _relation_row(r, labels, overrides.get(r.id)), review_state=states[r.id].state.value
        )
        if r.id in states
        else _relation_row(r, labels, overrides.get(r.id))
        for r in rows
    ]


def _relation_row(
    row: GeometricRelation, labels: dict[int, str], override: Override | None
) -> RelationRow:
    relation, strict, human = row.relation, row.strict, None
    if override is not None:
        human = override.decision.value
        if human == "reject":
            strict = False
        elif human == "accept":
            strict = True
        elif human == "flip":
            relation, strict = inverse(row.relation).value, True
        elif human == "relabel":
            relation = str(override.values.get("relation", relation))
    return RelationRow(
        id=row.id,
        subject_id=row.subject_id,
        object_id=row.object_id,
        subject_label=labels.get(row.subject_id, "?"),
        object_label=labels.get(row.object_id, "?"),
        axis=row.axis,
        relation=row.relation,
        soft=row.soft,
        strict=row.strict,
        margin=row.margin,
        version=row.version,
        human=human,
        effective_relation=relation,
        effective_strict=strict,
    )


def _claims(session: Session, sample_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(CaptionClaim).where(CaptionClaim.sample_id == sample_id).order_by(CaptionClaim.id)
    )
    return [
        {
            "id": c.id,
            "clause": c.clause_text,
            "subject": c.subject_label,
            "relation": c.relation,
            "object": c.object_label,
            "agreement": c.agreement.value,
            "relation_id": c.geometric_relation_id,
        }
        for c in rows
    ]


def _stages(session: Session, image_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(ImageStage).where(ImageStage.image_id == image_id).order_by(ImageStage.stage)
    )
    return [
        {
            "stage": s.stage.value,
            "status": s.status.value,
            "attempts": s.attempts,
            "error": s.last_error or "",
        }
        for s in rows
    ]


def history_in(session: Session, targets: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Every vote and override on ``targets``, oldest first."""
    if not targets:
        return []
    votes = session.scalars(
        select(ReviewVote).where(or_(*_matches(ReviewVote, targets))).order_by(ReviewVote.id)
    )
    overrides = session.scalars(
        select(Override).where(or_(*_matches(Override, targets))).order_by(Override.id)
    )
    events = [
        {
            "when": v.created_at,
            "kind": "vote",
            "who": v.reviewer,
            "target": f"{v.target_type.value} {v.target_id}",
            "decision": v.verdict.value,
            "details": _details(v.proposal, v.note),
        }
        for v in votes
    ] + [
        {
            "when": o.created_at,
            "kind": "override" + (" (superseded)" if o.superseded_by else ""),
            "who": o.decided_by,
            "target": f"{o.target_type.value} {o.target_id}",
            "decision": o.decision.value,
            "details": _details(o.values, o.reason),
        }
        for o in overrides
    ]
    return sorted(events, key=lambda e: (e["when"], e["kind"]))


def _matches(model: Any, targets: list[tuple[str, int]]) -> list[Any]:
    by_type: dict[str, list[int]] = {}
    for kind, target_id in targets:
        by_type.setdefault(kind, []).append(target_id)
    return [
        (model.target_type == ReviewTarget(kind)) & model.target_id.in_(ids)
        for kind, ids in by_type.items()
    ]


def _details(values: dict[str, Any] | None, text: str | None) -> str:
    parts = [f"{k}={v}" for k, v in (values or {}).items()]
    if text:
        parts.append(text)
    return "; ".join(parts)


def stage_progress_in(session: Session) -> list[dict[str, Any]]:
    """Images per stage and status."""
    rows = session.execute(
        select(ImageStage.stage, ImageStage.status, func.count()).group_by(
            ImageStage.stage, ImageStage.status
        )
    )
    return [{"stage": s.value, "status": t.value, "images": int(n)} for s, t, n in rows]


def review_progress_in(session: Session) -> dict[str, int]:
    """Votes, reviewed relations, reviewers and decided relations."""
    relation = ReviewVote.target_type == ReviewTarget.RELATION
    return {
        "relations": int(session.scalar(select(func.count()).select_from(GeometricRelation)) or 0),
        "votes": int(session.scalar(select(func.count()).select_from(ReviewVote)) or 0),
        "voted": int(
            session.scalar(select(func.count(func.distinct(ReviewVote.target_id))).where(relation))
            or 0
        ),
        "reviewers": int(
            session.scalar(select(func.count(func.distinct(ReviewVote.reviewer)))) or 0
        ),
        "decided": int(
            session.scalar(
                select(func.count()).where(
                    Override.target_type == ReviewTarget.RELATION, Override.superseded_by.is_(None)
                )
            )
            or 0
        ),
    }


def confusion_in(session: Session) -> list[dict[str, Any]]:
    """Per relation: the machine's strict verdict against reviewers' votes (counts)."""
    rows = session.execute(
        select(
            GeometricRelation.relation, GeometricRelation.strict, ReviewVote.verdict, func.count()
        )
        .join(ReviewVote, ReviewVote.target_id == GeometricRelation.id)
        .where(ReviewVote.target_type == ReviewTarget.RELATION)
        .group_by(GeometricRelation.relation, GeometricRelation.strict, ReviewVote.verdict)
    )
    return [
        {
            "relation": r,
            "machine": "strict" if s else "not strict",
            "vote": v.value,
            "count": int(n),
        }
        for r, s, v, n in rows
    ]


# --- the store-level reads (one read-only session each) ---------------------------------------


def item(store: Store, image_id: int, sample_id: int | None = None) -> ItemView | None:
    """One image with its sample (the first unless ``sample_id``), rows, relations, history."""
    with store.reader() as session:
        return item_view_in(session, image_id, sample_id)


def item_of(store: Store, target_type: str, target_id: int) -> ItemView | None:
    """The item a review target (relation, object, sample, claim) belongs to."""
    with store.reader() as session:
        image_id = image_of_in(session, target_type, target_id)
        return item_view_in(session, image_id) if image_id is not None else None


def progress(store: Store, *, top: int = 15) -> dict[str, Any]:
    """Relation statistics (``relations``, ``claims``, ``label_pairs``), ``stages`` (images per
    stage and status), ``review`` (votes, voted, reviewers, decided) and synthetic
    ``retention``."""
    from esplora.services.generation import retention

    with store.reader() as session:
        numbers: dict[str, Any] = relation_stats(session, top=top).to_dict()
        numbers["stages"] = stage_progress_in(session)
        numbers["review"] = review_progress_in(session)
        numbers["retention"] = retention(session)
    return numbers


def confusion(store: Store) -> list[dict[str, Any]]:
    """Per relation: the machine's strict verdict against reviewers' votes (counts)."""
    with store.reader() as session:
        return confusion_in(session)
