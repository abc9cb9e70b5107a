"""The UI's composition root and its only door to the platform.

``st.cache_resource`` holds one store per database URL (settings are read per run, so a test
or a new ``ESPLORA_HOME`` gets its own). Pages call the small functions here; these call the
services (writes: one unit of work each; reads: :mod:`esplora.services.items` and the
analytics), never SQL of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from esplora.analytics.engine import Analytics
from esplora.db.engine import Store
from esplora.db.enums import ReviewTarget, VoteVerdict
from esplora.errors import EsploraError
from esplora.services import exports, items, review, stats
from esplora.services import runs as run_service
from esplora.services import snapshots as snapshot_service
from esplora.services.database import open_store
from esplora.services.filters import ItemFilter
from esplora.services.items import ItemView
from esplora.services.snapshots import SnapshotDiff, SnapshotRequest, SnapshotSummary
from esplora.settings import Settings, get_settings
from esplora.sources.images import resolve_uri
from esplora_ui import launch as launcher

PAGE_SIZE = 50
T = TypeVar("T")


def settings() -> Settings:
    """The settings of this run."""
    return get_settings()


def _open_store(url: str) -> Store:
    return open_store(get_settings())


# Typed handles on the cached factories (streamlit is not type-checked).
_store: Callable[[str], Store] = st.cache_resource(show_spinner=False)(_open_store)


def store() -> Store:
    """The store (one engine per database URL, shared by every session of this server)."""
    return _store(settings().resolved_database_url)


def artefact(uri: str | None) -> Path | None:
    """The file a stored URI points at."""
    return resolve_uri(uri, settings().artefacts_dir) if uri else None


# --- reads ------------------------------------------------------------------------------------


def item(image_id: int, sample_id: int | None = None) -> ItemView | None:
    """One image with its sample, rows, relations and history."""
    return items.item(store(), image_id, sample_id)


def item_of(target_type: str, target_id: int) -> ItemView | None:
    """The item a review target belongs to."""
    return items.item_of(store(), target_type, target_id)


def overview() -> dict[str, Any]:
    """The Overview's numbers: the stats service when present, plus stage and review progress."""
    numbers = items.progress(store(), top=15)
    try:
        numbers["analytics"] = analytics(lambda engine: engine.overview())
    except EsploraError as error:
        numbers["analytics_error"] = str(error)
    return numbers


def confusion() -> list[dict[str, Any]]:
    """Machine strict against reviewers' votes, per relation."""
    return items.confusion(store())


# --- explore ----------------------------------------------------------------------------------


def filter_from(values: dict[str, Any]) -> ItemFilter:
    """The services' typed filter built from widget values (unset values dropped); raises
    ``EsploraError`` with a message for a bad value."""
    return ItemFilter.from_json(_clean(values))


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [], ())}


def explore(item_filter: ItemFilter, page: int) -> tuple[list[dict[str, Any]], int]:
    """One page of items matching ``item_filter`` and the total count."""
    rows, total = analytics(
        lambda engine: engine.explore(item_filter.to_dict(), page=page, page_size=PAGE_SIZE)
    )
    return [dict(r) for r in rows], int(total)


def sql(text: str) -> Any:
    """The read-only SQL box: a pyarrow Table, or raises with a message."""
    return stats.query(settings(), text)


def analytics(call: Callable[[Analytics], T]) -> T:
    """``call`` on the process's analytics engine for this store (see
    :func:`esplora.services.stats.analytics_for`: mirror settings honoured), refreshed first so
    the last change shows; DuckDB or driver errors come back as ``EsploraError``."""
    try:
        return call(stats.analytics_for(settings()))
    except EsploraError:
        raise
    except Exception as error:  # shown on the page as a message, not a crash
        raise EsploraError(f"analytics: {error}") from error


def calibration(taus: list[float], depth_gaps: list[float]) -> dict[str, list[dict[str, Any]]]:
    """Yield and precision for each τ and depth gap (stored detections, no model re-run), and
    the strict-vs-votes confusion per relation."""
    return analytics(lambda engine: engine.calibration(taus, depth_gaps))


def agreement() -> Any:
    """Agreement per relation type (Fleiss' κ / Krippendorff's α)."""
    compute = getattr(review, "agreement_by_relation", None)
    if compute is None:
        raise EsploraError("agreement is not available in this version of the review service")
    return compute(store())


