"""Snapshots: frozen, hashed, reproducible subsets of the store for training and export.

A snapshot is created from the Explore page's :class:`~esplora.services.filters.ItemFilter`
(stored as canonical JSON). Its members — image, training text, effective relations and review
state at creation — are copied into ``snapshot_members``, so a later relabel never changes it.
Caps and the split are deterministic (canonical order by image SHA-256, a fixed seed) and the
content hash has no database ids in it: the same filter on the same data gives the same hash on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import esplora
from esplora.core import snapshots as core
from esplora.core.snapshots import Member
from esplora.db.engine import Store
from esplora.db.enums import Split
from esplora.db.images import Image
from esplora.db.snapshots import Snapshot, SnapshotMember
from esplora.db.synthetic import SpatialPrompt
from esplora.db.writes import insert_rows
from esplora.errors import EsploraError
from esplora.services.filters import ItemFilter
from esplora.services.review_state import DEFAULT_OVERLAP
from esplora.services.snapshot_gather import TEXT_SOURCES, gather
from esplora.settings import Settings

__all__ = [
    "Caps",
    "SnapshotDiff",
    "SnapshotRequest",
    "SnapshotSummary",
    "TrainingExample",
    "create_snapshot",
    "diff_snapshots",
    "list_snapshots",
    "show_snapshot",
    "training_examples",
]

_INSERT_BATCH = 5_000


@dataclass(frozen=True, slots=True)
class Caps:
    """At most ``relation`` members per relation and ``pair`` per label pair (None: no cap)."""

    relation: int | None = None
    pair: int | None = None

    def __post_init__(self) -> None:
        for name in ("relation", "pair"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) < 1):
                raise EsploraError(f"cap {name}={value!r} must be a positive integer")

    def to_dict(self) -> dict[str, int]:
        return {k: v for k, v in (("relation", self.relation), ("pair", self.pair)) if v}

    @classmethod
    def parse(cls, text: str | None) -> Caps:
        """``"relation=500,pair=50"`` (either part optional) → caps."""
        values: dict[str, int] = {}
        for item in filter(None, (p.strip() for p in (text or "").split(","))):
            key, sep, value = item.partition("=")
            if not sep or key not in ("relation", "pair") or not value.strip().isdigit():
                raise EsploraError(f"cap {item!r}: use relation=N and/or pair=N")
            values[key] = int(value)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """What to freeze: the filter, the split, caps, the seed and which texts to train on."""

    name: str
    item_filter: ItemFilter
    validation_fraction: float = 0.0
    caps: Caps = Caps()
    seed: int = 0
    text_source: str = "both"
    strict: bool = False
    created_by: str | None = None

    def check(self) -> None:
        if not self.name.strip() or len(self.name) > 200:
            raise EsploraError("a snapshot name is 1–200 characters")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise EsploraError(f"--split {self.validation_fraction} must be in [0, 1)")
        if self.text_source not in TEXT_SOURCES:
            raise EsploraError(f"text source {self.text_source!r}: one of {TEXT_SOURCES}")


@dataclass(frozen=True, slots=True)
class SnapshotSummary:
    """A snapshot as ``show`` prints it (``counts`` holds the tallies, skips and producers)."""

    name: str
    hash: str
    filter: dict[str, Any]
    text_source: str
    validation_fraction: float
    caps: dict[str, Any]
    seed: int
    counts: dict[str, Any]
    created_by: str | None
    created_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        keys = ("members", "images", "splits", "relations", "pairs", "review_states")
        return {
            "name": self.name,
            "hash": self.hash,
            "filter": self.filter,
            "text_source": self.text_source,
            "validation_fraction": self.validation_fraction,
            "caps": self.caps,
            "seed": self.seed,
            **{key: self.counts.get(key) for key in keys},
            "text_sources": self.counts.get("text_sources", {}),
            "skipped": self.counts.get("skipped", {}),
            "contamination": self.counts.get("contamination", []),
            "producers": self.counts.get("producers", {}),
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }


@dataclass(frozen=True, slots=True)
class SnapshotDiff:
    """Members only in ``a`` (removed), only in ``b`` (added), in both but different (changed)."""

    a: str
    b: str
    same_hash: bool
    added: int
    removed: int
    changed: int
    relations: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[list[str]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "same_hash": self.same_hash,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "relations": self.relations,
            "examples": self.examples,
        }


@dataclass(frozen=True, slots=True)
class TrainingExample:
    """One frozen member as a trainer reads it."""

    image_path: Path
    text: str
    relations: tuple[dict[str, Any], ...]
    split: str
    image_sha256: str
    width: int
    height: int


def create_snapshot(
    store: Store, request: SnapshotRequest, *, k: int = DEFAULT_OVERLAP
) -> SnapshotSummary:
    """Freeze the filter's members (one read, then one unit of work that writes them all)."""
    request.check()
    with store.reader() as session:
        _refuse_existing(session, request.name)
        gathered = gather(session, request.item_filter, request.text_source, k)
        benchmark = [
            (text, name or "")
            for text, name in session.execute(
                select(SpatialPrompt.text, SpatialPrompt.benchmark).where(
                    SpatialPrompt.benchmark.is_not(None)
                )
            )
        ]
    members, duplicates = _unique(gathered.members)
    gathered.skip("same image and text as another sample", duplicates)
    members, capped = core.apply_caps(
        members, per_relation=request.caps.relation, per_pair=request.caps.pair
    )
    gathered.skip("over a cap", capped)
    overlap = core.contamination((m.text for m in members), benchmark)
    if overlap and request.strict:
        shown = "; ".join(f"{o['text']!r} ({o['benchmark']})" for o in overlap[:5])
        raise EsploraError(
            f"{len(overlap)} training text(s) overlap benchmark prompts: {shown}"
            " — drop --strict to create it anyway, or narrow the filter"
        )
    splits = core.assign_splits(members, request.validation_fraction, request.seed)
    counts = {
        **core.tally(members, splits),
        "skipped": dict(sorted(gathered.skipped.items())),
        "contamination": overlap,
        "producers": gathered.producers,
        "platform_version": esplora.__version__,
        "review_overlap": k,
    }
    with store.unit_of_work() as session:
        _refuse_existing(session, request.name)
        snapshot = _snapshot_row(request, core.content_hash(members), counts)
        session.add(snapshot)
        session.flush()
        _insert_members(session, snapshot.id, members, splits)
        return _summary(snapshot)


