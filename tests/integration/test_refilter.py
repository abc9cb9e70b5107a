"""Changing the caption filter is a query over stored samples, not a re-download."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from esplora.db.engine import Store
from esplora.db.enums import Stage, StageStatus
from esplora.db.images import Image, ImageStage, Sample
from esplora.services.ingest import ingest, options_from
from esplora.services.refilter import refilter
from esplora.settings import Settings
from support.datasets import jpeg, write_folder


def _state(store: Store) -> dict[int, tuple[bool, str | None, str]]:
    """Image width → (excluded, reason, detect status)."""
    with store.reader() as session:
        rows = session.execute(
            select(Image.width, Sample.excluded, Sample.exclusion_reason, ImageStage.status)
            .join(Sample, Sample.image_id == Image.id)
            .join(
                ImageStage, (ImageStage.image_id == Image.id) & (ImageStage.stage == Stage.DETECT)
            )
        ).all()
    return {w: (excluded, reason, status.value) for w, excluded, reason, status in rows}


def test_stricter_then_looser_filter_marks_and_unmarks(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    files = {
        "small.jpg": (jpeg(1, (96, 80)), "a cat to the left of a dog"),
        "large.jpg": (jpeg(2, (200, 160)), "a car next to a tree"),
    }
    ingest(store, settings, write_folder(tmp_path / "d", files), source_format="folder")
    assert _state(store) == {96: (False, None, "pending"), 200: (False, None, "pending")}
    strict = replace(options_from(settings).filters, min_side=100)
    report = refilter(store, strict)
    assert (report.examined, report.newly_excluded, report.newly_kept) == (2, 1, 0)
    assert _state(store) == {96: (True, "too_small", "skipped"), 200: (False, None, "pending")}
    assert refilter(store, strict).newly_excluded == 0  # a second run changes nothing
    back = refilter(store, options_from(settings).filters)
    assert back.newly_kept == 1
    assert _state(store) == {96: (False, None, "pending"), 200: (False, None, "pending")}


def test_work_already_done_is_kept_when_an_image_is_excluded(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    files = {"a.jpg": (jpeg(3, (96, 80)), "a cat to the left of a dog")}
    ingest(store, settings, write_folder(tmp_path / "d", files), source_format="folder")
    with store.unit_of_work() as session:
        row = session.get(ImageStage, (1, Stage.EXTRACT))
        assert row is not None
        row.status = StageStatus.DONE
    refilter(store, replace(options_from(settings).filters, min_side=500))
    with store.reader() as session:
        statuses = {s.stage: s.status for s in session.scalars(select(ImageStage))}
    assert (
        statuses[Stage.EXTRACT] is StageStatus.DONE
        and statuses[Stage.DETECT] is StageStatus.SKIPPED
    )


def test_refilter_cli_reads_thresholds_from_options(settings: Settings, tmp_path: Path) -> None:
    esplora = str(Path(sys.executable).parent / "esplora")
    env = dict(os.environ)
    subprocess.run([esplora, "db", "upgrade"], check=True, capture_output=True, env=env)
    folder = write_folder(
        tmp_path / "d", {"a.jpg": (jpeg(4, (96, 80)), "a cat to the left of a dog")}
    )
    subprocess.run(
        [esplora, "ingest", str(folder), "--format", "folder"],
        check=True,
        capture_output=True,
        env=env,
    )
    result = subprocess.run(
        [esplora, "refilter", "--min-side", "100", "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["excluded"] == {"too_small": 1}
