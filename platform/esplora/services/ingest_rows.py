"""The ingest service's reads and writes: what the store holds of a batch, and its new rows.

Every function takes a session and never commits: :mod:`esplora.services.ingest` opens one unit
of work per batch and commits once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from esplora.db.changes import allocate_change_seqs
from esplora.db.detections import DetectedObject
from esplora.db.enums import Origin, ProducerKind, Stage, StageStatus
from esplora.db.images import Image, ImageStage, IngestFailure, Sample
from esplora.sources.images import DecodedImage
from esplora.sources.items import Annotation, Box, ItemError
from esplora.sources.phash import PhashIndex

KEY_LENGTH = 500  # samples.source_key and ingest_failures.source_key
# ImageStage.producer of the stages the caption filter skipped (so a kept sample revives them).
FILTER_PRODUCER = "ingest:filter"
# Only generated images are validated against a prompt; ingested ones skip that stage for good.
NATURAL_PRODUCER = "ingest:natural"


@dataclass(frozen=True, slots=True)
class KnownImage:
    """An image the store already holds (by SHA-256)."""

    id: int
    width: int
    height: int


@dataclass
class KnownState:
    """What the store holds of one batch, read before any decoding."""

    sample_keys: set[str]
    failure_keys: set[str]
    images: dict[str, KnownImage]  # by sha256
    annotated: set[int]  # image ids that already hold this source's annotation objects


@dataclass
class NewImage:
    """An image to insert: decoded, its original already written under ``uri``."""

    decoded: DecodedImage
    uri: str
    keep: bool = False  # at least one of its samples passed the filter
    in_batch_original: int | None = None  # position of an earlier near-duplicate in the batch


@dataclass(frozen=True, slots=True)
class NewSample:
    """A sample to insert; its image is found by ``sha256`` at write time."""

    key: str
    sha256: str
    caption: str
    meta: dict[str, Any]
    exclusion_reason: str | None


@dataclass
class BatchPlan:
    """The rows one batch adds."""

    images: dict[str, NewImage] = field(default_factory=dict)  # by sha256, in order
    samples: list[NewSample] = field(default_factory=list)
    objects: dict[str, list[tuple[Annotation, Box]]] = field(default_factory=dict)
    failures: dict[str, ItemError] = field(default_factory=dict)
    stale_failures: set[str] = field(default_factory=set)  # keys that now read fine
    revive: set[int] = field(default_factory=set)  # stored images with a new kept sample
    keys: set[str] = field(default_factory=set)  # keys stored by this batch
    sample_shas: set[str] = field(default_factory=set)  # images that already have a sample here

    def empty(self) -> bool:
        """Whether the batch writes nothing."""
        return not (self.images or self.samples or self.failures or self.objects or self.revive)


@dataclass(frozen=True, slots=True)
class Written:
    """Rows one batch inserted (named as :class:`~esplora.services.ingest.IngestReport`)."""

    imported_images: int
    near_duplicates: int
    imported_samples: int
    imported_objects: int
    new_failures: int


def fit_key(key: str) -> str:
    """``key`` within the key columns' length (a long key keeps a prefix and a digest)."""
    if len(key) <= KEY_LENGTH:
        return key
    return f"{key[: KEY_LENGTH - 17]}#{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def load_phash_index(session: Session) -> PhashIndex:
    """Every stored pHash with its image id, oldest first."""
    index = PhashIndex()
    statement = select(Image.id, Image.phash).where(Image.phash.is_not(None)).order_by(Image.id)
    for image_id, value in session.execute(statement):
        if value:
            index.add(image_id, value)
    return index


def read_known(
    session: Session,
    *,
    source_id: int,
    producer: str,
    keys: Collection[str],
    shas: Collection[str],
    with_annotations: bool,
) -> KnownState:
    """The batch's keys already stored as samples or failures, and its images already stored."""
    samples = select(Sample.source_key).where(
        Sample.source_id == source_id, Sample.source_key.in_(keys)
    )
    failures = select(IngestFailure.source_key).where(
        IngestFailure.source_id == source_id, IngestFailure.source_key.in_(keys)
    )
    rows = session.execute(
        select(Image.sha256, Image.id, Image.width, Image.height).where(Image.sha256.in_(shas))
    )
    images = {sha: KnownImage(image_id, w, h) for sha, image_id, w, h in rows}
    annotated: set[int] = set()
    if images and with_annotations:
        owned = select(DetectedObject.image_id).where(
            DetectedObject.producer == producer,
            DetectedObject.image_id.in_([image.id for image in images.values()]),
        )
        annotated = set(session.scalars(owned.distinct()))
    return KnownState(
        set(session.scalars(samples)), set(session.scalars(failures)), images, annotated
    )


