"""Every page of the review UI, driven headlessly by Streamlit's AppTest on a seeded store
(SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from esplora.db.engine import Store
from esplora.db.enums import ReviewTarget, VoteVerdict
from esplora.db.review import ReviewVote
from esplora.services import review
from esplora.settings import get_settings
from support.ui_seed import HOSTILE_CAPTION, seed_store

APP = Path(__file__).resolve().parents[2] / "ui" / "esplora_ui" / "app.py"


@pytest.fixture
def seeded(
    store: Store, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    monkeypatch.setenv("ESPLORA_DATABASE_URL", store_url)
    get_settings.cache_clear()
    seed_store(store, get_settings(), tmp_path)
    yield store


def _app(page: str, reviewer: str | None = "alice") -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=30)
    if reviewer:
        app.session_state["reviewer_name"] = reviewer
    app.run()
    if page != "overview":
        app.switch_page(f"views/{page}.py").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _texts(app: AppTest) -> str:
    parts = [t.value for t in app.text] + [c.value for c in app.code]
    return "\n".join(str(p) for p in parts)


@pytest.mark.parametrize("page", ["overview", "explore", "sample", "calibration", "review"])
def test_every_page_renders_on_a_seeded_store(seeded: Store, page: str) -> None:
    app = _app(page)
    assert app.title[0].value


def test_sample_page_shows_the_hostile_caption_as_inert_text(seeded: Store) -> None:
    app = _app("sample")
    assert HOSTILE_CAPTION in _texts(app)  # in a code block: shown verbatim, never parsed
    assert not any("<script>" in m.value or "**bold**" in m.value for m in app.markdown)
    assert len(app.dataframe) >= 3  # claims, relations, objects, stages


def test_missing_image_file_shows_a_placeholder(seeded: Store) -> None:
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.session_state["sample_image_id"] = 3
    app.run()
    app.switch_page("views/sample.py").run()
    assert any("missing" in w.value for w in app.warning)


def test_review_queue_accept_records_a_vote(seeded: Store) -> None:
    app = _app("review")
    app.button(key="review_accept").click().run()
    assert not app.exception
    with seeded.reader() as session:
        votes = session.scalars(select(ReviewVote)).all()
    assert [(v.reviewer, v.verdict) for v in votes] == [("alice", VoteVerdict.ACCEPT)]
    assert "accept recorded" in app.success[0].value


def test_without_a_name_the_queue_is_read_only(seeded: Store) -> None:
    app = _app("review", reviewer=None)
    assert "review_accept" not in [b.key for b in app.button]
    assert any("read-only" in i.value for i in app.info)


def test_proxy_header_mode_without_the_header_is_read_only(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESPLORA_UI_AUTH_HEADER", "X-Forwarded-User")
    get_settings.cache_clear()
    app = _app("review")  # a typed name does not count in header mode
    assert any("X-Forwarded-User" in i.value for i in app.info)


def test_adjudication_conflict_is_shown(seeded: Store) -> None:
    review.vote(seeded, "bob", ReviewTarget.RELATION, 6, VoteVerdict.ACCEPT)
    review.vote(seeded, "carol", ReviewTarget.RELATION, 6, VoteVerdict.REJECT)
    first, second = _app("review"), _app("review", reviewer="dave")
    first.button(key="adj_decide").click().run()
    assert "Decided" in first.success[-1].value
    second.button(key="adj_decide").click().run()
    assert any("Conflict" in e.value for e in second.error)


def test_bulk_counts_then_applies_after_confirmation(seeded: Store) -> None:
    app = _app("review")
    assert "item(s) would change" in _texts(app)
    app.checkbox(key="bulk_confirm").check().run()
    app.button(key="bulk_apply").click().run()
    assert "item(s) decided" in app.success[-1].value
