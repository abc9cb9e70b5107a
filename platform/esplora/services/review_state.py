"""The one definition of an item's effective review state, in Python and as SQL.

Rules (for any review target; k is the review overlap, default 2):

1. An active override (``superseded_by IS NULL``; the newest when several) wins:
   decision ``accept`` → **accepted**, ``reject`` → **rejected**, anything else (flip, relabel,
   choose_detection) → **changed** with the override's values. Source ``adjudicated``.
2. Otherwise, with n ≥ k votes, votes are grouped by *choice* = (verdict, proposal): two flips
   agree, two relabels agree only when they propose the same value. When one choice holds a
   strict majority (more than n / 2 votes) the item is accepted / rejected / changed as that
   choice says, else **disputed**. Source ``votes``.
3. With fewer than k votes (none, or k > n) the item is **unreviewed**, source ``machine``.
   (With k = 1 a single vote decides.)

:func:`effective_state` computes this in Python; :func:`state_sql` is the same rule as a SQL
expression for filters and queues (tests check that both agree).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, case, cast, func, literal, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from esplora.db.enums import ReviewTarget, VoteVerdict
from esplora.db.relations import GeometricRelation as Row
from esplora.db.review import Override, ReviewVote

DEFAULT_OVERLAP = 2


class ReviewStatus(StrEnum):
    UNREVIEWED = "unreviewed"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CHANGED = "changed"
    DISPUTED = "disputed"


class StateSource(StrEnum):
    MACHINE = "machine"
    VOTES = "votes"
    ADJUDICATED = "adjudicated"


@dataclass(frozen=True, slots=True)
class ReviewState:
    """An item's effective state; ``decision``/``values`` say what a *changed* item became."""

    state: ReviewStatus
    source: StateSource
    values: dict[str, Any] = field(default_factory=dict)
    votes: int = 0
    decision: VoteVerdict | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "source": self.source.value,
            "values": self.values,
            "votes": self.votes,
            "decision": self.decision.value if self.decision else None,
        }


UNREVIEWED = ReviewState(ReviewStatus.UNREVIEWED, StateSource.MACHINE)


def status_of(decision: VoteVerdict) -> ReviewStatus:
    """The state a verdict or decision leads to."""
    if decision is VoteVerdict.ACCEPT:
        return ReviewStatus.ACCEPTED
    if decision is VoteVerdict.REJECT:
        return ReviewStatus.REJECTED
    return ReviewStatus.CHANGED


def choice_key(verdict: VoteVerdict, proposal: dict[str, Any]) -> str:
    """Votes with equal keys agree."""
    return f"{verdict.value}:{json.dumps(proposal, sort_keys=True)}"


def decide_votes(votes: list[tuple[VoteVerdict, dict[str, Any]]], k: int) -> ReviewState:
    """Rules 2 and 3 over one item's votes (oldest first)."""
    n = len(votes)
    if n == 0 or n < k:
        return ReviewState(ReviewStatus.UNREVIEWED, StateSource.MACHINE, votes=n)
    counts = Counter(choice_key(v, p) for v, p in votes)
    key, top = counts.most_common(1)[0]
    if 2 * top <= n:
        return ReviewState(ReviewStatus.DISPUTED, StateSource.VOTES, votes=n)
    verdict, proposal = next((v, p) for v, p in votes if choice_key(v, p) == key)
    return ReviewState(status_of(verdict), StateSource.VOTES, dict(proposal), n, verdict)


