"""Relation statistics and read-only SQL for scripts and the UI, over :mod:`esplora.analytics`.

One :class:`~esplora.analytics.engine.Analytics` per store URL is kept per process
(:func:`analytics_for`), so the UI reuses the loaded tables; each call refreshes it first (one
probe query when nothing changed), so a reviewer's change shows in the next query.
"""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa

from esplora.analytics.engine import Analytics
from esplora.analytics.sql import safe_query
from esplora.services.database import open_store
from esplora.settings import Settings

_CACHE: dict[str, Analytics] = {}
_CACHE_LOCK = threading.Lock()


def analytics_for(settings: Settings) -> Analytics:
    """The process's ``Analytics`` for the settings' store (created on first use), refreshed."""
    url = settings.resolved_database_url
    with _CACHE_LOCK:
        engine = _CACHE.get(url)
        if engine is None:
            open_store(settings).dispose()  # refuses an unmigrated store with a clear message
            engine = Analytics(
                url,
                mirror_dir=settings.resolved_analytics_mirror_dir,
                mirror_threshold_rows=settings.analytics_mirror_rows,
            )
            _CACHE[url] = engine
            return engine
    engine.refresh()
    return engine


def clear_cache() -> None:
    """Close and forget every cached ``Analytics`` (tests, store switches)."""
    with _CACHE_LOCK:
        for engine in _CACHE.values():
            engine.close()
        _CACHE.clear()


def stats(settings: Settings) -> dict[str, Any]:
    """The Overview numbers of the settings' store."""
    return analytics_for(settings).overview()


def query(
    settings: Settings, sql: str, *, timeout_s: float = 5, max_rows: int = 10_000
) -> pa.Table:
    """One read-only statement over the views (``QueryRefused`` / ``QueryTimeout`` otherwise)."""
    engine = analytics_for(settings)
    return safe_query(engine.connection, sql, timeout_s=timeout_s, max_rows=max_rows)
