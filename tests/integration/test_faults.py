"""Faults against real servers and real worker processes: every image has each stage done
exactly once after a worker is killed with SIGKILL (the whole worker, or only a pool child), with
two workers on the same queues, with the filesystem broker (which loses a killed worker's
message: ``requeue-stale`` brings it back), and across a PostgreSQL restart.

The workers are real ``esplora worker`` processes on the tiny profile, with a 3 s lease and, on
Redis, a 4 s visibility timeout, so that recovery takes seconds. A worker is killed while it
holds detect claims (frozen with SIGSTOP first, so that the claims seen are the claims killed):
the first detect batch holds them for seconds while the pool child loads the detector.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from esplora.db import migrate
from esplora.db.detections import DetectedObject, ObjectDepth
from esplora.db.engine import Store
from esplora.db.enums import Stage, StageStatus
from esplora.db.images import Extraction, Image, ImageStage
from esplora.db.relations import GeometricRelation
from esplora.services import stages
from esplora.services.ingest import ingest
from esplora.services.pipeline import DATA_ENGINE, StageContext, run_queued_batch
from esplora.settings import Settings
from support.datasets import jpeg, write_folder
from support.services import PostgresServer, RedisServer
from support.workers import ESPLORA, Worker, Workers, wait_until, worker_env, workers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

OBJECTS = ["cat", "dog", "car", "bicycle", "person", "tree", "bench", "umbrella"]
BATCH = 8
RUN_TIMEOUT = 60.0


@dataclass
class Rig:
    """A migrated store with ingested images, the workers' environment, and their pool."""

    store: Store
    url: str
    env: dict[str, str]
    pool: Workers
    images: list[int]

    def counts(self) -> dict[str, dict[str, int]]:
        with self.store.reader() as session:
            return stages.counts(session)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``esplora ARGS`` with the workers' settings (same store, broker and home)."""
        result = subprocess.run(
            [ESPLORA, *args], capture_output=True, text=True, env={**os.environ, **self.env}
        )
        assert result.returncode == 0, result.stderr
        return result

    def enqueue(self) -> int:
        """``esplora pipeline run --detach``: every ready image on the queues."""
        return int(json.loads(self.cli("pipeline", "run", "--detach", "--json").stdout)["enqueued"])

    def finished(self) -> bool:
        """Every image done for every data-engine stage (a store that is restarting: not yet)."""
        try:
            table = self.counts()
        except OperationalError:
            return False
        return all(table[s.value]["done"] == len(self.images) for s in DATA_ENGINE)

    def wait_finished(self, timeout: float = RUN_TIMEOUT, *logs: Worker) -> None:
        try:
            wait_until(self.finished, timeout, interval=0.2, what="every stage done")
        except TimeoutError:
            tails = "\n".join(f"--- {w.name}\n{w.log()[-3000:]}" for w in logs)
            raise AssertionError(f"not finished: {self.counts()}\n{tails}") from None

    def kill_mid_batch(self, worker: Worker, *, child_only: bool = False) -> dict[int, str]:
        """SIGKILL ``worker`` (or only the pool child) while it holds detect claims: returns them.

        The first detect batch holds its claims while the child loads the detector (seconds).
        The worker is frozen (SIGSTOP) before the store is asked, so the claims it shows are
        still held, uncommitted, when the SIGKILL lands; if the batch had just finished, the
        worker is thawed and the next batch is waited for.
        """
        for _ in range(20):
            held = wait_until(lambda: self.claimed(Stage.DETECT), 30, interval=0.02)
            holder = _pid(next(iter(held.values())))
            worker.freeze(holder if child_only else None)
            held = {i: h for i, h in self.claimed(Stage.DETECT).items() if _pid(h) == holder}
            if held and holder in worker.pids():
                if child_only:
                    worker.kill_child(holder)
                else:
                    worker.kill()
                return held
            worker.thaw(holder if child_only else None)
        raise AssertionError("never caught the worker holding a claim")

    def claimed(self, stage: Stage) -> dict[int, str]:
        """Images of ``stage`` claimed now, and by whom (``host:pid``)."""
        with self.store.reader() as session:
            rows = session.execute(
                select(ImageStage.image_id, ImageStage.claimed_by).where(
                    ImageStage.stage == stage, ImageStage.status == StageStatus.CLAIMED
                )
            )
            return {i: str(w) for i, w in rows}


def _captions(n: int) -> dict[str, tuple[bytes, str]]:
    files = {}
    for i in range(n):
        a, b, c = (OBJECTS[(i + k) % len(OBJECTS)] for k in (0, 3, 5))
        caption = f"a {a} to the left of a {b}" + (f" and a {c} below the {b}" if i % 2 else "")
        files[f"{i:04d}.jpg"] = (jpeg(i, (64, 64)), caption)
    return files


