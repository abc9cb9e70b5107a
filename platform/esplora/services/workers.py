"""Worker heartbeats: which workers are alive, from the store (works on every broker)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from esplora.db.engine import Store
from esplora.db.images import WorkerHeartbeat
from esplora.services.stages import now

LIVE_WITHIN = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    name: str
    hostname: str
    queues: tuple[str, ...]
    pid: int
    last_seen: datetime


def heartbeat(store: Store, *, name: str, hostname: str, queues: list[str], pid: int) -> None:
    """Record that worker ``name`` is alive now (insert or refresh its row)."""
    with store.unit_of_work() as session:
        row = session.get(WorkerHeartbeat, name)
        if row is None:
            row = WorkerHeartbeat(name=name, hostname=hostname, queues=queues, pid=pid)
            session.add(row)
        row.queues, row.pid, row.last_seen = queues, pid, now()


def forget(store: Store, name: str) -> None:
    """A worker shutting down cleanly removes its row."""
    with store.unit_of_work() as session:
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.name == name))


def live_workers(store: Store, *, within: timedelta = LIVE_WITHIN) -> list[WorkerInfo]:
    """Workers whose last heartbeat is recent, newest first."""
    with store.reader() as session:
        rows = session.scalars(
            select(WorkerHeartbeat)
            .where(WorkerHeartbeat.last_seen >= now() - within)
            .order_by(WorkerHeartbeat.last_seen.desc())
        ).all()
    return [WorkerInfo(r.name, r.hostname, tuple(r.queues), r.pid, r.last_seen) for r in rows]
