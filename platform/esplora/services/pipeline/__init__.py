"""The data engine's stages as services: extract → detect → depth → relate.

Each stage is a runner (load → compute → write, see :mod:`runner`); :func:`run_inline` drives
them in this process, and the Celery tasks call :func:`run_batch` with the same runners.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from esplora.db.enums import Stage
from esplora.services import stages
from esplora.services.pipeline.context import StageContext
from esplora.services.pipeline.depth import DepthRunner
from esplora.services.pipeline.detect import DetectRunner
from esplora.services.pipeline.extract import ExtractRunner
from esplora.services.pipeline.relate import RelateRunner
from esplora.services.pipeline.runner import BatchOutcome, StageRunner, Timings, run_batch
from esplora.services.pipeline.validate import ValidateRunner

RUNNERS: dict[Stage, StageRunner] = {
    Stage.EXTRACT: ExtractRunner(),
    Stage.DETECT: DetectRunner(),
    Stage.DEPTH: DepthRunner(),
    Stage.RELATE: RelateRunner(),
    Stage.VALIDATE: ValidateRunner(),
}
DATA_ENGINE = (Stage.EXTRACT, Stage.DETECT, Stage.DEPTH, Stage.RELATE)
# Generated images also go through validate; natural ones have it skipped from ingest on.
ALL_STAGES = (*DATA_ENGINE, Stage.VALIDATE)

Progress = Callable[[Stage, BatchOutcome], None]


@dataclass
class RunReport:
    """Per stage, how many images were done and which failed (with reasons)."""

    done: dict[str, int] = field(default_factory=dict)
    failed: dict[str, dict[int, str]] = field(default_factory=dict)
    timings: Timings = field(default_factory=Timings)

    def add(self, stage: Stage, outcome: BatchOutcome) -> None:
        self.done[stage.value] = self.done.get(stage.value, 0) + len(outcome.done)
        self.failed.setdefault(stage.value, {}).update(outcome.failed)


def claim_batch(ctx: StageContext, stage: Stage, limit: int) -> list[int]:
    """Claim the next batch of ready images for ``stage`` in one short write transaction."""
    with ctx.store.unit_of_work() as session:
        return stages.claim(session, stage, limit=limit, worker=ctx.worker, lease=ctx.lease)


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """What a queued batch did; ``retry_in`` (seconds) when another live claim blocked some."""

    done: tuple[int, ...]
    failed: dict[int, str]
    retry_in: float | None


def run_queued_batch(ctx: StageContext, stage: Stage, image_ids: Sequence[int]) -> TaskOutcome:
    """Claim these images (taking back this worker's own claims, expired ones, and those of
    dead processes on this host) and run the stage.

    Images another worker still holds are not touched; ``retry_in`` says when that claim
    expires, so a task redelivered while its dead worker's lease runs can try again then.
    """
    with ctx.store.unit_of_work() as session:
        dead = [h for h in stages.holders(session, stage, image_ids) if holder_is_dead(h)]
        ids = stages.claim(
            session,
            stage,
            limit=len(image_ids),
            worker=ctx.worker,
            image_ids=image_ids,
            lease=ctx.lease,
            reclaim=True,
            dead=dead,
        )
        rest = [i for i in image_ids if i not in set(ids)]
        held_until = stages.held_elsewhere(session, stage, rest, ctx.worker) if rest else None
    outcome = run_batch(ctx, RUNNERS[stage], ids) if ids else None
    retry_in = None
    if held_until is not None:
        retry_in = max(1.0, (_aware(held_until) - stages.now()).total_seconds() + 1.0)
    return TaskOutcome(outcome.done if outcome else (), outcome.failed if outcome else {}, retry_in)


def holder_is_dead(worker: str) -> bool:
    """Whether the process named ``host:pid`` is known dead: it ran on this host and is gone.

    Claims of processes on other hosts are only taken back once their lease expires.
    """
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes (stored in UTC); PostgreSQL returns aware ones.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def ready_batches(ctx: StageContext, stage: Stage, batch_size: int) -> Iterator[list[int]]:
    """The pending, ready images of ``stage`` in batches (what the dispatcher enqueues)."""
    after = 0
    while True:
        with ctx.store.reader() as session:
            ids = stages.ready_pending(session, stage, after=after, limit=batch_size)
        if not ids:
            return
        yield ids
        after = ids[-1]


def run_inline(
    ctx: StageContext,
    stage_list: Sequence[Stage] = ALL_STAGES,
    *,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> RunReport:
    """Run the stages in order in this process until no ready image is left for any of them."""
    report = RunReport()
    size = batch_size or ctx.settings.batch_size
    for stage in stage_list:
        while ids := claim_batch(ctx, stage, size):
            outcome = run_batch(ctx, RUNNERS[stage], ids, report.timings)
            report.add(stage, outcome)
            if progress is not None:
                progress(stage, outcome)
    return report


__all__ = [
    "ALL_STAGES",
    "DATA_ENGINE",
    "RUNNERS",
    "RunReport",
    "StageContext",
    "TaskOutcome",
    "ready_batches",
    "run_batch",
    "run_inline",
    "run_queued_batch",
]