def _rig(
    settings: Settings,
    tiny_models: Path,
    tmp_path: Path,
    *,
    url: str,
    broker_url: str | None,
    n: int,
) -> Iterator[Rig]:
    migrate.upgrade(url)
    store = Store.from_url(url)
    env = worker_env(
        database_url=url, models_dir=tiny_models, broker_url=broker_url, batch_size=BATCH
    )
    config = settings.model_copy(update={"database_url": url, "profile": "tiny"})
    ingest(store, config, write_folder(tmp_path / "data", _captions(n)), source_format="folder")
    with store.reader() as session:
        images = list(session.scalars(select(Image.id).order_by(Image.id)))
    assert len(images) == n
    with workers(env, tmp_path / "logs") as pool:
        yield Rig(store, url, env, pool, images)
    store.dispose()


@pytest.fixture
def scaled(
    settings: Settings,
    tiny_models: Path,
    tmp_path: Path,
    postgres_url: str,
    redis: RedisServer,
    request: pytest.FixtureRequest,
) -> Iterator[Rig]:
    """PostgreSQL and Redis (the scaled profile), an empty broker, ``n`` images (default 100)."""
    import redis as redis_client

    client = redis_client.Redis.from_url(redis.url)
    client.flushall()  # nothing left over from another test's workers
    n = getattr(request, "param", 100)
    yield from _rig(settings, tiny_models, tmp_path, url=postgres_url, broker_url=redis.url, n=n)
    client.flushall()
    client.close()


@pytest.fixture
def embedded(settings: Settings, tiny_models: Path, tmp_path: Path) -> Iterator[Rig]:
    """A SQLite store and the filesystem broker under ESPLORA_HOME (the embedded default)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    yield from _rig(settings, tiny_models, tmp_path, url=url, broker_url=None, n=100)


# --- what "exactly once" means ------------------------------------------------------------------


def assert_exactly_once(rig: Rig) -> None:
    """Every image has each stage done once: one attempt, one result set, no duplicate rows."""
    with rig.store.reader() as session:
        rows = session.execute(
            select(ImageStage.image_id, ImageStage.stage, ImageStage.status, ImageStage.attempts,
                   ImageStage.details)
            .where(ImageStage.stage.in_(DATA_ENGINE))
        ).all()  # fmt: skip
        extractions = Counter(session.scalars(select(Extraction.image_id)))
        objects = session.execute(select(DetectedObject.id, DetectedObject.image_id)).all()
        depths = Counter(session.scalars(select(ObjectDepth.object_id)))
        relations = session.execute(
            select(GeometricRelation.image_id, GeometricRelation.subject_id,
                   GeometricRelation.object_id, GeometricRelation.axis, GeometricRelation.rule)
        ).all()  # fmt: skip
    images = set(rig.images)
    assert len(rows) == len(images) * len(DATA_ENGINE)
    not_once = [(i, s.value, st.value, a) for i, s, st, a, _ in rows
                if st is not StageStatus.DONE or a != 1]  # fmt: skip
    assert not not_once, f"{len(not_once)} (image, stage) not done exactly once: {not_once[:10]}"
    assert extractions == Counter(dict.fromkeys(images, 1))  # one extraction row per image
    kept = {i: d["kept"] for i, s, _, _, d in rows if s is Stage.DETECT}
    per_image = Counter(image for _, image in objects)
    assert {i: per_image.get(i, 0) for i in images} == kept  # no lost, no doubled boxes
    assert sum(kept.values()) > len(images)  # thresholds 0: boxes (and pairs) exist
    assert depths == Counter({o: 1 for o, _ in objects})  # one depth row per object
    pairs = Counter((i, frozenset((s, o)), axis, rule) for i, s, o, axis, rule in relations)
    doubled = [key for key, count in pairs.items() if count > 1]
    assert relations and not doubled, doubled[:5]


def _pid(holder: str) -> int:
    """The process id of a claim's holder, ``host:pid``."""
    return int(holder.rpartition(":")[2])


def _received(worker: Worker) -> list[str]:
    """Ids of the tasks the worker received, in order, from its log."""
    return re.findall(r"run_stage\[([0-9a-f-]+)\] received", worker.log())


def _done_in_log(worker: Worker) -> int:
    """(image, stage) pairs the worker's tasks report done, from its log."""
    return sum(int(n) for n in re.findall(r"'done': (\d+)", worker.log()))


# --- the tests ----------------------------------------------------------------------------------


def test_redis_redelivers_a_killed_workers_batch_and_each_stage_runs_once(scaled: Rig) -> None:
    first = scaled.pool.start("first@faults")
    assert scaled.enqueue() == len(scaled.images) // BATCH + 1
    held = scaled.kill_mid_batch(first)
    assert held == scaled.claimed(Stage.DETECT)  # the dead worker's claims, mid-batch
    assert 0 < scaled.counts()["extract"]["done"]
    second = scaled.pool.start("second@faults")
    # Nobody runs requeue-stale: Redis gives the unacknowledged batch back once the visibility
    # timeout (4 s) has passed, at the next sweep for them (every 4 s; kombu's default throttle
    # alone would make that 40 s), and the new worker takes the dead process's claims back.
    killed_batch = _received(first)[-1]
    wait_until(lambda: killed_batch in _received(second), 25, what="the redelivery")
    scaled.wait_finished(RUN_TIMEOUT, first, second)
    assert_exactly_once(scaled)


