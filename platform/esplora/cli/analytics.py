"""``esplora stats`` (the Overview numbers) and ``esplora query "SQL"`` (read-only SQL)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from esplora.cli._common import JsonOption, console, emit, settings
from esplora.errors import EsploraError


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for name in rows[0] if rows else []:
        table.add_column(str(name))
    for row in rows:
        table.add_row(*(_cell(v) for v in row.values()))
    return table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def stats(as_json: JsonOption = False) -> None:
    """Relation statistics of the store: pairs per axis, soft/strict, claims, review, stages."""
    from esplora.services.stats import stats as compute

    data = compute(settings())

    def render() -> None:
        console.print(_table("totals", [data["totals"]]))
        for key in ("axes", "relations", "label_pairs", "claims", "stages", "retention"):
            if data[key]:
                console.print(_table(key.replace("_", " "), data[key]))
        console.print(_table("review", [data["review"]["relations_by_state"]]))

    emit(data, as_json, render)


def query(
    sql: Annotated[str, typer.Argument(help="One SELECT / WITH / EXPLAIN over the views.")],
    as_json: JsonOption = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds before it is stopped.")
    ] = 5.0,
    max_rows: Annotated[int, typer.Option("--max-rows", help="Rows returned at most.")] = 10_000,
) -> None:
    """Run read-only SQL over the analytics views (docs/views.md); writes and files are refused."""
    from esplora.services.stats import query as run_query

    try:
        result = run_query(settings(), sql, timeout_s=timeout, max_rows=max_rows)
    except ValueError as error:  # QueryRefused / QueryTimeout
        raise EsploraError(str(error)) from None
    rows = result.to_pylist()
    truncated = (result.schema.metadata or {}).get(b"truncated") == b"true"

    def render() -> None:
        console.print(_table("", rows) if rows else "(no rows)")
        if truncated:
            console.print(f"[yellow]only the first {max_rows} rows are shown[/]")

    emit(rows, as_json, render)


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
    app.command("query")(query)
