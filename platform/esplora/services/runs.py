"""Training runs: a LoRA training job on a frozen snapshot, its step metrics, checkpoints,
validation curves and adapter (lineage: snapshot hash → run → evaluations).

Each action is one unit of work. Actions that rewrite the run row's JSON (metrics summary,
artefacts) lock the row first (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``
serialises writers anyway), because the training job and its validation jobs write to the same
run concurrently and a read-modify-write of a JSON column would otherwise lose one of them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from esplora.db.engine import Store
from esplora.db.enums import RunStatus
from esplora.db.runs import Checkpoint, EvaluationRun, RunMetric, TrainingRun
from esplora.db.snapshots import Snapshot
from esplora.errors import EsploraError
from esplora.services.snapshots import snapshot_row
from esplora.settings import Settings

# Run names become directory names and ``RUN@STEP`` references: no separators, no "@".
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
REFERENCE = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,199})(?:@(?P<step>\d+))?")
FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class RunView:
    """What a job needs to know about a run (a detached copy of the row)."""

    id: int
    name: str
    snapshot: str
    snapshot_hash: str
    config: dict[str, Any]
    status: RunStatus
    adapter_uri: str | None


def run_dir(settings: Settings, name: str) -> Path:
    """Where a run's checkpoints, adapter and validation grids live (under the home)."""
    return settings.artefacts_dir / "runs" / check_name(name)


def check_name(name: str) -> str:
    """``name`` if it can name a run (and a directory), else a clear error."""
    if not NAME.fullmatch(name):
        raise EsploraError(
            f"run name {name!r}: use 1–200 letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)"
        )
    return name


def _now() -> datetime:
    return datetime.now(UTC)


def _row(session: Session, name: str, *, lock: bool = False) -> TrainingRun:
    query = select(TrainingRun).where(TrainingRun.name == name)
    row = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if row is None:
        raise EsploraError(f"no training run named {name!r} (see `esplora runs list`)")
    return row


def _locked(session: Session, run_id: int) -> TrainingRun:
    row = session.get(TrainingRun, run_id, with_for_update=True)
    if row is None:
        raise EsploraError(f"training run {run_id} does not exist")
    return row


def _view(session: Session, row: TrainingRun) -> RunView:
    snapshot = session.get(Snapshot, row.snapshot_id)
    return RunView(
        id=row.id,
        name=row.name,
        snapshot=snapshot.name if snapshot else "",
        snapshot_hash=row.snapshot_hash,
        config=dict(row.config),
        status=row.status,
        adapter_uri=row.adapter_uri,
    )


def create_run(store: Store, *, name: str, snapshot: str, config: Mapping[str, Any]) -> RunView:
    """A queued run of ``config`` (already validated, JSON-safe) on snapshot ``snapshot``."""
    check_name(name)
    with store.unit_of_work() as session:
        frozen = snapshot_row(session, snapshot)
        if session.scalar(select(TrainingRun.id).where(TrainingRun.name == name)) is not None:
            raise EsploraError(
                f"a training run named {name!r} exists: choose another --name "
                "(or --resume it if it failed or was cancelled)"
            )
        row = TrainingRun(
            name=name,
            snapshot_id=frozen.id,
            snapshot_hash=frozen.content_hash,
            config=dict(config),
            status=RunStatus.QUEUED,
            metrics={"step": 0, "max_steps": config.get("max_steps")},
            artefacts={},
        )
        session.add(row)
        session.flush()
        return _view(session, row)


def get_run(store: Store, name: str) -> RunView:
    """The run ``name`` (a clear error when there is none)."""
    with store.reader() as session:
        return _view(session, _row(session, name))


