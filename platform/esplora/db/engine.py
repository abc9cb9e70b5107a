"""Engine and session factories, and the unit of work services use.

SQLite is opened as a multi-process store: WAL, a busy timeout, foreign keys on per connection
(off only for migrations), and ``BEGIN IMMEDIATE`` for units of work that read then write. Under
a deferred transaction the upgrade from reader to writer fails at once when another process got
the write lock first, and the busy timeout does not help; IMMEDIATE takes the lock up front, so
the timeout applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from esplora.db.changes import track_changes

WRITE_OPTION = "esplora_write"


def is_sqlite(url: str) -> bool:
    """Whether ``url`` points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(
    url: str, *, foreign_keys: bool = True, busy_timeout_s: float = 30.0, **kwargs: Any
) -> Engine:
    """An engine for ``url``; SQLite gets the multi-process settings described above."""
    if not is_sqlite(url):
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s}, **kwargs)
    _configure_sqlite(engine, foreign_keys=foreign_keys, busy_timeout_s=busy_timeout_s)
    return engine


def _configure_sqlite(engine: Engine, *, foreign_keys: bool, busy_timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so "begin" below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Store:
    """The composition root's handle on the database: one engine, read and write sessions."""

    def __init__(self, engine: Engine) -> None:
        import esplora.db.models  # noqa: F401  (every table known before the first flush)

        track_changes()
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(
            engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Store:
        """A store on a new engine for ``url``."""
        return cls(make_engine(url, **kwargs))

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """A read-then-write transaction: committed once at the end, rolled back on error."""
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only session (a deferred transaction on SQLite: readers never block writers)."""
        with self._read() as session:
            yield session

    def dispose(self) -> None:
        """Close pooled connections (Celery prefork children call this after fork)."""
        self.engine.dispose()
