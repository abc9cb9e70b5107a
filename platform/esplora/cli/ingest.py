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


def register(app: typer.Typer) -> None:
    """Add ``esplora ingest`` to ``app``."""
    app.command()(ingest)
