"""The seeded store every page test runs on (SQLite and PostgreSQL), named in the settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from esplora.db.engine import Store
from esplora.services import stats
from esplora.settings import get_settings
from support.ui_seed import seed_store


@pytest.fixture
def seeded(
    store: Store, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    monkeypatch.setenv("ESPLORA_DATABASE_URL", store_url)
    get_settings.cache_clear()
    seed_store(store, get_settings(), tmp_path)
    yield store
    stats.clear_cache()  # the UI's analytics engines hold connections to this store: close them
