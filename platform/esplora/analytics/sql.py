"""The user's SQL box: one read-only statement over the views, time-limited.

Measures, in order:

1. **Parse** with DuckDB's own parser (``extract_statements``): exactly one statement, of type
   ``SELECT`` or ``EXPLAIN`` (a ``WITH … SELECT`` is a ``SELECT``). Anything else — ``DROP``,
   ``UPDATE``, ``CREATE``, ``ATTACH``, ``COPY``, ``INSTALL``, ``LOAD``, ``SET``, ``PRAGMA``, two
   statements — is refused before it runs.
2. **Sandbox**: the database was opened with ``enable_external_access=false`` (no files, no
   network: ``read_text``, ``read_csv``, ``glob`` fail; ``getenv`` does not exist),
   ``autoload_known_extensions=false``, ``autoinstall_known_extensions=false`` and
   ``lock_configuration=true`` (no ``SET`` can undo it). The data arrived as Arrow, so nothing
   in it points at the store, and the store is never written by the analytics.
3. **Time limit**: DuckDB has no statement timeout, so a ``threading.Timer`` interrupts the
   query's own connection (a cursor) after ``timeout_s``.
4. **Size limit**: at most ``max_rows`` rows come back (the result says it was truncated).
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb
import pyarrow as pa

ALLOWED = {"SELECT", "EXPLAIN"}
DISABLED_SETTINGS = {
    "enable_external_access": "false",
    "autoload_known_extensions": "false",
    "autoinstall_known_extensions": "false",
    "lock_configuration": "true",
}


class QueryRefused(ValueError):
    """The SQL is not exactly one read-only statement, or it touched what it may not."""


class QueryTimeout(ValueError):
    """The query ran past its time limit and was interrupted."""


def check_statement(sql: str) -> str:
    """The single SELECT/EXPLAIN statement in ``sql``; :class:`QueryRefused` otherwise."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryRefused(f"the query does not parse: {_first_line(error)}") from None
    if len(statements) != 1:
        raise QueryRefused(
            f"exactly one statement is accepted, got {len(statements)}: remove the extra ones"
        )
    kind = statements[0].type.name
    if kind not in ALLOWED:
        raise QueryRefused(
            f"only SELECT (or WITH … SELECT, EXPLAIN) queries are accepted, not {kind}: "
            "this SQL box is read-only"
        )
    return str(statements[0].query)


def check_sandbox(connection: Any) -> None:
    """Refuse to run on a connection whose external access or configuration is open."""
    for name, wanted in DISABLED_SETTINGS.items():
        rows = connection.execute("SELECT current_setting(?)", [name]).fetchall()
        if not rows or str(rows[0][0]).lower() != wanted:
            raise QueryRefused(f"the analytics database is not sandboxed ({name} is not {wanted})")


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def safe_query(
    connection: Any, sql: str, *, timeout_s: float = 5, max_rows: int = 10_000
) -> pa.Table:
    """Run one read-only statement on a new cursor of ``connection``, within ``timeout_s``.

    The returned table's schema metadata has ``truncated`` = ``b"true"`` when rows were cut at
    ``max_rows``.
    """
    statement = check_statement(sql)
    cursor = connection.cursor()
    try:
        check_sandbox(cursor)
        return _run(cursor, statement, timeout_s, max_rows)
    finally:
        cursor.close()


def _run(cursor: Any, statement: str, timeout_s: float, max_rows: int) -> pa.Table:
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        cursor.interrupt()

    timer = threading.Timer(timeout_s, interrupt)
    timer.start()
    try:
        reader = cursor.sql(statement).to_arrow_reader(min(max_rows, 2048))
        table, truncated = _collect(reader, max_rows)
    except duckdb.Error as error:
        if fired.is_set():
            raise QueryTimeout(
                f"the query ran longer than {timeout_s:g} s and was stopped: "
                "add filters or a LIMIT, or aggregate"
            ) from None
        prefix = "refused" if isinstance(error, duckdb.PermissionException) else "query failed"
        raise QueryRefused(f"{prefix}: {_first_line(error)}") from None
    finally:
        timer.cancel()
    return table.replace_schema_metadata({"truncated": b"true" if truncated else b"false"})


def _collect(reader: Any, max_rows: int) -> tuple[pa.Table, bool]:
    batches, rows = [], 0
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        if rows > max_rows:
            break
    table = pa.Table.from_batches(batches, schema=reader.schema)
    return table.slice(0, max_rows), rows > max_rows
