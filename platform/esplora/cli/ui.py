"""``esplora ui``: the review UI (Streamlit), on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import os
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated

import typer

from esplora.cli._common import err_console, settings
from esplora.errors import EsploraError


def app_path() -> Path:
    """The Streamlit entry script, found through the installed ``esplora_ui`` package."""
    spec = find_spec("esplora_ui")
    if spec is None or spec.origin is None:
        raise EsploraError("the review UI is not installed: pip install 'esplora[ui]'")
    return Path(spec.origin).parent / "app.py"


def command(host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line for ``host``:``port`` (headless, no usage stats)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip


def ui(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default ESPLORA_UI_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port.")] = 8501,
) -> None:
    """Start the UI: Overview, Explore, Sample, Review queue, Calibration, Snapshots, Training."""
    from esplora.services.database import open_store

    config = settings()
    open_store(config).dispose()  # refuse an unmigrated store before starting the server
    configured = getattr(config, "ui_host", None) or os.environ.get("ESPLORA_UI_HOST")
    address = host or str(configured or "127.0.0.1")
    if find_spec("streamlit") is None:
        raise EsploraError("streamlit is not installed: pip install 'esplora[ui]'")
    err_console.print(f"review UI on http://{address}:{port}")
    argv = command(address, port)
    sys.stdout.flush()
    os.execv(argv[0], argv)  # the server replaces this process: signals reach it directly


def register(app: typer.Typer) -> None:
    """Add ``esplora ui`` to ``app``."""
    app.command("ui")(ui)
