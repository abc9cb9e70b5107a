"""Queued execution without a worker process: app configuration, what goes on which queue,
claims taken back from dead workers, heartbeats, and the CLI's execution rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from esplora.db.engine import Store
from esplora.db.enums import Stage, StageStatus
from esplora.db.images import ImageStage
from esplora.services import stages
from esplora.services.ingest import ingest
from esplora.services.pipeline import StageContext, holder_is_dead, run_queued_batch
from esplora.services.workers import forget, heartbeat, live_workers
from esplora.settings import Settings
from esplora_workers.app import create_app
from esplora_workers.dispatch import enqueue_ready
from support.datasets import jpeg, write_folder

ESPLORA = str(Path(sys.executable).parent / "esplora")


@pytest.fixture
def ctx(
    store: Store, settings: Settings, tiny_models: Path, store_url: str, tmp_path: Path
) -> StageContext:
    config = settings.model_copy(update={"profile": "tiny", "models_dir": tiny_models,
                                         "database_url": store_url, "batch_size": 2})  # fmt: skip
    files = {f"{i}.jpg": (jpeg(i, (96, 80)), "a cat to the left of a dog") for i in range(5)}
    ingest(store, config, write_folder(tmp_path / "d", files), source_format="folder")
    return StageContext(store, config)


def test_the_app_is_json_only_with_late_acks_and_no_result_backend(settings: Settings) -> None:
    app = create_app(settings)
    assert app.conf.task_serializer == "json" and app.conf.accept_content == ["json"]
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1 and app.conf.task_ignore_result
    folder = Path(app.conf.broker_transport_options["data_folder_in"])
    assert folder == settings.home / "broker" / "messages" and folder.is_dir()
    redis = create_app(
        settings.model_copy(
            update={"broker_url": "redis://h:1/0", "broker_visibility_timeout_s": 99}
        )
    )
    assert redis.conf.broker_transport_options["visibility_timeout"] == 99
    assert "esplora.pipeline.run_stage" in app.tasks


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_ready_images_go_to_their_stage_queue_in_batches(ctx: StageContext) -> None:
    app = create_app(ctx.settings)
    assert enqueue_ready(app, ctx, [Stage.EXTRACT, Stage.DETECT], batch_size=2) == 3  # 5 images
    messages = [
        json.loads(p.read_text()) for p in (ctx.settings.broker_dir / "messages").glob("*.msg")
    ]
    assert len(messages) == 3
    bodies = [json.loads(__import__("base64").b64decode(m["body"])) for m in messages]
    assert sorted(len(b[0][1]) for b in bodies) == [1, 2, 2]
    assert {(b[0][0], tuple(b[0][2])) for b in bodies} == {("extract", ("detect",))}
    assert {m["properties"]["delivery_info"]["routing_key"] for m in messages} == {"cpu"}


def test_a_dead_processes_claims_are_taken_back_and_a_live_ones_are_waited_for(
    ctx: StageContext,
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dead_name = f"{__import__('socket').gethostname()}:{dead.pid}"
    assert holder_is_dead(dead_name) and not holder_is_dead(
        f"{__import__('socket').gethostname()}:{os.getpid()}"
    )
    assert not holder_is_dead(f"elsewhere:{dead.pid}")  # other hosts: only the lease tells
    with ctx.store.unit_of_work() as session:
        assert stages.claim(session, Stage.EXTRACT, limit=2, worker=dead_name) == [1, 2]
        assert stages.claim(session, Stage.EXTRACT, limit=1, worker="elsewhere:1") == [3]
    outcome = run_queued_batch(ctx, Stage.EXTRACT, [1, 2, 3])
    assert outcome.done == (1, 2)
    assert outcome.retry_in is not None and 0 < outcome.retry_in <= ctx.lease.total_seconds() + 1
    with ctx.store.reader() as session:
        rows = {
            r.image_id: r
            for r in session.scalars(select(ImageStage).where(ImageStage.stage == Stage.EXTRACT))
        }
    assert rows[1].status is StageStatus.DONE and rows[1].attempts == 1
    assert rows[3].status is StageStatus.CLAIMED and rows[3].claimed_by == "elsewhere:1"


def test_an_expired_lease_is_reclaimed_by_a_redelivered_task(ctx: StageContext) -> None:
    with ctx.store.unit_of_work() as session:
        stages.claim(
            session, Stage.EXTRACT, limit=5, worker="elsewhere:1", lease=timedelta(seconds=-1)
        )
    assert run_queued_batch(ctx, Stage.EXTRACT, [1, 2, 3, 4, 5]).done == (1, 2, 3, 4, 5)


def test_heartbeats_tell_live_workers(store: Store) -> None:
    heartbeat(store, name="gpu@a", hostname="a", queues=["gpu"], pid=1)
    heartbeat(store, name="gpu@a", hostname="a", queues=["gpu"], pid=1)  # a refresh, not a row
    assert [w.name for w in live_workers(store)] == ["gpu@a"]
    assert live_workers(store, within=timedelta(seconds=-1)) == []
    forget(store, "gpu@a")
    assert live_workers(store) == []


def test_run_without_a_worker_says_so_and_leaves_the_work_queued(
    settings: Settings, tmp_path: Path
) -> None:
    env = dict(os.environ)
    subprocess.run([ESPLORA, "db", "upgrade"], check=True, capture_output=True, env=env)
    folder = write_folder(tmp_path / "d", {"a.jpg": (jpeg(1, (96, 80)), "a cat left of a dog")})
    subprocess.run(
        [ESPLORA, "ingest", str(folder), "--format", "folder"],
        check=True,
        capture_output=True,
        env=env,
    )
    result = subprocess.run(
        [ESPLORA, "pipeline", "run", "--json"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "no live worker" in result.stderr and "esplora worker --queues gpu,cpu" in result.stderr
    assert json.loads(result.stdout) == {"enqueued": 1, "followed": False, "workers": 0}
    detached = subprocess.run(
        [ESPLORA, "pipeline", "run", "--detach", "--json"], capture_output=True, text=True, env=env
    )
    assert json.loads(detached.stdout) == {"enqueued": 1, "followed": False}
    assert len(list((settings.broker_dir / "messages").glob("*.msg"))) == 2
