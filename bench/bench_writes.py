"""Bulk writes of objects and relations: rows/s on SQLite and PostgreSQL.

    .venv/bin/python bench/bench_writes.py [--rows 100000] [--check]

Measures :func:`esplora.db.writes.insert_rows` (what the pipeline stages use) against the ORM's
``session.add_all`` (the baseline) in the same process, on a fresh migrated store each: a SQLite
file, and a throwaway PostgreSQL started from the machine's binaries (skipped with a note when
they are missing). Each figure is one unit of work (one transaction) of N rows, the way a stage
writes a batch, committed. Targets: objects and relations ≥ 50 k rows/s on SQLite, ≥ 20 k rows/s
on PostgreSQL.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from sqlalchemy import delete

from esplora.db import migrate
from esplora.db.detections import DetectedObject
from esplora.db.engine import Store
from esplora.db.enums import Origin
from esplora.db.images import Image
from esplora.db.relations import GeometricRelation
from esplora.db.writes import insert_rows

TARGETS = {"sqlite": 50_000, "postgresql": 20_000}


def _seed(store: Store, n_objects: int) -> tuple[int, list[int]]:
    with store.unit_of_work() as session:
        image = Image(sha256="b" * 64, uri="x", width=640, height=480, origin=Origin.NATURAL)
        session.add(image)
        session.flush()
        insert_rows(session, DetectedObject, _object_rows(image.id, n_objects))
    with store.reader() as session:
        ids = [i for (i,) in session.query(DetectedObject.id).order_by(DetectedObject.id)]
    return image.id, ids


def _object_rows(image_id: int, n: int) -> list[dict[str, Any]]:
    return [
        {"image_id": image_id, "label": "car", "phrase": "a car", "x0": i % 600, "y0": 1.0,
         "x1": i % 600 + 10.0, "y1": 20.0, "score": 0.5, "producer_kind": "model",
         "producer": "bench", "version": 1}
        for i in range(n)
    ]  # fmt: skip


def _relation_rows(image_id: int, ids: list[int], n: int) -> list[dict[str, Any]]:
    k = len(ids)
    return [
        {"image_id": image_id, "subject_id": ids[i % k], "object_id": ids[(i + 1) % k],
         "axis": "horizontal", "relation": "left_of", "soft": True, "strict": i % 2 == 0,
         "margin": 0.1, "rule": "esplora-strict", "tau": float(3 + i), "depth_gap": 0.33,
         "producer": "bench", "version": 1}
        for i in range(n)
    ]  # fmt: skip


def _timed(store: Store, write: Callable[[Any], None]) -> float:
    start = time.perf_counter()
    with store.unit_of_work() as session:
        write(session)
    return time.perf_counter() - start


def measure(url: str, rows: int) -> dict[str, float]:
    migrate.upgrade(url)
    store = Store.from_url(url)
    image_id, ids = _seed(store, 1000)
    objects, relations = _object_rows(image_id, rows), _relation_rows(image_id, ids, rows)
    figures = {
        "objects": rows / _timed(store, lambda s: insert_rows(s, DetectedObject, objects)),
        "relations": rows / _timed(store, lambda s: insert_rows(s, GeometricRelation, relations)),
    }
    with store.unit_of_work() as session:
        session.execute(delete(GeometricRelation))
    baseline = relations[: rows // 5]
    orm = _timed(store, lambda s: s.add_all(GeometricRelation(**r) for r in baseline))
    figures["relations (ORM add_all)"] = len(baseline) / orm
    store.dispose()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = measure(f"sqlite:///{tmp}/bench.db", args.rows)
    try:
        from support.services import postgres_server

        with postgres_server() as server:
            results["postgresql"] = measure(server.url(), args.rows)
    except BaseException as error:  # a missing binary skips (pytest.skip raises BaseException)
        print(f"postgresql: not measured ({error})")
    return report(results, args.check)


def report(results: dict[str, dict[str, float]], check: bool) -> int:
    missed = 0
    for backend, figures in results.items():
        fast = figures["relations"]
        ratio = fast / figures["relations (ORM add_all)"]
        for name, rate in figures.items():
            print(f"{backend:>10}  {name:<24} {rate:>12,.0f} rows/s")
        print(f"{backend:>10}  insert_rows / ORM add_all: {ratio:.1f}×")
        for name in ("objects", "relations"):
            ok = figures[name] >= TARGETS[backend]
            missed += not ok
            print(
                f"{backend:>10}  target {name} ≥ {TARGETS[backend]:,}/s: {'PASS' if ok else 'FAIL'}"
            )
    return 1 if check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
