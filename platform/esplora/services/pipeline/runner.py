"""One batch of one stage: load inputs, compute outside any transaction, write once.

Every stage follows the same three steps, so the guarantees are the same everywhere: a model
never runs inside a database transaction (locks stay short), a failing image fails alone with
its reason, and results are written and the images marked done in one transaction, only for the
images this worker still holds (a requeued claim is never written twice).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from esplora.db.enums import Stage
from esplora.services import stages
from esplora.services.pipeline.context import StageContext


class StageRunner(Protocol):
    """The three steps of a stage; see the module docstring."""

    stage: Stage

    def producer(self, ctx: StageContext) -> str: ...

    def load(self, ctx: StageContext, image_ids: Sequence[int]) -> dict[int, Any]: ...

    def compute(self, ctx: StageContext, inputs: Mapping[int, Any]) -> dict[int, Any]: ...

    def write(
        self, session: Session, ctx: StageContext, results: Mapping[int, Any]
    ) -> dict[int, dict[str, Any]]: ...


@dataclass
class Timings:
    """Seconds spent per phase, summed over batches (the per-image breakdown of the bench)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What happened to the images of one batch."""

    done: tuple[int, ...]
    failed: dict[int, str]
    lost: tuple[int, ...]  # claims taken back (requeued) before this worker could write


def describe(error: BaseException) -> str:
    """A failure reason for the store: the error's type and message, one line."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _compute(ctx: StageContext, runner: StageRunner, inputs: dict[int, Any]) -> dict[int, Any]:
    """The runner's results; if the batch call itself fails, that error fails each image."""
    if not inputs:
        return {}
    try:
        return runner.compute(ctx, inputs)
    except Exception as error:  # a model crash fails its batch, never the run
        return dict.fromkeys(inputs, error)


def run_batch(
    ctx: StageContext, runner: StageRunner, image_ids: Sequence[int], timings: Timings | None = None
) -> BatchOutcome:
    """Run ``runner`` over images already claimed by ``ctx.worker``."""
    timings = timings or Timings()
    ctx.drain_clocks()  # start this batch's phases from zero
    with timings.phase("store_read"):
        inputs = runner.load(ctx, image_ids)
    decode = ctx.drain_clocks().get("decode", 0.0)
    timings.seconds["store_read"] -= decode  # loading = reading rows + decoding images
    timings.seconds["decode"] += decode
    errors: dict[int, str] = {i: "input missing" for i in image_ids if i not in inputs}
    errors.update({i: describe(v) for i, v in inputs.items() if isinstance(v, BaseException)})
    good = {i: v for i, v in inputs.items() if i not in errors}
    results: dict[int, Any] = {}
    with timings.phase("compute"):
        computed = _compute(ctx, runner, good)
    for phase, seconds in ctx.drain_clocks().items():
        timings.seconds[phase] += seconds
        timings.seconds["compute"] -= seconds  # what is left of compute is the stage's own code
    for image_id, value in computed.items():
        if isinstance(value, BaseException):
            errors[image_id] = describe(value)
        else:
            results[image_id] = value
    with timings.phase("store_write"), ctx.store.unit_of_work() as session:
        mine = set(stages.still_claimed(session, runner.stage, image_ids, ctx.worker))
        kept = {i: r for i, r in results.items() if i in mine}
        details = runner.write(session, ctx, kept)
        producer = runner.producer(ctx)
        for image_id in kept:
            stages.finish(
                session, runner.stage, image_id, producer=producer, details=details.get(image_id)
            )
        for image_id, reason in errors.items():
            if image_id in mine:
                stages.fail(session, runner.stage, image_id, reason)
    lost = tuple(i for i in image_ids if i not in mine)
    failed = {i: r for i, r in errors.items() if i in mine}
    return BatchOutcome(tuple(sorted(kept)), failed, lost)
