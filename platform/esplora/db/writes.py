"""Bulk writes for the pipeline's hot paths: Core ``INSERT`` with many parameter sets.

The ORM's unit of work costs ~10× more per row than an executemany; stages write thousands of
objects and relations per batch, so they go through here. These helpers take the caller's
session and never commit: the service that owns the transaction does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from esplora.db.base import Base, ChangeTracked
from esplora.db.changes import allocate_change_seqs


def insert_rows(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` into ``model``'s table, stamping ``change_seq`` where the table has one."""
    if not rows:
        return
    if issubclass(model, ChangeTracked):
        seqs = allocate_change_seqs(session, len(rows))
        rows = [{**row, "change_seq": seq} for row, seq in zip(rows, seqs, strict=True)]
    session.execute(insert(model), list(rows))
