"""Declarative base, naming convention and the column types every aggregate shares."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, Enum, Integer, MetaData, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

# Stable constraint names make Alembic autogenerate and batch rebuilds on SQLite deterministic.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# JSON on every dialect, JSONB where PostgreSQL can index it.
JSONType = JSON().with_variant(JSONB(), "postgresql")

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Base of every model. ORM rows carry no domain logic: services call the core."""

    metadata = metadata
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONType, list[Any]: JSONType}


def str_enum(enum_type: type[enum.StrEnum], length: int = 16) -> Enum:
    """Store a StrEnum by value in a VARCHAR (portable, and new members need no migration)."""
    return Enum(
        enum_type,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def id_column() -> Mapped[int]:
    """An auto-incrementing surrogate primary key."""
    return mapped_column(IdType, primary_key=True, autoincrement=True)


def created_column() -> Mapped[datetime]:
    """When the row was inserted (database clock)."""
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def updated_column() -> Mapped[datetime]:
    """When the row last changed (database clock)."""
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class ChangeTracked:
    """Mixin for tables that analytic mirrors copy incrementally.

    ``change_seq`` is drawn from one counter row in the same transaction as the write (see
    :mod:`esplora.db.changes`), so it increases in commit order: a mirror that read everything up
    to N never misses a row later committed with a smaller number. A timestamp cannot promise that.
    """

    change_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True, default=0)


class Versioned:
    """Mixin for rows a reviewer can override: ``version`` backs optimistic concurrency.

    The version only moves when the row (or its human override) changes; a writer that read
    version N and finds N+1 at commit time gets a conflict instead of silently overwriting.
    """

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805 (a declared_attr gets the class)
        # The ORM then adds "AND version = :seen" to every UPDATE and raises StaleDataError
        # when another writer got in first.
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]
