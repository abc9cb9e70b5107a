"""``esplora scenes``: the procedural scene world (exact ground truth, offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from esplora.cli._common import JsonOption, console, emit

app = typer.Typer(help="The scene world: corpora with exact ground truth.", no_args_is_help=True)


@app.command("make-corpus")
def make_corpus(
    out: Annotated[Path, typer.Argument(help="Folder to write (images, captions, ground truth).")],
    n: Annotated[int, typer.Option("--n", min=1, help="Scenes.")] = 100,
    seed: Annotated[int, typer.Option(help="Scene seed.")] = 0,
    wrong_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of wrong captions.")] = 0.1,
    vague_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of vague captions.")] = 0.2,
    as_json: JsonOption = False,
) -> None:
    """Write N rendered urban scenes with captions (some wrong or vague, like real alt text);
    ingest them with `esplora ingest OUT --format folder`."""
    from esplora.scenes.corpus import write_corpus

    path = write_corpus(out, n, seed, wrong_caption_rate=wrong_rate, vague_caption_rate=vague_rate)
    data = {"path": str(path), "scenes": n, "ground_truth": str(path / "ground_truth.jsonl")}
    emit(
        data,
        as_json,
        lambda: console.print(
            f"wrote {n} scenes to {path}; ingest with `esplora ingest {path} --format folder`"
        ),
    )