def test_a_killed_pool_child_loses_nothing_and_runs_nothing_twice(scaled: Rig) -> None:
    worker = scaled.pool.start("pool@faults", concurrency=2)
    scaled.enqueue()
    held = scaled.kill_mid_batch(worker, child_only=True)
    assert held and worker.alive()
    scaled.wait_finished(RUN_TIMEOUT, worker)
    assert worker.alive()  # the pool replaced its child; the worker itself never stopped
    assert "WorkerLostError" in worker.log() or "SIGKILL" in worker.log()
    assert_exactly_once(scaled)


@pytest.mark.parametrize("scaled", [200], indirect=True)
def test_two_workers_on_the_same_queues_share_the_work_and_do_each_image_once(
    scaled: Rig,
) -> None:
    a = scaled.pool.start("a@faults")
    b = scaled.pool.start("b@faults")
    scaled.enqueue()
    scaled.wait_finished(RUN_TIMEOUT, a, b)
    assert_exactly_once(scaled)
    done_a, done_b = _done_in_log(a), _done_in_log(b)
    assert done_a > 0 and done_b > 0, (done_a, done_b)  # both did some of it
    assert done_a + done_b <= len(scaled.images) * len(DATA_ENGINE)  # none of it twice


def test_the_filesystem_broker_loses_a_killed_workers_batch_and_requeue_stale_recovers_it(
    embedded: Rig,
) -> None:
    first = embedded.pool.start("first@faults")
    embedded.enqueue()
    lost = embedded.kill_mid_batch(first)
    second = embedded.pool.start("second@faults")

    def only_the_lost_batch_is_left() -> bool:
        table = embedded.counts()
        return (
            table["relate"]["done"] == len(embedded.images) - len(lost)
            and embedded.claimed(Stage.DETECT) == lost  # no redelivery: still the dead claims
        )

    wait_until(only_the_lost_batch_is_left, RUN_TIMEOUT, interval=0.2, what="the rest done")
    # The message went with the worker: its claims stay until the lease has expired …
    requeued = 0

    def requeue_stale() -> bool:
        nonlocal requeued
        requeued += _requeue(embedded)
        return requeued == len(lost)

    wait_until(requeue_stale, 10, interval=0.5, what="the dead claims requeued")
    assert embedded.counts()["detect"]["pending"] == len(lost)
    # … and `pipeline run` (following, since a worker is live) puts them back on the queue.
    result = embedded.cli("pipeline", "run", "--json")
    assert json.loads(result.stdout)["followed"] is True
    embedded.wait_finished(RUN_TIMEOUT, first, second)
    assert_exactly_once(embedded)
    assert _received(first)[-1] not in _received(second)  # never redelivered: lost


def _requeue(rig: Rig) -> int:
    """``esplora pipeline requeue-stale`` (expired leases): how many claims it gave back."""
    output = rig.cli("pipeline", "requeue-stale").stdout
    match = re.search(r"(\d+) stale claims", output)
    assert match, output
    return int(match.group(1))


def test_a_postgresql_restart_mid_run_is_retried_and_nothing_is_duplicated(
    scaled: Rig, postgres: PostgresServer
) -> None:
    worker = scaled.pool.start("pg@faults", concurrency=2)
    scaled.enqueue()
    wait_until(lambda: scaled.counts()["depth"]["done"] >= BATCH, 30, interval=0.05)
    assert not scaled.finished()
    postgres.restart()
    scaled.wait_finished(RUN_TIMEOUT, worker)
    assert_exactly_once(scaled)
    assert worker.alive()
    log = worker.log()
    assert re.search(r"retry: Retry in .*OperationalError", log), log[-3000:]  # saw the restart


def test_a_redelivered_batch_its_dead_worker_finished_still_queues_the_next_stage(
    embedded: Rig, settings: Settings
) -> None:
    """A worker that dies between its commit and enqueueing the next stage: the redelivered
    task finds its images done, and must still put them on the next stage's queue."""
    config = settings.model_copy(update={"database_url": embedded.url, "profile": "tiny"})
    batch = embedded.images[:BATCH]
    ctx = StageContext(embedded.store, config, worker="elsewhere:1")
    assert run_queued_batch(ctx, Stage.EXTRACT, batch).done == tuple(batch)  # then it "died"
    from esplora_workers.app import create_app
    from esplora_workers.dispatch import enqueue

    app = create_app(config)
    enqueue(app, Stage.EXTRACT, batch, DATA_ENGINE[1:])  # the redelivery
    worker = embedded.pool.start("chain@faults")
    wait_until(
        lambda: embedded.counts()["relate"]["done"] == len(batch), 30, interval=0.2,
        what="detect, depth and relate of the batch",
    )  # fmt: skip
    assert worker.alive()
