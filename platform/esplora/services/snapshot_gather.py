"""Reading a filter's matches out of the store as snapshot candidates (read-only).

The filter selects relation items; every usable sample of their images becomes a candidate
member carrying the image's matched relations in their *effective* reading (after review:
flipped, relabelled, another detection chosen; rejected ones dropped).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from esplora.core.snapshots import Member, combined_state, relation
from esplora.db.detections import DetectedObject
from esplora.db.enums import SourceKind
from esplora.db.images import Image, Sample, Source
from esplora.db.relations import GeometricRelation
from esplora.db.synthetic import Generation, Validation
from esplora.services.filters import ItemFilter, apply
from esplora.services.review_state import EffectiveRelation, effective_relation

CHUNK = 5_000  # ids per IN list: well under SQLite's bound-parameter limit
TEXT_SOURCES = ("caption", "prompt", "both")


@dataclass(slots=True)
class Gathered:
    """Candidates before caps and split, with what was skipped and who produced the data."""

    members: list[Member] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    producers: dict[str, list[Any]] = field(default_factory=dict)

    def skip(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped[reason] = self.skipped.get(reason, 0) + count


def chunks(ids: Sequence[int], size: int = CHUNK) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def gather(session: Session, item_filter: ItemFilter, text_source: str, k: int) -> Gathered:
    """Every candidate member for ``item_filter`` (unsorted; caps and split come later)."""
    matched: dict[int, list[int]] = defaultdict(list)
    for rel_id, image_id in session.execute(
        apply(select(GeometricRelation.id, GeometricRelation.image_id), item_filter, k=k)
    ):
        matched[image_id].append(rel_id)
    out = Gathered()
    relations = _effective_relations(session, matched, k, out)
    samples = _samples(session, list(matched), item_filter.excluded is True)
    unusable = _unusable_generations(session, samples)
    shas = _shas(session, list(matched))
    for image_id, rows in samples.items():
        rels = relations.get(image_id, [])
        if not rels:
            out.skip("every matched relation rejected", len(rows))
            continue
        state = combined_state(r["state"] for r in rels)
        for sample_id, text, source in rows:
            if text_source != "both" and source != text_source:
                out.skip(f"text source is {source}")
            elif sample_id in unusable:
                out.skip(unusable[sample_id])
            elif not text.strip():
                out.skip("empty text")
            else:
                out.members.append(
                    Member(shas[image_id], text, source, tuple(rels), state, sample_id)
                )
    out.producers = _producers(session, matched)
    return out


def _effective_relations(
    session: Session, matched: dict[int, list[int]], k: int, out: Gathered
) -> dict[int, list[dict[str, Any]]]:
    """Image id → its matched relations as member dicts, in the effective reading."""
    ids = sorted(i for rel_ids in matched.values() for i in rel_ids)
    effective: dict[int, EffectiveRelation] = {}
    machine: dict[int, tuple[bool, bool, float]] = {}
    for part in chunks(ids):
        effective.update(effective_relation(session, part, k=k))
        rows = session.execute(
            select(
                GeometricRelation.id,
                GeometricRelation.soft,
                GeometricRelation.strict,
                GeometricRelation.margin,
            ).where(GeometricRelation.id.in_(part))
        )
        machine.update((rid, (soft, strict, margin)) for rid, soft, strict, margin in rows)
    boxes = _boxes(session, effective.values())
    result: dict[int, list[dict[str, Any]]] = {}
    for image_id, rel_ids in matched.items():
        result[image_id] = []
        for rid in sorted(rel_ids):
            reading = effective[rid].effective
            if reading is None:
                out.skip("relation rejected by review")
                continue
            soft, strict, margin = machine[rid]
            result[image_id].append(
                relation(
                    reading.relation,
                    boxes[reading.subject_id],
                    boxes[reading.object_id],
                    soft=soft,
                    strict=strict,
                    margin=margin,
                    state=effective[rid].state.state.value,
                )
            )
    return result


def _boxes(
    session: Session, relations: Any
) -> dict[int, tuple[str, tuple[float, float, float, float]]]:
    """Object id → (label, box) for every object an effective reading names."""
    wanted = sorted(
        {r.effective.subject_id for r in relations if r.effective}
        | {r.effective.object_id for r in relations if r.effective}
    )
    out: dict[int, tuple[str, tuple[float, float, float, float]]] = {}
    box = DetectedObject
    for part in chunks(wanted):
        rows = session.execute(
            select(box.id, box.label, box.x0, box.y0, box.x1, box.y1).where(box.id.in_(part))
        )
        out.update((oid, (label, (x0, y0, x1, y1))) for oid, label, x0, y0, x1, y1 in rows)
    return out


def _unusable_generations(
    session: Session, samples: dict[int, list[tuple[int, str, str]]]
) -> dict[int, str]:
    """Sample id → why a generated sample cannot train: the paper keeps a generated image only
    when every prompted relation re-validated strictly, and benchmark outputs never train."""
    prompt_samples = sorted(
        sid for rows in samples.values() for sid, _, source in rows if source == "prompt"
    )
    generation_of: dict[int, int | None] = {}
    for part in chunks(prompt_samples):
        for sample_id, meta in session.execute(
            select(Sample.id, Sample.meta).where(Sample.id.in_(part))
        ):
            generation = (meta or {}).get("generation_id")
            generation_of[sample_id] = int(generation) if generation is not None else None
    verdicts = _generation_verdicts(session, sorted({g for g in generation_of.values() if g}))
    out: dict[int, str] = {}
    for sample_id, generation in generation_of.items():
        evaluated, kept = verdicts.get(generation or 0, (False, False))
        if evaluated:
            out[sample_id] = "benchmark evaluation image"
        elif not kept:
            out[sample_id] = "generated image not re-validated strictly"
    return out


def _generation_verdicts(session: Session, ids: list[int]) -> dict[int, tuple[bool, bool]]:
    """Generation id → (made for an evaluation, has a strict validation)."""
    out: dict[int, tuple[bool, bool]] = {}
    strict = func.max(case((Validation.strict.is_(True), 1), else_=0))
    for part in chunks(ids):
        rows = session.execute(
            select(Generation.id, Generation.evaluation_id, strict)
            .outerjoin(Validation, Validation.generation_id == Generation.id)
            .where(Generation.id.in_(part))
            .group_by(Generation.id, Generation.evaluation_id)
        )
        out.update((gid, (evaluation is not None, bool(kept))) for gid, evaluation, kept in rows)
    return out


def _samples(
    session: Session, image_ids: list[int], excluded: bool
) -> dict[int, list[tuple[int, str, str]]]:
    """Image id → (sample id, text, text source) of its samples. Excluded samples stay out
    unless the filter asks for excluded ones; a generated image's text is its prompt."""
    out: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    for part in chunks(sorted(image_ids)):
        rows = session.execute(
            select(Sample.id, Sample.image_id, Sample.caption, Source.kind)
            .join(Source, Source.id == Sample.source_id)
            .where(Sample.image_id.in_(part), Sample.excluded.is_(excluded))
            .order_by(Sample.id)
        )
        for sample_id, image_id, caption, kind in rows:
            source = "prompt" if kind == SourceKind.GENERATED else "caption"
            out[image_id].append((sample_id, caption or "", source))
    return out


