"""The training job: a stored run's snapshot and config through the engine, with every step,
checkpoint and outcome written to the store.

The job is the same inline and on a gpu worker; only ``validate`` differs. A worker passes a
function that enqueues ``esplora.train.validate`` for each checkpoint (validation runs as its
own job, so this process never holds detector and depth beside the diffusion model). Without
it the validations run here, after training, once the training model is released.

Idempotent under redelivery: a finished run is not trained again, a running one whose worker
still beats is left alone, and a taken-over one resumes from its last checkpoint (the engine
does that from ``run_dir/checkpoints``). Metrics and checkpoints are upserts.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from esplora.db.engine import Store
from esplora.db.enums import RunStatus
from esplora.errors import EsploraError
from esplora.services import runs
from esplora.services.pipeline.context import worker_name
from esplora.settings import Settings

__all__ = ["JobOutcome", "adapter_copy", "run_training_job", "simple_prompt"]

Progress = Callable[[int, Mapping[str, float]], None]
STOP_POLL_S = 2.0  # how often the job asks the store whether the run was cancelled


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What a training job did: the run's final status, steps, adapter and validated steps."""

    status: RunStatus
    steps: int
    adapter: str | None
    validated: tuple[int, ...]


def run_training_job(
    store: Store,
    settings: Settings,
    run_name: str,
    *,
    validate: Callable[[int], None] | None = None,
    progress: Progress | None = None,
    validated: Progress | None = None,
) -> JobOutcome | None:
    """Train run ``run_name``; ``None`` when it must not run (finished, or held elsewhere).

    ``validate(step)`` is called after each checkpoint due for validation; without it those
    checkpoints are validated in this process after training. ``progress(step, metrics)``
    follows the steps (the CLI's progress bar), ``validated(step, metrics)`` the validations
    run here.
    """
    lease = timedelta(seconds=settings.stage_lease_s)
    run = runs.start_run(store, run_name, worker=worker_name(), lease=lease)
    if run is None:
        return None
    due: list[int] = []
    try:
        result = _train(store, settings, run, validate or due.append, progress)
    except KeyboardInterrupt:  # Ctrl-C of an inline run: resumable with `train --resume`
        runs.fail_run(store, run.id, "interrupted", status=RunStatus.CANCELLED)
        raise
    except Exception as error:
        runs.fail_run(store, run.id, f"{type(error).__name__}: {error}")
        raise
    adapter = str(result.adapter_dir) if result.adapter_dir else None
    status = runs.finish_run(
        store, run.id, adapter_uri=adapter, artefacts={"run_dir": str(_dir(settings, run))}
    )
    done = _validate_here(store, settings, run.name, due, validated)
    return JobOutcome(status, int(result.steps), adapter, tuple(done))


def _dir(settings: Settings, run: runs.RunView) -> Path:
    return runs.run_dir(settings, run.name)


def _train(
    store: Store,
    settings: Settings,
    run: runs.RunView,
    validate: Callable[[int], None],
    progress: Progress | None,
) -> Any:
    from esplora.services.snapshots import training_examples
    from esplora_training.config import TrainingConfig
    from esplora_training.engine import train

    config = TrainingConfig.model_validate(run.config)
    examples = training_examples(store, run.snapshot, config.split, settings=settings)
    if not examples:
        raise EsploraError(f"snapshot {run.snapshot!r} has no {config.split!r} examples")
    if config.prompt_style == "simple":
        examples = [simple_prompt(e) for e in examples]
    every = int(config.validation_every or config.checkpoint_every)
    run_dir = _dir(settings, run)

    def on_step(step: int, metrics: dict[str, float]) -> None:
        runs.record_metrics(store, run.id, step, metrics, heartbeat=True)
        if progress is not None:
            progress(step, metrics)

    def on_checkpoint(step: int, path: Path) -> None:
        # The engine keeps only the last few checkpoints; the adapter is kept apart (hard
        # links: no copy) so that validations queued behind training, and `--adapter RUN@STEP`,
        # still find it.
        kept = adapter_copy(path, run_dir / "adapters" / f"step-{step:08d}")
        runs.record_checkpoint(store, run.id, step, str(kept))
        # Due: every `validation_every` steps, and the final adapter (what users will load),
        # never a checkpoint written because the run was cancelled.
        if step % every == 0 or (step == config.max_steps and not runs.is_cancelled(store, run.id)):
            validate(step)

    return train(
        config,
        examples,
        run_dir,
        on_step=on_step,
        on_checkpoint=on_checkpoint,
        should_stop=_stop_poller(store, run.id),
    )


def simple_prompt(example: Any) -> Any:
    """``prompt_style: simple``: the example's text becomes the template prompt of its first
    relation ("a cat to the left of a dog"); an example without relations keeps its text."""
    from esplora.core.prompts import render_simple

    if not example.relations:
        return example
    first = example.relations[0]
    text = render_simple(first["subject"]["label"], first["relation"], first["object"]["label"])
    return replace(example, text=text)


def _stop_poller(store: Store, run_id: int) -> Callable[[], bool]:
    """``should_stop`` for the engine: whether the run was cancelled, asked at most every
    :data:`STOP_POLL_S` seconds (the engine asks once per step)."""
    state = {"next": 0.0, "stop": False}

    def should_stop() -> bool:
        now = time.monotonic()
        if not state["stop"] and now >= state["next"]:
            state["stop"], state["next"] = runs.is_cancelled(store, run_id), now + STOP_POLL_S
        return bool(state["stop"])

    return should_stop


def adapter_copy(checkpoint: Path, target: Path) -> Path:
    """The adapter files of a checkpoint directory (weights and ``esplora_adapter.json``)
    linked into ``target`` (copied where hard links are impossible); returns ``target``."""
    from esplora.backends.lora import ADAPTER_INFO, adapter_ref

    weights = adapter_ref(checkpoint).weights
    target.mkdir(parents=True, exist_ok=True)
    for source in (weights, weights.parent / ADAPTER_INFO):
        if not source.is_file():
            continue
        destination = target / source.name
        destination.unlink(missing_ok=True)
        try:
            os.link(source, destination)
        except OSError:  # another filesystem, or no hard links there
            shutil.copy2(source, destination)
    return target


def _validate_here(
    store: Store, settings: Settings, run_name: str, steps: list[int], validated: Progress | None
) -> list[int]:
    """Validate ``steps`` in this process (inline runs), after training released its model."""
    if not steps:
        return []
    from esplora_training.validation import release_memory, validate_checkpoint

    release_memory()
    for step in steps:
        metrics = validate_checkpoint(store, settings, run_name, step)
        if validated is not None:
            validated(step, metrics)
    return steps
