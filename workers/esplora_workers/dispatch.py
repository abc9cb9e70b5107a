"""Putting work on the queues: batches of ready images, each stage chained to the next."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from esplora.db.enums import Stage
from esplora.services.pipeline import StageContext, ready_batches
from esplora_workers.queues import STAGE_QUEUE, STAGE_TASK


def enqueue(app: Celery, stage: Stage, image_ids: list[int], then: Sequence[Stage]) -> None:
    """One task for ``stage`` on these images; it enqueues ``then`` for those it finishes."""
    app.send_task(
        STAGE_TASK,
        args=[stage.value, image_ids, [s.value for s in then]],
        queue=STAGE_QUEUE[stage],
    )


def enqueue_ready(app: Celery, ctx: StageContext, stages: Sequence[Stage], batch_size: int) -> int:
    """Enqueue every image that is ready for one of ``stages`` now; returns the task count.

    Images ready for a later stage start there; the others reach it through the chain.
    """
    count = 0
    for index, stage in enumerate(stages):
        for ids in ready_batches(ctx, stage, batch_size):
            enqueue(app, stage, ids, stages[index + 1 :])
            count += 1
    return count
