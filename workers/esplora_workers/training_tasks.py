"""The gpu-queue training tasks: train a run, and validate one of its checkpoints.

Training is not retried automatically: a failed run stays failed with its reason, and
``esplora train --name RUN --resume`` continues it from its last checkpoint. A worker killed
mid-run has its task redelivered (``acks_late``, ``reject_on_worker_lost``), which resumes it.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from esplora_workers.queues import GPU, TRAIN_TASK, VALIDATE_TASK
from esplora_workers.runtime import context
from esplora_workers.tasks import TRANSIENT


@shared_task(name=TRAIN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
def train_run(self: Task, run_name: str) -> dict[str, Any]:
    """Train ``run_name``; each checkpoint due for validation enqueues a validation task."""
    from esplora_training.jobs import run_training_job

    ctx = context()

    def enqueue_validation(step: int) -> None:
        self.app.send_task(VALIDATE_TASK, args=[run_name, step], queue=GPU)

    outcome = run_training_job(ctx.store, ctx.settings, run_name, validate=enqueue_validation)
    if outcome is None:  # finished already, or another worker holds it
        return {"run": run_name, "skipped": True}
    return {"run": run_name, "status": outcome.status.value, "steps": outcome.steps}


@shared_task(
    name=VALIDATE_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    max_retries=10,
)
def validate_step(run_name: str, step: int) -> dict[str, Any]:
    """Spatial accuracy of ``run_name``'s checkpoint at ``step`` (idempotent: upserts)."""
    from esplora_training.validation import validate_checkpoint

    ctx = context()
    metrics = validate_checkpoint(ctx.store, ctx.settings, run_name, step)
    return {"run": run_name, "step": step, "accuracy": metrics.get("accuracy/all")}
