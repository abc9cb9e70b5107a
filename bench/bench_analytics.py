"""Analytics over a generated store: Overview, an Explore page and a mirror refresh.

Generates a store with bulk inserts (``esplora.db.writes.insert_rows``): ``--images`` images with
one sample each, 4 objects (and depth) per image, ``--relations`` relation rows, votes on 1 % of
them and one stage row per image. Then, with the incremental mirror on (threshold 0):

* the first load (full ADBC read, Parquet base written),
* ``refresh()`` with nothing changed,
* the Overview: served from the maintained aggregates (first call on the state: cold), from the
  per-state cache (warm), and recomputed from the mirrored tables (the baseline, best of 3),
  checked equal,
* an Explore page of 50 items, unfiltered and filtered, deep in the result (best of 3); the
  filtered page (labels from the maintained ``relation_pairs``) checked equal to the join's,
* a review action: ``review.vote`` on the reviewer's item, then ``review.assign_next`` (best of 3),
* ``refresh()`` after 1,000 changes (500 relations updated, 500 votes added), then the
  aggregate-served Overview again (checked equal to a recomputation).

Targets: Overview < 1 s, Explore page < 300 ms, review action < 100 ms, refresh after 1k
changes < 1 s.
Full size: ``--images 1000000 --relations 10000000``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from esplora.analytics import explore as explore_queries
from esplora.analytics import overview as overview_queries
from esplora.analytics.engine import Analytics
from esplora.db import migrate
from esplora.db.detections import DetectedObject, ObjectDepth
from esplora.db.engine import Store
from esplora.db.enums import ReviewTarget
from esplora.db.images import Image, ImageStage, Sample, Source
from esplora.db.relations import GeometricRelation
from esplora.db.review import ReviewVote
from esplora.db.writes import insert_rows, update_rows
from esplora.services import review
from esplora.services.filters import ItemFilter

LABELS = ["cat", "dog", "tree", "car", "person", "bench", "cup", "book"]
AXES = [("horizontal", "left_of"), ("vertical", "above"), ("depth", "in_front_of")]
CHUNK = 50_000


def _chunks(n: int) -> Iterator[range]:
    for start in range(0, n, CHUNK):
        yield range(start, min(n, start + CHUNK))


def _insert(
    store: Store, model: Any, n: int, make: Callable[[range], list[dict[str, Any]]]
) -> None:
    for chunk in _chunks(n):
        with store.unit_of_work() as session:
            insert_rows(session, model, make(chunk))


def _images(r: range) -> list[dict[str, Any]]:
    return [
        {"id": i + 1, "sha256": f"{i:064x}", "uri": f"/img/{i}.jpg", "width": 640,
         "height": 480, "origin": "synthetic" if i % 10 == 0 else "natural"}
        for i in r
    ]  # fmt: skip


def _samples(r: range) -> list[dict[str, Any]]:
    return [
        {"id": i + 1, "image_id": i + 1, "source_id": 1, "source_key": str(i),
         "caption": "a cat left of a dog", "meta": {}, "excluded": i % 50 == 0}
        for i in r
    ]  # fmt: skip


def _objects(r: range) -> list[dict[str, Any]]:
    rng = np.random.default_rng(r.start)
    xy = rng.uniform(0, 500, size=(len(r), 2))
    return [
        {"id": i + 1, "image_id": i // 4 + 1, "label": LABELS[i % len(LABELS)],
         "x0": float(x), "y0": float(y), "x1": float(x) + 60, "y1": float(y) + 50,
         "score": 0.3 + 0.7 * ((i * 7919) % 100) / 100, "producer_kind": "model", "producer": "b"}
        for i, (x, y) in zip(r, xy, strict=True)
    ]  # fmt: skip


def _depths(r: range) -> list[dict[str, Any]]:
    return [
        {"object_id": i + 1, "producer": "b", "median": ((i * 31) % 100) / 100, "mean": 0.5,
         "p10": 0.1, "p90": 0.9}
        for i in r
    ]  # fmt: skip


def _relations(images: int) -> Callable[[range], list[dict[str, Any]]]:
    pairs = [(a, b) for a in range(4) for b in range(4) if a != b]

    def make(r: range) -> list[dict[str, Any]]:
        rows = []
        for i in r:
            image = i % images
            a, b = pairs[(i // images) % len(pairs)]
            axis, relation = AXES[(i // images // len(pairs)) % 3]
            margin = ((i * 7919) % 2000) / 1000 - 1
            rows.append({
                "image_id": image + 1, "subject_id": image * 4 + a + 1,
                "object_id": image * 4 + b + 1, "axis": axis, "relation": relation,
                "soft": True, "strict": margin > 0, "margin": margin, "rule": "esplora",
                "tau": 3.0 + i // (images * len(pairs) * 3), "depth_gap": 1 / 3, "producer": "b",
            })  # fmt: skip
        return rows

    return make


def _votes(step: int) -> Callable[[range], list[dict[str, Any]]]:
    return lambda r: [
        {
            "reviewer": f"r{i % 5}",
            "target_type": "relation",
            "target_id": i * step + 1,
            "verdict": "accept" if i % 3 else "reject",
            "proposal": {},
        }
        for i in r
    ]


def generate(url: str, images: int, relations: int) -> None:
    migrate.upgrade(url)
    store = Store.from_url(url)
    with store.unit_of_work() as session:
        insert_rows(session, Source, [{"id": 1, "name": "bench", "kind": "folder", "meta": {}}])
    _insert(store, Image, images, _images)
    _insert(store, Sample, images, _samples)
    _insert(store, DetectedObject, images * 4, _objects)
    _insert(store, ObjectDepth, images * 4, _depths)
    _insert(store, GeometricRelation, relations, _relations(images))
    _insert(store, ReviewVote, relations // 100, _votes(100))
    stages = lambda r: [  # noqa: E731
        {"image_id": i + 1, "stage": "detect", "status": "failed" if i % 97 == 0 else "done",
         "attempts": 1, "details": {}} for i in r
    ]  # fmt: skip
    _insert(store, ImageStage, images, stages)
    store.dispose()


def best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def change_1000(store: Store, relations: int) -> None:
    with store.unit_of_work() as session:
        ids = range(1, relations, max(relations // 500, 1))[:500]
        update_rows(session, GeometricRelation, [{"id": i, "strict": False} for i in ids])
        insert_rows(session, ReviewVote, _votes(7)(range(500)))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def overview_figures(engine: Analytics) -> dict[str, float]:
    """Served (maintained aggregates, first call on this state), cached, and recomputed."""
    figures = {"overview, cold (aggregates)": timed(engine.overview)}
    figures["overview, warm (cached)"] = best(engine.overview)
    recompute = lambda: overview_queries.overview(engine.cursor())  # noqa: E731
    figures["overview recomputed (baseline)"] = best(recompute)
    assert engine.aggregated and engine.overview() == recompute(), "aggregates != recomputation"
    return figures


def review_action(store: Store) -> float:
    """One reviewer's vote on their assigned item, then their next item (best of 3)."""
    item = review.assign_next(store, "bench", ItemFilter())
    times = []
    for _ in range(3):
        assert item is not None
        start = time.perf_counter()
        review.vote(store, "bench", ReviewTarget.RELATION, item, "accept")
        item = review.assign_next(store, "bench", ItemFilter())
        times.append(time.perf_counter() - start)
    return min(times)


