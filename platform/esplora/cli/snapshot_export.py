"""``esplora snapshot export`` and ``esplora snapshot export-jobs``.

The execution rule of ARCHITECTURE.md: by default the export is a job on the cpu queue and this
command follows its row with a progress bar (Ctrl-C stops following, the job stays queued);
``--detach`` returns at once; ``--inline`` runs it in this process with no broker. Either way
the job is recorded, so ``export-jobs`` lists every export and how it ended.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from esplora.cli._common import JsonOption, console, emit, err_console, settings
from esplora.errors import EsploraError

if TYPE_CHECKING:
    from esplora.db.engine import Store
    from esplora.services.exports import ExportJobInfo
    from esplora.settings import Settings

FOLLOW_EVERY_S = 0.5

NameArg = Annotated[str, typer.Argument(help="The snapshot to export.")]
FormatOption = Annotated[
    str, typer.Option("--format", "-f", help="parquet, webdataset, imagefolder, kohya or coco.")
]
OutOption = Annotated[Path, typer.Option("--out", help="Directory to create (or an empty one).")]
TriggerOption = Annotated[
    str | None, typer.Option("--trigger", help="A trigger word put first in every caption.")
]
PrefixOption = Annotated[
    str, typer.Option("--caption-prefix", help="Text put before every caption.")
]
ShardOption = Annotated[
    int, typer.Option("--shard-size", min=1, help="Samples per parquet file or tar shard.")
]
RepeatsOption = Annotated[
    int, typer.Option("--repeats", min=1, help="kohya: repeats in the {repeats}_{name} folder.")
]
InlineOption = Annotated[bool, typer.Option("--inline", help="Run in this process, no broker.")]
DetachOption = Annotated[bool, typer.Option("--detach", help="Enqueue and return at once.")]


def export(
    name: NameArg,
    fmt: FormatOption,
    out: OutOption,
    trigger: TriggerOption = None,
    caption_prefix: PrefixOption = "",
    shard_size: ShardOption = 5000,  # DEFAULT_SHARD_SIZE (not imported: pyarrow is heavy)
    repeats: RepeatsOption = 1,
    inline: InlineOption = False,
    detach: DetachOption = False,
    as_json: JsonOption = False,
) -> None:
    """Write snapshot NAME in a training format (one sample per member, with its relations).

    The export appears at --out only once complete, with a dataset card (README.md); members
    whose image file is missing or unreadable are skipped and named.
    """
    from esplora.services import database
    from esplora.services.exports import ExportOptions, start_export

    if inline and detach:
        raise EsploraError("--inline and --detach exclude each other")
    options = ExportOptions(
        trigger=trigger, caption_prefix=caption_prefix, shard_size=shard_size, repeats=repeats
    )
    config = settings()
    store = database.open_store(config)
    try:
        job_id = start_export(store, snapshot=name, fmt=fmt, out=out, options=options)
        if inline:
            job: ExportJobInfo | None = _inline(store, config, job_id)
        else:
            job = _queued(store, config, job_id, detach=detach, as_json=as_json)
    finally:
        store.dispose()
    if job is None:
        return
    if job.error is not None:
        raise EsploraError(f"export job {job.id} {job.status.value}: {job.error}")
    emit(job.to_dict(), as_json, lambda: _print_done(job))


def _inline(store: Store, config: Settings, job_id: int) -> ExportJobInfo:
    from esplora.services.exports import run_export_job

    with _progress() as bar:
        task = bar.add_task("export", total=None)
        return run_export_job(
            store, config, job_id, lambda done, total: bar.update(task, completed=done, total=total)
        )


def _queued(
    store: Store, config: Settings, job_id: int, *, detach: bool, as_json: bool
) -> ExportJobInfo | None:
    """Enqueue, then follow the job's row; None when not followed (the job stays queued)."""
    from esplora.services.workers import live_workers
    from esplora_workers.app import create_app
    from esplora_workers.export_tasks import enqueue_export
    from esplora_workers.queues import CPU

    enqueue_export(create_app(config), job_id)
    err_console.print(f"export job {job_id} queued on {config.resolved_broker_url}")
    if detach:
        emit({"job": job_id, "followed": False}, as_json, lambda: None)
        return None
    if not any(CPU in worker.queues for worker in live_workers(store)):
        err_console.print(
            "no live worker is consuming the cpu queue: the export stays queued. Start one with\n"
            "  esplora worker --queues cpu"
        )
        emit({"job": job_id, "followed": False, "workers": 0}, as_json, lambda: None)
        return None
    try:
        return _follow(store, job_id)
    except KeyboardInterrupt:
        err_console.print(
            f"stopped following; export job {job_id} goes on (esplora snapshot export-jobs)"
        )
        return None


def _follow(store: Store, job_id: int) -> ExportJobInfo:
    from esplora.services.exports import export_job

    with _progress() as bar:
        task = bar.add_task("export", total=None)
        while True:
            job = export_job(store, job_id)
            bar.update(task, completed=job.done, total=job.total or None)
            if job.finished:
                return job
            time.sleep(FOLLOW_EVERY_S)


def _progress() -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    return Progress(*columns, console=err_console, transient=False)


def _print_done(job: ExportJobInfo) -> None:
    report = job.report
    splits = ", ".join(f"{name} {n}" for name, n in sorted(report.get("splits", {}).items()))
    console.print(f"exported {report.get('written', 0)} samples ({splits or 'none'}) of snapshot "
                  f"{job.snapshot} as {job.format} to {job.out_dir}")  # fmt: skip
    if job.skipped:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(report["skip_reasons"].items()))
        console.print(f"skipped {job.skipped} ({reasons}); all listed in skipped.jsonl")
        for skip in report.get("skips", [])[:5]:
            console.print(f"  sample {skip['sample_id']}: {skip['reason']}: {skip['detail']}")


def export_jobs(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """List export jobs: status, progress, skips, errors."""
    from esplora.services import database
    from esplora.services.exports import export_jobs as list_jobs

    store = database.open_store(settings())
    try:
        jobs = list_jobs(store, limit=limit)
    finally:
        store.dispose()
    emit([job.to_dict() for job in jobs], as_json, lambda: _print_jobs(jobs))


def _print_jobs(jobs: list[Any]) -> None:
    grid = Table(title="export jobs")
    for column in ("id", "snapshot", "format", "status", "done", "skipped", "out", "error"):
        grid.add_column(column)
    for job in jobs:
        status = f"{job.status.value} (stale)" if job.stale else job.status.value
        grid.add_row(str(job.id), job.snapshot, job.format, status,
                     f"{job.done}/{job.total}", str(job.skipped), job.out_dir,
                     job.error or "")  # fmt: skip
    console.print(grid)
    if any(job.stale for job in jobs):
        console.print(
            "stale: the job's worker stopped reporting; run the same `esplora snapshot export` "
            "again (it cleans up the partial directory)"
        )


def register(app: typer.Typer) -> None:
    """Add ``export`` and ``export-jobs`` to the ``snapshot`` command group ``app``."""
    app.command("export")(export)
    app.command("export-jobs")(export_jobs)