def start_run(store: Store, name: str, *, worker: str, lease: timedelta) -> RunView | None:
    """Mark the run running on ``worker`` and return it; ``None`` when it must not run here.

    Not when it finished, failed or was cancelled, nor while another worker's heartbeat is
    fresher than ``lease`` (a broker that redelivers a long job to a second worker must not
    train the run twice). A running run whose worker went silent is taken over: a redelivered
    job of a dead worker, and training resumes from the last checkpoint.
    """
    with store.unit_of_work() as session:
        row = _row(session, name, lock=True)
        if row.status in FINISHED or _held_elsewhere(row, worker, lease):
            return None
        row.status = RunStatus.RUNNING
        row.started_at = row.started_at or _now()
        row.metrics = {**row.metrics, "worker": worker, "seen_at": _now().isoformat()}
        return _view(session, row)


def _held_elsewhere(row: TrainingRun, worker: str, lease: timedelta) -> bool:
    """Whether another worker runs it: its heartbeat is recent and it is not known dead."""
    from esplora.services.pipeline import holder_is_dead

    holder, seen = row.metrics.get("worker"), row.metrics.get("seen_at")
    if row.status is not RunStatus.RUNNING or not holder or holder == worker or not seen:
        return False
    fresh = _now() - datetime.fromisoformat(str(seen)) < lease
    return fresh and not holder_is_dead(str(holder))


def requeue_run(
    store: Store, name: str, *, lease: timedelta, config: Mapping[str, Any] | None = None
) -> RunView:
    """A failed or cancelled run, or a running one whose worker went silent for ``lease``,
    queued again (training resumes from its last checkpoint), with ``config`` if given (the
    caller checks that only run-control fields changed)."""
    with store.unit_of_work() as session:
        row = _row(session, name, lock=True)
        stale = row.status is RunStatus.RUNNING and not _held_elsewhere(row, "", lease)
        if row.status not in (RunStatus.FAILED, RunStatus.CANCELLED) and not stale:
            raise EsploraError(
                f"run {name!r} is {row.status.value}: only a failed, cancelled or stale run "
                "can be resumed"
            )
        row.status, row.error, row.finished_at = RunStatus.QUEUED, None, None
        if config is not None:
            row.config = dict(config)
            row.metrics = {**row.metrics, "max_steps": config.get("max_steps")}
        return _view(session, row)


def cancel_run(store: Store, name: str) -> RunStatus:
    """Cancel a queued or running run (a running job stops at its next step); the old status."""
    with store.unit_of_work() as session:
        row = _row(session, name, lock=True)
        before = row.status
        if before in FINISHED:
            raise EsploraError(f"run {name!r} already {before.value}")
        row.status, row.finished_at = RunStatus.CANCELLED, _now()
        return before


def is_cancelled(store: Store, run_id: int) -> bool:
    """Whether someone cancelled the run (the training job's ``should_stop``)."""
    with store.reader() as session:
        status = session.scalar(select(TrainingRun.status).where(TrainingRun.id == run_id))
    return status is RunStatus.CANCELLED


def record_metrics(
    store: Store, run_id: int, step: int, values: Mapping[str, float], *, heartbeat: bool = False
) -> None:
    """Store ``values`` at ``step`` (idempotent: a replayed step overwrites its rows) and keep
    the latest of each in the run's summary; ``heartbeat``: the training job's sign of life."""
    # NaN and infinities fit neither SQLite (NaN binds as NULL) nor PostgreSQL's JSON: skipped.
    values = {k: float(v) for k, v in values.items() if math.isfinite(v)}
    if not values:
        return
    with store.unit_of_work() as session:
        row = _locked(session, run_id)
        existing = {
            m.name: m
            for m in session.scalars(
                select(RunMetric).where(RunMetric.run_id == run_id, RunMetric.step == step)
            )
        }
        for metric, value in values.items():
            if metric in existing:
                existing[metric].value = float(value)
            else:
                session.add(RunMetric(run_id=run_id, step=step, name=metric, value=float(value)))
        summary = dict(row.metrics)
        summary["step"] = max(int(summary.get("step", 0)), step)
        # New dicts, never in-place changes: the JSON column only notices a new value.
        summary["latest"] = {
            **summary.get("latest", {}),
            **{k: float(v) for k, v in values.items()},
        }
        if heartbeat:
            summary["seen_at"] = _now().isoformat()
        row.metrics = summary


