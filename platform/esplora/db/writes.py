"""Bulk writes for the pipeline's hot paths: Core ``INSERT`` with many parameter sets.

The ORM's unit of work costs ~10× more per row than an executemany; stages write thousands of
objects and relations per batch, so they go through here. These helpers take the caller's
session and never commit: the service that owns the transaction does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.orm import Session

from esplora.db.base import Base, ChangeTracked, Versioned
from esplora.db.changes import allocate_change_seqs, next_change_seq


def insert_rows(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``model``'s table, stamping ``change_seq`` where the table has one."""
    if not rows:
        return
    if issubclass(model, ChangeTracked):
        seqs = allocate_change_seqs(session, len(rows))
        rows = [{**row, "change_seq": seq} for row, seq in zip(rows, seqs, strict=True)]
    session.execute(insert(model), list(rows))


def update_rows(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Update rows by ``id`` with the other keys of each dict (all dicts share their keys).

    Stamps ``change_seq`` and bumps ``version`` where the table has them, so mirrors see the
    change and a reviewer holding the old version gets a conflict.
    """
    if not rows:
        return
    table = model.__table__
    assert isinstance(table, Table)
    columns = [key for key in rows[0] if key != "id"]
    values: dict[str, Any] = {column: bindparam(f"v_{column}") for column in columns}
    if issubclass(model, ChangeTracked):
        values["change_seq"] = next_change_seq(session)
    if issubclass(model, Versioned):
        values["version"] = table.c.version + 1
    statement = update(table).where(table.c.id == bindparam("v_id")).values(values)
    session.execute(statement, [{f"v_{k}": v for k, v in row.items()} for row in rows])