def _shas(session: Session, image_ids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for part in chunks(sorted(image_ids)):
        rows = session.execute(select(Image.id, Image.sha256).where(Image.id.in_(part)))
        out.update((int(image_id), str(sha)) for image_id, sha in rows)
    return out


def _producers(session: Session, matched: dict[int, list[int]]) -> dict[str, list[Any]]:
    """Who produced the frozen data: relation producers, rules, τ and depth gaps, detectors and
    depth models — the dataset card names them."""
    rel = GeometricRelation
    found: dict[str, set[Any]] = defaultdict(set)
    for part in chunks(sorted(i for ids in matched.values() for i in ids)):
        for producer, rule, tau, gap in session.execute(
            select(rel.producer, rel.rule, rel.tau, rel.depth_gap)
            .where(rel.id.in_(part))
            .distinct()
        ):
            found["relations"].add(producer)
            found["rules"].add(rule)
            found["tau"].add(float(tau))
            found["depth_gap"].add(float(gap))
    for part in chunks(sorted(matched)):
        found["detectors"].update(
            session.scalars(
                select(DetectedObject.producer).where(DetectedObject.image_id.in_(part)).distinct()
            )
        )
        found["depth"].update(
            p
            for p in session.scalars(
                select(Image.depth_producer).where(Image.id.in_(part)).distinct()
            )
            if p
        )
    keys = ("relations", "rules", "tau", "depth_gap", "detectors", "depth")
    return {key: sorted(found[key]) for key in keys}
