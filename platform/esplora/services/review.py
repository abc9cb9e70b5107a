"""Human review: votes, the assignment queue, adjudication and bulk decisions.

- Votes are append-only: a reviewer changing their mind adds a vote (the latest per reviewer
  is not special; every vote counts, see :mod:`esplora.services.review_state`).
- Assignment hands each relation item to k reviewers, the most ambiguous first.
- Canonical changes are :class:`Override` rows beside the machine values, never over them;
  each bumps the target row's ``version``, so a decision made on a stale view is refused with
  :class:`ReviewConflict` and nothing is written.

Every function here is one unit of work (``BEGIN IMMEDIATE`` on SQLite). The effective state
lives in :mod:`esplora.services.review_state`; agreement (re-exported here) in
:mod:`esplora.services.agreement`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, exists, func, select, update
from sqlalchemy.orm import Session

from esplora.db.base import Versioned
from esplora.db.changes import next_change_seq
from esplora.db.engine import Store
from esplora.db.enums import ReviewTarget, VoteVerdict
from esplora.db.relations import GeometricRelation
from esplora.db.review import Override, ReviewAssignment, ReviewVote
from esplora.errors import EsploraError
from esplora.services.agreement import agreement_by_relation as agreement_by_relation
from esplora.services.filters import ItemFilter, apply
from esplora.services.review_state import (
    DEFAULT_OVERLAP,
    ReviewStatus,
    effective_state,
)
from esplora.services.review_targets import (
    MODELS,
    check_proposal,
    load_target,
    reviewer_name,
    target_type_of,
    verdict_of,
)

_CHUNK = 500
_RELATION = ReviewTarget.RELATION


class ReviewConflict(EsploraError):
    """Someone else changed the item since the caller read it; nothing was written."""


def vote(
    store: Store,
    reviewer: str,
    target_type: str | ReviewTarget,
    target_id: int,
    verdict: str | VoteVerdict,
    *,
    proposal: dict[str, Any] | None = None,
    note: str | None = None,
) -> int:
    """Record one vote (validated against its target) and close the reviewer's assignment."""
    who, kind, choice = reviewer_name(reviewer), target_type_of(target_type), verdict_of(verdict)
    with store.unit_of_work() as session:
        row = load_target(session, kind, target_id)
        clean = check_proposal(session, kind, row, choice, proposal)
        ballot = ReviewVote(
            reviewer=who,
            target_type=kind,
            target_id=target_id,
            verdict=choice,
            proposal=clean,
            note=note,
        )
        session.add(ballot)
        session.flush()
        session.execute(
            update(ReviewAssignment)
            .where(
                ReviewAssignment.target_type == kind,
                ReviewAssignment.target_id == target_id,
                ReviewAssignment.reviewer == who,
                ReviewAssignment.done_at.is_(None),
            )
            .values(done_at=func.now())
        )
        return ballot.id


def assign_next(
    store: Store, reviewer: str, item_filter: ItemFilter, *, k: int = DEFAULT_OVERLAP
) -> int | None:
    """The reviewer's next relation item, or None when the filter has nothing left for them.

    An open assignment of theirs (not voted yet) comes back first. Otherwise the most ambiguous
    item (smallest ``|margin|``, then id) that matches the filter, has no override, fewer than
    ``k`` assignments and no assignment or vote of this reviewer is assigned to them. The
    candidate row is locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's ``BEGIN
    IMMEDIATE`` serialises writers) and its assignments recounted after the lock, so concurrent
    reviewers never fill more than k slots.
    """
    who = reviewer_name(reviewer)
    with store.unit_of_work() as session:
        resumed = _open_assignment(session, who, item_filter, k)
        if resumed is not None:
            return resumed
        tried: list[int] = []
        while True:
            candidate: int | None = session.scalar(_candidates(session, who, item_filter, k, tried))
            if candidate is None:
                return None
            if _slots_left(session, who, candidate, k):
                session.add(
                    ReviewAssignment(target_type=_RELATION, target_id=candidate, reviewer=who)
                )
                session.flush()
                return candidate
            tried.append(candidate)


def _undecided() -> Any:
    return ~exists().where(
        Override.target_type == _RELATION,
        Override.target_id == GeometricRelation.id,
        Override.superseded_by.is_(None),
    )