def write_plan(
    session: Session,
    plan: BatchPlan,
    known: KnownState,
    *,
    source_id: int,
    producer: str,
    index: PhashIndex,
    distance: int,
) -> Written:
    """Insert the batch's images (with stages), samples, objects and failures.

    Rows go in as multi-row INSERTs (the ORM's per-object bookkeeping costs more than the
    database here), each with a change number reserved in this transaction.
    """
    ids = {sha: image.id for sha, image in known.images.items()}
    new_ids, near = insert_images(session, plan.images, index, distance)
    ids |= new_ids
    annotated = {sha for sha, boxes in plan.objects.items() if boxes}
    keep = [(ids[sha], new.keep, sha in annotated) for sha, new in plan.images.items()]
    add_stages(session, keep, producer)
    insert_samples(session, plan.samples, ids, source_id)
    revive_stages(session, plan.revive)
    objects = insert_objects(session, plan.objects, ids, producer)
    use_annotations(session, [ids[sha] for sha in annotated if sha not in new_ids], producer)
    failures = record_failures(session, source_id, plan.failures, plan.stale_failures)
    return Written(len(new_ids), near, len(plan.samples), objects, failures)


def _stamped(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row, seq in zip(rows, allocate_change_seqs(session, len(rows)), strict=True):
        row["change_seq"] = seq
    return rows


def insert_images(
    session: Session, images: dict[str, NewImage], index: PhashIndex, distance: int
) -> tuple[dict[str, int], int]:
    """Insert new images with their near-duplicate marks.

    Returns the ids by sha256 and how many are near-duplicates; ``index`` learns the hashes.
    """
    if not images:
        return {}, 0
    rows, batch = [], PhashIndex()  # batch: this batch's hashes, by position (no ids yet)
    for position, (sha, new) in enumerate(images.items()):
        value = new.decoded.phash
        row = _image_row(sha, new, index.nearest(value, distance))
        if row["near_duplicate_of"] is None:
            new.in_batch_original = batch.nearest(value, distance)
        batch.add(position, value)
        rows.append(row)
    statement = insert(Image).returning(Image.id, sort_by_parameter_order=True)
    ids = list(session.scalars(statement, _stamped(session, rows)))
    _mark_in_batch(session, list(images.values()), ids)
    for image_id, new in zip(ids, images.values(), strict=True):
        index.add(image_id, new.decoded.phash)
    near = sum(r["near_duplicate_of"] is not None or n.in_batch_original is not None
               for r, n in zip(rows, images.values(), strict=True))  # fmt: skip
    return dict(zip(images, ids, strict=True)), near


def _image_row(sha: str, new: NewImage, near_duplicate_of: int | None) -> dict[str, Any]:
    decoded = new.decoded
    return {
        "sha256": sha,
        "uri": new.uri,
        "phash": decoded.phash,
        "width": decoded.width,
        "height": decoded.height,
        "origin": Origin.NATURAL,
        "near_duplicate_of": near_duplicate_of,
        "format": decoded.format.lower()[:16],
        "byte_size": decoded.byte_size,
    }


def _mark_in_batch(session: Session, images: list[NewImage], ids: list[int]) -> None:
    """Near-duplicates of an image inserted in the same statement get its id now."""
    rows = [
        {"id": image_id, "near_duplicate_of": ids[new.in_batch_original]}
        for image_id, new in zip(ids, images, strict=True)
        if new.in_batch_original is not None
    ]
    if rows:
        session.execute(update(Image), _stamped(session, rows))


def add_stages(session: Session, images: list[tuple[int, bool, bool]], producer: str) -> None:
    """One status row per stage for each ``(image id, kept, annotated)``.

    Pending, or skipped by the filter when no sample is kept. An image with dataset boxes
    skips detection for good (producer: the annotations' producer): later stages use those
    boxes instead of a detector's, never a mix.
    """
    rows = [
        _stage_row(image_id, stage, keep, producer if annotated and stage is Stage.DETECT else None)
        for image_id, keep, annotated in images
        for stage in Stage
    ]
    if rows:
        session.execute(insert(ImageStage), _stamped(session, rows))


def _stage_row(image_id: int, stage: Stage, keep: bool, annotations: str | None) -> dict[str, Any]:
    if stage is Stage.VALIDATE:
        status, producer = StageStatus.SKIPPED, NATURAL_PRODUCER
    elif annotations is not None:
        status, producer = StageStatus.SKIPPED, annotations
    elif keep:
        status, producer = StageStatus.PENDING, None
    else:
        status, producer = StageStatus.SKIPPED, FILTER_PRODUCER
    return {"image_id": image_id, "stage": stage, "status": status, "producer": producer,
            "attempts": 0}  # fmt: skip


def use_annotations(session: Session, image_ids: list[int], producer: str) -> None:
    """Stored images that just got dataset boxes skip detection, unless a detector already ran
    (its boxes stay the ones in use)."""
    if not image_ids:
        return
    rows = session.scalars(
        select(ImageStage).where(
            ImageStage.image_id.in_(image_ids),
            ImageStage.stage == Stage.DETECT,
            ImageStage.status.in_([StageStatus.PENDING, StageStatus.SKIPPED]),
        )
    )
    for row in rows:  # ORM updates: the flush stamps their change numbers
        if row.status == StageStatus.PENDING or row.producer == FILTER_PRODUCER:
            row.status, row.producer = StageStatus.SKIPPED, producer


def insert_samples(
    session: Session, samples: list[NewSample], ids: dict[str, int], source_id: int
) -> None:
    """The batch's image-text pairs."""
    rows = [
        {
            "image_id": ids[s.sha256],
            "source_id": source_id,
            "source_key": s.key,
            "caption": s.caption,
            "meta": s.meta,
            "excluded": s.exclusion_reason is not None,
            "exclusion_reason": s.exclusion_reason,
            "version": 1,
        }
        for s in samples
    ]
    if rows:
        session.execute(insert(Sample), _stamped(session, rows))


def revive_stages(session: Session, image_ids: Collection[int]) -> None:
    """Stages the filter skipped go back to pending once the image has a kept sample."""
    if not image_ids:
        return
    rows = session.scalars(
        select(ImageStage).where(
            ImageStage.image_id.in_(image_ids),
            ImageStage.status == StageStatus.SKIPPED,
            ImageStage.producer == FILTER_PRODUCER,
        )
    )
    for row in rows:  # ORM updates: the flush stamps their change numbers
        row.status, row.producer = StageStatus.PENDING, None


def insert_objects(
    session: Session,
    objects: dict[str, list[tuple[Annotation, Box]]],
    ids: dict[str, int],
    producer: str,
) -> int:
    """The dataset's boxes as detected objects with producer kind ``annotation``."""
    rows = [
        {
            "image_id": ids[sha],
            "label": annotation.label[:100],
            "phrase": annotation.phrase[:300],
            "x0": x0,
            "y0": y0,
            "x1": x1,
            "y1": y1,
            "score": None,
            "producer_kind": ProducerKind.ANNOTATION,
            "producer": producer,
            "version": 1,
        }
        for sha, boxes in objects.items()
        for annotation, (x0, y0, x1, y1) in boxes
    ]
    if rows:
        session.execute(insert(DetectedObject), _stamped(session, rows))
    return len(rows)


def record_failures(
    session: Session, source_id: int, failures: dict[str, ItemError], stale: Collection[str]
) -> int:
    """Insert new failures; delete those of keys that now read fine. Returns how many new."""
    rows = [
        {"source_id": source_id, "source_key": key, "reason": e.reason[:64], "detail": e.detail}
        for key, e in failures.items()
    ]
    if rows:
        session.execute(insert(IngestFailure), rows)
    if stale:
        session.execute(
            delete(IngestFailure).where(
                IngestFailure.source_id == source_id, IngestFailure.source_key.in_(stale)
            )
        )
    return len(rows)
