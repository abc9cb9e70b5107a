"""``esplora pipeline``: run the data engine's stages and inspect every image's progress."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from esplora.cli._common import JsonOption, console, emit, err_console, settings
from esplora.errors import EsploraError
from esplora.settings import Settings

app = typer.Typer(
    help="Run the data engine (extract → detect → depth → relate).", no_args_is_help=True
)

ProfileOption = Annotated[
    str | None, typer.Option("--profile", help="Model profile: real or tiny (offline twins).")
]
ModelsDirOption = Annotated[
    Path | None, typer.Option("--models-dir", help="Where `esplora models make-tiny` wrote them.")
]


def configured(
    profile: str | None = None, models_dir: Path | None = None, **extra: Any
) -> Settings:
    """The settings with command-line overrides applied (validated like the environment)."""
    updates = {
        k: v
        for k, v in {"profile": profile, "models_dir": models_dir, **extra}.items()
        if v is not None
    }
    try:
        return Settings.model_validate({**settings().model_dump(), **updates})
    except ValueError as error:
        raise EsploraError(
            str(error).splitlines()[0] + ": " + str(error).splitlines()[-1].strip()
        ) from None


def parse_stages(text: str | None) -> list[Any]:
    """``"detect,depth"`` → stages in pipeline order; unknown names are a clear error."""
    from esplora.services.pipeline import ALL_STAGES

    if not text:
        return list(ALL_STAGES)
    names = {s.value: s for s in ALL_STAGES}
    wanted = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise EsploraError(f"unknown stage {unknown[0]!r}; stages are: {', '.join(names)}")
    return [s for s in ALL_STAGES if s.value in wanted]


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1d`` → a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not match:
        raise EsploraError(f"duration {text!r} is not like 90s, 15m, 2h or 1d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})


@app.command("run")
def run(
    inline: Annotated[
        bool, typer.Option("--inline", help="Run in this process, no broker.")
    ] = False,
    detach: Annotated[bool, typer.Option("--detach", help="Enqueue and return at once.")] = False,
    stages: Annotated[
        str | None, typer.Option(help="Comma-separated subset, e.g. detect,depth.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Images per model batch.")] = None,
    profile: ProfileOption = None,
    models_dir: ModelsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run the stages over every image that is ready for them.

    By default the batches go on the queues and a progress bar follows them in the store
    (Ctrl-C stops following, the work stays queued); --detach returns at once; --inline runs
    them in this process with no broker.
    """
    from esplora.services import database
    from esplora.services.pipeline import StageContext, run_inline

    config = configured(profile, models_dir, batch_size=batch_size)
    store = database.open_store(config)
    if not inline:
        try:
            _queued(
                StageContext(store, config), parse_stages(stages), detach=detach, as_json=as_json
            )
        finally:
            store.dispose()
        return
    try:
        with _progress() as bar:
            tasks: dict[str, Any] = {}

            def advance(stage: Any, outcome: Any) -> None:
                if stage.value not in tasks:
                    tasks[stage.value] = bar.add_task(stage.value, total=None)
                bar.advance(tasks[stage.value], len(outcome.done) + len(outcome.failed))

            report = run_inline(StageContext(store, config), parse_stages(stages), progress=advance)
    finally:
        store.dispose()
    data = {"done": report.done, "failed": {k: len(v) for k, v in report.failed.items()}}
    emit(data, as_json, lambda: _print_run(report))


