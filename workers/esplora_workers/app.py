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

# How often the filesystem transport looks for new messages (seconds).
FILESYSTEM_POLL_S = 0.05
FILESYSTEM_TRANSPORT = "esplora_workers.transport:Transport"


def broker_options(settings: Settings) -> dict[str, Any]:
    """Transport options for the configured broker."""
    url = settings.resolved_broker_url
    if url.startswith("filesystem://"):
        folder = settings.broker_dir / "messages"
        processed = settings.broker_dir / "processed"
        control = settings.broker_dir / "control"  # kombu's default is ./control in the cwd
        for path in (folder, processed, control):
            path.mkdir(parents=True, exist_ok=True)
        # Producer and consumer share one folder: what one writes the other reads. The
        # transport polls it: kombu's default of 1 s would be the latency of every message
        # that reaches an idle worker (at 50 ms an idle worker uses 0.6 % of a core); between
        # two tasks of a busy worker our transport does not wait at all (transport.py).
        return {"data_folder_in": str(folder), "data_folder_out": str(folder),
                "processed_folder": str(processed), "store_processed": False,
                "control_folder": str(control),
                "polling_interval": FILESYSTEM_POLL_S}  # fmt: skip
    if url.startswith(("redis://", "rediss://")):
        timeout = settings.broker_visibility_timeout_s
        # Redelivery of a dead worker's tasks: kombu scans for expired unacked messages every
        # interval × throttle seconds (throttle 10 by default): throttle 1 makes it the interval.
        return {"visibility_timeout": timeout, "unacked_restore_interval": min(timeout, 60),
                "unacked_restore_throttle": 1}  # fmt: skip
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
    if settings.resolved_broker_url.startswith("filesystem://"):
        # kombu's filesystem transport, with atomic writes and takes (see transport.py).
        app.conf.broker_transport = FILESYSTEM_TRANSPORT
    app.conf.esplora_settings = settings
    import esplora_workers.export_tasks
    import esplora_workers.generation_tasks
    import esplora_workers.heartbeat
    import esplora_workers.tasks
    import esplora_workers.training_tasks  # noqa: F401  (registers the tasks on this app)

    return app
