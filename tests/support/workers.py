"""Real ``esplora worker`` processes for fault tests: start, wait for the heartbeat, kill.

Each worker runs in its own session (process group), so a teardown can always SIGKILL whatever
is left of it, children included, and never touches a process these helpers did not start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

ESPLORA = str(Path(sys.executable).parent / "esplora")
T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout: float, *, interval: float = 0.1, what: str = ""
) -> T:
    """Poll ``predicate`` until it returns something truthy; return that, or fail at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not true after {timeout} s: {what or predicate}")
        time.sleep(interval)


def worker_env(
    *,
    database_url: str,
    models_dir: Path,
    broker_url: str | None = None,
    lease_s: int = 3,
    visibility_timeout_s: int = 4,
    batch_size: int = 8,
    **extra: str,
) -> dict[str, str]:
    """The environment of a worker on the tiny profile (thresholds 0: every image gets boxes)."""
    env = {
        "ESPLORA_DATABASE_URL": database_url,
        "ESPLORA_PROFILE": "tiny",
        "ESPLORA_MODELS_DIR": str(models_dir),
        "ESPLORA_STAGE_LEASE_S": str(lease_s),
        "ESPLORA_BROKER_VISIBILITY_TIMEOUT_S": str(visibility_timeout_s),
        "ESPLORA_BATCH_SIZE": str(batch_size),
        "ESPLORA_BOX_THRESHOLD": "0",
        "ESPLORA_TEXT_THRESHOLD": "0",
        "ESPLORA_MAX_OBJECTS": "4",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        # One intra-op thread: on a small shared machine a multi-threaded forward slows down
        # tenfold whenever another process takes a core (its threads wait on each other).
        "OMP_NUM_THREADS": "1",
        **extra,
    }
    if broker_url:
        env["ESPLORA_BROKER_URL"] = broker_url
    return env


@dataclass
class Worker:
    """One ``esplora worker`` process and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def children(self) -> list[psutil.Process]:
        """The worker's pool processes (prefork children), oldest first."""
        try:
            kids = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return sorted(kids, key=lambda p: p.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def succeeded(self) -> int:
        """How many tasks this worker reports as succeeded in its log."""
        return self.log().count("succeeded in")

    def pids(self) -> set[int]:
        """The main process and its pool children."""
        return {self.pid, *(c.pid for c in self.children())}

    def freeze(self, pid: int | None = None) -> None:
        """SIGSTOP the whole worker (or only process ``pid`` of it): it can commit nothing more,
        so what the store says it holds stays true until :meth:`kill` or :meth:`thaw`."""
        for target in [pid] if pid else [self.pid, *(c.pid for c in self.children())]:
            with suppress(ProcessLookupError):
                os.kill(target, signal.SIGSTOP)

    def thaw(self, pid: int | None = None) -> None:
        for target in [pid] if pid else [self.pid, *(c.pid for c in self.children())]:
            with suppress(ProcessLookupError):
                os.kill(target, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the main process and its pool children at once (a crashed machine)."""
        family = [*self.children(), psutil.Process(self.pid)] if self.alive() else []
        for process in family:
            with suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        psutil.wait_procs(family, timeout=10)

    def kill_child(self, pid: int | None = None) -> int:
        """SIGKILL one pool child only (``pid``, else the oldest), as the OOM killer would;
        the worker's main process lives on and replaces it. Returns the child's pid."""
        kids = wait_until(self.children, 10, what=f"a pool child of {self.name}")
        child = next((c for c in kids if c.pid == pid), None) if pid else kids[0]
        if child is None:
            raise LookupError(f"{pid} is not a pool child of {self.name}")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        return int(child.pid)

    def stop(self, timeout: float = 20.0) -> None:
        """A warm shutdown (SIGTERM), then SIGKILL of whatever is left."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        self.reap()

    def reap(self) -> None:
        """SIGKILL everything left in the worker's process group (teardown)."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


class Workers:
    """Starts workers for one test and kills every one of them at teardown."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.started: list[Worker] = []

    def start(
        self,
        name: str,
        *,
        queues: str = "gpu,cpu",
        concurrency: int = 1,
        pool: str = "prefork",
        env: Mapping[str, str] | None = None,
        wait: bool = True,
        timeout: float = 60.0,
    ) -> Worker:
        """Start ``esplora worker`` as node ``name`` (``who@where``); by default wait for its
        heartbeat row."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        command = [ESPLORA, "worker", "--queues", queues, "--concurrency", str(concurrency),
                   "--pool", pool, "--name", name, "--loglevel", "INFO"]  # fmt: skip
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env, **(env or {})},
                start_new_session=True,
            )
        worker = Worker(name, process, log_path)
        self.started.append(worker)
        if wait:
            self.wait_ready(worker, timeout)
        return worker

    def wait_ready(self, worker: Worker, timeout: float = 60.0) -> None:
        """Until the worker's heartbeat row is in the store (it consumes its queues by then)."""
        from esplora.db.engine import Store
        from esplora.services.workers import live_workers

        store = Store.from_url(self.env["ESPLORA_DATABASE_URL"])

        def ready() -> bool:
            if not worker.alive():
                raise RuntimeError(f"worker {worker.name} exited early:\n{worker.log()[-4000:]}")
            try:
                return any(w.name == worker.name for w in live_workers(store))
            except Exception:  # the store may be restarting: look again
                return False

        try:
            wait_until(ready, timeout, interval=0.2, what=f"heartbeat of {worker.name}")
        finally:
            store.dispose()

    def reap(self) -> None:
        for worker in self.started:
            worker.reap()


@contextmanager
def workers(env: Mapping[str, str], log_dir: Path) -> Iterator[Workers]:
    """A :class:`Workers` whose processes are all SIGKILLed on exit, whatever happened."""
    pool = Workers(env, log_dir)
    try:
        yield pool
    finally:
        pool.reap()