def _queued(ctx: Any, stage_list: list[Any], *, detach: bool, as_json: bool) -> None:
    """ARCHITECTURE.md's execution rule: enqueue, then follow the store with a progress bar."""
    import time

    from esplora.services import stages as stage_service
    from esplora.services.workers import live_workers
    from esplora_workers.app import create_app
    from esplora_workers.dispatch import enqueue_ready

    app = create_app(ctx.settings)
    tasks = enqueue_ready(app, ctx, stage_list, ctx.settings.batch_size)
    workers = live_workers(ctx.store)
    err_console.print(f"enqueued {tasks} batches on {ctx.settings.resolved_broker_url}")
    if detach or not tasks:
        emit({"enqueued": tasks, "followed": False}, as_json, lambda: None)
        return
    if not workers:
        err_console.print(
            "no live worker is consuming the queues: the work stays queued. Start one with\n"
            "  esplora worker --queues gpu,cpu"
        )
        emit({"enqueued": tasks, "followed": False, "workers": 0}, as_json, lambda: None)
        return
    with ctx.store.reader() as session:
        start = stage_service.finished(session, stage_list)
    with _progress() as bar:
        task = bar.add_task("running", total=None)
        try:
            while True:
                with ctx.store.reader() as session:
                    left = stage_service.outstanding(session, stage_list)
                    done = stage_service.finished(session, stage_list) - start
                bar.update(task, completed=done, total=done + left)
                if left == 0:
                    break
                time.sleep(1.0)
        except KeyboardInterrupt:
            err_console.print("stopped following; the work stays queued")
            return
    emit(
        {"enqueued": tasks, "followed": True, "finished": done},
        as_json,
        lambda: console.print(f"{done} (image, stage) pairs finished"),
    )


def _progress() -> Progress:
    columns = (
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=err_console, transient=False)


def _print_run(report: Any) -> None:
    for stage, count in report.done.items():
        failed = report.failed.get(stage, {})
        console.print(f"{stage:>8}: {count} done, {len(failed)} failed")
        for image_id, reason in list(failed.items())[:5]:
            console.print(f"          image {image_id}: {reason}", style="dim")


@app.command("status")
def status(as_json: JsonOption = False) -> None:
    """Per stage, images by state, and the latest failures with their reasons."""
    from esplora.services import database, stages

    store = database.open_store(settings())
    try:
        with store.reader() as session:
            table, recent = stages.counts(session), stages.failures(session)
    finally:
        store.dispose()
    data = {"stages": table, "failures": [_failure(f) for f in recent]}
    emit(data, as_json, lambda: _print_status(table, recent))


def _failure(f: Any) -> dict[str, Any]:
    return {"image_id": f.image_id, "stage": f.stage, "attempts": f.attempts, "error": f.error}


def _print_status(table: dict[str, dict[str, int]], recent: list[Any]) -> None:
    grid = Table(title="pipeline")
    grid.add_column("stage")
    statuses = list(next(iter(table.values())))
    for name in statuses:
        grid.add_column(name, justify="right")
    for stage, row in table.items():
        grid.add_row(stage, *(str(row[s]) for s in statuses))
    console.print(grid)
    for f in recent:
        console.print(f"failed {f.stage} image {f.image_id} (attempt {f.attempts}): {f.error}")


@app.command("retry-failed")
def retry_failed(
    stages_option: Annotated[
        str | None, typer.Option("--stages", help="Only these stages.")
    ] = None,
) -> None:
    """Make failed work pending again."""
    from esplora.services import database, stages

    store = database.open_store(settings())
    try:
        with store.unit_of_work() as session:
            n = stages.retry_failed(session, parse_stages(stages_option) if stages_option else None)
    finally:
        store.dispose()
    console.print(f"{n} failed (image, stage) pairs are pending again")


@app.command("requeue-stale")
def requeue_stale(
    older_than: Annotated[
        str | None, typer.Option(help="Claims older than this (e.g. 15m); default: expired leases.")
    ] = None,
) -> None:
    """Give back claims that a dead worker will never finish."""
    from esplora.services import database, stages

    store = database.open_store(settings())
    try:
        with store.unit_of_work() as session:
            n = stages.requeue_stale(
                session, older_than=parse_duration(older_than) if older_than else None
            )
    finally:
        store.dispose()
    console.print(f"{n} stale claims are pending again")
