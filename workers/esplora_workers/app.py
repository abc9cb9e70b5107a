"""The Celery app factory.

Embedded default: Celery's filesystem transport under ``ESPLORA_HOME/broker`` (no service to
install). Scaled: Redis with a visibility timeout longer than the longest task. Either way the
broker only carries JSON batches of image ids: state lives in the store, so a broker that loses
a killed worker's message (the filesystem transport does) loses nothing that ``requeue-stale``
cannot bring back.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from esplora.settings import Settings
from esplora_workers.queues import QUEUES


def broker_options(settings: Settings) -> dict[str, Any]:
    """Transport options for the configured broker."""
    url = settings.resolved_broker_url
    if url.startswith("filesystem://"):
        folder = settings.broker_dir / "messages"
        processed = settings.broker_dir / "processed"
        for path in (folder, processed):
            path.mkdir(parents=True, exist_ok=True)
        # Producer and consumer share one folder: what one writes the other reads.
        return {"data_folder_in": str(folder), "data_folder_out": str(folder),
                "processed_folder": str(processed), "store_processed": False}  # fmt: skip
    if url.startswith(("redis://", "rediss://")):
        timeout = settings.broker_visibility_timeout_s
        return {"visibility_timeout": timeout, "unacked_restore_interval": min(timeout, 60)}
    return {}


def create_app(settings: Settings) -> Celery:
    """A Celery app for ``settings``: JSON only, late acks, one task at a time per child."""
    app = Celery("esplora", broker=settings.resolved_broker_url, set_as_current=True)
    app.conf.update(
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="cpu",
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    app.conf.esplora_settings = settings
    import esplora_workers.heartbeat
    import esplora_workers.tasks  # noqa: F401  (registers the tasks on this app)

    return app
