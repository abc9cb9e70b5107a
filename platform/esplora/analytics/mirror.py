"""The incremental mirror's files: Parquet partitions per table and a manifest.

Method (for stores above ``mirror_threshold_rows``):

1. **Base.** The first refresh reads each table in full (ADBC → Arrow) and writes it as
   ``<table>/base-<seq>.parquet``, where ``seq`` is the largest ``change_seq`` it holds.
2. **Deltas.** Each later refresh asks the store for ``MAX(change_seq)`` and ``COUNT(*)`` per table
   (one query, index-backed). A table whose maximum grew is read with ``change_seq > last``
   only; the delta is upserted into the in-memory DuckDB table by primary key (delete the keys,
   insert the rows) and written as ``<table>/delta-<seq>.parquet``. ``change_seq`` is handed out
   in commit order (:mod:`esplora.db.changes`), so no late committer is missed.
3. **Deletes.** Deleted rows leave no ``change_seq``; after the delta, a table whose row count
   differs from the store's is re-read in full (deletes are rare: cascades, cleanup).
4. **Restart.** A new process loads the base and the deltas in order (same upsert), then reads
   only what changed since the manifest's ``seq``.
5. **Compaction.** After :data:`MAX_DELTAS` deltas, the table's current state is written as a new
   base and the old partitions are removed.

The manifest names the store and the columns read (a hash of both); a mismatch starts over.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

MAX_DELTAS = 16
FORMAT = 1


@dataclass
class Mirror:
    """The Parquet partitions of one store under ``root``."""

    root: Path
    store_url: str
    fingerprint: str = ""

    @property
    def _manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def _identity(self) -> str:
        return hashlib.sha256(f"{self.store_url}|{self.fingerprint}".encode()).hexdigest()[:16]

    def manifest(self) -> dict[str, Any]:
        """The manifest, or an empty one when absent or for another store or format."""
        empty: dict[str, Any] = {"format": FORMAT, "store": self._identity(), "tables": {}}
        try:
            data: dict[str, Any] = json.loads(self._manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return empty
        ok = data.get("format") == FORMAT and data.get("store") == self._identity()
        return data if ok else empty

    def _save(self, manifest: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(self._manifest_path)

    def saved(self, table: str) -> tuple[int, list[pa.Table]] | None:
        """``(seq, partitions in order)`` of ``table``, or None when it has no base yet."""
        entry = self.manifest()["tables"].get(table)
        if entry is None:
            return None
        try:
            parts = [pq.read_table(self.root / table / name) for name in entry["parts"]]
        except OSError:
            return None
        return int(entry["seq"]), parts

    def write_base(self, table: str, data: pa.Table, seq: int) -> None:
        """Replace ``table``'s partitions with one base partition."""
        folder = self.root / table
        folder.mkdir(parents=True, exist_ok=True)
        name = f"base-{seq}.parquet"
        pq.write_table(data, folder / name)
        manifest = self.manifest()
        old = manifest["tables"].get(table, {}).get("parts", [])
        manifest["tables"][table] = {"seq": seq, "parts": [name]}
        self._save(manifest)
        for stale in old:
            if stale != name:
                (folder / stale).unlink(missing_ok=True)

    def append(self, table: str, delta: pa.Table, seq: int) -> bool:
        """Add a delta partition; True when the table needs a (new) base written."""
        manifest = self.manifest()
        entry = manifest["tables"].get(table)
        if entry is None:  # the store grew past the threshold: no base yet
            return True
        name = f"delta-{seq}.parquet"
        pq.write_table(delta, self.root / table / name)
        entry["parts"].append(name)
        entry["seq"] = seq
        self._save(manifest)
        return len(entry["parts"]) > MAX_DELTAS
