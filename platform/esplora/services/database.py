"""Store lifecycle: open, migrate, and describe the store in use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from esplora.db import migrate
from esplora.db.engine import Store, is_sqlite
from esplora.errors import EsploraError, StoreNotMigrated
from esplora.settings import Settings

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """Where the store is and whether its schema is current."""

    url: str
    backend: str
    current: str | None
    head: str | None

    @property
    def up_to_date(self) -> bool:
        return self.current is not None and self.current == self.head

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "up_to_date": self.up_to_date}


def display_url(url: str) -> str:
    """The URL with any password hidden, safe to print."""
    return make_url(url).render_as_string(hide_password=True)


def upgrade(settings: Settings, revision: str = "head") -> StoreStatus:
    """Create or migrate the store up to ``revision``."""
    url = settings.resolved_database_url
    if is_sqlite(url):
        settings.home.mkdir(parents=True, exist_ok=True)
    _run(lambda: migrate.upgrade(url, revision), url)
    return status(settings)


def downgrade(settings: Settings, revision: str) -> StoreStatus:
    """Migrate the store down to ``revision`` (``base`` removes every table)."""
    url = settings.resolved_database_url
    _run(lambda: migrate.downgrade(url, revision), url)
    return status(settings)


def status(settings: Settings) -> StoreStatus:
    """The store's URL, backend and revision against the code's head."""
    url = settings.resolved_database_url
    current = _run(lambda: migrate.current_revision(url), url)
    return StoreStatus(
        url=display_url(url),
        backend=make_url(url).get_backend_name(),
        current=current,
        head=migrate.head_revision(),
    )


def open_store(settings: Settings) -> Store:
    """The store, refusing one whose schema is not at head (run ``esplora db upgrade``)."""
    state = status(settings)
    if not state.up_to_date:
        raise StoreNotMigrated(
            f"the store at {state.url} is at revision {state.current or 'none'}, "
            f"the code needs {state.head}: run `esplora db upgrade`"
        )
    return Store.from_url(
        settings.resolved_database_url, busy_timeout_s=settings.sqlite_busy_timeout_s
    )


def _run(action: Callable[[], T], url: str) -> T:
    try:
        result = action()
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise EsploraError(f"cannot use the store at {display_url(url)}: {reason}") from error
    return result
