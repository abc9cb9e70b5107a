"""The store's guarantees: change sequence, optimistic concurrency, integrity, many writers."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from esplora.db import migrate
from esplora.db.engine import Store
from esplora.db.enums import Origin, ProducerKind, SourceKind, Stage
from esplora.db.models import DetectedObject, Image, ImageStage, Source


def _image(sha: str = "a") -> Image:
    return Image(sha256=sha * 64, uri=f"{sha}.jpg", width=8, height=6, origin=Origin.NATURAL)


def test_change_seq_increases_with_every_write(store: Store) -> None:
    with store.unit_of_work() as session:
        session.add_all([_image("a"), _image("b")])
    with store.unit_of_work() as session:
        first = session.scalars(select(Image).where(Image.sha256 == "a" * 64)).one()
        first.uri = "moved.jpg"
    with store.reader() as session:
        seqs = {i.sha256[0]: i.change_seq for i in session.scalars(select(Image))}
    assert seqs["b"] > 0 and seqs["a"] > seqs["b"]


def test_a_stale_version_is_a_conflict_not_an_overwrite(store: Store) -> None:
    with store.unit_of_work() as session:
        image = _image()
        session.add(image)
        session.flush()
        session.add(
            DetectedObject(
                image_id=image.id,
                label="cat",
                x0=0,
                y0=0,
                x1=2,
                y1=2,
                producer_kind=ProducerKind.MODEL,
                producer="m",
            )
        )
    with store.reader() as session:
        seen = session.scalars(select(DetectedObject)).one()
    with store.unit_of_work() as session:
        session.scalars(select(DetectedObject)).one().label = "dog"
    with pytest.raises(StaleDataError), store.unit_of_work() as session:
        stale = session.merge(seen, load=False)
        stale.label = "bird"
    with store.reader() as session:
        row = session.scalars(select(DetectedObject)).one()
    assert (row.label, row.version) == ("dog", 2)


def test_degenerate_boxes_and_sizes_are_refused_and_nothing_is_written(store: Store) -> None:
    with pytest.raises(IntegrityError), store.unit_of_work() as session:
        image = _image()
        session.add(image)
        session.flush()
        session.add(
            DetectedObject(
                image_id=image.id,
                label="cat",
                x0=5,
                y0=0,
                x1=5,
                y1=2,
                producer_kind=ProducerKind.MODEL,
                producer="m",
            )
        )
    with store.reader() as session:
        assert session.scalars(select(Image)).all() == []


def _upsert_worker(url: str, rounds: int) -> None:
    store = Store.from_url(url)
    for _ in range(rounds):
        # Read-then-write: without BEGIN IMMEDIATE the lock upgrade fails at once under load.
        with store.unit_of_work() as session:
            source = session.scalars(select(Source).where(Source.name == "shared")).one_or_none()
            if source is None:
                session.add(Source(name="shared", kind=SourceKind.FOLDER, meta={"n": 1}))
            else:
                source.meta = {"n": source.meta["n"] + 1}
            stage = session.get(ImageStage, (1, Stage.DETECT))
            assert stage is not None
            stage.attempts += 1
    store.dispose()


def test_four_processes_upserting_the_same_keys_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    migrate.upgrade(url)
    store = Store.from_url(url)
    with store.unit_of_work() as session:
        image = _image()
        session.add(image)
        session.flush()
        session.add(ImageStage(image_id=image.id, stage=Stage.DETECT, attempts=0))
    rounds, workers = 60, 4
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_upsert_worker, args=(url, rounds)) for _ in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * workers
    with store.reader() as session:
        source = session.scalars(select(Source)).one()
        stage = session.get(ImageStage, (1, Stage.DETECT))
    assert source.meta["n"] == rounds * workers
    assert stage is not None and stage.attempts == rounds * workers
    store.dispose()
