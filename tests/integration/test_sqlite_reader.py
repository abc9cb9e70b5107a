"""The ADBC SQLite driver runs outside the process that holds the store's own connections.

Two copies of the SQLite library in one process drop each other's POSIX locks when either
closes a descriptor of the database file; analytics therefore reads SQLite stores in a child.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from esplora.analytics.source import StoreReader
from esplora.db import migrate


def _mapped_libraries() -> str:
    return Path("/proc/self/maps").read_text()


def test_sqlite_reads_run_in_a_child_without_loading_the_driver_here(sqlite_url: str) -> None:
    migrate.upgrade(sqlite_url)
    reader = StoreReader(sqlite_url)
    try:
        counts = reader.probe()
        assert counts["relations"] == (0, 0)
        assert reader.fetch("SELECT 41 + 1 AS answer").to_pylist() == [{"answer": 42}]
        assert "adbc_driver_sqlite" not in _mapped_libraries()
        with pytest.raises(RuntimeError, match=r"reading the store failed: .*no_such_table"):
            reader.fetch("SELECT * FROM no_such_table")
        assert reader.fetch("SELECT 1 AS one").num_rows == 1  # the child survives an error
    finally:
        reader.close()
