"""The Training page (AppTest, SQLite and PostgreSQL): launching under the execution rule, and a
run's status, loss and per-relation accuracy curves, checkpoints and sample grids."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image
from streamlit.testing.v1 import AppTest
from ui_pages import assert_clean, chart_rows, messages, open_page, texts

from esplora.db.engine import Store
from esplora.services import runs
from esplora.services.filters import ItemFilter
from esplora.services.snapshots import SnapshotRequest, create_snapshot
from esplora.services.workers import heartbeat
from esplora_ui import launch

ACCURACY = {"left_of": (0.25, 0.5), "above": (0.5, 0.75), "all": (0.375, 0.625)}


def _seed_run(store: Store, grid: Path) -> None:
    """Snapshot ``s`` and run ``r1``: 20 steps of loss, validations at 10 (a grid) and 20
    (failed), a checkpoint at 10."""
    create_snapshot(store, SnapshotRequest("s", ItemFilter()))
    run = runs.create_run(store, name="r1", snapshot="s", config={"max_steps": 20})
    for step in range(1, 21):
        runs.record_metrics(store, run.id, step, {"loss": 1.0 / step})
    for index, step in enumerate((10, 20)):
        values = {f"accuracy/{r}": v[index] for r, v in ACCURACY.items()}
        runs.record_metrics(store, run.id, step, values)
    Image.new("RGB", (96, 64), "navy").save(grid)
    runs.record_artefact(store, run.id, ("validation", "10"), {"grid": str(grid)})
    runs.record_artefact(store, run.id, ("validation", "20"), {"error": "probe failed: OOM"})
    runs.record_checkpoint(store, run.id, 10, str(grid.parent / "checkpoint-10"))


def _launch(app: AppTest, name: str, config: str = "tiny-flux") -> AppTest:
    app.text_input(key="train_name").input(name)
    app.selectbox(key="train_config").set_value(config)
    app.button(key="train_launch").click().run()
    assert_clean(app)
    return app


def test_a_run_shows_its_curves_checkpoints_and_grids(seeded: Store, tmp_path: Path) -> None:
    _seed_run(seeded, tmp_path / "grid.png")
    app = open_page("training")
    assert app.selectbox(key="train_run").value == "r1"
    assert {m.label: m.value for m in app.metric}["step"] == "20/20"
    loss = chart_rows(app, "Training loss")
    assert [(r["step"], r["value"]) for r in loss] == [(s, 1.0 / s) for s in range(1, 21)]
    accuracy = chart_rows(app, "Strict spatial accuracy")
    assert {(r["series"], r["step"]) for r in accuracy} == {
        (relation, step) for relation in ACCURACY for step in (10, 20)
    }
    assert any("Validation at step 20 failed" in w for w in messages(app, "warning"))
    assert "probe failed: OOM" in texts(app)
    app.select_slider(key="train_grid_step").set_value("10").run()
    assert_clean(app)
    assert len(app.get("image")) == 1 and not app.warning


def test_without_a_live_worker_launch_shows_the_commands(seeded: Store) -> None:
    create_snapshot(seeded, SnapshotRequest("s", ItemFilter()))
    app = _launch(open_page("training"), "r2")
    assert any("No live worker consumes the gpu queue" in i for i in messages(app, "info"))
    shown = texts(app)
    assert "esplora worker --queues gpu" in shown
    assert "esplora train --name r2 --snapshot s --config tiny-flux --inline" in shown
    assert runs.list_runs(seeded) == []


def test_a_bad_run_name_is_a_message(seeded: Store) -> None:
    create_snapshot(seeded, SnapshotRequest("s", ItemFilter()))
    app = _launch(open_page("training"), "no/slashes")
    assert "run name" in app.error[0].value


def test_with_a_live_worker_launch_queues_the_run(seeded: Store) -> None:
    create_snapshot(seeded, SnapshotRequest("s", ItemFilter()))
    heartbeat(seeded, name="g1", hostname="here", queues=["gpu"], pid=os.getpid())
    app = _launch(open_page("training"), "r3")
    assert not app.error, app.error[0].value
    assert "Run r3 queued" in app.success[0].value
    [run] = runs.list_runs(seeded)
    assert (run["name"], run["snapshot"], run["status"]) == ("r3", "s", "queued")
    assert run["max_steps"]  # the shipped config, validated by the CLI


def test_read_only_cannot_launch(seeded: Store) -> None:
    app = open_page("training", reviewer=None)
    assert "train_launch" not in [b.key for b in app.button]
    assert any("No training runs yet" in i for i in messages(app, "info"))


def test_the_ui_names_what_the_workers_and_training_ship() -> None:
    from esplora_training.config import shipped_configs
    from esplora_workers.queues import CPU, GPU

    assert sorted(launch.CONFIGS) == sorted(shipped_configs())
    assert (launch.GPU, launch.CPU) == (GPU, CPU)
