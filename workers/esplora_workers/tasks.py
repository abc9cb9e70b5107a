"""Thin tasks: JSON ids in, small JSON out; the services do the work.

Each worker process builds its own store and backends once (after fork: a prefork child never
uses the parent's connection pool) and reuses them for every batch.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from celery.signals import worker_process_init
from sqlalchemy.exc import DBAPIError, OperationalError

from esplora.db.enums import Stage
from esplora_workers.runtime import context, reset_context

# A lost database connection (PostgreSQL restarting) is worth retrying; the work is idempotent.
TRANSIENT = (OperationalError, DBAPIError, ConnectionError)


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    reset_context()


@shared_task(
    name="esplora.pipeline.run_stage",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=20,
)
def run_stage(self: Task, stage: str, image_ids: list[int], then: list[str]) -> dict[str, Any]:
    """Run ``stage`` on a batch, then enqueue the next stage for the images it finished."""
    from esplora.services import stages
    from esplora.services.pipeline import run_queued_batch
    from esplora_workers.dispatch import enqueue

    ctx = context()
    outcome = run_queued_batch(ctx, Stage(stage), image_ids)
    if then:
        ready = list(outcome.done)
        if len(ready) < len(image_ids):
            # Not only the images this delivery finished: a worker that died between its commit
            # and this enqueue left its images done here, and its redelivered task (finding
            # nothing to claim) must carry them on. Any image of the batch now ready goes.
            with ctx.store.reader() as session:
                ready = stages.ready_pending(
                    session, Stage(then[0]), image_ids=image_ids, limit=len(image_ids)
                )
        if ready:
            enqueue(self.app, Stage(then[0]), ready, [Stage(s) for s in then[1:]])
    if outcome.retry_in is not None:  # another worker's claim still runs: look again later
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    return {"stage": stage, "done": len(outcome.done), "failed": len(outcome.failed)}
