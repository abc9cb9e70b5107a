"""``Analytics``: the store's tables in an in-memory DuckDB, kept fresh, behind the views.

Small stores (fewer rows than ``mirror_threshold_rows`` in all mirrored tables together) are
re-read in full, table by table, whenever a table's ``MAX(change_seq)`` or row count moved.
Larger stores with a ``mirror_dir`` use the incremental mirror (:mod:`esplora.analytics.mirror`).
Either way an unchanged store costs one probe query per :meth:`Analytics.refresh`. On the mirror
path the Overview's relation sections come from maintained aggregates
(:mod:`esplora.analytics.aggregates`), updated from the same deltas, and Explore matches labels
and scores on a maintained per-relation table (:mod:`esplora.analytics.pairs`).

The DuckDB database never reaches the store: it only holds Arrow copies. It is opened with
external access off, extension autoload/autoinstall off and the configuration locked, so the
SQL box (:mod:`esplora.analytics.sql`) can share it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from esplora.analytics import aggregates
from esplora.analytics import calibration as calibration_queries
from esplora.analytics import explore as explore_queries
from esplora.analytics import overview as overview_queries
from esplora.analytics.mirror import Mirror
from esplora.analytics.source import TABLES, StoreReader, TableSpec
from esplora.analytics.views import STORE_SCHEMA, create_derived, create_views

DEFAULT_MIRROR_THRESHOLD_ROWS = 2_000_000
SECURE_CONFIG = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "lock_configuration": True,
}


def secure_connection() -> Any:
    """An in-memory DuckDB that cannot read files, the environment or load extensions."""
    return duckdb.connect(":memory:", config=dict(SECURE_CONFIG))


@dataclass
class RefreshReport:
    """What one refresh did: tables re-read in full, given a delta, restored from the mirror."""

    full: list[str] = field(default_factory=list)
    delta: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    rows_read: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.full or self.delta or self.restored)


class Analytics:
    """Read-only analytics over the store at ``url`` (SQLite or PostgreSQL)."""

    def __init__(
        self,
        url: str,
        *,
        mirror_dir: Path | None = None,
        mirror_threshold_rows: int = DEFAULT_MIRROR_THRESHOLD_ROWS,
    ) -> None:
        self.reader = StoreReader(url)
        self.threshold = mirror_threshold_rows
        fingerprint = repr(sorted((t.name, t.columns) for t in TABLES.values()))
        self.mirror = Mirror(mirror_dir, url, fingerprint) if mirror_dir is not None else None
        self.connection = secure_connection()
        self._lock = threading.RLock()
        self._loaded: dict[str, tuple[int, int]] = {}  # table → (max change_seq, rows)
        self._overview: tuple[dict[str, tuple[int, int]], dict[str, Any]] | None = None
        self.aggregated = False  # the maintained aggregates are current (mirror path)
        self.connection.execute(f"CREATE SCHEMA {STORE_SCHEMA}")
        for spec in TABLES.values():
            self._replace(spec.name, spec.schema().empty_table())
        create_derived(self.connection, set(TABLES))
        create_views(self.connection)
        self.refresh()

    def cursor(self) -> Any:
        """A new DuckDB connection to the same in-memory database (one per query/thread)."""
        return self.connection.cursor()

    # -- loading -----------------------------------------------------------------------------

    def _replace(self, table: str, data: pa.Table) -> None:
        self.connection.register("_incoming", data)
        try:
            self.connection.execute(
                f'CREATE OR REPLACE TABLE {STORE_SCHEMA}."{table}" AS SELECT * FROM _incoming'
            )
        finally:
            self.connection.unregister("_incoming")

    def _upsert(self, spec: TableSpec, delta: pa.Table) -> None:
        keys = " AND ".join(f't."{k}" = d."{k}"' for k in spec.key)
        self.connection.register("_delta", delta)
        try:
            self.connection.execute("BEGIN")
            self.connection.execute(
                f'DELETE FROM {STORE_SCHEMA}."{spec.name}" t USING _delta d WHERE {keys}'
            )
            self.connection.execute(
                f'INSERT INTO {STORE_SCHEMA}."{spec.name}" SELECT * FROM _delta'
            )
            self.connection.execute("COMMIT")
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        finally:
            self.connection.unregister("_delta")

    def _count(self, table: str) -> int:
        sql = f'SELECT count(*) FROM {STORE_SCHEMA}."{table}"'
        return int(self.connection.execute(sql).fetchall()[0][0])

    def _load_full(self, spec: TableSpec, seq: int) -> None:
        data = self.reader.read(spec.name)
        self._replace(spec.name, data)
        if self.mirror is not None and spec.tracked:
            self.mirror.write_base(spec.name, data, seq)

    def _restore(self, spec: TableSpec) -> int | None:
        """Load ``spec``'s saved partitions; the change number they reach, or None."""
        saved = self.mirror.saved(spec.name) if self.mirror is not None else None
        if saved is None:
            return None
        seq, parts = saved
        self._replace(spec.name, parts[0])
        for delta in parts[1:]:
            self._upsert(spec, delta)
        return seq

    def _apply_delta(self, spec: TableSpec, delta: pa.Table, seq: int) -> None:
        self._upsert(spec, delta)
        assert self.mirror is not None
        if self.mirror.append(spec.name, delta, seq):
            data = self.connection.sql(
                f'SELECT * FROM {STORE_SCHEMA}."{spec.name}"'
            ).to_arrow_table()
            self.mirror.write_base(spec.name, data, seq)

    # -- refresh -----------------------------------------------------------------------------

    def refresh(self) -> RefreshReport:
        """Bring the DuckDB copy up to the store; one probe query when nothing changed."""
        with self._lock:
            before = self.reader.rows_read
            probe = self.reader.probe()
            total = sum(n for name, (_, n) in probe.items() if TABLES[name].tracked)
            incremental = self.mirror is not None and total >= self.threshold
            report = RefreshReport()
            stale = {
                name: state for name, state in probe.items() if self._loaded.get(name) != state
            }
            deltas = self._read_deltas(stale) if incremental else {}
            try:
                pending = self.aggregated and bool(aggregates.INPUTS & set(deltas))
                if pending:  # the old contributions, before the deltas apply
                    aggregates.begin(self.connection, deltas)
                for name, state in stale.items():
                    self._refresh_table(TABLES[name], state, incremental, report, deltas)
                create_derived(self.connection, {*report.full, *report.delta, *report.restored})
                self._maintain(incremental, report, pending)
            except BaseException:
                self.aggregated = False  # half-applied: rebuilt on the next refresh
                raise
            report.rows_read = self.reader.rows_read - before
            return report

    def _read_deltas(self, stale: dict[str, tuple[int, int]]) -> dict[str, pa.Table]:
        """The changed rows of every loaded tracked table whose ``change_seq`` moved on."""
        return {
            name: self.reader.read_changes(name, self._loaded[name][0])
            for name, (seq, _) in stale.items()
            if TABLES[name].tracked and name in self._loaded and seq > self._loaded[name][0]
        }

    def _maintain(self, incremental: bool, report: RefreshReport, pending: bool) -> None:
        """Keep the Overview aggregates current on the mirror path (drop them below it)."""
        if not incremental:
            if self.aggregated:
                aggregates.drop(self.connection)
                self.aggregated = False
            return
        reread = aggregates.INPUTS & {*report.full, *report.restored}
        if not self.aggregated or reread:
            aggregates.rebuild(self.connection)
            self.aggregated = True
        elif pending:
            aggregates.finish(self.connection)

    def _refresh_table(
        self,
        spec: TableSpec,
        state: tuple[int, int],
        incremental: bool,
        report: RefreshReport,
        deltas: dict[str, pa.Table],
    ) -> None:
        seq, count = state
        if not (incremental and spec.tracked):
            self._load_full(spec, seq)
            report.full.append(spec.name)
            self._loaded[spec.name] = state
            return
        after = self._loaded[spec.name][0] if spec.name in self._loaded else None
        if after is None and (after := self._restore(spec)) is not None:
            report.restored.append(spec.name)
        if after is None:
            self._load_full(spec, seq)
            report.full.append(spec.name)
        elif seq > after:
            delta = deltas.get(spec.name)
            if delta is None:  # restored from the mirror: read what changed since
                delta = self.reader.read_changes(spec.name, after)
            self._apply_delta(spec, delta, seq)
            report.delta.append(spec.name)
        if self._count(spec.name) != count:  # rows were deleted: start this table over
            self._load_full(spec, seq)
            report.full.append(spec.name)
        self._loaded[spec.name] = state

    # -- queries -----------------------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        """The Overview numbers (see :func:`esplora.analytics.overview.overview`), computed once
        per loaded state: until a refresh brings a change, the same numbers are served."""
        with self._lock:
            state = dict(self._loaded)
            served = self.aggregated
            if self._overview is not None and self._overview[0] == state:
                return self._overview[1]
        numbers = (aggregates.overview if served else overview_queries.overview)(self.cursor())
        with self._lock:
            if state == self._loaded:
                self._overview = (state, numbers)
        return numbers

    def explore(
        self,
        filter_dict: dict[str, Any] | None = None,
        *,
        page: int = 0,
        page_size: int = 50,
        order: str = "id",
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of relations matching the filter, and how many match in all (labels and
        scores matched on the maintained ``relation_pairs`` on the mirror path)."""
        with self._lock:
            cursor, maintained = self.cursor(), self.aggregated
        return explore_queries.explore(
            cursor,
            filter_dict or {},
            page=page,
            page_size=page_size,
            order=order,
            pairs=maintained,
        )

    def calibration(
        self, taus: list[float], depth_gaps: list[float], *, max_pairs: int = 200_000
    ) -> dict[str, list[dict[str, Any]]]:
        """The τ / depth-gap sweep and the strict-vs-votes confusion per relation."""
        return calibration_queries.calibration(self.cursor(), taus, depth_gaps, max_pairs=max_pairs)

    def close(self) -> None:
        """Close the DuckDB database and the store connection."""
        with self._lock:
            self.connection.close()
            self.reader.close()
