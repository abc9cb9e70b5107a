"""Read store tables into Arrow with the ADBC drivers (SQLite and PostgreSQL), read-only.

Only the columns the analytics views use are read (:data:`TABLES`). Every read runs in
autocommit mode, so each query sees the latest committed state (an open read transaction on a
SQLite WAL file would pin an old snapshot).

The SQLite driver infers a column's Arrow type from the first batch of rows and fails when a
later batch differs (a nullable float that starts with NULLs reads as int64). So on SQLite every
nullable column is read as ``COALESCE(col, zero)`` plus a ``col IS NULL`` flag, every column is
``CAST`` to its storage class, and the NULLs are put back in Arrow. Both backends end with the
same Arrow schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import make_url

from esplora.db.detections import DetectedObject, ObjectDepth
from esplora.db.images import Image, ImageStage, Sample, Source
from esplora.db.relations import CaptionClaim, GeometricRelation
from esplora.db.review import Override, ReviewVote
from esplora.db.synthetic import Generation, SpatialPrompt, Validation

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.string(),
    "json": pa.string(),
}
_SQLITE_CAST = {
    "int": "INTEGER",
    "float": "REAL",
    "bool": "INTEGER",
    "text": "TEXT",
    "json": "TEXT",
}
_SQLITE_ZERO = {"int": "0", "float": "0.0", "bool": "0", "text": "''", "json": "''"}
NULL_FLAG = "__null_"


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A store table as the analytics read it: columns (name → kind, ``?`` = nullable), key."""

    name: str
    columns: dict[str, str]
    key: tuple[str, ...] = ("id",)
    tracked: bool = True  # has change_seq

    def schema(self) -> pa.Schema:
        return pa.schema([(c, ARROW_TYPES[k.rstrip("?")]) for c, k in self.columns.items()])


_SEQ = {"change_seq": "int"}
TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in [
        TableSpec(
            Image.__tablename__,
            {"id": "int", "uri": "text", "width": "int", "height": "int", "origin": "text",
             "near_duplicate_of": "int?", "depth_map_uri": "text?", **_SEQ},
        ),
        TableSpec(
            Sample.__tablename__,
            {"id": "int", "image_id": "int", "source_id": "int", "source_key": "text",
             "caption": "text", "excluded": "bool", "exclusion_reason": "text?",
             "version": "int", **_SEQ},
        ),
        TableSpec(
            Source.__tablename__, {"id": "int", "name": "text", "kind": "text"}, tracked=False
        ),
        TableSpec(
            DetectedObject.__tablename__,
            {"id": "int", "image_id": "int", "label": "text", "phrase": "text?", "x0": "float",
             "y0": "float", "x1": "float", "y1": "float", "score": "float?",
             "producer_kind": "text", "producer": "text", "version": "int", **_SEQ},
        ),
        TableSpec(
            ObjectDepth.__tablename__,
            {"object_id": "int", "producer": "text", "median": "float", "p10": "float",
             "p90": "float", **_SEQ},
            key=("object_id", "producer"),
        ),
        TableSpec(
            GeometricRelation.__tablename__,
            {"id": "int", "image_id": "int", "subject_id": "int", "object_id": "int",
             "axis": "text", "relation": "text", "soft": "bool", "strict": "bool",
             "margin": "float", "rule": "text", "tau": "float", "depth_gap": "float",
             "producer": "text", "version": "int", **_SEQ},
        ),
        TableSpec(
            CaptionClaim.__tablename__,
            {"id": "int", "sample_id": "int", "clause_index": "int", "clause_text": "text",
             "relation": "text", "phrase": "text", "subject_label": "text",
             "object_label": "text", "subject_object_id": "int?", "object_object_id": "int?",
             "geometric_relation_id": "int?", "agreement": "text", "version": "int", **_SEQ},
        ),
        TableSpec(
            ReviewVote.__tablename__,
            {"id": "int", "reviewer": "text", "target_type": "text", "target_id": "int",
             "verdict": "text", "proposal": "json", "note": "text?", **_SEQ},
        ),
        TableSpec(
            Override.__tablename__,
            {"id": "int", "target_type": "text", "target_id": "int", "decision": "text",
             "values": "json", "decided_by": "text", "superseded_by": "int?", **_SEQ},
        ),
        TableSpec(
            ImageStage.__tablename__,
            {"image_id": "int", "stage": "text", "status": "text", "producer": "text?",
             "attempts": "int", "last_error": "text?", **_SEQ},
            key=("image_id", "stage"),
        ),
        TableSpec(
            Validation.__tablename__,
            {"id": "int", "generation_id": "int", "rule": "text", "tau": "float",
             "depth_gap": "float", "strict": "bool", "soft": "bool",
             "fraction_strict": "float", **_SEQ},
        ),
        TableSpec(
            Generation.__tablename__,
            {"id": "int", "prompt_id": "int", "generator": "text", "adapter": "text",
             "tore": "text", "seed": "int", "image_id": "int?", **_SEQ},
        ),
        TableSpec(
            SpatialPrompt.__tablename__,
            {"id": "int", "text": "text", "kind": "text", "relations": "json", "origin": "text",
             **_SEQ},
        ),
    ]
}  # fmt: skip