class Figures(dict[str, float]):
    """Figures by name, each printed as it is measured (a long run leaves its partial results)."""

    def __setitem__(self, name: str, seconds: float) -> None:
        print(f"  {name}: {seconds * 1000:.1f} ms", flush=True)
        super().__setitem__(name, seconds)


def measure(url: str, mirror: Path, relations: int) -> dict[str, float]:
    start = time.perf_counter()
    engine = Analytics(url, mirror_dir=mirror, mirror_threshold_rows=0)
    figures = Figures()
    figures["first load (full read)"] = time.perf_counter() - start
    # One Store for the whole run, disposed after the engine: two SQLite libraries share this
    # process (pysqlite, ADBC's), and closing a file descriptor drops the other's POSIX locks.
    store = Store.from_url(url)
    figures["refresh, nothing changed"] = best(engine.refresh)
    for name, seconds in overview_figures(engine).items():
        figures[name] = seconds
    page = relations // 200
    figures["explore page (50), no filter"] = best(lambda: engine.explore({}, page=page))
    query = {"relations": ["right_of"], "strict": True, "labels": ["cat", "dog"]}
    figures["explore page (50), filtered"] = best(lambda: engine.explore(query, page=20))
    joined = explore_queries.explore(engine.cursor(), query, page=20, page_size=50, order="id")
    assert engine.explore(query, page=20) == joined, "relation_pairs != the objects join"
    figures["review action (vote + next item)"] = review_action(store)
    figures["refresh after 3 review votes"] = timed(engine.refresh)
    change_1000(store, relations)
    start = time.perf_counter()
    report = engine.refresh()
    figures["refresh after 1,000 changes"] = time.perf_counter() - start
    assert sorted(report.delta) == ["relations", "votes"] and not report.full, report
    served = overview_figures(engine)  # the aggregates after the delta, against a recompute
    figures["overview after 1k changes (aggregates)"] = served["overview, cold (aggregates)"]
    engine.close()
    store.dispose()
    return figures


TARGETS = {
    "overview, cold (aggregates)": 1.0,
    "overview after 1k changes (aggregates)": 1.0,
    "explore page (50), no filter": 0.3,
    "explore page (50), filtered": 0.3,
    "review action (vote + next item)": 0.1,
    "refresh after 1,000 changes": 1.0,
}


def report(figures: dict[str, float]) -> None:
    failed = False
    for name, seconds in figures.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else ("PASS" if seconds < target else "FAIL")
        failed |= verdict == "FAIL"
        limit = f"(target < {target * 1000:.0f} ms)" if target else ""
        print(f"{name:40s} {seconds * 1000:9.1f} ms  {limit:22s} {verdict}")
    ratio = figures["overview recomputed (baseline)"] / figures["overview, cold (aggregates)"]
    print(f"overview: aggregates {ratio:.1f}x faster than the recomputation")
    print("FAIL" if failed else "PASS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--relations", type=int, default=1_000_000)
    parser.add_argument("--url", help="an empty store URL (default: a temporary SQLite file)")
    parser.add_argument(
        "--generated", action="store_true", help="--url already holds a generated store"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        if not args.generated:
            start = time.perf_counter()
            generate(url, args.images, args.relations)
            print(f"generated {args.images:,} images / {args.relations:,} relations "
                  f"in {time.perf_counter() - start:.1f} s")  # fmt: skip
        report(measure(url, Path(tmp) / "mirror", args.relations))


if __name__ == "__main__":
    main()
