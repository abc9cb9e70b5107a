"""``esplora snapshot``: create, list, show and diff frozen subsets (export lives beside it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from esplora.cli import snapshot_export
from esplora.cli._common import JsonOption, console, emit, err_console, opened_store
from esplora.errors import EsploraError

if TYPE_CHECKING:
    pass

app = typer.Typer(help="Frozen, hashed subsets of the store: create, list, show, diff, export.")


def read_filter(text: str) -> Any:
    """``--filter``: JSON text, ``@file`` or a path to a JSON file (the Explore filter)."""
    from esplora.services.filters import ItemFilter

    source = text[1:] if text.startswith("@") else text
    path = Path(source)
    if text.startswith("@") or (not text.lstrip().startswith("{") and path.suffix == ".json"):
        if not path.is_file():
            raise EsploraError(f"filter file {path} does not exist")
        text = path.read_text(encoding="utf-8")
    return ItemFilter.from_json(text)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A new, unique snapshot name.")],
    filter_: Annotated[
        str, typer.Option("--filter", help="The Explore filter: JSON, @file or FILE.json.")
    ] = "{}",
    split: Annotated[
        float, typer.Option("--split", help="Validation fraction (whole images, stratified).")
    ] = 0.0,
    caps: Annotated[
        str | None, typer.Option("--caps", help="Per relation / label pair: relation=N,pair=M.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split.")] = 0,
    text_source: Annotated[
        str, typer.Option("--text-source", help="caption, prompt or both.")
    ] = "both",
    k: Annotated[int, typer.Option("--k", min=1, help="Review overlap for the states.")] = 2,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse texts that overlap benchmark prompts.")
    ] = False,
    by: Annotated[str | None, typer.Option("--by", help="Who creates it.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Freeze the members a filter matches: image, text, effective relations, review state."""
    from esplora.services.snapshots import Caps, SnapshotRequest, create_snapshot

    request = SnapshotRequest(
        name=name,
        item_filter=read_filter(filter_),
        validation_fraction=split,
        caps=Caps.parse(caps),
        seed=seed,
        text_source=text_source,
        strict=strict,
        created_by=by,
    )
    with opened_store() as store:
        summary = create_snapshot(store, request, k=k).to_dict()
    if summary["contamination"] and not as_json:
        err_console.print(
            f"[yellow]warning:[/] {len(summary['contamination'])} training text(s) equal a "
            "benchmark prompt (use --strict to refuse):"
        )
        for hit in summary["contamination"][:5]:
            err_console.print(f"  {hit['text']!r} ({hit['benchmark']})", highlight=False)
    emit(summary, as_json, lambda: _print_summary(summary))


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Every snapshot, newest first."""
    from esplora.services.snapshots import list_snapshots

    with opened_store() as store:
        rows = [s.to_dict() for s in list_snapshots(store)]

    def render() -> None:
        table = Table("name", "members", "train", "validation", "hash", "created")
        for row in rows:
            splits = row["splits"] or {}
            table.add_row(
                row["name"],
                str(row["members"]),
                str(splits.get("train", 0)),
                str(splits.get("validation", 0)),
                row["hash"][:12],
                str(row["created_at"])[:19],
            )
        console.print(table if rows else "no snapshots yet: esplora snapshot create NAME")

    emit(rows, as_json, render)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The snapshot.")], as_json: JsonOption = False
) -> None:
    """Counts per relation and label pair, split sizes, hash and filter of one snapshot."""
    from esplora.services.snapshots import show_snapshot

    with opened_store() as store:
        summary = show_snapshot(store, name).to_dict()
    emit(summary, as_json, lambda: _print_summary(summary))


@app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="The older snapshot.")],
    b: Annotated[str, typer.Argument(help="The newer snapshot.")],
    as_json: JsonOption = False,
) -> None:
    """Members added, removed and changed from A to B, and per-relation count changes."""
    from esplora.services.snapshots import diff_snapshots

    with opened_store() as store:
        result = diff_snapshots(store, a, b).to_dict()

    def render() -> None:
        same = "identical content" if result["same_hash"] else "different content"
        console.print(
            f"{a} → {b}: {same}; +{result['added']} added, −{result['removed']} removed, "
            f"{result['changed']} changed",
            highlight=False,
        )
        for relation, delta in result["relations"].items():
            console.print(f"  {relation}: {delta:+d}", highlight=False)

    emit(result, as_json, render)


def _print_summary(summary: dict[str, Any]) -> None:
    splits = summary["splits"] or {}
    console.print(f"[bold]{summary['name']}[/]  sha256 {summary['hash']}", highlight=False)
    console.print(
        f"{summary['members']} members on {summary['images']} images "
        f"(train {splits.get('train', 0)}, validation {splits.get('validation', 0)}); "
        f"texts: {summary['text_source']}; filter {summary['filter'] or 'everything'}",
        highlight=False,
    )
    table = Table("relation", "members")
    for relation, count in (summary["relations"] or {}).items():
        table.add_row(relation, str(count))
    console.print(table)
    pairs = sorted((summary["pairs"] or {}).items(), key=lambda kv: -kv[1])[:10]
    if pairs:
        console.print("top label pairs: " + ", ".join(f"{p} {n}" for p, n in pairs))
    for reason, count in (summary["skipped"] or {}).items():
        console.print(f"skipped {count}: {reason}", highlight=False)


snapshot_export.register(app)  # export and export-jobs live in their own module