def _unique(members: Sequence[Member]) -> tuple[list[Member], int]:
    """One member per (image, text): a caption repeated by two sources trains once."""
    seen: dict[tuple[str, str], Member] = {}
    for member in sorted(members, key=lambda m: (m.key, m.sample_id or 0)):
        seen.setdefault(member.key, member)
    return list(seen.values()), len(members) - len(seen)


def _refuse_existing(session: Session, name: str) -> None:
    if session.scalar(select(Snapshot.id).where(Snapshot.name == name)) is not None:
        raise EsploraError(f"snapshot {name!r} already exists (snapshots are frozen: pick a name)")


def _snapshot_row(request: SnapshotRequest, digest: str, counts: dict[str, Any]) -> Snapshot:
    return Snapshot(
        name=request.name,
        filter=request.item_filter.to_dict(),
        filter_json=request.item_filter.to_json(),
        text_source=request.text_source,
        validation_fraction=request.validation_fraction,
        caps=request.caps.to_dict(),
        seed=request.seed,
        content_hash=digest,
        counts=counts,
        created_by=request.created_by,
    )


def _insert_members(
    session: Session, snapshot_id: int, members: Sequence[Member], splits: dict[str, str]
) -> None:
    rows = [
        {
            "snapshot_id": snapshot_id,
            "sample_id": m.sample_id,
            "image_sha256": m.image_sha256,
            "text": m.text,
            "text_source": m.text_source,
            "relations": list(m.relations),
            "review_state": m.review_state,
            "split": Split(splits[m.image_sha256]),
        }
        for m in core.sort_members(members)
    ]
    for start in range(0, len(rows), _INSERT_BATCH):
        insert_rows(session, SnapshotMember, rows[start : start + _INSERT_BATCH])


