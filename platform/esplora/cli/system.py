"""``esplora info``: what this installation uses."""

from __future__ import annotations

from typing import Any

import typer

from esplora.cli._common import JsonOption, console, emit, settings


def revision_text(store: Any) -> str:
    """A one-line description of the store's schema revision."""
    if store.current is None:
        return "not migrated: run `esplora db upgrade`"
    state = "up to date" if store.up_to_date else f"head is {store.head}"
    return f"revision {store.current}, {state}"


def info(as_json: JsonOption = False) -> None:
    """Show the home directory, store, broker and profile in use."""
    from esplora import __version__
    from esplora.services import database

    config = settings()
    store = database.status(config)
    data = {
        "version": __version__,
        "home": str(config.home),
        "profile": config.profile,
        "deployment": config.deployment,
        "models_dir": str(config.resolved_models_dir),
        "database_url": store.url,
        "store": store.to_dict(),
        "broker_url": database.display_url(config.resolved_broker_url),
    }

    def render() -> None:
        console.print(f"[bold]esplora[/] {__version__}  ({config.deployment})")
        console.print(
            f"profile:  {config.profile} models (tiny ones in {config.resolved_models_dir})"
        )
        console.print(f"home:     {config.home}")
        console.print(f"store:    {store.url}  ({revision_text(store)})")
        console.print(f"broker:   {data['broker_url']}")

    emit(data, as_json, render)


def register(app: typer.Typer) -> None:
    """Add the system commands to ``app``."""
    app.command()(info)
