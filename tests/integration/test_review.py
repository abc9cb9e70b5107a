"""The review model on a real store (SQLite and PostgreSQL): votes, assignment, effective
state, adjudication with version checks, bulk decisions, the typed filter, the CLI."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from esplora.db.engine import Store
from esplora.db.enums import Origin, ProducerKind, ReviewTarget, SourceKind, VoteVerdict
from esplora.db.images import Image, Sample, Source
from esplora.db.models import DetectedObject
from esplora.db.relations import GeometricRelation
from esplora.db.review import Override, ReviewAssignment, ReviewVote
from esplora.errors import EsploraError
from esplora.services.agreement import agreement_by_relation
from esplora.services.filters import ItemFilter, apply
from esplora.services.review import (
    ReviewConflict,
    adjudicate,
    adjudication_queue,
    assign_next,
    bulk_decide,
    vote,
)
from esplora.services.review_state import (
    ReviewStatus,
    effective_relation,
    effective_state,
    state_sql,
)

# (image, origin, source, excluded, objects: (label, score)), relations: (s, o, relation, margin,
# strict, soft). Margins are distinct so the queue order (|margin|, then id) is known.
IMAGES: list[tuple[int, Origin, str, bool, list[tuple[str, float | None]]]] = [
    (1, Origin.NATURAL, "coco", False, [("cat", 0.9), ("dog", 0.5), ("tree", None)]),
    (2, Origin.SYNTHETIC, "gen", True, [("car", 0.8), ("bench", 0.7)]),
]
RELATIONS = [  # ids 1..4 in this order
    (1, "cat", "dog", "left_of", 0.05, True, True),
    (1, "cat", "tree", "above", -0.30, False, True),
    (1, "dog", "tree", "left_of", 0.20, True, True),
    (2, "car", "bench", "left_of", 0.01, True, True),
]


def _seed(store: Store) -> dict[str, int]:
    """Seed the images, objects and relations above; returns object ids by label."""
    with store.unit_of_work() as session:
        boxes = _seed_images(session)
        for image_id, s, o, relation, margin, strict, soft in RELATIONS:
            axis = "horizontal" if relation == "left_of" else "vertical"
            row = {"axis": axis, "relation": relation, "soft": soft, "strict": strict}
            session.add(
                GeometricRelation(
                    **row,
                    image_id=image_id,
                    subject_id=boxes[s],
                    object_id=boxes[o],
                    margin=margin,
                    rule="esplora",
                    tau=0.0,
                    depth_gap=0.1,
                    producer="test",
                )
            )
            session.flush()
    return boxes


def _seed_images(session: Session) -> dict[str, int]:
    session.add_all([Source(name=n, kind=SourceKind.FOLDER) for n in ("coco", "gen")])
    session.flush()
    sources = {s.name: s.id for s in session.scalars(select(Source))}
    boxes: dict[str, int] = {}
    for image_id, origin, source, excluded, objects in IMAGES:
        sha = str(image_id) * 64
        session.add(Image(id=image_id, sha256=sha, uri="x", width=99, height=99, origin=origin))
        session.flush()
        key = str(image_id)
        session.add(
            Sample(image_id=image_id, source_id=sources[source], source_key=key, excluded=excluded)
        )
        for n, (label, score) in enumerate(objects):
            box = DetectedObject(
                image_id=image_id,
                label=label,
                **{"x0": n, "y0": n, "x1": n + 5, "y1": n + 5},
                score=score,
                producer_kind=ProducerKind.MODEL,
                producer="m",
            )
            session.add(box)
            session.flush()
            boxes[label] = box.id
    return boxes


def _count(store: Store, model: type[Any]) -> int:
    with store.reader() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _machine(store: Store) -> list[tuple[Any, ...]]:
    row = GeometricRelation
    with store.reader() as session:
        return [
            tuple(r)
            for r in session.execute(
                select(
                    row.id, row.relation, row.subject_id, row.object_id, row.strict, row.margin
                ).order_by(row.id)
            )
        ]


# --- votes -------------------------------------------------------------------------------------


def test_votes_are_append_only_and_validated(store: Store) -> None:
    boxes = _seed(store)
    first = vote(store, "alice", "relation", 1, "accept")
    second = vote(store, "alice", "relation", 1, "reject", note="changed my mind")
    assert second > first and _count(store, ReviewVote) == 2
    vote(store, "bob", "relation", 1, "relabel", proposal={"relation": "Right Of"})
    vote(
        store,
        "bob",
        "relation",
        1,
        "choose_detection",
        proposal={"object_id": boxes["tree"], "side": "object"},
    )
    with store.reader() as session:
        stored = session.scalars(select(ReviewVote.proposal).order_by(ReviewVote.id)).all()
    assert stored[2] == {"relation": "right_of"}
    bad: list[tuple[tuple[Any, ...], dict[str, Any], str]] = [
        (("relation", 99, "accept"), {}, "no relation 99"),
        (("relation", 1, "relabel"), {}, "needs"),
        (("relation", 1, "relabel"), {"proposal": {"relation": "sideways"}}, "sideways"),
        (("relation", 1, "accept"), {"proposal": {"relation": "above"}}, "no proposal"),
        (("sample", 1, "flip"), {}, "only relations and claims"),
        (
            ("relation", 1, "choose_detection"),
            {"proposal": {"object_id": boxes["car"], "side": "subject"}},
            "not a detection on image 1",
        ),
        (("relation", 1, "maybe"), {}, "unknown verdict"),
    ]
    for args, kwargs, message in bad:
        with pytest.raises(EsploraError, match=message):
            vote(store, "carol", *args, **kwargs)
    with pytest.raises(EsploraError, match="reviewer name"):
        vote(store, "  ", "relation", 1, "accept")
    assert _count(store, ReviewVote) == 4  # refused votes wrote nothing


# --- assignment --------------------------------------------------------------------------------


def test_assignment_gives_each_item_to_k_reviewers_most_ambiguous_first(store: Store) -> None:
    _seed(store)
    natural = ItemFilter(origin="natural")  # relations 1 (|0.05|), 3 (|0.20|), 2 (|0.30|)
    assert assign_next(store, "alice", natural) == 1
    assert assign_next(store, "alice", natural) == 1  # an open assignment comes back
    assert assign_next(store, "bob", natural) == 1
    assert assign_next(store, "carol", natural) == 3  # item 1 has its k = 2 reviewers
    vote(store, "alice", "relation", 1, "accept")
    assert assign_next(store, "alice", natural) == 3  # never item 1 again
    assert assign_next(store, "dave", natural, k=1) == 2
    with store.reader() as session:
        done = session.scalars(
            select(ReviewAssignment).where(ReviewAssignment.done_at.is_not(None))
        ).all()
        per_item = dict(
            session.execute(
                select(ReviewAssignment.target_id, func.count()).group_by(
                    ReviewAssignment.target_id
                )
            ).all()
        )
    assert [(a.reviewer, a.target_id) for a in done] == [("alice", 1)]
    assert per_item == {1: 2, 3: 2, 2: 1}
    for reviewer in ("erin", "frank"):
        assign_next(store, reviewer, natural)
    assert assign_next(store, "gina", natural) is None  # every natural item is full


def test_a_decided_item_is_not_assigned(store: Store) -> None:
    _seed(store)
    adjudicate(store, "lead", "relation", 4, "reject", expected_version=1)
    assert assign_next(store, "alice", ItemFilter(image_ids=(2,))) is None


def _assign_worker(url: str, name: str, rounds: int) -> None:
    store = Store.from_url(url)
    for i in range(rounds):
        assign_next(store, f"{name}-{i}", ItemFilter())
    store.dispose()


def test_concurrent_assignment_never_over_assigns(store_url: str) -> None:
    store = Store.from_url(store_url)
    _seed(store)
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_assign_worker, args=(store_url, f"p{n}", 6)) for n in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    with store.reader() as session:
        per_item = dict(
            session.execute(
                select(ReviewAssignment.target_id, func.count()).group_by(
                    ReviewAssignment.target_id
                )
            ).all()
        )
    assert per_item == {1: 2, 2: 2, 3: 2, 4: 2}  # 12 requests, 8 slots: all filled, none twice
    store.dispose()


# --- effective state ---------------------------------------------------------------------------

FLIP: tuple[str, dict[str, Any]] = ("flip", {})
ACCEPT: tuple[str, dict[str, Any]] = ("accept", {})
REJECT: tuple[str, dict[str, Any]] = ("reject", {})


def _to(relation: str) -> tuple[str, dict[str, Any]]:
    return ("relabel", {"relation": relation})


STATE_CASES: list[tuple[str, list[tuple[str, dict[str, Any]]], int, str, str]] = [
    # (case, votes, k, state, source)
    ("no votes", [], 2, "unreviewed", "machine"),
    ("one vote, k=2", [ACCEPT], 2, "unreviewed", "machine"),
    ("one vote, k=1", [REJECT], 1, "rejected", "votes"),
    ("two accepts", [ACCEPT, ACCEPT], 2, "accepted", "votes"),
    ("accept vs reject", [ACCEPT, REJECT], 2, "disputed", "votes"),
    ("two of three reject", [REJECT, ACCEPT, REJECT], 2, "rejected", "votes"),
    ("two flips", [FLIP, FLIP], 2, "changed", "votes"),
    ("same relabel", [_to("above"), _to("above")], 2, "changed", "votes"),
    ("different relabels", [_to("above"), _to("below")], 2, "disputed", "votes"),
    ("no strict majority", [ACCEPT, REJECT, FLIP], 3, "disputed", "votes"),
    ("two of four is no majority", [ACCEPT, ACCEPT, REJECT, REJECT], 2, "disputed", "votes"),
]


@pytest.mark.parametrize(
    ("case", "votes", "k", "state", "source"), STATE_CASES, ids=[c[0] for c in STATE_CASES]
)
def test_effective_state_rules(
    store: Store,
    case: str,
    votes: list[tuple[str, dict[str, Any]]],
    k: int,
    state: str,
    source: str,
) -> None:
    _seed(store)
    for n, (verdict, proposal) in enumerate(votes):
        vote(store, f"r{n}", "relation", 1, verdict, proposal=proposal)
    with store.reader() as session:
        result = effective_state(session, ReviewTarget.RELATION, [1], k=k)[1]
        in_sql = session.scalar(
            select(state_sql(ReviewTarget.RELATION, GeometricRelation.id, k=k)).where(
                GeometricRelation.id == 1
            )
        )
    assert (result.state.value, result.source.value, result.votes) == (state, source, len(votes))
    assert in_sql == state  # the SQL translation decides the same


def test_an_adjudicated_decision_wins_over_votes(store: Store) -> None:
    _seed(store)
    for reviewer in ("a", "b"):
        vote(store, reviewer, "relation", 1, "accept")
    adjudicate(
        store, "lead", "relation", 1, "relabel", values={"relation": "below"}, expected_version=1
    )
    with store.reader() as session:
        state = effective_state(session, ReviewTarget.RELATION, [1, 2])
        reading = effective_relation(session, [1])[1]
    assert state[1].state is ReviewStatus.CHANGED and state[1].source.value == "adjudicated"
    assert state[1].values == {"relation": "below"} and state[1].votes == 2
    assert state[2].state is ReviewStatus.UNREVIEWED
    assert reading.effective is not None and reading.effective.relation == "below"
    assert reading.machine.relation == "left_of"


def test_a_flip_swaps_subject_and_object_and_a_reject_removes_the_reading(store: Store) -> None:
    boxes = _seed(store)
    adjudicate(store, "lead", "relation", 1, "flip", expected_version=1)
    adjudicate(store, "lead", "relation", 3, "reject", expected_version=1)
    with store.reader() as session:
        readings = effective_relation(session, [1, 3, 4])
    flipped = readings[1].effective
    assert flipped is not None and (flipped.subject_id, flipped.object_id) == (
        boxes["dog"],
        boxes["cat"],
    )
    assert readings[3].effective is None
    assert readings[4].effective == readings[4].machine


# --- adjudication ------------------------------------------------------------------------------


def test_the_second_of_two_adjudications_on_one_version_is_a_conflict(store: Store) -> None:
    _seed(store)
    machine = _machine(store)
    with store.reader() as session:  # both reviewers loaded the item at version 1
        seen = session.get(GeometricRelation, 1)
        assert seen is not None and seen.version == 1
    adjudicate(
        store, "alice", "relation", 1, "reject", reason="not a dog", expected_version=seen.version
    )
    with pytest.raises(
        ReviewConflict,
        match=r"relation 1 was changed by alice at .* \(version 2, you saw 1\): reload",
    ):
        adjudicate(store, "bob", "relation", 1, "accept", expected_version=seen.version)
    with store.reader() as session:
        overrides = session.scalars(select(Override)).all()
        version = session.scalar(select(GeometricRelation.version).where(GeometricRelation.id == 1))
    assert [(o.decided_by, o.decision) for o in overrides] == [("alice", VoteVerdict.REJECT)]
    assert version == 2 and _machine(store) == machine  # machine values untouched
    second = adjudicate(store, "bob", "relation", 1, "accept", expected_version=2)  # after reload
    with store.reader() as session:
        rows = {o.id: o for o in session.scalars(select(Override))}
        state = effective_state(session, ReviewTarget.RELATION, [1])[1]
    assert rows[overrides[0].id].superseded_by == second and rows[second].superseded_by is None
    assert state.state is ReviewStatus.ACCEPTED


def test_adjudication_queue_lists_disputed_items(store: Store) -> None:
    _seed(store)
    vote(store, "a", "relation", 3, "accept")
    vote(store, "b", "relation", 3, "reject")
    vote(store, "a", "relation", 1, "accept")
    vote(store, "b", "relation", 1, "accept")
    queue = adjudication_queue(store)
    assert [(q["target_id"], q["votes"], q["version"]) for q in queue] == [
        (3, {"accept": 1, "reject": 1}, 1)
    ]
    adjudicate(store, "lead", "relation", 3, "accept", expected_version=1)
    assert adjudication_queue(store) == []


# --- bulk --------------------------------------------------------------------------------------


def test_bulk_decide_counts_then_confirms(store: Store) -> None:
    _seed(store)
    machine = _machine(store)
    strict = ItemFilter(strict=True, origin="natural")  # relations 1 and 3
    assert bulk_decide(store, "lead", strict, "accept", dry_run=True) == 2
    assert _count(store, Override) == 0  # a dry run writes nothing
    with pytest.raises(ReviewConflict, match="now matches 2 items, not the 5"):
        bulk_decide(store, "lead", strict, "accept", dry_run=False, expected=5)
    assert bulk_decide(store, "lead", strict, "accept", dry_run=False, expected=2) == 2
    assert bulk_decide(store, "lead", strict, "accept", dry_run=True) == 0  # already accepted
    assert bulk_decide(store, "lead", strict, "reject", dry_run=False) == 2
    with store.reader() as session:
        states = effective_state(session, ReviewTarget.RELATION, [1, 2, 3])
        versions = dict(
            session.execute(select(GeometricRelation.id, GeometricRelation.version)).all()
        )
    assert [states[i].state.value for i in (1, 2, 3)] == ["rejected", "unreviewed", "rejected"]
    assert versions[1] == 3 and versions[2] == 1 and _machine(store) == machine
    with pytest.raises(EsploraError, match="accept or reject"):
        bulk_decide(store, "lead", strict, "flip", dry_run=True)


# --- the typed filter --------------------------------------------------------------------------


def test_filter_json_is_canonical() -> None:
    a = ItemFilter(
        relations=("right_of", "above"), labels=("dog", "cat"), strict=True, margin_min=0.0
    )
    b = ItemFilter.from_json(
        '{"margin_min": 0.0, "strict": true, "labels": ["cat", "dog", "cat"],'
        ' "relations": ["Above", "right of"]}'
    )
    assert a == b and a.to_json() == b.to_json()
    assert a.to_json() == (
        '{"labels":["cat","dog"],"margin_min":0.0,"relations":["above","right_of"],"strict":true}'
    )
    assert ItemFilter.from_json(a.to_json()) == a and ItemFilter.from_json(a.to_dict()) == a
    assert ItemFilter().to_json() == "{}" and ItemFilter.from_json(None) == ItemFilter()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"relations": ["sideways"]}, "unknown relation 'sideways'"),
        ({"relations": ["near"]}, "only directional"),
        ({"review_states": ["maybe"]}, "unknown review state 'maybe'"),
        ({"origin": "drawn"}, "unknown origin 'drawn'"),
        ({"colour": "red"}, r"unknown filter field\(s\) \['colour'\]"),
        ({"margin_min": 1, "margin_max": 0}, "margin_min 1 is above margin_max 0"),
        ({"strict": "yes"}, "must be bool"),
        ({"labels": "cat"}, "must be a list"),
    ],
)
def test_a_bad_filter_names_the_value(data: dict[str, Any], message: str) -> None:
    with pytest.raises(EsploraError, match=message):
        ItemFilter.from_json(data)


FILTER_CASES: list[tuple[dict[str, Any], list[int]]] = [
    ({}, [1, 2, 3, 4]),
    ({"relations": ["left_of"]}, [1, 3, 4]),
    ({"relations": ["right_of"], "subject_label": "dog"}, [1]),  # "dog right of cat" = row 1
    ({"relations": ["left_of"], "subject_label": "dog"}, [3]),
    ({"relations": ["below"], "subject_label": "tree"}, [2]),
    ({"relations": ["right_of", "above"], "object_label": "cat"}, [1]),
    ({"subject_label": "cat", "object_label": "tree"}, [2]),
    ({"labels": ["tree"]}, [2, 3]),
    ({"strict": False}, [2]),
    ({"margin_min": 0.0, "margin_max": 0.1}, [1, 4]),
    ({"score_min": 0.7}, [2, 4]),  # min(cat 0.9, tree 1.0 for no score); min(car, bench) = 0.7
    ({"score_max": 0.6}, [1, 3]),  # dog's 0.5
    ({"origin": "synthetic"}, [4]),
    ({"source": "coco"}, [1, 2, 3]),
    ({"excluded": True}, [4]),
    ({"excluded": False}, [1, 2, 3]),
    ({"image_ids": [2]}, [4]),
    ({"review_states": ["unreviewed"]}, [2, 3, 4]),
    ({"review_states": ["accepted", "rejected"]}, [1]),
]


def test_apply_selects_what_the_filter_says(store: Store) -> None:
    _seed(store)
    adjudicate(store, "lead", "relation", 1, "accept", expected_version=1)
    with store.reader() as session:
        for data, expected in FILTER_CASES:
            statement = apply(select(GeometricRelation.id), ItemFilter.from_json(data))
            assert list(session.scalars(statement.order_by(GeometricRelation.id))) == expected, data


# --- agreement ---------------------------------------------------------------------------------


def test_agreement_per_relation(store: Store) -> None:
    _seed(store)
    for target, verdicts in {
        1: ("accept", "accept"),
        3: ("reject", "reject"),
        2: ("accept", "reject"),
    }.items():
        for reviewer, verdict in zip(("a", "b"), verdicts, strict=True):
            vote(store, reviewer, "relation", target, verdict)
    result = agreement_by_relation(store)
    assert set(result) == {"above", "all", "left_of"}
    assert result["left_of"]["fleiss_kappa"] == 1.0 and result["left_of"]["items"] == 2
    assert result["above"]["fleiss_kappa"] == -1.0  # one item, split: every pair disagrees
    assert result["all"]["votes"] == 6 and result["all"]["krippendorff_alpha"] is not None


# --- CLI ---------------------------------------------------------------------------------------


def _cli(url: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ESPLORA_DATABASE_URL": url}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "esplora"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert (done.returncode == 0) == ok, done.stderr
    return done


def _json(url: str, *args: str) -> Any:
    return json.loads(_cli(url, "review", *args, "--json").stdout)


def test_cli_next_vote_queue_and_agreement(store: Store, store_url: str) -> None:
    _seed(store)
    taken = _json(store_url, "next", "--reviewer", "alice", "--filter", '{"origin": "natural"}')
    assert taken["target_id"] == 1 and taken["item"]["state"]["state"] == "unreviewed"
    _cli(store_url, "review", "vote", "1", "--reviewer", "alice", "--verdict", "accept")
    relabel = ("--verdict", "relabel", "--to", "above")
    _cli(store_url, "review", "vote", "1", "--reviewer", "bob", *relabel)
    assert [q["target_id"] for q in _json(store_url, "queue")] == [1]
    assert _json(store_url, "agreement")["all"]["votes"] == 2
    bad = _cli(
        store_url,
        "review",
        "next",
        "--reviewer",
        "a",
        "--filter",
        '{"relations": ["up"]}',
        ok=False,
    )
    assert bad.returncode == 2 and "unknown relation 'up'" in bad.stderr


def test_cli_adjudicate_conflict_and_bulk(store: Store, store_url: str) -> None:
    _seed(store)
    decide = ("review", "adjudicate", "1", "--expected-version", "1", "--decision")
    _cli(store_url, *decide, "accept", "--reviewer", "lead")
    refused = _cli(store_url, *decide, "reject", "--reviewer", "eve", ok=False)
    assert refused.returncode == 2 and "was changed by lead" in refused.stderr
    bulk = (
        "bulk",
        "--reviewer",
        "lead",
        "--decision",
        "reject",
        "--filter",
        '{"origin": "synthetic"}',
    )
    counted = _json(store_url, *bulk)
    assert counted == {
        "count": 1,
        "done": False,
        "decision": "reject",
        "filter": {"origin": "synthetic"},
    }
    assert _count(store, Override) == 1
    assert _json(store_url, *bulk, "--yes", "1")["done"] is True
    assert _count(store, Override) == 2