def _summary(row: Snapshot) -> SnapshotSummary:
    return SnapshotSummary(
        name=row.name,
        hash=row.content_hash,
        filter=dict(row.filter),
        text_source=row.text_source,
        validation_fraction=row.validation_fraction,
        caps=dict(row.caps),
        seed=row.seed,
        counts=dict(row.counts),
        created_by=row.created_by,
        created_at=row.created_at,
    )


def snapshot_row(session: Session, name: str) -> Snapshot:
    """The snapshot called ``name``; a clear error naming the known ones when there is none."""
    row = session.scalars(select(Snapshot).where(Snapshot.name == name)).one_or_none()
    if row is None:
        known = session.scalars(select(Snapshot.name).order_by(Snapshot.name).limit(20)).all()
        hint = f"; known: {', '.join(known)}" if known else "; none exist yet"
        raise EsploraError(f"no snapshot named {name!r}{hint}")
    return row


def list_snapshots(store: Store) -> list[SnapshotSummary]:
    """Every snapshot, newest first."""
    with store.reader() as session:
        rows = session.scalars(select(Snapshot).order_by(Snapshot.id.desc()))
        return [_summary(row) for row in rows]


def show_snapshot(store: Store, name: str) -> SnapshotSummary:
    """One snapshot by name (a clear error naming the known ones when it does not exist)."""
    with store.reader() as session:
        return _summary(snapshot_row(session, name))


def stored_members(session: Session, snapshot_id: int) -> list[Member]:
    """A snapshot's frozen members, in canonical order."""
    rows = session.execute(
        select(
            SnapshotMember.image_sha256,
            SnapshotMember.text,
            SnapshotMember.text_source,
            SnapshotMember.relations,
            SnapshotMember.review_state,
            SnapshotMember.sample_id,
        ).where(SnapshotMember.snapshot_id == snapshot_id)
    )
    return core.sort_members(
        Member(sha, text, source, tuple(rels), state, sid)
        for sha, text, source, rels, state, sid in rows
    )


def diff_snapshots(store: Store, a: str, b: str, *, examples: int = 5) -> SnapshotDiff:
    """What changed from snapshot ``a`` to ``b``, member by member (image and text as key)."""
    with store.reader() as session:
        first, second = snapshot_row(session, a), snapshot_row(session, b)
        old = {m.key: m for m in stored_members(session, first.id)}
        new = {m.key: m for m in stored_members(session, second.id)}
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    changed = sorted(
        key
        for key in old.keys() & new.keys()
        if core.member_line(old[key]) != core.member_line(new[key])
    )
    before = first.counts.get("relations", {})
    after = second.counts.get("relations", {})
    deltas = {r: after.get(r, 0) - before.get(r, 0) for r in sorted(set(before) | set(after))}
    return SnapshotDiff(
        a=a,
        b=b,
        same_hash=first.content_hash == second.content_hash,
        added=len(added),
        removed=len(removed),
        changed=len(changed),
        relations={r: d for r, d in deltas.items() if d},
        examples={
            "added": [list(k) for k in added[:examples]],
            "removed": [list(k) for k in removed[:examples]],
            "changed": [list(k) for k in changed[:examples]],
        },
    )


def training_examples(
    store: Store, name: str, split: str | None = "train", *, settings: Settings | None = None
) -> list[TrainingExample]:
    """A snapshot's members of ``split`` (all with None) with their image files, for trainers.

    Image paths resolve against ``settings.artefacts_dir`` (the process's settings by default).
    """
    from esplora.settings import get_settings
    from esplora.sources.images import resolve_uri

    settings = settings or get_settings()
    with store.reader() as session:
        snapshot = snapshot_row(session, name)
        query = (
            select(SnapshotMember, Image.uri, Image.width, Image.height)
            .join(Image, Image.sha256 == SnapshotMember.image_sha256)
            .where(SnapshotMember.snapshot_id == snapshot.id)
            .order_by(SnapshotMember.image_sha256, SnapshotMember.text)
        )
        if split is not None:
            query = query.where(SnapshotMember.split == Split(split))
        rows = session.execute(query).all()
    return [
        TrainingExample(
            image_path=resolve_uri(uri, settings.artefacts_dir),
            text=member.text,
            relations=tuple(member.relations),
            split=member.split.value,
            image_sha256=member.image_sha256,
            width=width,
            height=height,
        )
        for member, uri, width, height in rows
    ]
