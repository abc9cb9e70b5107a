"""The Snapshots page (AppTest, SQLite and PostgreSQL): create from the Explore filter, the
errors as messages, show, diff, and export jobs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from ui_pages import assert_clean, messages, open_page, texts

from esplora.db.engine import Store
from esplora.db.enums import PromptKind
from esplora.db.synthetic import SpatialPrompt
from esplora.services.exports import export_jobs, run_export_job, start_export
from esplora.services.filters import ItemFilter
from esplora.services.snapshots import SnapshotRequest, create_snapshot, list_snapshots
from esplora.services.workers import heartbeat
from esplora.settings import get_settings


def _create(app: AppTest, name: str, **values: Any) -> AppTest:
    app.text_input(key="snap_name").input(name)
    for key, value in values.items():
        widget = app.text_area(key=key) if key == "snap_filter" else app.checkbox(key=key)
        widget.set_value(value)
    app.button(key="snap_create").click().run()
    assert_clean(app)
    return app


def _table(app: AppTest, column: str) -> list[dict[str, Any]]:
    """The rows of the first dataframe with ``column``."""
    for frame in app.dataframe:
        if column in frame.value.columns:
            rows: list[dict[str, Any]] = frame.value.to_dict("records")
            return rows
    raise AssertionError(f"no table with a {column!r} column")


def _snap(store: Store, name: str, **filter_values: Any) -> None:
    create_snapshot(store, SnapshotRequest(name, ItemFilter(**filter_values)))


def test_a_snapshot_freezes_the_explore_filter(seeded: Store) -> None:
    app = open_page("explore")
    app.multiselect(key="explore_relations").set_value(["left_of"]).run()
    app.switch_page("views/snapshots.py").run()
    assert app.text_area(key="snap_filter").value == '{"relations":["left_of"]}'
    assert "created: " in _create(app, "left").success[0].value
    [summary] = list_snapshots(seeded)
    assert summary.name == "left" and summary.created_by == "alice"
    assert summary.filter == {"relations": ["left_of"]}
    assert set(summary.counts["relations"]) <= {"left_of", "right_of"}
    assert app.selectbox(key="snap_pick").value == "left"  # shown at once
    assert summary.hash in texts(app)


def test_errors_are_messages(seeded: Store) -> None:
    with seeded.unit_of_work() as session:
        session.add(SpatialPrompt(text="a car below a tree", kind=PromptKind.SIMPLE, benchmark="b"))
    app = _create(open_page("snapshots"), "all")
    assert "created" in app.success[0].value
    assert any("benchmark" in w for w in messages(app, "warning"))  # reported, not refused
    assert "already exists" in _create(app, "all").error[0].value
    assert "overlap benchmark prompts" in _create(app, "b", snap_strict=True).error[0].value
    app = _create(app, "c", snap_filter='{"colour": "red"}')
    assert "unknown filter field" in app.error[0].value
    assert [s.name for s in list_snapshots(seeded)] == ["all"]


def test_read_only_cannot_create(seeded: Store) -> None:
    app = open_page("snapshots", reviewer=None)
    assert "snap_create" not in [b.key for b in app.button]
    assert any("read-only" in i for i in messages(app, "info"))


def test_show_and_diff(seeded: Store) -> None:
    _snap(seeded, "cats", labels=("cat",))
    _snap(seeded, "all")
    app = open_page("snapshots")
    assert {r["name"] for r in _table(app, "members")} == {"cats", "all"}
    app.selectbox(key="snap_pick").set_value("cats").run()
    assert '{"labels": ["cat"]}' in texts(app)
    pairs = _table(app, "label pair")
    assert pairs and all(r["members"] >= 1 for r in pairs)
    metrics = {m.label: m.value for m in app.metric}
    assert int(metrics["members added"]) > 0  # from "cats" to "all"
    assert int(metrics["members removed"]) == 0


def test_export_without_a_worker_says_how(seeded: Store, tmp_path: Path) -> None:
    _snap(seeded, "all")
    app = open_page("snapshots")
    app.text_input(key="export_out_all_parquet").input(str(tmp_path / "out"))
    app.button(key="export_start").click().run()
    assert any("No live worker" in i for i in messages(app, "info"))
    shown = texts(app)
    assert "esplora worker --queues cpu" in shown
    assert f"esplora snapshot export all --format parquet --out {tmp_path / 'out'}" in shown
    assert export_jobs(seeded) == []  # nothing queued that nobody would run


def test_export_errors_are_messages(seeded: Store, tmp_path: Path) -> None:
    _snap(seeded, "all")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    app = open_page("snapshots")
    app.text_input(key="export_out_all_parquet").input(str(tmp_path / "full"))
    app.button(key="export_start").click().run()
    assert "not an empty directory" in app.error[0].value or "not empty" in app.error[0].value


def test_export_jobs_show_their_status(seeded: Store, tmp_path: Path) -> None:
    _snap(seeded, "all")
    job = start_export(seeded, snapshot="all", fmt="parquet", out=tmp_path / "done")
    run_export_job(seeded, get_settings(), job)
    start_export(seeded, snapshot="all", fmt="coco", out=tmp_path / "later")
    app = open_page("snapshots")
    jobs = {r["format"]: r for r in _table(app, "out_dir")}
    assert jobs["parquet"]["status"] == "succeeded" and jobs["parquet"]["skipped"] == 1
    assert jobs["coco"]["status"] == "queued"


def test_export_with_a_live_worker_is_queued(seeded: Store, tmp_path: Path) -> None:
    _snap(seeded, "all")
    heartbeat(seeded, name="w1", hostname="here", queues=["cpu"], pid=os.getpid())
    app = open_page("snapshots")
    app.text_input(key="export_out_all_parquet").input(str(tmp_path / "queued"))
    app.button(key="export_start").click().run()
    assert_clean(app)
    assert not app.error, app.error[0].value
    [job] = export_jobs(seeded)
    assert f"Export job {job.id} queued" in app.success[0].value
    assert job.status.value == "queued" and job.out_dir == str(tmp_path / "queued")


@pytest.mark.parametrize("fmt", ["parquet"])
def test_the_default_export_directory_is_under_the_home(seeded: Store, fmt: str) -> None:
    _snap(seeded, "all")
    app = open_page("snapshots")
    expected = get_settings().artefacts_dir / "exports" / f"all-{fmt}"
    assert app.text_input(key=f"export_out_all_{fmt}").value == str(expected)