def record_checkpoint(store: Store, run_id: int, step: int, uri: str) -> None:
    """A checkpoint saved at ``step`` (idempotent on (run, step))."""
    with store.unit_of_work() as session:
        row = session.get(Checkpoint, (run_id, step))
        if row is None:
            session.add(Checkpoint(run_id=run_id, step=step, uri=uri))
        else:
            row.uri = uri


def record_artefact(store: Store, run_id: int, path: tuple[str, ...], value: Any) -> None:
    """Set ``artefacts[path[0]][path[1]]… = value`` on the run (nested keys are created)."""
    with store.unit_of_work() as session:
        row = _locked(session, run_id)
        artefacts = dict(row.artefacts)
        node = artefacts
        for key in path[:-1]:
            node[key] = dict(node.get(key) or {})
            node = node[key]
        node[path[-1]] = value
        row.artefacts = artefacts


def finish_run(
    store: Store, run_id: int, *, adapter_uri: str | None, artefacts: Mapping[str, Any]
) -> RunStatus:
    """Record the adapter; the run succeeds unless it was cancelled meanwhile (it stays so)."""
    with store.unit_of_work() as session:
        row = _locked(session, run_id)
        row.adapter_uri = adapter_uri
        row.artefacts = {**row.artefacts, **artefacts}
        if row.status is not RunStatus.CANCELLED:
            row.status = RunStatus.SUCCEEDED
        row.finished_at = _now()
        return row.status


def fail_run(
    store: Store, run_id: int, error: str, *, status: RunStatus = RunStatus.FAILED
) -> None:
    """Mark the run failed (or ``status``: cancelled by Ctrl-C) with ``error``; a run cancelled
    meanwhile stays cancelled."""
    with store.unit_of_work() as session:
        row = _locked(session, run_id)
        if row.status is not RunStatus.CANCELLED:
            row.status = status
        row.error, row.finished_at = error[:4000], _now()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _summary(row: TrainingRun, snapshot: str) -> dict[str, Any]:
    return {
        "name": row.name,
        "snapshot": snapshot,
        "snapshot_hash": row.snapshot_hash,
        "status": row.status.value,
        "step": row.metrics.get("step", 0),
        "max_steps": row.metrics.get("max_steps"),
        "latest": row.metrics.get("latest", {}),
        "adapter": row.adapter_uri,
        "error": row.error,
        "created_at": _iso(row.created_at),
        "started_at": _iso(row.started_at),
        "finished_at": _iso(row.finished_at),
    }


def run_progress(store: Store, name: str) -> dict[str, Any]:
    """What a follower polls: status, step, the checkpoints due for validation (every
    ``validation_every`` steps and the last step) and those whose validation ended
    (``artefacts["validation"]``: a grid, or the error that stopped it)."""
    with store.reader() as session:
        row = _row(session, name)
        steps = session.scalars(select(Checkpoint.step).where(Checkpoint.run_id == row.id)).all()
    every = int(row.config.get("validation_every") or row.config.get("checkpoint_every") or 1)
    last = row.metrics.get("max_steps")
    return {
        "status": row.status.value,
        "step": int(row.metrics.get("step", 0)),
        "max_steps": last,
        "checkpoints": sorted(steps),
        "due": sorted(s for s in steps if s % every == 0 or s == last),
        "validated": sorted(int(k) for k in row.artefacts.get("validation", {})),
        "error": row.error,
    }


def list_runs(store: Store) -> list[dict[str, Any]]:
    """Every run, newest first, with its status, progress and latest metrics."""
    with store.reader() as session:
        rows = session.execute(
            select(TrainingRun, Snapshot.name)
            .join(Snapshot, Snapshot.id == TrainingRun.snapshot_id)
            .order_by(TrainingRun.id.desc())
        ).all()
        return [_summary(row, snapshot) for row, snapshot in rows]


