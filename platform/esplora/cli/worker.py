"""``esplora worker``: a Celery worker consuming the gpu and/or cpu queues."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from esplora.cli._common import err_console, settings
from esplora.errors import EsploraError


def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated: gpu, cpu.")] = "gpu,cpu",
    concurrency: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    pool: Annotated[str, typer.Option(help="prefork (default), solo or threads.")] = "prefork",
    name: Annotated[str | None, typer.Option(help="Node name (default: queues@host).")] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Consume QUEUES until stopped; models load once per process, state lives in the store."""
    from esplora.services.database import open_store
    from esplora_workers.app import create_app
    from esplora_workers.queues import QUEUES

    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [q for q in wanted if q not in QUEUES]
    if unknown or not wanted:
        raise EsploraError(
            f"unknown queue {unknown[0] if unknown else queues!r}; queues are: gpu, cpu"
        )
    config = settings()
    open_store(config).dispose()  # refuse an unmigrated store before starting anything
    node = name or f"{'-'.join(wanted)}@{socket.gethostname()}"
    err_console.print(f"worker {node} on {', '.join(wanted)} (broker {config.resolved_broker_url})")
    app = create_app(config)
    app.worker_main(
        [
            "worker",
            "-Q",
            ",".join(wanted),
            "-c",
            str(concurrency),
            "-P",
            pool,
            "-n",
            node,
            "--loglevel",
            loglevel,
            "--without-gossip",
            "--without-mingle",
        ]
    )


def register(app: typer.Typer) -> None:
    """Add ``esplora worker`` to ``app``."""
    app.command()(worker)
