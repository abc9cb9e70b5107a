"""The data engine's stages as services: extract → detect → depth → relate.

Each stage is a runner (load → compute → write, see :mod:`runner`); :func:`run_inline` drives
them in this process, and the Celery tasks call :func:`run_batch` with the same runners.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from esplora.db.enums import Stage
from esplora.services import stages
from esplora.services.pipeline.context import StageContext
from esplora.services.pipeline.depth import DepthRunner
from esplora.services.pipeline.detect import DetectRunner
from esplora.services.pipeline.extract import ExtractRunner
from esplora.services.pipeline.relate import RelateRunner
from esplora.services.pipeline.runner import BatchOutcome, StageRunner, Timings, run_batch

RUNNERS: dict[Stage, StageRunner] = {
    Stage.EXTRACT: ExtractRunner(),
    Stage.DETECT: DetectRunner(),
    Stage.DEPTH: DepthRunner(),
    Stage.RELATE: RelateRunner(),
}
DATA_ENGINE = (Stage.EXTRACT, Stage.DETECT, Stage.DEPTH, Stage.RELATE)

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
        return stages.claim(session, stage, limit=limit, worker=ctx.worker)


def run_inline(
    ctx: StageContext,
    stage_list: Sequence[Stage] = DATA_ENGINE,
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


__all__ = ["DATA_ENGINE", "RUNNERS", "RunReport", "StageContext", "run_batch", "run_inline"]