def show_run(store: Store, name: str) -> dict[str, Any]:
    """One run in full: config, metric series, checkpoints, validation artefacts and the
    evaluations of its adapter (linked by ``training_run_id``)."""
    with store.reader() as session:
        row = _row(session, name)
        view = _view(session, row)
        series: dict[str, list[list[float]]] = {}
        for metric in session.scalars(
            select(RunMetric).where(RunMetric.run_id == row.id).order_by(RunMetric.step)
        ):
            series.setdefault(metric.name, []).append([metric.step, metric.value])
        checkpoints = session.scalars(
            select(Checkpoint).where(Checkpoint.run_id == row.id).order_by(Checkpoint.step)
        ).all()
        evaluations = session.scalars(
            select(EvaluationRun)
            .where(EvaluationRun.training_run_id == row.id)
            .order_by(EvaluationRun.id)
        ).all()
        return {
            **_summary(row, view.snapshot),
            "config": view.config,
            "artefacts": dict(row.artefacts),
            "metrics": dict(sorted(series.items())),
            "checkpoints": [{"step": c.step, "uri": c.uri} for c in checkpoints],
            "evaluations": [_evaluation(e) for e in evaluations],
        }


def _evaluation(run: EvaluationRun) -> dict[str, Any]:
    fields = {k: getattr(run, k) for k in ("name", "benchmark", "adapter", "tore")}
    scores = {k: run.metrics.get(k) for k in ("strict_accuracy", "soft_accuracy")}
    return {**fields, "status": run.status.value, **scores}


def is_run_reference(text: str) -> bool:
    """Whether ``text`` can name a run (``RUN`` or ``RUN@STEP``) rather than only a path."""
    return REFERENCE.fullmatch(text) is not None


def resolve_adapter_run(store: Store, run_or_path: str) -> tuple[str, int | None]:
    """The adapter that ``run_or_path`` names, and the training run it came from.

    ``RUN`` is the run's final adapter, ``RUN@STEP`` its checkpoint at that step; a name that is
    no run but an existing file or directory is that path (``None`` as run). A run name wins over
    a same-named directory in the working directory: write ``./NAME`` for the directory.
    """
    match = REFERENCE.fullmatch(run_or_path)
    if match is not None:
        with store.reader() as session:
            row = session.scalars(
                select(TrainingRun).where(TrainingRun.name == match["name"])
            ).one_or_none()
            if row is not None:
                step = int(match["step"]) if match["step"] else None
                return _run_adapter(session, row, step), row.id
    path = Path(run_or_path).expanduser()
    if path.exists():
        return str(path.resolve()), None
    raise EsploraError(
        f"--adapter {run_or_path!r} is neither a training run (see `esplora runs list`) "
        "nor an existing adapter directory or .safetensors file"
    )


def resolve_adapter(store: Store, run_or_path: str) -> str:
    """The adapter directory (or file) that a run name, ``RUN@STEP`` or a path names."""
    return resolve_adapter_run(store, run_or_path)[0]


def _run_adapter(session: Session, row: TrainingRun, step: int | None) -> str:
    steps = session.scalars(
        select(Checkpoint.step).where(Checkpoint.run_id == row.id).order_by(Checkpoint.step)
    ).all()
    hint = f"; its checkpoints: {', '.join(f'{row.name}@{s}' for s in steps)}" if steps else ""
    if step is None:
        if row.adapter_uri:
            return row.adapter_uri
        raise EsploraError(f"run {row.name!r} is {row.status.value} and has no adapter yet{hint}")
    checkpoint = session.get(Checkpoint, (row.id, step))
    if checkpoint is None:
        raise EsploraError(f"run {row.name!r} has no checkpoint at step {step}{hint}")
    return checkpoint.uri
