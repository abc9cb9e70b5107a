"""The ``esplora`` command line: one Typer app; heavy modules are imported inside commands.

User mistakes (bad arguments, unknown names, an unreachable store) print ``error: …`` and exit
with status 2, without a traceback. Every read command has ``--json``.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from esplora.backends.registry import BackendError
from esplora.cli import (
    analytics,
    db,
    demo,
    evaluate,
    generate,
    ingest,
    models,
    pipeline,
    prompts,
    review,
    scenes,
    snapshot,
    spatial,
    system,
    train,
    ui,
    worker,
)
from esplora.core.errors import SpatialError
from esplora.errors import EsploraError

app = typer.Typer(
    name="esplora",
    help="Spatially precise text-to-image data curation and ESPLoRA training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(prompts.app, name="prompts")
app.add_typer(scenes.app, name="scenes")
app.add_typer(evaluate.app, name="eval")
app.add_typer(models.app, name="models")
app.add_typer(review.app, name="review")
app.add_typer(snapshot.app, name="snapshot")
system.register(app)
analytics.register(app)
spatial.register(app)
demo.register(app)
worker.register(app)
ingest.register(app)
generate.register(app)
ui.register(app)
train.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except (EsploraError, SpatialError, BackendError) as error:
        Console(stderr=True).print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)


__all__ = ["app", "main"]
