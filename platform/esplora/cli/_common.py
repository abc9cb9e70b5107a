"""What every command module shares: the console, ``--json`` output, settings."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from esplora.settings import Settings, get_settings

if TYPE_CHECKING:
    from esplora.db.engine import Store

console = Console()
# Progress bars and notes go to stderr, so `--json` output on stdout stays parseable.
err_console = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def emit(data: Any, as_json: bool, render: Callable[[], None]) -> None:
    """Print ``data`` as JSON, or call ``render`` for the human-readable form."""
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        render()


def settings() -> Settings:
    """The settings of this invocation (read from the environment once)."""
    return get_settings()


@contextmanager
def opened_store() -> Iterator[Store]:
    """The store of this invocation's settings, disposed of when the command is done."""
    from esplora.services import database

    store = database.open_store(settings())
    try:
        yield store
    finally:
        store.dispose()
