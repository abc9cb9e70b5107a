"""Throughput of the data engine through Celery workers against ``--inline``, tiny profile.

    .venv/bin/python bench/bench_queue.py [--images 128] [--workers 1,2] [--batch-size 8]
                                          [--brokers filesystem,redis] [--repeat 3] [--check]

The same N JPEG photos (256×256, captions naming three objects) go through extract → detect →
depth → relate twice per configuration, in the same process run: inline (:func:`run_inline` in
this process, what ``esplora pipeline run --inline`` does) and queued (``esplora pipeline run``:
one task per batch on the broker, each stage enqueueing the next, real ``esplora worker``
processes with ``--concurrency 1`` each). Configurations: the embedded default (filesystem
broker, SQLite store) and the scaled profile (Redis, PostgreSQL; both started from the machine's
binaries, as the tests do), with one and with two workers. Each store gets a warm-up set first
(models loaded in every worker and in this process, first forwards at these shapes done); then
the measured images are ingested and the clock runs from the enqueue (or the inline call) to the
last image's last stage done (the store is polled for the end of the run every 0.25 s, the end
itself is the time the last relate task finished, from the workers' logs, to the millisecond, so
that polling neither loads the machine nor rounds the figure). Images/s = N / that time.

Each configuration runs ``--repeat`` times, an inline run then the queued runs, on fresh stores.
The ratio queued / inline is the queue's overhead (target ≥ 0.9 with one worker); it is the
median of the per-run ratios, each queued run against the inline run just before it, because on
this shared 2-core machine other processes' load moves every figure by ±10 % from one minute to
the next. The images/s shown are the best runs.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
# One intra-op thread per process, here and in the workers (they inherit the environment): on
# this shared 2-core machine a 2-thread forward collapses up to 10× whenever another process takes
# a core (threads wait on each other), which would swamp the overhead being measured. The tiny
# models run as fast on one thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import create_engine, func, select, text

from bench_pipeline import OBJECTS
from esplora.backends.tiny import make_tiny
from esplora.db import migrate
from esplora.db.engine import Store
from esplora.db.enums import Stage, StageStatus
from esplora.db.images import Image, ImageStage
from esplora.services.ingest import ingest
from esplora.services.pipeline import DATA_ENGINE, StageContext, run_inline
from esplora.settings import Settings
from support.workers import Worker, wait_until, worker_env, workers

TARGET = 0.9
POLL_S = 0.25  # how often the store is asked whether the run is over (the end is in the logs)


class Bench:
    """Shared inputs: the tiny models, the photos, and the servers of the scaled profile."""

    def __init__(
        self, root: Path, images: int, stack: ExitStack, brokers: list[str], batch: int = 8
    ) -> None:
        self.root = root
        self.batch = batch
        make_tiny(root / "models")
        self.photos = write_photos(root / "photos", images)
        self.warm = write_photos(root / "warm", 4 * batch, seed=1)
        self.n = images
        self.runs = 0
        self.redis_url: str | None = None
        self.pg_url: Callable[[], str] | None = None
        if "redis" in brokers:
            from support.services import postgres_server, redis_server

            self.redis_url = stack.enter_context(redis_server()).url
            server = stack.enter_context(postgres_server())

            def fresh_database() -> str:
                self.runs += 1
                admin = create_engine(server.url(), isolation_level="AUTOCOMMIT")
                with admin.connect() as connection:
                    connection.execute(text(f"CREATE DATABASE bench_{self.runs}"))
                admin.dispose()
                return server.url(f"bench_{self.runs}")

            self.pg_url = fresh_database

    def store_url(self, broker: str) -> str:
        if broker == "redis":
            assert self.pg_url is not None
            return self.pg_url()
        self.runs += 1
        return f"sqlite:///{self.root / f'store-{self.runs}.db'}"

    def settings(self, broker: str) -> Settings:
        """A fresh home and store for one measurement."""
        self.runs += 1
        url = self.store_url(broker)
        migrate.upgrade(url)
        return Settings(
            home=self.root / f"home-{self.runs}", database_url=url, profile="tiny",
            models_dir=self.root / "models",
            broker_url=self.redis_url if broker == "redis" else None,
            box_threshold=0.0, text_threshold=0.0, max_objects=8, batch_size=self.batch,
        )  # fmt: skip


def _relate_done(store: Store) -> int:
    """Images whose last stage is done (one indexed count: this is polled every 20 ms)."""
    with store.reader() as session:
        query = select(func.count()).where(
            ImageStage.stage == Stage.RELATE, ImageStage.status == StageStatus.DONE
        )
        return int(session.scalar(query) or 0)


def _ingest(store: Store, settings: Settings, folder: Path, name: str) -> None:
    """Ingest ``folder``; on PostgreSQL, ANALYZE after it, as after any bulk load.

    Without statistics the planner picks a nested loop for the relate stage's depth lookup
    (``relate.medians``) that grows with the whole table: 0.3 s per batch of 8 at 128 images
    instead of 8 ms, which would measure the planner, not the queue.
    """
    ingest(store, settings, folder, source_format="folder", source_name=name)
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def measure_inline(bench: Bench, broker: str) -> float:
    """Images/s of ``run_inline`` in this process, after a warm-up set on the same store."""
    settings = bench.settings(broker)
    store = Store.from_url(settings.resolved_database_url)
    _ingest(store, settings, bench.warm, "warm")
    ctx = StageContext(store, settings)
    run_inline(ctx)
    _ingest(store, settings, bench.photos, "bench")
    start = time.perf_counter()
    report = run_inline(ctx)
    wall = time.perf_counter() - start
    assert report.done["relate"] == bench.n, report
    store.dispose()
    return bench.n / wall


@contextmanager
def _redis_flushed(url: str | None) -> Iterator[None]:
    if url is None:
        yield
        return
    import redis

    client = redis.Redis.from_url(url)
    client.flushall()
    try:
        yield
    finally:
        client.flushall()
        client.close()


def measure_queued(bench: Bench, broker: str, n_workers: int) -> float:
    """Images/s from enqueue to the last stage done, with ``n_workers`` warm workers."""
    from esplora_workers.app import create_app
    from esplora_workers.dispatch import enqueue_ready

    settings = bench.settings(broker)
    store = Store.from_url(settings.resolved_database_url)
    _ingest(store, settings, bench.warm, "warm")
    env = worker_env(
        database_url=settings.resolved_database_url, models_dir=settings.resolved_models_dir,
        broker_url=settings.broker_url, lease_s=1800, visibility_timeout_s=7200,
        batch_size=bench.batch, ESPLORA_HOME=str(settings.home), ESPLORA_MAX_OBJECTS="8",
    )  # fmt: skip
    with _redis_flushed(settings.broker_url), workers(env, settings.home / "logs") as pool:
        started = [pool.start(f"w{i}@bench") for i in range(n_workers)]
        app = create_app(settings)
        ctx = StageContext(store, settings)
        for round_ in range(4):  # until every worker has run each model once
            enqueue_ready(app, ctx, DATA_ENGINE, bench.batch)
            wait_until(lambda: _relate_done(store) == _images(store), 120, interval=POLL_S)
            if all("'stage': 'depth'" in w.log() for w in started):
                break
            folder = bench.root / f"more-{bench.runs}-{round_}"
            more = write_photos(folder, 2 * bench.batch, seed=round_ + 2)
            _ingest(store, settings, more, f"more-{round_}")
        target = _relate_done(store) + bench.n
        _ingest(store, settings, bench.photos, "bench")
        start = datetime.now()
        enqueue_ready(app, ctx, DATA_ENGINE, bench.batch)
        wait_until(lambda: _relate_done(store) >= target, 300, interval=POLL_S)
        wall = (max(_finished_at(w, "relate") for w in started) - start).total_seconds()
        for worker in started:
            worker.stop()
        app.close()
    store.dispose()
    return bench.n / wall


def _finished_at(worker: Worker, stage: str) -> datetime:
    """When the worker's last task of ``stage`` finished, from its log (local time, in ms)."""
    stamps = re.findall(rf"^\[([0-9-]+ [0-9:,]+): INFO/[^\]]+\] Task .* succeeded in .*'stage': "
                        rf"'{stage}'", worker.log(), flags=re.MULTILINE)  # fmt: skip
    return max((datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f") for s in stamps), default=datetime.min)


def _images(store: Store) -> int:
    with store.reader() as session:
        return int(session.scalar(select(func.count()).select_from(Image)) or 0)


def write_photos(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` 256×256 JPEG photos with captions naming three objects (``seed``: which ones)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for i in range(n):
        coarse = (rng.random((6, 6, 3)) * 255).astype(np.uint8)
        image = PILImage.fromarray(coarse).resize((256, 256), PILImage.Resampling.BICUBIC)
        image.save(root / f"{i:04d}.jpg", "JPEG", quality=90)
        a, b, c = rng.choice(OBJECTS, 3, replace=False)
        (root / f"{i:04d}.txt").write_text(f"a {a} to the left of a {b} and a {c} below the {b}")
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--workers", default="1,2", help="worker counts, e.g. 1,2")
    parser.add_argument("--batch-size", type=int, default=8, help="images per task")
    parser.add_argument("--brokers", default="filesystem,redis")
    parser.add_argument("--repeat", type=int, default=3, help="paired runs per configuration")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    counts = [int(w) for w in args.workers.split(",")]
    brokers = [b.strip() for b in args.brokers.split(",")]
    rows: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        try:
            bench = Bench(Path(tmp), args.images, stack, brokers, args.batch_size)
        except BaseException as error:  # a missing binary skips (pytest.skip is BaseException)
            print(f"redis/postgresql: not measured ({error})")
            brokers = [b for b in brokers if b != "redis"]
            bench = Bench(Path(tmp), args.images, stack, brokers, args.batch_size)
        for broker in brokers:  # inline and queued alternate, so both see the same noise
            inline: list[float] = []
            queued: dict[int, list[float]] = {n: [] for n in counts}
            for _ in range(args.repeat):
                inline.append(measure_inline(bench, broker))
                for n in counts:
                    queued[n].append(measure_queued(bench, broker, n))
            for n in counts:
                rows.append(Row(broker, n, inline, queued[n]))
                print(rows[-1].describe(), flush=True)
    return report(rows, args.check)


@dataclass
class Row:
    """One configuration: images/s of each inline run and of the queued run right after it."""

    broker: str
    workers: int
    inline: list[float]
    queued: list[float]

    @property
    def ratio(self) -> float:
        """The median of the per-run ratios: each queued run against the inline run just before
        it, so that the load other processes put on the machine cancels out."""
        return statistics.median(q / i for q, i in zip(self.queued, self.inline, strict=True))

    def describe(self) -> str:
        pairs = zip(self.inline, self.queued, strict=True)
        runs = ", ".join(f"{i:.1f} → {q:.1f}" for i, q in pairs)
        return f"{_label(self.broker)}, {self.workers} worker(s), inline → queued: {runs} images/s"


def _label(broker: str) -> str:
    return "filesystem + SQLite" if broker == "filesystem" else "Redis + PostgreSQL"


def report(rows: list[Row], check: bool) -> int:
    print()
    head = f"{'broker + store':<20} {'workers':>7} {'inline':>9} {'queued':>9} {'ratio':>6}"
    print(head + "  (best images/s; ratio: median of the paired runs)")
    missed = 0
    for row in rows:
        verdict = ""
        if row.workers == 1:
            ok = row.ratio >= TARGET
            missed += not ok
            verdict = "PASS" if ok else "FAIL"
        print(f"{_label(row.broker):<20} {row.workers:>7} {max(row.inline):>9.1f} "
              f"{max(row.queued):>9.1f} {row.ratio:>5.2f}× {verdict}")  # fmt: skip
    print(f"target: queued / inline ≥ {TARGET} with one worker (images/s, higher is better)")
    return 1 if check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