def effective_state(
    session: Session, target_type: ReviewTarget, ids: Iterable[int], *, k: int = DEFAULT_OVERLAP
) -> dict[int, ReviewState]:
    """Every id's effective state (see the module docstring): the one function that decides."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    overrides = active_overrides(session, target_type, wanted)
    votes: dict[int, list[tuple[VoteVerdict, dict[str, Any]]]] = defaultdict(list)
    rows = session.execute(
        select(ReviewVote.target_id, ReviewVote.verdict, ReviewVote.proposal)
        .where(ReviewVote.target_type == target_type, ReviewVote.target_id.in_(wanted))
        .order_by(ReviewVote.id)
    )
    for target_id, verdict, proposal in rows:
        votes[target_id].append((verdict, proposal or {}))
    states = {}
    for target_id in wanted:
        override = overrides.get(target_id)
        n = len(votes[target_id])
        if override is not None:
            states[target_id] = ReviewState(
                status_of(override.decision),
                StateSource.ADJUDICATED,
                dict(override.values or {}),
                n,
                override.decision,
            )
        else:
            states[target_id] = decide_votes(votes[target_id], k)
    return states


def active_overrides(
    session: Session, target_type: ReviewTarget, ids: list[int]
) -> dict[int, Override]:
    """The newest override without a successor, per target id."""
    rows = session.scalars(
        select(Override)
        .where(
            Override.target_type == target_type,
            Override.target_id.in_(ids),
            Override.superseded_by.is_(None),
        )
        .order_by(Override.id)
    )
    return {row.target_id: row for row in rows}  # later ids overwrite earlier ones


def _status_case(column: Any) -> ColumnElement[str]:
    return case(
        (column == VoteVerdict.ACCEPT.value, literal(ReviewStatus.ACCEPTED.value)),
        (column == VoteVerdict.REJECT.value, literal(ReviewStatus.REJECTED.value)),
        else_=literal(ReviewStatus.CHANGED.value),
    )


def state_sql(
    target_type: ReviewTarget,
    target_id: ColumnElement[int] | InstrumentedAttribute[int],
    *,
    k: int = DEFAULT_OVERLAP,
) -> ColumnElement[str]:
    """The effective state of the item whose id is ``target_id`` (a correlated column).

    The same rules as :func:`effective_state`; choices compare the verdict and the stored
    proposal's JSON text (votes store proposals with sorted keys, so equal dicts compare equal).
    """
    # Explicit correlation: the nested subqueries refer to the outermost row, not to their parent.
    latest = (
        select(func.max(Override.id))
        .where(
            Override.target_type == target_type,
            Override.target_id == target_id,
            Override.superseded_by.is_(None),
        )
        .correlate_except(Override)
        .scalar_subquery()
    )
    decision = select(Override.decision).where(Override.id == latest).scalar_subquery()
    mine = and_(ReviewVote.target_type == target_type, ReviewVote.target_id == target_id)
    total = select(func.count()).where(mine).correlate_except(ReviewVote).scalar_subquery()
    majority = (
        select(ReviewVote.verdict)
        .where(mine)
        .group_by(ReviewVote.verdict, cast(ReviewVote.proposal, Text))
        .having(func.count() * 2 > total)
        .limit(1)
        .correlate_except(ReviewVote)
        .scalar_subquery()
    )
    return case(
        (decision.is_not(None), _status_case(decision)),
        (total < max(k, 1), literal(ReviewStatus.UNREVIEWED.value)),
        (majority.is_not(None), _status_case(majority)),
        else_=literal(ReviewStatus.DISPUTED.value),
    )


@dataclass(frozen=True, slots=True)
class RelationReading:
    """``subject_id relation object_id`` (relation by name, in either reading)."""

    relation: str
    subject_id: int
    object_id: int


@dataclass(frozen=True, slots=True)
class EffectiveRelation:
    """A relation row's machine reading beside the effective one (None once rejected)."""

    machine: RelationReading
    effective: RelationReading | None
    state: ReviewState


def changed_reading(machine: RelationReading, state: ReviewState) -> RelationReading | None:
    """What the review made of the machine reading: a flip swaps the sides, a relabel
    replaces the relation, a chosen detection replaces one side; rejected → None."""
    if state.state is ReviewStatus.REJECTED:
        return None
    if state.state is not ReviewStatus.CHANGED:
        return machine
    values = state.values
    if state.decision is VoteVerdict.FLIP:
        return RelationReading(machine.relation, machine.object_id, machine.subject_id)
    if state.decision is VoteVerdict.RELABEL and "relation" in values:
        return RelationReading(str(values["relation"]), machine.subject_id, machine.object_id)
    if state.decision is VoteVerdict.CHOOSE_DETECTION and values.get("side") == "subject":
        return RelationReading(machine.relation, int(values["object_id"]), machine.object_id)
    if state.decision is VoteVerdict.CHOOSE_DETECTION and values.get("side") == "object":
        return RelationReading(machine.relation, machine.subject_id, int(values["object_id"]))
    return machine


def effective_relation(
    session: Session, ids: Iterable[int], *, k: int = DEFAULT_OVERLAP
) -> dict[int, EffectiveRelation]:
    """Per relation id, the machine reading and the effective one under its review state."""
    wanted = sorted(set(ids))
    states = effective_state(session, ReviewTarget.RELATION, wanted, k=k)
    rows = session.execute(
        select(Row.id, Row.relation, Row.subject_id, Row.object_id).where(Row.id.in_(wanted))
    )
    out = {}
    for row_id, relation, subject_id, object_id in rows:
        machine = RelationReading(relation, subject_id, object_id)
        state = states[row_id]
        out[row_id] = EffectiveRelation(machine, changed_reading(machine, state), state)
    return out
