"""Every page of the review UI, driven headlessly by Streamlit's AppTest on a seeded store
(SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from ui_pages import chart_rows, open_page, texts

from esplora.db.engine import Store
from esplora.db.enums import ReviewTarget, VoteVerdict
from esplora.db.relations import GeometricRelation
from esplora.db.review import ReviewVote
from esplora.services import review
from esplora.settings import get_settings
from esplora_ui import charts
from support.ui_seed import HOSTILE_CAPTION


@pytest.mark.parametrize(
    "page", ["overview", "explore", "sample", "calibration", "review", "snapshots", "training"]
)
def test_every_page_renders_on_a_seeded_store(seeded: Store, page: str) -> None:
    app = open_page(page)
    assert app.title[0].value


def test_sample_page_shows_the_hostile_caption_as_inert_text(seeded: Store) -> None:
    app = open_page("sample")
    assert HOSTILE_CAPTION in texts(app)  # in a code block: shown verbatim, never parsed
    assert not any("<script>" in m.value or "**bold**" in m.value for m in app.markdown)
    assert len(app.dataframe) >= 3  # claims, relations, objects, stages


def test_missing_image_file_shows_a_placeholder(seeded: Store) -> None:
    app = open_page("sample", reviewer=None, sample_image_id=3)
    assert any("missing" in w.value for w in app.warning)


def test_review_queue_accept_records_a_vote(seeded: Store) -> None:
    app = open_page("review")
    app.button(key="review_accept").click().run()
    assert not app.exception
    with seeded.reader() as session:
        votes = session.scalars(select(ReviewVote)).all()
    assert [(v.reviewer, v.verdict) for v in votes] == [("alice", VoteVerdict.ACCEPT)]
    assert "accept recorded" in app.success[0].value


def test_without_a_name_the_queue_is_read_only(seeded: Store) -> None:
    app = open_page("review", reviewer=None)
    assert "review_accept" not in [b.key for b in app.button]
    assert any("read-only" in i.value for i in app.info)


def test_proxy_header_mode_without_the_header_is_read_only(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESPLORA_UI_AUTH_HEADER", "X-Forwarded-User")
    get_settings.cache_clear()
    app = open_page("review")  # a typed name does not count in header mode
    assert any("X-Forwarded-User" in i.value for i in app.info)


def test_adjudication_conflict_is_shown(seeded: Store) -> None:
    review.vote(seeded, "bob", ReviewTarget.RELATION, 6, VoteVerdict.ACCEPT)
    review.vote(seeded, "carol", ReviewTarget.RELATION, 6, VoteVerdict.REJECT)
    first, second = open_page("review"), open_page("review", reviewer="dave")
    first.button(key="adj_decide").click().run()
    assert "Decided" in first.success[-1].value
    second.button(key="adj_decide").click().run()
    assert any("Conflict" in e.value for e in second.error)


def test_bulk_counts_then_applies_after_confirmation(seeded: Store) -> None:
    app = open_page("review")
    assert "item(s) would change" in texts(app)
    app.checkbox(key="bulk_confirm").check().run()
    app.button(key="bulk_apply").click().run()
    assert "item(s) decided" in app.success[-1].value


def test_overview_charts_the_margin_distribution(seeded: Store) -> None:
    app = open_page("overview")
    values = chart_rows(app, "Margin per relation")
    with seeded.reader() as session:
        relations = session.scalar(select(func.count()).select_from(GeometricRelation))
    assert sum(v["count"] for v in values) == relations
    assert {v["relation"] for v in values} <= {"horizontal: left_of", "vertical: above"}
    assert "depth gap" in texts(app)  # the seed has no depth maps: said so, in text


def test_depth_gap_bins_split_into_strict_and_soft_only() -> None:
    bins = [{"relation": "in_front_of", "lo": 0.1, "hi": 0.15, "count": 5, "strict": 2}]
    rows = charts.depth_gap_rows(bins)
    assert [(r["pairs"], r["count"]) for r in rows] == [
        ("in_front_of strict", 2),
        ("in_front_of soft only", 3),
    ]
    chart = charts.histogram(rows, "pairs", "gaps", "gap")
    assert chart is not None and chart.to_dict()["mark"]["type"] == "bar"
    assert charts.histogram([], "pairs", "gaps", "gap") is None


ALLOWED_DB = ("esplora.db.engine", "esplora.db.enums")


def test_the_ui_holds_no_sql() -> None:
    """Pages and helpers read and write through esplora.services and esplora.analytics only."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "ui" / "esplora_ui"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert not name.startswith(("sqlalchemy", "duckdb")), (path, name)
                # the store's type and its enums, never its ORM models
                assert name in ALLOWED_DB or not name.startswith("esplora.db"), (path, name)
