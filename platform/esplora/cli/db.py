"""``esplora db``: create, migrate and inspect the store."""

from __future__ import annotations

from typing import Annotated

import typer

from esplora.cli._common import JsonOption, console, emit, settings
from esplora.cli.system import revision_text

app = typer.Typer(help="Create, migrate and inspect the SQL store.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Create the store or migrate it up to REVISION (default: head)."""
    from esplora.services import database

    store = database.upgrade(settings(), revision)
    console.print(f"store {store.url} at revision {store.current}")


@app.command("downgrade")
def downgrade(revision: Annotated[str, typer.Argument(help="Target revision, e.g. base.")]) -> None:
    """Migrate the store down to REVISION (``base`` drops every table)."""
    from esplora.services import database

    store = database.downgrade(settings(), revision)
    console.print(f"store {store.url} at revision {store.current or 'base'}")


@app.command("current")
def current(as_json: JsonOption = False) -> None:
    """Show the store's schema revision and the code's head."""
    from esplora.services import database

    store = database.status(settings())
    emit(store.to_dict(), as_json, lambda: console.print(f"{store.url}: {revision_text(store)}"))