def adbc_target(url: str) -> tuple[str, str]:
    """``(backend, target)`` for an SQLAlchemy URL: a file path for SQLite, a libpq URI else."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return backend, parsed.database or ":memory:"
    if backend == "postgresql":
        uri = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
        return backend, uri
    raise ValueError(f"analytics read SQLite or PostgreSQL stores, not {backend!r}")


def _quote(name: str) -> str:
    return f'"{name}"'


def _sqlite_column(name: str, kind: str) -> list[str]:
    base, nullable = kind.rstrip("?"), kind.endswith("?")
    value = f"COALESCE({_quote(name)}, {_SQLITE_ZERO[base]})" if nullable else _quote(name)
    parts = [f"CAST({value} AS {_SQLITE_CAST[base]}) AS {_quote(name)}"]
    if nullable:
        parts.append(f"CAST({_quote(name)} IS NULL AS INTEGER) AS {_quote(NULL_FLAG + name)}")
    return parts


def _postgres_column(name: str, kind: str) -> list[str]:
    base = kind.rstrip("?")
    if base == "json":
        return [f"CAST({_quote(name)} AS TEXT) AS {_quote(name)}"]
    return [_quote(name)]


def select_sql(backend: str, spec: TableSpec, after_seq: int | None) -> str:
    """The ``SELECT`` of ``spec``'s columns, optionally only rows changed after ``after_seq``."""
    render = _sqlite_column if backend == "sqlite" else _postgres_column
    columns = [part for n, k in spec.columns.items() for part in render(n, k)]
    where = f" WHERE change_seq > {int(after_seq)}" if after_seq is not None else ""
    return f"SELECT {', '.join(columns)} FROM {_quote(spec.name)}{where}"


def conform(table: pa.Table, spec: TableSpec) -> pa.Table:
    """Cast to ``spec``'s schema and restore the NULLs the SQLite read encoded as flags."""
    arrays = []
    for name, kind in spec.columns.items():
        target = ARROW_TYPES[kind.rstrip("?")]
        column = table.column(name).cast(target)
        flag = NULL_FLAG + name
        if flag in table.column_names:
            is_null = table.column(flag).cast(pa.bool_())
            column = pc.if_else(is_null, pa.scalar(None, target), column)
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=spec.schema())


@dataclass
class StoreReader:
    """One read-only ADBC connection to the store; counts the rows it has read."""

    url: str
    rows_read: int = 0
    _connection: Any = field(default=None, repr=False)

    @property
    def backend(self) -> str:
        return adbc_target(self.url)[0]

    def _open(self) -> Any:
        if self._connection is None:
            backend, target = adbc_target(self.url)
            if backend == "sqlite":
                # Out of process: see sqlite_reader for the lock hazard of two SQLite copies.
                from esplora.analytics.sqlite_reader import SQLiteReader

                self._connection = SQLiteReader(target)
            else:
                import adbc_driver_postgresql.dbapi as driver

                self._connection = driver.connect(target, autocommit=True)
        return self._connection

    def fetch(self, sql: str) -> pa.Table:
        """Run ``sql`` and return its result as Arrow."""
        connection = self._open()
        if self.backend == "sqlite":
            result: pa.Table = connection.fetch(sql)
            return result
        cursor = connection.cursor()
        try:
            cursor.execute(sql)
            return cursor.fetch_arrow_table()
        finally:
            cursor.close()

    def read(self, table: str) -> pa.Table:
        """Every row of ``table`` (selected columns only)."""
        return self._read(TABLES[table], None)

    def read_changes(self, table: str, after_seq: int) -> pa.Table:
        """The rows of ``table`` inserted or updated after change number ``after_seq``."""
        return self._read(TABLES[table], after_seq)

    def _read(self, spec: TableSpec, after_seq: int | None) -> pa.Table:
        result = conform(self.fetch(select_sql(self.backend, spec, after_seq)), spec)
        self.rows_read += result.num_rows
        return result

    def probe(self) -> dict[str, tuple[int, int]]:
        """``table → (max change_seq, row count)`` for every table, in one query."""
        parts = [
            f"SELECT '{spec.name}' AS t, "
            + ("COALESCE(MAX(change_seq), 0)" if spec.tracked else "0")
            + f" AS s, COUNT(*) AS n FROM {_quote(spec.name)}"
            for spec in TABLES.values()
        ]
        rows = self.fetch(" UNION ALL ".join(parts)).to_pylist()
        return {str(r["t"]): (int(r["s"]), int(r["n"])) for r in rows}

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
