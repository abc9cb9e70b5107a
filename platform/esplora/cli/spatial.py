"""Spatial commands over the pure core: ``esplora tore`` and ``esplora relation``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from esplora.cli._common import JsonOption, console, emit
from esplora.core.errors import InvalidBox, InvalidDisparity

WeakOption = Annotated[
    list[str] | None,
    typer.Option("--weak", help="A weak relation (repeatable); default: right_of, below, behind."),
]


def tore(
    prompt: Annotated[str, typer.Argument(help="The prompt to rewrite.")],
    weak: WeakOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rewrite PROMPT with TORE: clauses with a weak relation become their strong inverse."""
    import esplora.core.tore as tore_core

    result = tore_core.analyse(prompt, weak=frozenset(weak) if weak else tore_core.DEFAULT_WEAK)
    emit(result.to_dict(), as_json, lambda: typer.echo(result.rewritten))


def _box(text: str) -> tuple[float, float, float, float]:
    parts = text.replace(" ", "").split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InvalidBox(f"box {text!r} is not four numbers x0,y0,x1,y1") from None
    if len(values) != 4:
        raise InvalidBox(f"box {text!r} has {len(values)} numbers, expected x0,y0,x1,y1")
    return values[0], values[1], values[2], values[3]


def _pair(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        first, second = (float(p) for p in text.split(","))
    except ValueError:
        raise InvalidDisparity(
            f"disparity {text!r} is not two numbers d_subject,d_object"
        ) from None
    return first, second


def relation(
    name: Annotated[
        str, typer.Argument(help="left_of, right_of, above, below, in_front_of, behind, near")
    ],
    subject: Annotated[str, typer.Argument(help="Subject box x0,y0,x1,y1 (pixels, y down).")],
    object_: Annotated[str, typer.Argument(metavar="OBJECT", help="Object box x0,y0,x1,y1.")],
    tau: Annotated[float, typer.Option(help="ESPLoRA strictness τ ≥ 1.")] = 3.0,
    depth_gap: Annotated[float, typer.Option(help="ESPLoRA depth gap in (0, 1).")] = 1 / 3,
    disparity: Annotated[
        str | None, typer.Option(help="d_subject,d_object (larger = closer).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Score one (subject, object) box pair under every rule that supports the relation."""
    from esplora.core.relations import parse_relation
    from esplora.services.spatial import score_pair

    rows = score_pair(
        parse_relation(name),
        _box(subject),
        _box(object_),
        tau=tau,
        depth_gap=depth_gap,
        disparity=_pair(disparity),
    )
    emit(rows, as_json, lambda: console.print(_relation_table(name, rows)))


def _relation_table(name: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"subject {name} object")
    for column in ("rule", "score", "soft", "strict", "margin"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for row in rows:
        cells = [row.get(key) for key in ("soft", "strict", "margin")]
        table.add_row(
            row["rule"], f"{row['score']:.3f}", *("" if c is None else f"{c}" for c in cells)
        )
    return table


def register(app: typer.Typer) -> None:
    """Add the spatial commands to ``app``."""
    app.command()(tore)
    app.command()(relation)
