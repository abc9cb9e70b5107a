"""Reading a snapshot for export: its row, and its members page by page.

Members come in keyset pages on the primary key (snapshot_id, sample_id), each page in its own
short read transaction: a page costs the same however far into the snapshot it is (an index
range), memory stays flat however large the snapshot, and no transaction stays open for the
length of an export (which would hold back SQLite's WAL checkpoints and PostgreSQL's vacuum).
Ordering by content instead (split, image SHA-256, text) has no index to walk: every page sorted
the whole snapshot again, 0.25 s a page at 100 k members, quadratic in all. Only the frozen
member rows are read, never live relations.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select

from esplora.db.engine import Store
from esplora.db.images import Image, Sample, Source
from esplora.db.snapshots import SnapshotMember
from esplora.services.exports.common import Member


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """What the card says about a snapshot (``counts`` as the snapshot recorded them)."""

    id: int
    name: str
    filter: dict[str, Any]
    text_source: str
    validation_fraction: float
    caps: dict[str, Any]
    seed: int
    content_hash: str
    counts: dict[str, Any]
    created_by: str | None
    created_at: datetime | None


def load_snapshot(store: Store, name: str) -> SnapshotInfo:
    """The snapshot called ``name``; a clear error when there is none."""
    from esplora.services.snapshots import snapshot_row

    with store.reader() as session:
        row = snapshot_row(session, name)
    return SnapshotInfo(
        id=row.id,
        name=row.name,
        filter=dict(row.filter or {}),
        text_source=row.text_source,
        validation_fraction=float(row.validation_fraction or 0.0),
        caps=dict(row.caps or {}),
        seed=int(row.seed or 0),
        content_hash=row.content_hash,
        counts=dict(row.counts or {}),
        created_by=row.created_by,
        created_at=row.created_at,
    )


def count_members(store: Store, snapshot_id: int) -> int:
    """How many members the snapshot has."""
    with store.reader() as session:
        count = session.scalar(
            select(func.count()).where(SnapshotMember.snapshot_id == snapshot_id)
        )
    return int(count or 0)


def iter_member_pages(store: Store, snapshot_id: int, page_size: int) -> Iterator[list[Member]]:
    """Every member of the snapshot in export order, ``page_size`` at a time."""
    after = None
    while True:
        query = _page_query(snapshot_id, page_size)
        if after is not None:
            query = query.where(SnapshotMember.sample_id > after)
        with store.reader() as session:
            rows = session.execute(query).all()
        if not rows:
            return
        yield [_member(row) for row in rows]
        after = rows[-1].sample_id
        if len(rows) < page_size:
            return


def _page_query(snapshot_id: int, page_size: int) -> Any:
    m = SnapshotMember
    columns = (m.sample_id, m.image_sha256, m.text, m.text_source, m.relations, m.review_state,
               m.split, Image.uri, Image.width, Image.height, Image.origin, Sample.source_key,
               Source.name.label("source"))  # fmt: skip
    # Outer joins: a member whose sample or image row is gone is still listed (and skipped
    # with its reason) rather than silently missing from the count.
    return (
        select(*columns)
        .outerjoin(Image, Image.sha256 == m.image_sha256)
        .outerjoin(Sample, Sample.id == m.sample_id)
        .outerjoin(Source, Source.id == Sample.source_id)
        .where(m.snapshot_id == snapshot_id)
        .order_by(m.sample_id)
        .limit(page_size)
    )


def _member(row: Row[Any]) -> Member:
    return Member(
        sample_id=row.sample_id,
        image_sha256=row.image_sha256,
        text=row.text,
        text_source=row.text_source,
        relations=list(row.relations or []),
        review_state=row.review_state,
        split=str(getattr(row.split, "value", row.split)),
        uri=row.uri,
        width=row.width,
        height=row.height,
        origin=None if row.origin is None else str(getattr(row.origin, "value", row.origin)),
        source=row.source,
        source_key=row.source_key,
    )
