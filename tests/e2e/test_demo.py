"""``make demo``'s command, run end to end on a fresh embedded store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import func, select

from esplora.db.engine import Store
from esplora.db.enums import Stage
from esplora.db.models import (
    EvaluationRun,
    Generation,
    GeometricRelation,
    Image,
    ImageStage,
    RunMetric,
    Snapshot,
    SpatialPrompt,
    TrainingRun,
)
from support.services import free_port


def test_demo_runs_offline_on_a_fresh_store_and_is_repeatable(tmp_path: Path) -> None:
    home = Path(os.environ["ESPLORA_HOME"])
    command = [str(Path(sys.executable).parent / "esplora"), "demo", "--no-ui"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160"}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "a photo of a teddy bear left of a dog" in first.stdout  # TORE on a GenEval prompt
    assert (home / "figures" / "relations_2d.png").stat().st_size > 10_000
    assert "random weights" in first.stdout  # the tiny profile says what its numbers mean
    assert "re-validation" in first.stdout and "retention" in first.stdout
    assert "demo-urban-adaptive" in first.stdout
    assert "Machinery only" in first.stdout and "where to look" in first.stdout
    for fmt in ("coco", "imagefolder", "kohya", "parquet", "webdataset"):
        assert (home / "exports" / f"demo-synthetic-{fmt}" / "README.md").is_file()
    store = Store.from_url(f"sqlite:///{home / 'esplora.db'}")
    with store.reader() as session:
        stored = session.scalar(
            select(func.count()).select_from(SpatialPrompt).where(SpatialPrompt.benchmark == "demo")
        )
        images = session.scalar(select(func.count()).select_from(Image))
        relate = session.scalars(select(ImageStage.status).where(ImageStage.stage == Stage.RELATE))
        statuses = [s.value for s in relate]
        assert statuses.count("skipped") == 1  # the lone cat photo: excluded by the filter
        assert session.scalar(select(func.count()).select_from(GeometricRelation))
        snapshot = session.scalars(select(Snapshot)).one()
        assert snapshot.name == "demo-synthetic" and snapshot.counts["members"] > 10
        run = session.scalars(select(TrainingRun)).one()
        assert run.status.value == "succeeded" and run.snapshot_hash == snapshot.content_hash
        assert run.adapter_uri and (Path(run.adapter_uri) / "esplora_adapter.json").is_file()
        linked = session.scalars(
            select(EvaluationRun.tore).where(EvaluationRun.training_run_id == run.id)
        ).all()
        assert sorted(linked) == ["off", "static"]  # adapter, adapter + TORE (and a base run)
        assert session.scalar(select(func.count()).select_from(RunMetric).where(
            RunMetric.run_id == run.id, RunMetric.name.like("accuracy/%")
        ))  # fmt: skip
    assert stored and stored > 15 and images > 7 + 40
    with store.reader() as session:
        all_prompts = session.scalar(select(func.count()).select_from(SpatialPrompt))
        generations = session.scalar(select(func.count()).select_from(Generation))
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"0 stored, {stored} already in the store" in second.stdout
    assert "0 new images, 0 new samples" in second.stdout
    with store.reader() as session:
        assert session.scalar(select(func.count()).select_from(SpatialPrompt)) == all_prompts
        assert session.scalar(select(func.count()).select_from(Image)) == images
        assert session.scalar(select(func.count()).select_from(Generation)) == generations
        assert session.scalar(select(func.count()).select_from(TrainingRun)) == 1
        assert session.scalar(select(func.count()).select_from(Snapshot)) == 1
    store.dispose()
    _demo_ends_with_the_ui(command[:-1], env)


def _demo_ends_with_the_ui(command: list[str], env: dict[str, str]) -> None:
    """Without --no-ui the (now repeatable, fast) demo hands over to the UI on its port."""
    port = free_port()
    process = subprocess.Popen(
        [*command, "--ui-port", str(port)], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as reply:
                    if reply.read() == b"ok":
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError("the demo did not start the UI")
    finally:
        process.terminate()
        process.wait(timeout=30)
