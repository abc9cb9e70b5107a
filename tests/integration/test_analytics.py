"""Analytics over the store (SQLite and PostgreSQL): views, Overview, Explore, refresh, the
incremental mirror, calibration, the read-only SQL box and ``esplora stats`` / ``query``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from esplora.analytics import aggregates, pairs
from esplora.analytics import explore as explore_queries
from esplora.analytics import overview as overview_queries
from esplora.analytics.engine import Analytics
from esplora.analytics.source import StoreReader
from esplora.analytics.sql import QueryRefused, QueryTimeout, safe_query
from esplora.analytics.views import VIEWS_VERSION, reference_markdown
from esplora.core.rules.canonical import canonical_relations_many
from esplora.db.detections import DetectedObject, ObjectDepth
from esplora.db.engine import Store
from esplora.db.enums import ReviewTarget
from esplora.db.images import Image, ImageStage, Sample, Source
from esplora.db.relations import CaptionClaim, GeometricRelation
from esplora.db.review import Override, ReviewVote
from esplora.db.synthetic import Generation, SpatialPrompt, Validation
from esplora.db.writes import insert_rows
from esplora.services import review

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["cat", "dog", "tree", "car"]


def _boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 150, size=(n, 2))
    wh = rng.uniform(10, 60, size=(n, 2))
    return np.hstack([xy, xy + wh])


def _relation_rows(image: int, ids: list[int], boxes: np.ndarray, depth: np.ndarray) -> list[Any]:
    a, b = np.triu_indices(len(ids), 1)
    disparity = np.column_stack([depth[a], depth[b]])
    rows = []
    for arrays in canonical_relations_many(boxes[a], boxes[b], disparity=disparity):
        for k in np.flatnonzero(arrays.present):
            s, o = (a[k], b[k]) if arrays.subject_is_a[k] else (b[k], a[k])
            rows.append(
                {
                    "image_id": image,
                    "subject_id": ids[s],
                    "object_id": ids[o],
                    "axis": arrays.axis.value,
                    "relation": _canonical(arrays.axis.value),
                    "soft": bool(arrays.soft[k]),
                    "strict": bool(arrays.strict[k]),
                    "margin": float(arrays.margin[k]),
                    "rule": "esplora",
                    "tau": 3.0,
                    "depth_gap": 1 / 3,
                    "producer": "seed",
                }
            )
    return rows


def _canonical(axis: str) -> str:
    return {"horizontal": "left_of", "vertical": "above", "depth": "in_front_of"}[axis]


def _seed_images(session: Any) -> None:
    insert_rows(
        session,
        Source,
        [
            {"id": 1, "name": "coco", "kind": "coco", "meta": {}},
            {"id": 2, "name": "web", "kind": "folder", "meta": {}},
        ],
    )
    insert_rows(
        session,
        Image,
        [
            {
                "id": i,
                "sha256": f"{i:064d}",
                "uri": f"/img/{i}.jpg",
                "width": 220,
                "height": 220,
                "origin": "synthetic" if i == 4 else "natural",
            }
            for i in range(1, 5)
        ],
    )
    insert_rows(
        session,
        Sample,
        [
            {
                "id": i,
                "image_id": i,
                "source_id": 1 if i <= 2 else 2,
                "source_key": f"k{i}",
                "caption": "a cat left of a dog <script>",
                "meta": {},
                "excluded": i == 3,
            }
            for i in range(1, 5)
        ],
    )


def _seed_geometry(session: Any) -> None:
    rng = np.random.default_rng(7)
    next_id = 1
    for image in range(1, 5):
        boxes, depth = _boxes(rng, 4), rng.uniform(0.05, 1.0, size=4)
        ids = list(range(next_id, next_id + 4))
        next_id += 4
        insert_rows(
            session,
            DetectedObject,
            [
                {
                    "id": ids[k],
                    "image_id": image,
                    "label": LABELS[k],
                    "x0": float(boxes[k, 0]),
                    "y0": float(boxes[k, 1]),
                    "x1": float(boxes[k, 2]),
                    "y1": float(boxes[k, 3]),
                    "score": None if k == 0 else 0.5 + 0.1 * k,
                    "producer_kind": "annotation" if k == 0 else "model",
                    "producer": "seed",
                }
                for k in range(4)
            ],
        )
        insert_rows(
            session,
            ObjectDepth,
            [
                {
                    "object_id": ids[k],
                    "producer": "seed",
                    "median": float(depth[k]),
                    "mean": float(depth[k]),
                    "p10": 0.0,
                    "p90": 1.0,
                }
                for k in range(4)
            ],
        )
        insert_rows(session, GeometricRelation, _relation_rows(image, ids, boxes, depth))


def _seed_review(session: Any) -> None:
    relation_ids = session.scalars(select(GeometricRelation.id).order_by(GeometricRelation.id))
    first, second, third = list(relation_ids)[:3]
    insert_rows(
        session,
        ReviewVote,
        [
            {
                "reviewer": "ann",
                "target_type": "relation",
                "target_id": first,
                "verdict": "accept",
                "proposal": {},
            },
            {
                "reviewer": "bob",
                "target_type": "relation",
                "target_id": first,
                "verdict": "accept",
                "proposal": {},
            },
            {
                "reviewer": "ann",
                "target_type": "relation",
                "target_id": second,
                "verdict": "reject",
                "proposal": {},
            },
        ],
    )
    insert_rows(
        session,
        Override,
        [
            {
                "target_type": "relation",
                "target_id": third,
                "decision": "reject",
                "values": {},
                "decided_by": "carol",
            },
        ],
    )
    insert_rows(
        session,
        CaptionClaim,
        [
            {
                "sample_id": 1,
                "clause_index": i,
                "clause_text": "a cat left of a dog",
                "relation": "left_of",
                "phrase": "left of",
                "subject_text": "cat",
                "object_text": "dog",
                "subject_label": "cat",
                "object_label": "dog",
                "agreement": agreement,
            }
            for i, agreement in enumerate(["confirmed", "confirmed", "contradicted", "unresolved"])
        ],
    )
    insert_rows(
        session,
        ImageStage,
        [
            {
                "image_id": i,
                "stage": "detect",
                "status": "failed" if i == 4 else "done",
                "attempts": 1,
                "last_error": "boom" if i == 4 else None,
                "details": {},
            }
            for i in range(1, 5)
        ],
    )


def _seed_synthetic(session: Any) -> None:
    insert_rows(
        session,
        SpatialPrompt,
        [
            {
                "id": 1,
                "text": "a cat left of a dog",
                "kind": "simple",
                "origin": "synthesized",
                "relations": [{"subject": "cat", "relation": "left_of", "object": "dog"}],
            },
        ],
    )
    insert_rows(
        session,
        Generation,
        [
            {
                "id": s,
                "prompt_id": 1,
                "generator": "tiny",
                "adapter": "",
                "adapter_scale": 1.0,
                "tore": "off",
                "prompt_used": "p",
                "seed": s,
                "steps": 1,
                "guidance": 1.0,
                "width": 64,
                "height": 64,
                "image_id": 4 if s == 1 else None,
            }
            for s in (1, 2, 3)
        ],
    )
    insert_rows(
        session,
        Validation,
        [
            {
                "generation_id": s,
                "rule": "esplora",
                "tau": 3.0,
                "depth_gap": 1 / 3,
                "producer": "seed",
                "strict": s != 3,
                "soft": True,
                "fraction_strict": 1.0,
                "fraction_soft": 1.0,
                "per_relation": [],
            }
            for s in (1, 2, 3)
        ],
    )


@pytest.fixture
def seeded(store: Store) -> Store:
    with store.unit_of_work() as session:
        _seed_images(session)
        _seed_geometry(session)
        _seed_review(session)
        _seed_synthetic(session)
    return store


@pytest.fixture
def analytics(seeded: Store, store_url: str) -> Any:
    engine = Analytics(store_url)
    yield engine
    engine.close()


def _all(engine: Analytics, sql: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = safe_query(engine.connection, sql).to_pylist()
    return result


def _store_rows(store: Store) -> list[tuple[Any, ...]]:
    with store.reader() as session:
        return [
            (r.id, r.subject_id, r.object_id, r.axis, r.strict, r.margin)
            for r in session.scalars(select(GeometricRelation).order_by(GeometricRelation.id))
        ]


# -- views --------------------------------------------------------------------------------------


def test_views_match_the_store(seeded: Store, analytics: Analytics) -> None:
    mine = _all(analytics, "SELECT id, subject_id, object_id, axis, strict, margin FROM relations")
    assert sorted(tuple(r.values()) for r in mine) == _store_rows(seeded)
    with seeded.reader() as session:
        labels = dict(session.execute(select(DetectedObject.id, DetectedObject.label)).all())
        n_images = session.scalar(select(func.count()).select_from(Image))
    for row in _all(analytics, "SELECT * FROM relations_both"):
        assert row["subject_label"] == labels[row["subject_id"]]
        assert row["object_label"] == labels[row["object_id"]]
    assert len(_all(analytics, "SELECT * FROM relations_both")) == 2 * len(mine)
    inverse = _all(
        analytics, "SELECT DISTINCT relation FROM relations_both WHERE reading = 'inverse'"
    )
    assert {r["relation"] for r in inverse} <= {"right_of", "below", "behind"}
    assert len(_all(analytics, "SELECT * FROM images")) == n_images
    assert _all(analytics, "SELECT excluded FROM images WHERE id = 3") == [{"excluded": True}]
    assert _all(analytics, "SELECT DISTINCT version FROM esplora_views") == [
        {"version": VIEWS_VERSION}
    ]
    scores = _all(analytics, "SELECT score FROM objects WHERE label = 'cat'")
    assert all(r["score"] is None for r in scores)  # NULLs survive the SQLite read


def test_views_reference_is_current() -> None:
    assert (ROOT / "docs" / "views.md").read_text(encoding="utf-8") == reference_markdown()


# -- overview -----------------------------------------------------------------------------------


def test_overview_numbers(seeded: Store, analytics: Analytics) -> None:
    data = analytics.overview()
    rows = _store_rows(seeded)
    assert data["totals"]["relations"] == len(rows) and data["totals"]["images"] == 4
    per_axis = {r["axis"]: (r["pairs"], r["strict"]) for r in data["axes"]}
    for axis in {r[3] for r in rows}:
        mine = [r for r in rows if r[3] == axis]
        assert per_axis[axis] == (len(mine), sum(r[4] for r in mine))
    assert data["claims"] == [
        {"relation": "left_of", "confirmed": 2, "contradicted": 1, "unresolved": 1}
    ]
    assert sum(b["count"] for b in data["margin_histogram"]) == len(rows)
    assert sum(b["strict"] for b in data["margin_histogram"]) == sum(r[4] for r in rows)
    assert {(b["axis"], b["relation"]) for b in data["margin_histogram"]} == {
        (r[3], _canonical(r[3])) for r in rows
    }
    assert all(b["lo"] < b["hi"] for b in data["margin_histogram"])
    depth_rows = [r for r in rows if r[3] == "depth"]
    assert sum(b["count"] for b in data["depth_gaps"]) == len(depth_rows)
    assert {b["relation"] for b in data["depth_gaps"]} == {"in_front_of"}
    assert all(b["hi"] == pytest.approx(b["lo"] + 0.05) for b in data["depth_gaps"])
    assert data["stages"] == [
        {"stage": "detect", "pending": 0, "claimed": 0, "done": 3, "failed": 1, "skipped": 0}
    ]
    assert data["failures"] == [{"stage": "detect", "error": "boom", "images": 1}]
    review = data["review"]
    # ann+bob accept: accepted; a lone reject (fewer than k=2 votes): unreviewed; override: rejected
    assert review["relations_by_state"] == {
        "accepted": 1,
        "rejected": 1,
        "unreviewed": len(rows) - 2,
    }
    assert review["votes_by_verdict"] == {"accept": 2, "reject": 1} and review["reviewers"] == 2
    assert data["retention"] == [
        {"relation": "left_of", "validations": 3, "retained": 2, "retention": 2 / 3}
    ]
    pairs = data["label_pairs"]
    assert sum(p["pairs"] for p in pairs) == len(rows)
    assert all(p["forward"] + p["backward"] == p["pairs"] for p in pairs)
    json.dumps(data)  # JSON-ready


# -- explore ------------------------------------------------------------------------------------


class SpyCursor:
    """Records every SQL statement an explore call sends."""

    def __init__(self, cursor: Any) -> None:
        self.cursor, self.statements = cursor, []  # type: ignore[var-annotated]

    def execute(self, sql: str, params: Any = None) -> Any:
        self.statements.append(sql)
        return self.cursor.execute(sql, params or [])


def test_explore_paginates_with_limit(
    analytics: Analytics, monkeypatch: pytest.MonkeyPatch
) -> None:
    spies: list[SpyCursor] = []
    real = analytics.cursor

    def spy() -> SpyCursor:
        spies.append(SpyCursor(real()))
        return spies[-1]

    monkeypatch.setattr(analytics, "cursor", spy)
    total = len(_all(analytics, "SELECT id FROM relations"))
    seen: list[int] = []
    for page in range(0, total // 5 + 1):
        rows, count = analytics.explore({}, page=page, page_size=5)
        assert count == total and len(rows) <= 5
        seen += [r["id"] for r in rows]
    assert sorted(seen) == sorted(r["id"] for r in _all(analytics, "SELECT id FROM relations"))
    for s in spies:
        page_sql = [q for q in s.statements if "count(*)" not in q]
        assert page_sql and all("LIMIT ? OFFSET ?" in q for q in page_sql)


ALL = "SELECT * FROM relations WHERE"
FILTERS: list[tuple[dict[str, Any], str]] = [
    ({"relations": ["right_of"]}, "SELECT * FROM relations_both WHERE relation = 'right_of'"),
    ({"labels": ["cat"]}, "SELECT * FROM relations WHERE 'cat' IN (subject_label, object_label)"),
    ({"subject_label": "dog"}, "SELECT * FROM relations WHERE subject_label = 'dog'"),
    ({"object_label": "tree"}, "SELECT * FROM relations WHERE object_label = 'tree'"),
    ({"strict": True}, "SELECT * FROM relations WHERE strict"),
    ({"soft": True}, "SELECT * FROM relations WHERE soft"),
    ({"margin_min": 0.0, "margin_max": 0.5}, f"{ALL} margin BETWEEN 0 AND 0.5"),
    ({"score_min": 0.65, "score_max": 0.75}, f"{ALL} score BETWEEN 0.65 AND 0.75"),
    ({"origin": "synthetic"}, "SELECT * FROM relations WHERE origin = 'synthetic'"),
    ({"review_states": ["accepted"]}, "SELECT * FROM relations WHERE review_state = 'accepted'"),
    ({"review_states": ["unreviewed"]}, f"{ALL} review_state = 'unreviewed'"),
    ({"source": "web"}, "SELECT * FROM relations WHERE image_id IN (3, 4)"),
    ({"excluded": True}, "SELECT * FROM relations WHERE image_id = 3"),
    ({"image_ids": [1, 2]}, "SELECT * FROM relations WHERE image_id IN (1, 2)"),
]


@pytest.mark.parametrize(("filters", "expected"), FILTERS, ids=[next(iter(f)) for f, _ in FILTERS])
def test_explore_filters(analytics: Analytics, filters: dict[str, Any], expected: str) -> None:
    wanted = _all(analytics, expected)
    rows, total = analytics.explore({**filters, "labels": filters.get("labels", [])}, page_size=500)
    assert wanted and total == len(wanted)
    assert sorted((r["id"], r["relation"]) for r in rows) == sorted(
        (r["id"], r["relation"]) for r in wanted
    )


def test_explore_refuses_unknown_fields_and_orders(analytics: Analytics) -> None:
    with pytest.raises(ValueError, match="unknown filter"):
        analytics.explore({"colour": "red"})
    with pytest.raises(ValueError, match="cannot order"):
        analytics.explore({}, order="id; DROP TABLE x")
    rows, _ = analytics.explore({}, order="-margin", page_size=500)
    assert [r["margin"] for r in rows] == sorted((r["margin"] for r in rows), reverse=True)


# -- refresh and the mirror ---------------------------------------------------------------------


def test_a_change_in_the_store_shows_after_refresh(seeded: Store, analytics: Analytics) -> None:
    target = _all(
        analytics, "SELECT id FROM relations WHERE review_state = 'unreviewed' ORDER BY id LIMIT 1"
    )[0]["id"]
    assert not analytics.refresh().changed  # nothing moved: one probe, no reads
    with seeded.unit_of_work() as session:
        insert_rows(
            session,
            ReviewVote,
            [
                {
                    "reviewer": reviewer,
                    "target_type": "relation",
                    "target_id": target,
                    "verdict": "accept",
                    "proposal": {},
                }
                for reviewer in ("dan", "eve")  # k = 2 votes agree: accepted
            ],
        )
    assert analytics.refresh().full == ["votes"]
    row = _all(analytics, f"SELECT review_state, human_ok FROM relations WHERE id = {target}")
    assert row == [{"review_state": "accepted", "human_ok": True}]


def _answers(engine: Analytics) -> Any:
    return engine.overview(), engine.explore({"strict": True}, page_size=500)


def test_incremental_mirror_reads_only_the_delta(
    seeded: Store, store_url: str, analytics: Analytics, tmp_path: Path
) -> None:
    mirror = Analytics(store_url, mirror_dir=tmp_path / "mirror", mirror_threshold_rows=0)
    assert _answers(mirror) == _answers(analytics)
    with seeded.unit_of_work() as session:
        first = session.scalars(select(GeometricRelation).order_by(GeometricRelation.id)).first()
        assert first is not None
        first.strict = not first.strict
        insert_rows(
            session,
            ReviewVote,
            [
                {
                    "reviewer": "eve",
                    "target_type": "relation",
                    "target_id": first.id,
                    "verdict": "reject",
                    "proposal": {},
                }
            ],
        )
    report = mirror.refresh()
    assert sorted(report.delta) == ["relations", "votes"] and report.rows_read == 2
    analytics.refresh()
    assert _answers(mirror) == _answers(analytics)
    mirror.close()
    restarted = Analytics(store_url, mirror_dir=tmp_path / "mirror", mirror_threshold_rows=0)
    assert restarted.reader.rows_read == 2  # only `sources` (untracked, 2 rows) is re-read
    assert _answers(restarted) == _answers(analytics)
    with seeded.unit_of_work() as session:  # a delete leaves no change_seq: caught by the count
        session.execute(delete(ReviewVote).where(ReviewVote.reviewer == "eve"))
    assert restarted.refresh().full == ["votes"]
    analytics.refresh()
    assert _answers(restarted) == _answers(analytics)
    restarted.close()


def _served_equals_recomputed(engine: Analytics, reference: Analytics) -> None:
    """The aggregate-served Overview equals a recomputation on the same tables, exactly, and
    the small-store path's (no mirror) numbers too."""
    assert engine.aggregated
    served = engine.overview()
    assert served == overview_queries.overview(engine.cursor())
    reference.refresh()
    assert served == reference.overview()


