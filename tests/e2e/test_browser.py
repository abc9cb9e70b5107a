"""The review UI in a real browser: ``esplora ui`` as a subprocess on a seeded SQLite store,
driven by Playwright on the system Chromium (no browser download)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from esplora.db.engine import Store
from esplora.db.enums import ReviewTarget, VoteVerdict
from esplora.db.review import Override, ReviewVote
from esplora.services import review
from esplora.services.database import open_store, upgrade
from esplora.settings import get_settings
from support.services import free_port, unavailable
from support.ui_seed import seed_store

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
PAGES = {
    "overview": "Overview",
    "explore": "Explore",
    "sample": "Sample",
    "review": "Review queue",
    "calibration": "Calibration",
    "snapshots": "Snapshots",
    "training": "Training",
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    """A seeded store and ``esplora ui`` serving it."""
    settings = get_settings()
    upgrade(settings)
    store = open_store(settings)
    seed_store(store, settings, tmp_path)
    port = free_port()
    esplora = str(Path(sys.executable).parent / "esplora")
    log = (tmp_path / "ui.log").open("w")
    process = subprocess.Popen(
        [esplora, "ui", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=os.environ
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process)
        yield url, store
    finally:
        process.terminate()
        process.wait(timeout=10)
        store.dispose()


def _wait_healthy(url: str, process: subprocess.Popen[Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "esplora ui exited"
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("esplora ui did not become healthy")


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        handle = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield handle
        handle.close()


def _open(context: Any, url: str, reviewer: str) -> Any:
    page = context.new_page()
    page.goto(f"{url}/review")
    name = page.get_by_label("Reviewer name")
    name.fill(reviewer)
    name.press("Enter")
    page.get_by_role("heading", name="Review queue").wait_for()
    return page


def _wait_for(check: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_accept_shortcut_and_adjudication_conflict(server: tuple[str, Store], browser: Any) -> None:
    url, store = server
    page = _open(browser.new_context(), url, "alice")
    page.get_by_role("button", name="Accept (a)").wait_for()
    page.locator("h1").first.click()  # focus leaves the name box: keys go to the page
    page.keyboard.press("a")

    def alice_votes() -> list[ReviewVote]:
        with store.reader() as session:
            return list(session.scalars(select(ReviewVote).where(ReviewVote.reviewer == "alice")))

    votes = _wait_for(alice_votes)
    assert [v.verdict for v in votes] == [VoteVerdict.ACCEPT]
    disputed = 6 if votes[0].target_id != 6 else 5  # bob and carol disagree on it
    review.vote(store, "bob", ReviewTarget.RELATION, disputed, VoteVerdict.ACCEPT)
    review.vote(store, "carol", ReviewTarget.RELATION, disputed, VoteVerdict.REJECT)

    first, second = (_open(browser.new_context(), url, who) for who in ("dave", "erin"))
    for tab in (first, second):
        tab.get_by_role("tab", name="Adjudication").click()
        tab.get_by_role("button", name="Decide").wait_for()
    first.get_by_role("button", name="Decide").click()
    first.get_by_text(f"Decided: accept on relation {disputed}").wait_for()
    second.get_by_role("button", name="Decide").click()
    second.get_by_text("Conflict:", exact=False).wait_for()
    with store.reader() as session:
        overrides = session.scalars(select(Override).where(Override.target_id == disputed)).all()
    assert [o.decided_by for o in overrides] == ["dave"]  # the second decision wrote nothing


def _seed_training(store: Store, folder: Path) -> None:
    """A snapshot and a run with loss and accuracy curves and a sample grid, to show."""
    from PIL import Image

    from esplora.services import runs
    from esplora.services.filters import ItemFilter
    from esplora.services.snapshots import SnapshotRequest, create_snapshot

    create_snapshot(store, SnapshotRequest("all", ItemFilter(), validation_fraction=0.3))
    run = runs.create_run(store, name="demo-run", snapshot="all", config={"max_steps": 40})
    for step in range(1, 41):
        runs.record_metrics(store, run.id, step, {"loss": 0.5 + 0.5 / step})
    for step in (20, 40):
        values = {"left_of": 0.3, "above": 0.4, "all": 0.35}
        metrics = {f"accuracy/{k}": v + step / 100 for k, v in values.items()}
        runs.record_metrics(store, run.id, step, metrics)
    grid = folder / "grid.png"
    Image.new("RGB", (384, 220), "#2c7fb8").save(grid)
    runs.record_artefact(store, run.id, ("validation", "40"), {"grid": str(grid)})


def test_a_screenshot_of_every_page(
    server: tuple[str, Store], browser: Any, tmp_path: Path
) -> None:
    url, store = server
    _seed_training(store, tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    page = _open(browser.new_context(viewport={"width": 1400, "height": 1000}), url, "alice")
    for name, title in PAGES.items():  # sidebar links keep the session (and the reviewer)
        page.get_by_role("link", name=title).click()
        page.get_by_role("heading", name=title).first.wait_for()
        page.wait_for_timeout(800)  # charts and images draw after the heading
        page.screenshot(path=str(ARTIFACTS / f"ui_{name}.png"), full_page=True)
        assert (ARTIFACTS / f"ui_{name}.png").stat().st_size > 10_000
