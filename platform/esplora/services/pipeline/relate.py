"""The relate stage: every pair of an image's objects scored by the ESPLoRA rule, stored as
canonical rows (one per pair and axis), and each caption claim linked to the row that confirms
or contradicts it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from esplora.core.relations import AXIS_OF, CANONICAL, parse_relation
from esplora.core.rules import get_pair_filter
from esplora.core.rules.canonical import CanonicalArrays, canonical_relations_many
from esplora.db.detections import ObjectDepth
from esplora.db.enums import Agreement, Stage, StageStatus
from esplora.db.images import Image, ImageStage, Sample
from esplora.db.relations import CaptionClaim, GeometricRelation
from esplora.db.writes import insert_rows, update_rows
from esplora.services.pipeline.context import StageContext
from esplora.services.pipeline.objects import ObjectRow, objects_for

RULE = "esplora-strict"


@dataclass(frozen=True, slots=True)
class RelateInput:
    size: tuple[int, int]
    objects: tuple[ObjectRow, ...]
    disparity: dict[int, float]  # object id → median normalised disparity


def agreement(claimed: str, subject_id: int, row: tuple[int, bool] | None) -> Agreement:
    """How the geometric row (its subject id and strictness) judges a caption's claim.

    Confirmed or contradicted only when the geometry is strict; a soft-only row, a missing row
    (no such objects, or an exact tie) or a ``near`` claim stays unresolved.
    """
    relation = parse_relation(claimed)
    if relation not in AXIS_OF or row is None or not row[1]:
        return Agreement.UNRESOLVED
    canonical = CANONICAL[AXIS_OF[relation]]
    holds = (row[0] == subject_id) == (relation == canonical)
    return Agreement.CONFIRMED if holds else Agreement.CONTRADICTED


def producer_name(ctx: StageContext) -> str:
    s = ctx.settings
    name = f"{RULE}@tau={s.tau:g},gap={s.depth_gap:.4g}"
    return f"{name}+{s.pair_filter}" if s.pair_filter else name


def _pairs(item: RelateInput, ctx: StageContext) -> list[tuple[ObjectRow, ObjectRow]]:
    pairs = list(combinations(item.objects, 2))
    if not pairs or not ctx.settings.pair_filter:
        return pairs
    scop = get_pair_filter(ctx.settings.pair_filter)
    keep = [
        scop.accept(a.box, b.box, image_size=item.size, same_category=a.label == b.label)
        for a, b in pairs
    ]
    return [p for p, k in zip(pairs, keep, strict=True) if k]


def _rows(
    image_id: int,
    pairs: list[tuple[ObjectRow, ObjectRow]],
    axes: list[CanonicalArrays],
    base: dict[str, Any],
) -> list[dict[str, Any]]:
    rows = []
    for arrays in axes:
        for k in np.flatnonzero(arrays.present):
            a, b = pairs[k]
            subject, obj = (a, b) if arrays.subject_is_a[k] else (b, a)
            rows.append(
                {
                    **base,
                    "image_id": image_id,
                    "subject_id": subject.id,
                    "object_id": obj.id,
                    "axis": arrays.axis.value,
                    "relation": CANONICAL[arrays.axis].value,
                    "soft": bool(arrays.soft[k]),
                    "strict": bool(arrays.strict[k]),
                    "margin": float(arrays.margin[k]),
                }
            )
    return rows


class RelateRunner:
    stage = Stage.RELATE

    def producer(self, ctx: StageContext) -> str:
        return producer_name(ctx)

    def load(self, ctx: StageContext, image_ids: Sequence[int]) -> dict[int, Any]:
        with ctx.store.reader() as session:
            sizes = {
                i: (w, h)
                for i, w, h in session.execute(
                    select(Image.id, Image.width, Image.height).where(Image.id.in_(image_ids))
                )
            }
            objects = objects_for(session, image_ids)
            depth = medians(session, image_ids)
        return {
            i: RelateInput(sizes[i], tuple(objects.get(i, ())), depth.get(i, {})) for i in sizes
        }

    def compute(self, ctx: StageContext, inputs: Mapping[int, Any]) -> dict[int, Any]:
        s = ctx.settings
        base = {
            "rule": RULE,
            "tau": s.tau,
            "depth_gap": s.depth_gap,
            "producer": self.producer(ctx),
            "version": 1,
        }
        out: dict[int, Any] = {}
        for image_id, item in inputs.items():
            pairs = _pairs(item, ctx)
            if not pairs:
                out[image_id] = []
                continue
            a = np.array([p[0].box for p in pairs])
            b = np.array([p[1].box for p in pairs])
            axes = canonical_relations_many(a, b, tau=s.tau, depth_gap=s.depth_gap)
            rows = _rows(image_id, pairs, axes, base)
            deep = [p for p in pairs if p[0].id in item.disparity and p[1].id in item.disparity]
            if deep:
                d = np.array([(item.disparity[x.id], item.disparity[y.id]) for x, y in deep])
                arrays = canonical_relations_many(
                    np.array([p[0].box for p in deep]),
                    np.array([p[1].box for p in deep]),
                    disparity=d,
                    tau=s.tau,
                    depth_gap=s.depth_gap,
                )[-1]
                rows += _rows(image_id, deep, [arrays], base)
            out[image_id] = rows
        return out

    def write(
        self, session: Session, ctx: StageContext, results: Mapping[int, Any]
    ) -> dict[int, dict[str, Any]]:
        ids = list(results)
        producer = self.producer(ctx)
        session.execute(
            delete(GeometricRelation).where(
                GeometricRelation.image_id.in_(ids), GeometricRelation.producer == producer
            )
        )
        insert_rows(session, GeometricRelation, [r for rows in results.values() for r in rows])
        linked = link_claims(session, ids, producer)
        return {i: {"relations": len(results[i]), **linked.get(i, {})} for i in ids}


def medians(session: Session, image_ids: Sequence[int]) -> dict[int, dict[int, float]]:
    """Per image, object id → median disparity from the producer of its depth stage."""
    from esplora.db.detections import DetectedObject

    rows = session.execute(
        select(DetectedObject.image_id, ObjectDepth.object_id, ObjectDepth.median)
        .join(DetectedObject, DetectedObject.id == ObjectDepth.object_id)
        .join(
            ImageStage,
            (ImageStage.image_id == DetectedObject.image_id)
            & (ImageStage.stage == Stage.DEPTH)
            & (ImageStage.status == StageStatus.DONE)
            & (ImageStage.producer == ObjectDepth.producer),
        )
        .where(DetectedObject.image_id.in_(image_ids))
    )
    out: dict[int, dict[int, float]] = {}
    for image_id, object_id, median in rows:
        out.setdefault(image_id, {})[object_id] = median
    return out


def link_claims(
    session: Session, image_ids: Sequence[int], producer: str
) -> dict[int, dict[str, int]]:
    """Point each claim of these images' samples at its geometric row and judge it."""
    objects = objects_for(session, image_ids)
    rows = session.execute(
        select(
            GeometricRelation.id,
            GeometricRelation.subject_id,
            GeometricRelation.object_id,
            GeometricRelation.axis,
            GeometricRelation.strict,
        ).where(GeometricRelation.image_id.in_(image_ids), GeometricRelation.producer == producer)
    )
    by_pair = {(frozenset((s, o)), axis): (rid, s, strict) for rid, s, o, axis, strict in rows}
    claims = session.execute(
        select(
            CaptionClaim.id,
            CaptionClaim.relation,
            CaptionClaim.subject_label,
            CaptionClaim.object_label,
            Sample.image_id,
        )
        .join(Sample, Sample.id == CaptionClaim.sample_id)
        .where(Sample.image_id.in_(image_ids))
    ).all()
    updates: list[dict[str, Any]] = []
    tally: dict[int, dict[str, int]] = {}
    for claim_id, relation, subject_label, object_label, image_id in claims:
        row = _judge(claim_id, relation, subject_label, object_label, objects[image_id], by_pair)
        updates.append(row)
        counts = tally.setdefault(image_id, {})
        counts[row["agreement"]] = counts.get(row["agreement"], 0) + 1
    update_rows(session, CaptionClaim, updates)
    return tally


def _judge(
    claim_id: int,
    relation: str,
    subject_label: str,
    object_label: str,
    objects: list[ObjectRow],
    by_pair: dict[Any, tuple[int, int, bool]],
) -> dict[str, Any]:
    """The claim's best instances (top score per label, distinct) and its verdict."""
    subject = next((o for o in objects if o.label == subject_label), None)
    obj = next((o for o in objects if o.label == object_label and o is not subject), None)
    row = None
    if subject is not None and obj is not None and relation in {r.value for r in AXIS_OF}:
        axis = AXIS_OF[parse_relation(relation)].value
        row = by_pair.get((frozenset((subject.id, obj.id)), axis))
    verdict = agreement(relation, subject.id if subject else -1, (row[1], row[2]) if row else None)
    return {
        "id": claim_id,
        "subject_object_id": subject.id if subject else None,
        "object_object_id": obj.id if obj else None,
        "geometric_relation_id": row[0] if row else None,
        "agreement": verdict.value,
    }
