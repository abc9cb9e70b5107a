"""The worker process's composition root: one store and one stage context per process."""

from __future__ import annotations

from esplora.services.pipeline import StageContext

_CONTEXT: StageContext | None = None


def context() -> StageContext:
    """This process's stage context (store, settings, backends), created on first use."""
    global _CONTEXT
    if _CONTEXT is None:
        from celery import current_app

        from esplora.services.database import open_store

        settings = current_app.conf.esplora_settings
        _CONTEXT = StageContext(open_store(settings), settings)
    return _CONTEXT


def reset_context() -> None:
    """Forget a context inherited across fork: its pooled connections belong to the parent."""
    global _CONTEXT
    if _CONTEXT is not None:
        _CONTEXT.store.engine.dispose(close=False)
    _CONTEXT = None
