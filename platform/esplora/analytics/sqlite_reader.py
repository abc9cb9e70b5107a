"""The ADBC SQLite driver, run in a child process of its own.

The ADBC SQLite driver links its own copy of the SQLite library. In a process that also uses
Python's ``sqlite3`` (every esplora process: the store goes through SQLAlchemy), the two copies
do not share SQLite's table of open files, and POSIX locks belong to the whole process: when
one copy closes a descriptor of the database file, the other copy's locks are dropped with it.
SQLite's documentation lists exactly this as a way to corrupt a database. So the driver runs
in a child process that never opens the store with another library; queries go over a pipe and
results come back as Arrow IPC streams (a copy, at memory speed).
"""

from __future__ import annotations

import contextlib
import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

import pyarrow as pa


def _serve(path: str, pipe: Connection) -> None:
    """The child: answer each SQL text with ``("ok", ipc bytes)`` or ``("error", message)``."""
    import adbc_driver_sqlite.dbapi as driver

    connection = driver.connect(path, autocommit=True)
    try:
        while True:
            sql = pipe.recv()
            if sql is None:
                return
            try:
                cursor = connection.cursor()
                try:
                    cursor.execute(sql)
                    table = cursor.fetch_arrow_table()
                finally:
                    cursor.close()
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, table.schema) as writer:
                    writer.write_table(table)
            except Exception as error:  # the parent raises it with the SQL's own message
                pipe.send(f"{type(error).__name__}: {error}")
                continue
            pipe.send(None)
            pipe.send_bytes(sink.getvalue())
    finally:
        connection.close()


class SQLiteReader:
    """A DB-API-free handle on the child: ``fetch(sql) -> pa.Table``, ``close()``."""

    def __init__(self, path: str) -> None:
        # spawn: the child starts clean (no inherited store connections, no threads).
        context = multiprocessing.get_context("spawn")
        self._pipe, child_end = context.Pipe()
        self._process: Any = context.Process(
            target=_serve, args=(path, child_end), name="esplora-sqlite-reader", daemon=True
        )
        self._process.start()
        child_end.close()

    def fetch(self, sql: str) -> pa.Table:
        """Run ``sql`` in the child and return its result."""
        try:
            self._pipe.send(sql)
            error = self._pipe.recv()
            if error is not None:
                raise RuntimeError(f"reading the store failed: {error}")
            data = self._pipe.recv_bytes()
        except (EOFError, OSError) as lost:
            raise RuntimeError(f"the store reader process stopped: {lost!r}") from lost
        return pa.ipc.open_stream(pa.py_buffer(data)).read_all()

    def close(self) -> None:
        """Stop the child (it closes its connection first)."""
        if self._process.is_alive():
            with contextlib.suppress(OSError):  # the child is already gone
                self._pipe.send(None)
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
        self._pipe.close()
