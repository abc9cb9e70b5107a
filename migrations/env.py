"""Alembic environment: the only way the schema changes.

The URL is the one ``esplora db`` passes in, else ``ESPLORA_DATABASE_URL`` / the default SQLite
file. On SQLite, migrations run as batch rebuilds with foreign keys OFF for the whole connection:
with them on, rebuilding a table whose children have ``ON DELETE CASCADE`` silently deletes the
children (the rebuild drops and recreates the parent).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from esplora.db.engine import is_sqlite, make_engine
from esplora.db.models import metadata
from esplora.settings import get_settings


def _url() -> str:
    configured = context.config.get_main_option("sqlalchemy.url")
    return configured or get_settings().resolved_database_url


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    sqlite = is_sqlite(url or str(connection.engine.url) if connection else url or "")
    context.configure(
        connection=connection,
        url=url,
        target_metadata=metadata,
        render_as_batch=sqlite,
        compare_type=True,
        literal_binds=connection is None,
    )


def run_offline() -> None:
    _configure(url=_url())
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    url = _url()
    if is_sqlite(url):
        _ensure_parent(url)
    engine = make_engine(url, foreign_keys=False)
    try:
        with engine.connect() as connection:
            _configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def _ensure_parent(url: str) -> None:
    from pathlib import Path

    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


if context.is_offline_mode():
    run_offline()
else:
    run_online()
