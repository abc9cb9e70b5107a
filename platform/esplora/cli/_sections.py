"""Section headings of long, multi-step commands (the demo)."""

from __future__ import annotations

from rich.rule import Rule

from esplora.cli._common import console


def section(title: str) -> None:
    """A full-width rule with ``title``."""
    console.print(Rule(f"[bold]{title}"))
