"""The change sequence: a monotonically increasing number on every write to a mirrored table.

One counter row is incremented inside the writing transaction. Its row lock is held until
commit, so numbers are handed out in commit order and an incremental reader that has seen
everything up to N can ask for ``change_seq > N`` without missing a late committer. (A database
sequence would not promise that; a timestamp even less.) Units of work stay short, so the lock
is brief.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, update
from sqlalchemy.orm import Session

from esplora.db.base import ChangeTracked
from esplora.db.images import ChangeCounter

COUNTER_ID = 1


def allocate_change_seqs(session: Session, count: int) -> range:
    """Reserve ``count`` consecutive change numbers in the session's transaction."""
    if count <= 0:
        return range(0)
    statement = (
        update(ChangeCounter)
        .where(ChangeCounter.id == COUNTER_ID)
        .values(value=ChangeCounter.value + count)
        .returning(ChangeCounter.value)
    )
    last = session.execute(statement).scalar_one()
    return range(last - count + 1, last + 1)


def next_change_seq(session: Session) -> int:
    """One change number for a bulk ``UPDATE``: every row it touches shares it.

    Sharing is fine for mirrors: they ask for ``change_seq > N`` and get all of them.
    """
    return allocate_change_seqs(session, 1)[0]


def _stamp_changes(session: Session, _context: Any, _instances: Any) -> None:
    new = session.new  # a fresh IdentitySet per access: read it once, not once per object
    changed = [
        obj
        for obj in (*new, *session.dirty)
        if isinstance(obj, ChangeTracked) and (obj in new or session.is_modified(obj))
    ]
    for obj, seq in zip(changed, allocate_change_seqs(session, len(changed)), strict=True):
        obj.change_seq = seq


def track_changes(session_class: type[Session] = Session) -> None:
    """Stamp ``change_seq`` on every new or modified change-tracked row at flush time."""
    if not event.contains(session_class, "before_flush", _stamp_changes):
        event.listen(session_class, "before_flush", _stamp_changes)
