"""``esplora generate --prompts FILTER``: stored prompts → images, under the execution rule
(queued on the gpu queue and followed by default, ``--detach``, or ``--inline``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from esplora.cli._common import console, emit, err_console, settings
from esplora.errors import EsploraError

BATCH_PROMPTS = 8  # prompts per gpu task
FOLLOW_EVERY_S = 1.0


def run_batch(
    prompt_filter: str,
    *,
    generator: str | None,
    images_per_prompt: int,
    seed: int,
    steps: int | None,
    guidance: float | None,
    size: int,
    tore: bool,
    adapter: str,
    scale: float,
    inline: bool,
    detach: bool,
    as_json: bool,
) -> None:
    """Generate for every prompt the filter matches; validate them through the stages."""
    from esplora.core.tore import DEFAULT_WEAK
    from esplora.services import database
    from esplora.services.generation import GenerationPlan, parse_filter, prompt_ids

    config = settings()
    if generator:
        config = config.model_copy(update={"generator": generator})
    if config.generator == "scenes":  # the scene world validates with its own pixel backends
        config = config.model_copy(update={"detector": "scenes", "depth_model": "scenes"})
    store = database.open_store(config)
    try:
        with store.reader() as session:
            ids = prompt_ids(session, **parse_filter(prompt_filter))
        if not ids:
            raise EsploraError(
                f"no stored prompt matches {prompt_filter!r} (see `esplora prompts list`)"
            )
        plan = GenerationPlan(
            tuple(ids),
            images_per_prompt,
            seed,
            steps or 28,
            guidance or 3.5,
            size,
            size,
            "static" if tore else "off",
            frozenset(DEFAULT_WEAK),
        )
        if inline:
            _inline(store, config, plan, adapter, scale, as_json)
        else:
            _queued(store, config, plan, adapter, scale, detach=detach, as_json=as_json)
    finally:
        store.dispose()


def _inline(store: Any, config: Any, plan: Any, adapter: str, scale: float, as_json: bool) -> None:
    from esplora.services.generation import generate, retention
    from esplora.services.pipeline import StageContext, run_inline

    ctx = StageContext(store, config)
    generator = ctx.generator_with(adapter, scale)
    created = generate(store, config, generator, plan, adapter=adapter, adapter_scale=scale)
    run_inline(ctx)
    with store.reader() as session:
        kept = retention(session)
    data = {"generated": len(created), "retention": kept}
    emit(data, as_json, lambda: _print(len(created), kept))


def _print(created: int, kept: list[dict[str, Any]]) -> None:
    console.print(
        f"{created} images generated and validated; retention (strict passes) per relation:"
    )
    for row in kept:
        console.print(
            f"  {row['relation']:<12} {row['kept']}/{row['validated']} ({row['retention']:.0%})"
        )


def _queued(
    store: Any, config: Any, plan: Any, adapter: str, scale: float, *, detach: bool, as_json: bool
) -> None:
    from esplora.services.workers import live_workers
    from esplora_workers.app import create_app

    app = create_app(config)
    fields = asdict(plan)
    tasks = 0
    for start in range(0, len(plan.prompt_ids), BATCH_PROMPTS):
        chunk = {
            **fields,
            "prompt_ids": list(plan.prompt_ids[start : start + BATCH_PROMPTS]),
            "weak": sorted(plan.weak),
        }
        app.send_task("esplora.generate.prompts", args=[chunk, adapter, scale], queue="gpu")
        tasks += 1
    err_console.print(f"enqueued {tasks} generation batches on the gpu queue")
    if detach:
        emit({"enqueued": tasks, "followed": False}, as_json, lambda: None)
        return
    if not live_workers(store):
        err_console.print(
            "no live worker is consuming the queues: the work stays queued. Start one with\n"
            "  esplora worker --queues gpu,cpu"
        )
        emit({"enqueued": tasks, "followed": False, "workers": 0}, as_json, lambda: None)
        return
    finished = _follow(store, plan, adapter, scale)
    emit({"enqueued": tasks, "followed": True, "finished": finished}, as_json, lambda: None)


def _follow(store: Any, plan: Any, adapter: str, scale: float) -> bool:
    """Bars for generated and validated images, read from the store until both are full;
    Ctrl-C stops following and leaves the work queued."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from esplora.services.generation import generation_progress

    total = len(plan.prompt_ids) * plan.images_per_prompt
    columns = (TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err_console) as bar:
        made = bar.add_task("generate", total=total)
        checked = bar.add_task("validate", total=total)  # distinct images, once known
        try:
            while True:
                with store.reader() as session:
                    generated, images, validated = generation_progress(
                        session, plan, adapter, scale
                    )
                bar.update(made, completed=generated)
                bar.update(checked, completed=validated, total=images or total)
                if generated >= total and validated >= images:
                    return True
                time.sleep(FOLLOW_EVERY_S)
        except KeyboardInterrupt:
            err_console.print("stopped following; the work stays queued")
            return False
