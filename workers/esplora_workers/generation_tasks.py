"""The gpu-queue task that generates images for stored prompts, then queues their stages."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from esplora.db.enums import Stage
from esplora_workers.runtime import context
from esplora_workers.tasks import TRANSIENT


@shared_task(
    name="esplora.generate.prompts",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=2,
    max_retries=10,
)
def generate_prompts(
    self: Task, plan: dict[str, Any], adapter: str, scale: float
) -> dict[str, Any]:
    """Generate a batch of prompts (idempotent: existing generations are skipped)."""
    from esplora.services.generation import GenerationPlan, generate, image_ids_of
    from esplora_workers.dispatch import enqueue

    ctx = context()
    fields = {**plan, "prompt_ids": tuple(plan["prompt_ids"]), "weak": frozenset(plan["weak"])}
    created = generate(
        ctx.store,
        ctx.settings,
        ctx.generator_with(adapter, scale),
        GenerationPlan(**fields),
        adapter=adapter,
        adapter_scale=scale,
    )
    images = image_ids_of(ctx.store, created)
    if images:
        enqueue(
            self.app,
            Stage.EXTRACT,
            images,
            [Stage.DETECT, Stage.DEPTH, Stage.RELATE, Stage.VALIDATE],
        )
    return {"generated": len(created), "images": len(images)}
