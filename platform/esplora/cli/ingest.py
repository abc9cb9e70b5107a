"""``esplora ingest``: read a dataset (img2dataset output, a folder, COCO) into the store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from esplora.cli._common import JsonOption, console, emit, settings
from esplora.sources import SourceFormat

if TYPE_CHECKING:
    from esplora.services.ingest import IngestReport


def ingest(
    path: Annotated[Path, typer.Argument(help="Dataset folder or file.", show_default=False)],
    source_format: Annotated[
        SourceFormat,
        typer.Option(
            "--format", help="img2dataset (any layout), folder, or coco.", case_sensitive=False
        ),
    ],
    source: Annotated[
        str | None, typer.Option("--source", help="Source name (default: the path's name).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=0, help="Read at most N items.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest PATH: store each image once, each image-text pair as a sample, and report."""
    from esplora.services.database import open_store
    from esplora.services.ingest import ingest as run_ingest

    store = open_store(settings())
    try:
        with _progress(enabled=not as_json) as bar:
            task = bar.add_task("ingesting", total=None)
            report = run_ingest(
                store,
                settings(),
                path,
                source_format=source_format,
                source_name=source,
                limit=limit,
                progress=lambda read, total: bar.update(task, completed=read, total=total),
            )
    finally:
        store.dispose()
    emit(report.to_dict(), as_json, lambda: console.print(summary_table(report)))


def _progress(*, enabled: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not enabled,
    )


def summary_table(report: IngestReport) -> Table:
    """The end-of-run summary: what was read, imported, skipped and why."""
    table = Table(title=f"ingest of {report.source} ({report.layout})", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("detail", style="dim")
    table.add_row("read", str(report.read), "")
    table.add_row("imported images", str(report.imported_images), "")
    table.add_row("imported samples", str(report.imported_samples), "")
    if report.imported_objects:
        table.add_row("annotation objects", str(report.imported_objects), "")
    table.add_row("already present", str(report.already_present), "keys stored by an earlier run")
    table.add_row("duplicate images", str(report.duplicate_images), "same bytes, new sample")
    table.add_row("near-duplicates", str(report.near_duplicates), "marked, still processed")
    for reason, count in report.excluded.items():
        table.add_row(f"excluded: {reason}", str(count), "marked; stages skip them")
    table.add_row("not downloaded", str(report.not_downloaded), "img2dataset status")
    for reason, count in report.failed.items():
        examples = ", ".join(report.failure_examples.get(reason, []))
        table.add_row(f"failed: {reason}", str(count), f"e.g. {examples}")
    return table


def refilter(
    min_side: Annotated[int | None, typer.Option(min=1, help="Shorter side in pixels.")] = None,
    max_watermark: Annotated[float | None, typer.Option(min=0, max=1)] = None,
    max_unsafe: Annotated[float | None, typer.Option(min=0, max=1)] = None,
    as_json: JsonOption = False,
) -> None:
    """Re-apply the caption filter to every stored sample (no re-download): samples are marked
    or unmarked and images gain or lose their pending stages. Thresholds default to the
    ``ESPLORA_INGEST_*`` settings."""
    from dataclasses import replace

    from esplora.services.database import open_store
    from esplora.services.ingest import options_from
    from esplora.services.refilter import refilter as run_refilter

    config = settings()
    params = options_from(config).filters
    params = replace(
        params,
        min_side=params.min_side if min_side is None else min_side,
        max_watermark=params.max_watermark if max_watermark is None else max_watermark,
        max_unsafe=params.max_unsafe if max_unsafe is None else max_unsafe,
    )
    store = open_store(config)
    try:
        report = run_refilter(store, params)
    finally:
        store.dispose()

    def render() -> None:
        console.print(
            f"{report.examined} samples examined: {report.newly_excluded} newly excluded, "
            f"{report.newly_kept} newly kept"
        )
        for reason, count in sorted(report.excluded.items()):
            console.print(f"  {reason:<12} {count}")

    emit(report.to_dict(), as_json, render)


def register(app: typer.Typer) -> None:
    """Add ``esplora ingest`` and ``esplora refilter`` to ``app``."""
    app.command()(ingest)
    app.command()(refilter)