def _new_image_with_relations(session: Any) -> None:
    insert_rows(session, Image, [{"id": 5, "sha256": "5" * 64, "uri": "/img/5.jpg", "width": 220,
                                  "height": 220, "origin": "natural"}])  # fmt: skip
    boxes = np.array([[0, 0, 20, 20], [100, 100, 130, 140], [40, 150, 90, 200]], dtype=float)
    depth = np.array([0.2, 0.9, 0.55])
    insert_rows(session, DetectedObject, [
        {"id": 100 + k, "image_id": 5, "label": ["dog", "cup", "cat"][k], "x0": boxes[k, 0],
         "y0": boxes[k, 1], "x1": boxes[k, 2], "y1": boxes[k, 3], "score": 0.9,
         "producer_kind": "model", "producer": "seed"}
        for k in range(3)
    ])  # fmt: skip
    insert_rows(session, ObjectDepth, [
        {"object_id": 100 + k, "producer": "seed", "median": float(depth[k]),
         "mean": float(depth[k]), "p10": 0.0, "p90": 1.0}
        for k in range(3)
    ])  # fmt: skip
    insert_rows(session, GeometricRelation, _relation_rows(5, [100, 101, 102], boxes, depth))


def test_maintained_aggregates_equal_a_recomputation(
    seeded: Store,
    store_url: str,
    analytics: Analytics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = Analytics(store_url, mirror_dir=tmp_path / "mirror", mirror_threshold_rows=0)
    _served_equals_recomputed(engine, analytics)
    rebuilds: list[int] = []
    real_rebuild = aggregates.rebuild
    monkeypatch.setattr(aggregates, "rebuild", lambda c: (rebuilds.append(1), real_rebuild(c)))
    with seeded.unit_of_work() as session:  # inserts: a new image's objects, depths, relations
        _new_image_with_relations(session)
    report = engine.refresh()
    assert {"relations", "objects", "object_depths"} <= set(report.delta) and not report.full
    _served_equals_recomputed(engine, analytics)
    with seeded.unit_of_work() as session:  # updates: relabel, new depth, flipped strictness
        relations = list(session.scalars(select(GeometricRelation).order_by(GeometricRelation.id)))
        relations[0].strict, relations[0].margin = not relations[0].strict, 0.123456789
        relations[1].relation, relations[1].soft = "left_of", not relations[1].soft
        relations[2].margin = 99.5  # beyond the edges: the histogram's bins move
        ids = [r.id for r in relations]
        cat, depth = session.get(DetectedObject, 1), session.get(ObjectDepth, (6, "seed"))
        assert cat is not None and depth is not None
        cat.label, depth.median = "cup", 0.999
    assert sorted(engine.refresh().delta) == ["object_depths", "objects", "relations"]
    _served_equals_recomputed(engine, analytics)
    review.vote(seeded, "zoe", ReviewTarget.RELATION, ids[3], "reject")
    assert engine.refresh().delta == ["votes"] and not rebuilds
    _served_equals_recomputed(engine, analytics)
    with seeded.unit_of_work() as session:  # a delete: the table is re-read, the sums rebuilt
        session.execute(delete(GeometricRelation).where(GeometricRelation.id == ids[2]))
    assert "relations" in engine.refresh().full and rebuilds == [1]
    _served_equals_recomputed(engine, analytics)
    engine.close()
    restarted = Analytics(store_url, mirror_dir=tmp_path / "mirror", mirror_threshold_rows=0)
    _served_equals_recomputed(restarted, analytics)  # restored tables, aggregates rebuilt
    restarted.close()


PAIR_FILTERS: list[tuple[dict[str, Any], str]] = [
    ({"relations": ["right_of"], "strict": True, "labels": ["cat", "dog"]}, "id"),
    ({"labels": ["cup"]}, "-margin"),
    ({"subject_label": "cat", "score_min": 0.5}, "score"),
    ({"relations": ["left_of", "below"], "object_label": "dog"}, "-subject_label"),
    ({"score_max": 0.8, "origin": "natural", "review_states": ["unreviewed"]}, "object_label"),
    ({"excluded": False}, "-score"),
]


def _pairs_equal_the_join(engine: Analytics) -> None:
    """Explore with labels and scores from the maintained ``relation_pairs`` returns what the
    join of ``objects`` returns, and the table equals a rebuild."""
    assert engine.aggregated
    cursor = engine.cursor()
    table = sorted(cursor.execute(f"SELECT * FROM {pairs.TABLE}").fetchall())
    assert table == sorted(cursor.execute(pairs.select()).fetchall())
    totals = []
    for filters, order in PAIR_FILTERS:
        assert pairs.TABLE in explore_queries.match_sql(filters, order.lstrip("-"), True)[0]
        served = engine.explore(filters, page_size=500, order=order)
        joined = explore_queries.explore(cursor, filters, page=0, page_size=500, order=order)
        assert served == joined, filters
        totals.append(served[1])
    assert all(totals[:1] + totals[2:])  # ("cup" only after the inserts)


def test_explore_pairs_equal_the_join(
    seeded: Store, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Analytics(store_url, mirror_dir=tmp_path / "mirror", mirror_threshold_rows=0)
    _pairs_equal_the_join(engine)
    builds: list[int] = []
    real_build = pairs.build
    monkeypatch.setattr(pairs, "build", lambda c: (builds.append(1), real_build(c)))
    with seeded.unit_of_work() as session:  # inserts
        _new_image_with_relations(session)
    assert "relations" in engine.refresh().delta
    _pairs_equal_the_join(engine)
    with seeded.unit_of_work() as session:  # a relabel and a new score, a relation update
        cat, other = session.get(DetectedObject, 1), session.get(DetectedObject, 101)
        assert cat is not None and other is not None
        cat.label, other.score = "cup", 0.55
        first = session.scalars(select(GeometricRelation).order_by(GeometricRelation.id)).first()
        assert first is not None
        first.relation, first.strict = "left_of", not first.strict
        first_id = first.id
    assert sorted(engine.refresh().delta) == ["objects", "relations"] and not builds
    _pairs_equal_the_join(engine)
    with seeded.unit_of_work() as session:  # a delete: re-read, the table rebuilt
        session.execute(delete(GeometricRelation).where(GeometricRelation.id == first_id))
    assert "relations" in engine.refresh().full and builds == [1]
    _pairs_equal_the_join(engine)
    engine.close()
    small = Analytics(store_url, mirror_dir=tmp_path / "mirror", mirror_threshold_rows=10**9)
    assert not small.aggregated  # the small-store path keeps the join
    for filters, order in PAIR_FILTERS:
        assert pairs.TABLE not in explore_queries.match_sql(filters, order.lstrip("-"))[0]
        assert small.explore(filters, page_size=500, order=order)[1] > 0
    small.close()


def test_the_small_store_path_recomputes(store_url: str, seeded: Store, tmp_path: Path) -> None:
    engine = Analytics(store_url, mirror_dir=tmp_path / "mirror", mirror_threshold_rows=10**9)
    assert not engine.aggregated
    assert engine.overview() == overview_queries.overview(engine.cursor())
    engine.close()


@pytest.mark.parametrize(("rows", "path"), [(0, "delta"), (10**9, "full")])
def test_the_mirror_row_setting_switches_the_refresh_path(
    seeded: Store,
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rows: int,
    path: str,
) -> None:
    from esplora.services import stats
    from esplora.settings import get_settings

    monkeypatch.setenv("ESPLORA_DATABASE_URL", store_url)
    monkeypatch.setenv("ESPLORA_ANALYTICS_MIRROR_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("ESPLORA_ANALYTICS_MIRROR_ROWS", str(rows))
    get_settings.cache_clear()
    stats.clear_cache()
    try:
        engine = stats.analytics_for(get_settings())
        assert engine.threshold == rows and engine.mirror is not None
        assert (tmp_path / "elsewhere").is_dir()  # the setting's directory, not home's
        assert not (get_settings().home / "analytics-mirror").exists()
        with seeded.unit_of_work() as session:
            first = session.scalars(
                select(GeometricRelation).order_by(GeometricRelation.id)
            ).first()
            assert first is not None
            first.strict = not first.strict
        report = engine.refresh()
        assert getattr(report, path) == ["relations"]
    finally:
        stats.clear_cache()


# -- calibration --------------------------------------------------------------------------------


def test_calibration_reproduces_stored_strictness(seeded: Store, analytics: Analytics) -> None:
    result = analytics.calibration([1.5, 3.0, 8.0], [1 / 3, 0.9])
    rows = _store_rows(seeded)
    by_relation = {(r["relation"], r["parameter"], r["value"]): r for r in result["sweep"]}
    for axis, relation, parameter, value in [
        ("horizontal", "left_of", "tau", 3.0),
        ("vertical", "above", "tau", 3.0),
        ("depth", "in_front_of", "depth_gap", 1 / 3),
    ]:
        mine = [r for r in rows if r[3] == axis]
        if mine:
            row = by_relation[(relation, parameter, value)]
            assert (row["pairs"], row["strict"]) == (len(mine), sum(r[4] for r in mine))
    yields = [by_relation[("left_of", "tau", t)]["strict"] for t in (1.5, 3.0, 8.0)]
    assert yields == sorted(yields, reverse=True)  # a larger τ is stricter
    confusion = {r["relation"]: r for r in result["confusion"]}
    assert sum(sum(v for k, v in r.items() if k != "relation") for r in confusion.values()) == 3


# -- the SQL box --------------------------------------------------------------------------------

REFUSED = [
    "DROP TABLE store.relations",
    "DROP VIEW relations",
    "UPDATE store.relations SET strict = NOT strict",
    "DELETE FROM store.votes",
    "INSERT INTO store.votes SELECT * FROM store.votes",
    "CREATE TABLE x AS SELECT 1",
    "ATTACH '/tmp/esplora-attack.db' AS x",
    "COPY (SELECT * FROM relations) TO '/tmp/esplora-attack.csv'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "PRAGMA enable_profiling",
    "SELECT 1; DROP TABLE store.relations",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM glob('/*')",
    "SELECT getenv('HOME')",
    "SELECT * FROM read_parquet('/tmp/*.parquet')",
    "SELEC oops",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_the_sql_box_refuses_writes_and_outside_reads(
    seeded: Store, store_url: str, analytics: Analytics, sql: str
) -> None:
    before = StoreReader(store_url).probe()
    with pytest.raises(QueryRefused) as error:
        safe_query(analytics.connection, sql)
    assert str(error.value)
    assert StoreReader(store_url).probe() == before
    assert not Path("/tmp/esplora-attack.csv").exists()
    assert _all(analytics, "SELECT count(*) AS n FROM relations")[0]["n"] == len(
        _store_rows(seeded)
    )


def test_the_sql_box_runs_selects_and_limits_rows(analytics: Analytics) -> None:
    table = safe_query(
        analytics.connection, "WITH r AS (SELECT * FROM relations) SELECT count(*) AS n FROM r"
    )
    assert table.num_rows == 1
    assert safe_query(analytics.connection, "EXPLAIN SELECT * FROM relations").num_rows >= 1
    big = safe_query(analytics.connection, "SELECT * FROM range(100000)", max_rows=10)
    assert big.num_rows == 10 and big.schema.metadata[b"truncated"] == b"true"


def test_a_slow_query_is_interrupted(analytics: Analytics) -> None:
    sql = (
        "SELECT count(*) FROM range(1000000000) a, range(1000000000) b WHERE a.range + b.range = 7"
    )
    with pytest.raises(QueryTimeout, match=r"longer than 0\.5 s"):
        safe_query(analytics.connection, sql, timeout_s=0.5)
    assert safe_query(analytics.connection, "SELECT 1 AS one").to_pylist() == [{"one": 1}]


# -- command line -------------------------------------------------------------------------------


def _cli(store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ESPLORA_DATABASE_URL": store_url}
    esplora = str(Path(sys.executable).parent / "esplora")
    return subprocess.run([esplora, *args], capture_output=True, text=True, env=env, timeout=120)


def test_stats_and_query_commands(seeded: Store, store_url: str) -> None:
    done = _cli(store_url, "stats", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["totals"]["images"] == 4
    done = _cli(store_url, "query", "SELECT id, origin FROM images ORDER BY id", "--json")
    assert done.returncode == 0, done.stderr
    assert [r["origin"] for r in json.loads(done.stdout)][-1] == "synthetic"
    done = _cli(store_url, "query", "SELECT id, uri FROM images")
    assert done.returncode == 0 and "/img/1.jpg" in done.stdout
    done = _cli(store_url, "query", "DROP TABLE store.images")
    assert done.returncode == 2 and "read-only" in done.stderr


def test_review_states_follow_the_services_one_rule(seeded: Store, analytics: Analytics) -> None:
    """The Explore page and snapshots must agree on every item's state: DuckDB's view and
    :func:`esplora.services.review_state.effective_state` give the same answer."""
    from sqlalchemy import select as sql_select

    from esplora.db.enums import ReviewTarget
    from esplora.db.relations import GeometricRelation
    from esplora.services import review
    from esplora.services.review_state import effective_state

    with seeded.reader() as session:
        ids = list(
            session.scalars(sql_select(GeometricRelation.id).order_by(GeometricRelation.id))
        )[:6]
    patterns = [
        ["accept", "accept"],
        ["accept", "reject"],
        ["reject", "reject", "accept"],
        ["flip"],
        ["flip", "flip"],
        [],
    ]
    for item, verdicts in zip(ids, patterns, strict=True):
        for n, verdict in enumerate(verdicts):
            review.vote(seeded, f"r{n}-{item}", ReviewTarget.RELATION, item, verdict)
    analytics.refresh()
    rows = _all(analytics, "SELECT id, review_state FROM relations")
    duck = {r["id"]: r["review_state"] for r in rows if r["id"] in ids}
    with seeded.reader() as session:
        states = effective_state(session, ReviewTarget.RELATION, ids)
    assert duck == {i: str(states[i].state) for i in ids}
