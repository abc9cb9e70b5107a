"""What every command module shares: the console, ``--json`` output, settings."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console

from esplora.settings import Settings, get_settings

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