# --- review writes ----------------------------------------------------------------------------


def next_item(reviewer: str, item_filter: ItemFilter, k: int = 2) -> int | None:
    """The next relation for ``reviewer`` from the queue."""
    found: int | None = review.assign_next(store(), reviewer, item_filter, k=k)
    return found


def vote(
    reviewer: str,
    target_id: int,
    verdict: VoteVerdict,
    *,
    proposal: dict[str, Any] | None = None,
    note: str | None = None,
    target_type: ReviewTarget = ReviewTarget.RELATION,
) -> None:
    """Record one vote (append-only)."""
    review.vote(store(), reviewer, target_type, target_id, verdict, proposal=proposal, note=note)


def disputed(limit: int = 50) -> list[int]:
    """The adjudication queue: ids of disputed relations, most ambiguous first."""
    return [int(e["target_id"]) for e in review.adjudication_queue(store(), limit=limit)]


def adjudicate(
    reviewer: str,
    target_id: int,
    decision: VoteVerdict,
    *,
    expected_version: int,
    values: dict[str, Any] | None = None,
    reason: str | None = None,
    target_type: ReviewTarget = ReviewTarget.RELATION,
) -> None:
    """A canonical decision, version-checked (raises ``ReviewConflict``)."""
    review.adjudicate(
        store(),
        reviewer,
        target_type,
        target_id,
        decision,
        values=values,
        reason=reason,
        expected_version=expected_version,
    )


def bulk(
    reviewer: str,
    item_filter: ItemFilter,
    decision: VoteVerdict,
    *,
    dry_run: bool,
    expected: int | None = None,
) -> int:
    """Accept or reject everything ``item_filter`` matches (``dry_run`` only counts; the real
    run refuses when the count changed from ``expected``)."""
    return review.bulk_decide(
        store(), reviewer, item_filter, decision, dry_run=dry_run, expected=expected
    )


# --- snapshots, exports, training runs --------------------------------------------------------


def snapshots() -> list[SnapshotSummary]:
    """Every snapshot, newest first."""
    return snapshot_service.list_snapshots(store())


def snapshot(name: str) -> SnapshotSummary:
    """One snapshot (``EsploraError`` naming the known ones when missing)."""
    return snapshot_service.show_snapshot(store(), name)


def create_snapshot(request: SnapshotRequest) -> SnapshotSummary:
    """Freeze a snapshot (``EsploraError``: name taken, bad split or cap, contamination under
    ``strict``)."""
    return snapshot_service.create_snapshot(store(), request)


def diff_snapshots(a: str, b: str) -> SnapshotDiff:
    """What changed from snapshot ``a`` to ``b``."""
    return snapshot_service.diff_snapshots(store(), a, b)


def export_formats() -> list[str]:
    """The export formats, by name."""
    return list(exports.FORMATS)


def default_export_dir(snapshot_name: str, fmt: str) -> Path:
    """Where an export goes unless the user says otherwise."""
    return settings().artefacts_dir / "exports" / f"{snapshot_name}-{fmt}"


def check_export(snapshot_name: str, fmt: str, out: Path) -> Path:
    """The absolute target of an export, after the checks a job would fail on (format, an empty
    or new directory, the snapshot exists); ``EsploraError`` saying what is wrong."""
    exports.format_spec(fmt)
    target = exports.check_target(out)
    snapshot(snapshot_name)
    return target


def export_jobs() -> list[exports.ExportJobInfo]:
    """The latest export jobs, newest first."""
    return exports.export_jobs(store())


def launch(queue: str, args: list[str]) -> launcher.Launch:
    """Start ``esplora ARGS`` on ``queue`` when a worker is live (else say how)."""
    return launcher.launch(store(), queue, args)


def runs() -> list[dict[str, Any]]:
    """Every training run, newest first, with status, progress and latest metrics."""
    return run_service.list_runs(store())


def run(name: str) -> dict[str, Any]:
    """One run: config, metric series, checkpoints, validation grids and evaluations."""
    return run_service.show_run(store(), name)


def check_run_name(name: str) -> str:
    """``name`` if it can name a run; ``EsploraError`` otherwise."""
    return run_service.check_name(name)
