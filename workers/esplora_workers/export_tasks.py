"""The cpu-queue task that runs a snapshot export job (progress and outcome go to its row)."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task, shared_task

from esplora.errors import EsploraError
from esplora_workers.queues import CPU
from esplora_workers.runtime import context
from esplora_workers.tasks import TRANSIENT

EXPORT_TASK = "esplora.snapshot.export"


@shared_task(
    name=EXPORT_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    max_retries=5,
)
def export_snapshot(self: Task, job_id: int) -> dict[str, Any]:
    """Run export job ``job_id`` (a job that already succeeded is not run again)."""
    from esplora.services.exports import run_export_job

    ctx = context()
    try:
        job = run_export_job(ctx.store, ctx.settings, job_id)
    except EsploraError as error:  # the user's mistake, recorded in the row: nothing to retry
        return {"job": job_id, "status": "failed", "error": str(error)}
    return {"job": job_id, "status": job.status.value, "done": job.done, "skipped": job.skipped}


def enqueue_export(app: Celery, job_id: int) -> None:
    """Put export job ``job_id`` on the cpu queue."""
    app.send_task(EXPORT_TASK, args=[job_id], queue=CPU)
