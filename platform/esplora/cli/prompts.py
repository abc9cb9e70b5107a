"""``esplora prompts``: spatial prompts synthesized from the store, benchmark sets, listing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from esplora.cli._common import JsonOption, console, emit, settings

app = typer.Typer(
    help="Spatial prompts: synthesize, install benchmarks, list.", no_args_is_help=True
)


@app.command("synthesize")
def synthesize(
    n: Annotated[int, typer.Option("--n", min=1, help="How many new prompts.")] = 100,
    complex_prompts: Annotated[bool, typer.Option("--complex", help="Two relations each.")] = False,
    seed: Annotated[int, typer.Option(help="Phrasing and sampling seed.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Prompts from natural images' relations that hold strictly for every instance pair."""
    from esplora.services import database
    from esplora.services.pipeline import StageContext
    from esplora.services.pipeline.relate import producer_name
    from esplora.services.synthesis import synthesize as run

    config = settings()
    store = database.open_store(config)
    try:
        report = run(
            store,
            n,
            complex_prompts=complex_prompts,
            seed=seed,
            producer=producer_name(StageContext(store, config)),
        )
    finally:
        store.dispose()

    def render() -> None:
        console.print(
            f"{report.facts} strict facts; {report.added} new prompts, {report.existing} known"
        )
        for relation, count in sorted(report.per_relation.items()):
            console.print(f"  {relation:<12} {count}")

    emit(report.to_dict(), as_json, render)


@app.command("install")
def install(
    benchmark: Annotated[
        str | None, typer.Argument(help="urban, t2i-compbench, geneval or visor.")
    ] = None,
    prompts_file: Annotated[
        Path | None, typer.Option("--prompts", help="An official prompt file.")
    ] = None,
    protocol: Annotated[
        str | None, typer.Option(help="Its protocol: t2i-compbench, geneval, visor.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Store a benchmark's prompts (or an official prompt file with --prompts and --protocol)."""
    from esplora.errors import EsploraError
    from esplora.services import benchmarks, database

    store = database.open_store(settings())
    try:
        if prompts_file is not None:
            if protocol is None:
                raise EsploraError("--prompts needs --protocol (t2i-compbench, geneval or visor)")
            name, result = benchmarks.install_file(store, prompts_file, protocol)
        elif benchmark is not None:
            name, result = benchmark, benchmarks.install(store, benchmark)
        else:
            raise EsploraError(
                "name a benchmark (urban, t2i-compbench, geneval, visor) or --prompts FILE"
            )
    finally:
        store.dispose()
    data = {
        "benchmark": name,
        "added": result.added,
        "existing": result.existing,
        "rejected": list(result.rejected),
    }
    emit(
        data,
        as_json,
        lambda: console.print(
            f"{name}: {result.added} prompts stored, {result.existing} already there, "
            f"{len(result.rejected)} not spatial"
        ),
    )


@app.command("list")
def list_prompts(
    kind: Annotated[str | None, typer.Option(help="simple or complex.")] = None,
    benchmark: Annotated[str | None, typer.Option(help="Only this benchmark's prompts.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    as_json: JsonOption = False,
) -> None:
    """Stored prompts with their structured relations."""
    from sqlalchemy import select

    from esplora.db.synthetic import SpatialPrompt
    from esplora.services import database

    store = database.open_store(settings())
    try:
        with store.reader() as session:
            query = select(SpatialPrompt).order_by(SpatialPrompt.id).limit(limit)
            if kind:
                query = query.where(SpatialPrompt.kind == kind)
            if benchmark:
                query = query.where(SpatialPrompt.benchmark == benchmark)
            rows = [
                {
                    "id": p.id,
                    "text": p.text,
                    "kind": p.kind.value,
                    "relations": p.relations,
                    "origin": p.origin,
                    "benchmark": p.benchmark,
                }
                for p in session.scalars(query)
            ]
    finally:
        store.dispose()
    table = Table("id", "kind", "prompt", "origin")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["kind"]),
            str(row["text"]),
            str(row["benchmark"] or row["origin"]),
        )
    emit(rows, as_json, lambda: console.print(table))
