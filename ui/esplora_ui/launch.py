"""Starting work from the UI (a training run, a snapshot export) under the execution rule.

The UI never builds a Celery app or a training config itself: those belong to the workers and
training packages, which sit beside the UI, not under it. The ``esplora`` CLI is the composition
root that owns both, so when a live worker consumes the queue the UI runs the same command a
user would (``esplora train … --detach``, ``esplora snapshot export … --detach``): it validates,
records the row and enqueues, exactly as from a terminal. With no live worker nothing is queued
and the page shows the command to run instead.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esplora.db.engine import Store
from esplora.errors import EsploraError
from esplora.services.workers import live_workers

# The workers' queue names (esplora_workers.queues; a test keeps them equal).
GPU, CPU = "gpu", "cpu"
# The training configs shipped with esplora_training (a test keeps them equal).
CONFIGS = ("tiny-flux", "tiny-sdxl", "flux", "sdxl")
CLI_TIMEOUT_S = 120
_BOX = " \t│─╭╮╰╯"  # the frame Typer draws around a usage error


@dataclass(frozen=True, slots=True)
class Launch:
    """What a launch did: ``queued`` with the CLI's JSON answer, or not, with the commands
    that start a worker and that run the work in a terminal."""

    queued: bool
    answer: Any = None
    worker_command: str = ""
    command: str = ""


def esplora_command() -> list[str]:
    """How to run the ``esplora`` CLI of this environment."""
    script = Path(sys.executable).parent / "esplora"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from esplora.cli import main; main()"]


def worker_live(store: Store, queue: str) -> bool:
    """Whether a worker consuming ``queue`` sent a heartbeat recently."""
    return any(queue in worker.queues for worker in live_workers(store))


def shell(args: list[str]) -> str:
    """``args`` as one line to paste into a terminal."""
    return shlex.join(["esplora", *args])


def run_cli(args: list[str], *, timeout_s: float = CLI_TIMEOUT_S) -> Any:
    """Run ``esplora ARGS --json`` and return its JSON answer; its error text as an
    ``EsploraError`` when it fails."""
    try:
        done = subprocess.run(
            [*esplora_command(), *args, "--json"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise EsploraError(f"`{shell(args)}` did not answer within {timeout_s:.0f} s") from error
    if done.returncode != 0:
        raise EsploraError(cli_error(done.stderr) or f"`{shell(args)}` failed")
    out = done.stdout.strip()
    return json.loads(out) if out else None


def cli_error(stderr: str) -> str:
    """The CLI's ``error: …`` message (it may wrap over lines), else its last line."""
    lines = [line.strip(_BOX) for line in stderr.splitlines() if line.strip(_BOX)]
    starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
    if starts:
        return " ".join(lines[starts[-1] :]).removeprefix("error:").strip()
    return lines[-1] if lines else ""


def launch(store: Store, queue: str, args: list[str]) -> Launch:
    """Enqueue ``esplora ARGS`` (which must take ``--detach`` and ``--inline``) when a worker
    consumes ``queue``; otherwise say how to run it."""
    if worker_live(store, queue):
        return Launch(True, run_cli([*args, "--detach"]))
    return Launch(
        False,
        worker_command=shell(["worker", "--queues", queue]),
        command=shell([*args, "--inline"]),
    )


def train_args(name: str, snapshot: str, config: str) -> list[str]:
    """``esplora train`` for a new run."""
    return ["train", "--name", name, "--snapshot", snapshot, "--config", config]


def export_args(snapshot: str, fmt: str, out: Path, trigger: str | None = None) -> list[str]:
    """``esplora snapshot export`` of ``snapshot`` as ``fmt`` into ``out``."""
    args = ["snapshot", "export", snapshot, "--format", fmt, "--out", str(out)]
    return [*args, "--trigger", trigger] if trigger else args