def _open_assignment(session: Session, who: str, item_filter: ItemFilter, k: int) -> int | None:
    # The reviewer's few open assignments are read first and each is checked by primary key:
    # a filter joined to "has an open assignment" let the planner walk a whole relation index
    # instead (0.5–1.2 s at 10 M relations).
    open_ids = session.scalars(
        select(ReviewAssignment.target_id)
        .where(
            ReviewAssignment.target_type == _RELATION,
            ReviewAssignment.reviewer == who,
            ReviewAssignment.done_at.is_(None),
        )
        .order_by(ReviewAssignment.target_id)
    ).all()
    for target_id in open_ids:
        statement = apply(
            select(GeometricRelation.id).where(GeometricRelation.id == target_id), item_filter, k=k
        ).where(_undecided())
        if session.scalar(statement) is not None:
            return target_id
    return None


def _candidates(
    session: Session, who: str, item_filter: ItemFilter, k: int, tried: Sequence[int]
) -> Any:
    row, slot = GeometricRelation, ReviewAssignment
    taken = (
        select(func.count())
        .where(slot.target_type == _RELATION, slot.target_id == row.id)
        .scalar_subquery()
    )
    seen = exists().where(
        slot.target_type == _RELATION, slot.target_id == row.id, slot.reviewer == who
    )
    voted = exists().where(
        ReviewVote.target_type == _RELATION,
        ReviewVote.target_id == row.id,
        ReviewVote.reviewer == who,
    )
    statement = (
        apply(select(row.id), item_filter, k=k)
        .where(taken < k, ~seen, ~voted, _undecided(), row.id.not_in(tried))
        .order_by(func.abs(row.margin), row.id)
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True, of=row)
    return statement


def _slots_left(session: Session, who: str, target_id: int, k: int) -> bool:
    """Recount under the row lock: a fresh statement sees every assignment committed before it."""
    holders = session.scalars(
        select(ReviewAssignment.reviewer).where(
            ReviewAssignment.target_type == _RELATION, ReviewAssignment.target_id == target_id
        )
    ).all()
    return len(holders) < k and who not in holders


def adjudicate(
    store: Store,
    reviewer: str,
    target_type: str | ReviewTarget,
    target_id: int,
    decision: str | VoteVerdict,
    *,
    values: dict[str, Any] | None = None,
    reason: str | None = None,
    expected_version: int,
) -> int:
    """Store the canonical decision on an item, if it is still at ``expected_version``.

    The new override supersedes the previous one and the target's ``version`` moves on; the
    machine values stay as they are. Raises :class:`ReviewConflict` (writing nothing) when the
    item changed since the caller read it.
    """
    who, kind, choice = reviewer_name(reviewer), target_type_of(target_type), verdict_of(decision)
    if not issubclass(MODELS[kind], Versioned):
        raise EsploraError(f"a {kind.value} cannot be adjudicated (it has no version)")
    with store.unit_of_work() as session:
        row = load_target(session, kind, target_id)
        clean = check_proposal(session, kind, row, choice, values)
        _bump_versions(session, kind, {target_id: expected_version})
        return _record_overrides(session, who, kind, [target_id], choice, clean, reason)[0]


def _bump_versions(session: Session, kind: ReviewTarget, expected: dict[int, int]) -> None:
    """Move each target's version on; a version other than the expected one is a conflict."""
    table = _table(kind)
    seq = next_change_seq(session)
    for target_id, version in expected.items():
        moved = session.execute(
            update(table)
            .where(table.c.id == target_id, table.c.version == version)
            .values(version=table.c.version + 1, change_seq=seq)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise ReviewConflict(_conflict_message(session, kind, target_id, version))


def _bump_all(session: Session, kind: ReviewTarget, ids: list[int]) -> None:
    """Move the versions of ``ids`` on whatever they are (a bulk decision made as of now)."""
    table = _table(kind)
    session.execute(
        update(table)
        .where(table.c.id.in_(ids))
        .values(version=table.c.version + 1, change_seq=next_change_seq(session))
    )


def _table(kind: ReviewTarget) -> Table:
    table = MODELS[kind].__table__
    assert isinstance(table, Table)
    return table


def _conflict_message(session: Session, kind: ReviewTarget, target_id: int, seen: int) -> str:
    table = _table(kind)
    current = session.scalar(select(table.c.version).where(table.c.id == target_id))
    last = session.scalars(
        select(Override)
        .where(Override.target_type == kind, Override.target_id == target_id)
        .order_by(Override.id.desc())
        .limit(1)
    ).first()
    who = f"{last.decided_by} at {last.created_at:%Y-%m-%d %H:%M:%S}" if last else "the pipeline"
    return (
        f"{kind.value} {target_id} was changed by {who} (version {current}, you saw {seen}): "
        "reload and decide again"
    )


def _record_overrides(
    session: Session,
    who: str,
    kind: ReviewTarget,
    ids: list[int],
    decision: VoteVerdict,
    values: dict[str, Any],
    reason: str | None,
) -> list[int]:
    """Add one override per id and point the previous active ones at it."""
    previous = session.scalars(
        select(Override).where(
            Override.target_type == kind,
            Override.target_id.in_(ids),
            Override.superseded_by.is_(None),
        )
    ).all()
    fresh = {
        i: Override(
            target_type=kind,
            target_id=i,
            decision=decision,
            values=values,
            decided_by=who,
            reason=reason,
        )
        for i in ids
    }
    session.add_all(fresh.values())
    session.flush()
    for old in previous:  # every active one, in case overrides were written around this module
        old.superseded_by = fresh[old.target_id].id
    return [o.id for o in fresh.values()]


def adjudication_queue(
    store: Store, *, k: int = DEFAULT_OVERLAP, limit: int = 50
) -> list[dict[str, Any]]:
    """Disputed relation items, the most ambiguous first, with their vote counts and version.

    Candidates (k or more votes, no active decision) come from SQL; the one rule
    (:func:`effective_state`) then keeps the disputed ones, so the queue and every other reader
    agree by construction.
    """
    row = GeometricRelation
    with store.reader() as session:
        voted = (
            select(ReviewVote.target_id)
            .where(ReviewVote.target_type == _RELATION)
            .group_by(ReviewVote.target_id)
            .having(func.count() >= max(k, 1))
        )
        decided = select(Override.target_id).where(
            Override.target_type == _RELATION, Override.superseded_by.is_(None)
        )
        candidates = session.execute(
            select(row.id, row.relation, row.version, row.margin)
            .where(row.id.in_(voted), row.id.not_in(decided))
            .order_by(func.abs(row.margin), row.id)
        ).all()
        states = effective_state(session, _RELATION, [c[0] for c in candidates], k=k)
        items = [c for c in candidates if states[c[0]].state == ReviewStatus.DISPUTED.value][:limit]
        tallies = _tallies(session, [i for i, *_ in items])
    return [
        {
            "target_type": _RELATION.value,
            "target_id": i,
            "relation": r,
            "version": v,
            "margin": m,
            "votes": tallies.get(i, {}),
        }
        for i, r, v, m in items
    ]


def _tallies(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    rows = session.execute(
        select(ReviewVote.target_id, ReviewVote.verdict, func.count())
        .where(ReviewVote.target_type == _RELATION, ReviewVote.target_id.in_(ids))
        .group_by(ReviewVote.target_id, ReviewVote.verdict)
    )
    for target_id, verdict, n in rows:
        out.setdefault(target_id, {})[verdict.value] = n
    return out


def bulk_decide(
    store: Store,
    reviewer: str,
    item_filter: ItemFilter,
    decision: str | VoteVerdict,
    *,
    dry_run: bool,
    expected: int | None = None,
    reason: str | None = None,
    k: int = DEFAULT_OVERLAP,
) -> int:
    """Accept or reject every relation item the filter matches; returns how many change.

    Items whose active decision already is ``decision`` are left alone (and not counted).
    ``dry_run=True`` only counts: show the count, ask, then call again with ``dry_run=False``
    and ``expected`` set to that count — if the filter now matches a different number the call
    refuses and writes nothing.
    """
    who, choice = reviewer_name(reviewer), verdict_of(decision)
    if choice not in (VoteVerdict.ACCEPT, VoteVerdict.REJECT):
        raise EsploraError(f"bulk decisions are accept or reject, not {choice.value}")
    with store.unit_of_work() if not dry_run else store.reader() as session:
        todo = _bulk_targets(session, item_filter, choice, k)
        if dry_run:
            return len(todo)
        if expected is not None and expected != len(todo):
            raise ReviewConflict(
                f"the filter now matches {len(todo)} items, not the {expected} you confirmed: "
                "count again"
            )
        for start in range(0, len(todo), _CHUNK):
            chunk = todo[start : start + _CHUNK]
            _bump_all(session, _RELATION, chunk)
            _record_overrides(session, who, _RELATION, chunk, choice, {}, reason)
        return len(todo)


def _bulk_targets(
    session: Session, item_filter: ItemFilter, choice: VoteVerdict, k: int
) -> list[int]:
    row = GeometricRelation
    same = exists().where(
        Override.target_type == _RELATION,
        Override.target_id == row.id,
        Override.superseded_by.is_(None),
        Override.decision == choice,
    )
    statement = apply(select(row.id), item_filter, k=k).where(~same).order_by(row.id)
    return list(session.scalars(statement))
