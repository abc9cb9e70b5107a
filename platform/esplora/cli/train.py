"""``esplora train`` and ``esplora runs``: LoRA training runs on snapshots, under the execution
rule (queued on the gpu queue and followed by default, ``--detach``, or ``--inline``), and the
runs' status, curves, checkpoints and evaluations.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from esplora.cli._common import JsonOption, console, emit, err_console, settings
from esplora.errors import EsploraError
from esplora.settings import Settings

runs_app = typer.Typer(help="Training runs: status, curves, checkpoints.", no_args_is_help=True)

FINISHED = ("succeeded", "failed", "cancelled")
POLL_S = 1.0


def train(
    name: Annotated[str, typer.Option("--name", help="The run's name (unique).")],
    snapshot: Annotated[
        str | None, typer.Option("--snapshot", help="Snapshot to train on (or the config's).")
    ] = None,
    config: Annotated[
        str | None,
        typer.Option("--config", help="flux, sdxl, tiny-flux, tiny-sdxl, or a YAML file."),
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key: KEY=VALUE.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue a failed, cancelled or stale run.")
    ] = False,
    inline: Annotated[bool, typer.Option("--inline", help="Train in this process.")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="Enqueue and return at once.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Train an ESPLoRA adapter on a snapshot, validating spatial accuracy at checkpoints.

    By default the run goes on the gpu queue and a progress bar follows it in the store (Ctrl-C
    stops following, the run goes on); --detach returns at once; --inline trains here.
    """
    from esplora.services import database

    if resume and (snapshot or config):
        raise EsploraError("a resumed run keeps its snapshot and config: drop --snapshot/--config")
    config_settings = settings()
    store = database.open_store(config_settings)
    try:
        if resume:
            run = _resume(store, config_settings, name, overrides or [])
        else:
            run = _create(store, name, snapshot, config, overrides or [])
        if inline:
            _inline(store, config_settings, run.name, as_json)
        else:
            _queued(store, config_settings, run.name, detach=detach, as_json=as_json)
    finally:
        store.dispose()


def _create(
    store: Any, name: str, snapshot: str | None, source: str | None, overrides: list[str]
) -> Any:
    from esplora.services import runs
    from esplora_training.config import load_config, parse_overrides

    values = parse_overrides(overrides)
    if snapshot:
        values["snapshot"] = snapshot
    config = load_config(source, values)
    if not config.snapshot:
        raise EsploraError("name the snapshot to train on: --snapshot NAME")
    return runs.create_run(
        store, name=name, snapshot=config.snapshot, config=config.model_dump(mode="json")
    )


def _resume(store: Any, config_settings: Settings, name: str, overrides: list[str]) -> Any:
    """Queue a run again; ``--set`` may change only what steers it (e.g. ``max_steps``)."""
    from esplora.services import runs
    from esplora_training.config import RUN_CONTROL_FIELDS, load_config, parse_overrides

    lease = timedelta(seconds=config_settings.stage_lease_s)
    stored = runs.get_run(store, name).config
    values = parse_overrides(overrides)
    changed = sorted(k for k, v in values.items() if stored.get(k) != v)
    # The snapshot and split are the run's data: a checkpoint resumes only on the same data.
    control = RUN_CONTROL_FIELDS - {"snapshot", "split"}
    fixed = [k for k in changed if k not in control]
    if fixed:
        raise EsploraError(
            f"a resumed run keeps its training recipe: {', '.join(fixed)} cannot change "
            f"(these can: {', '.join(sorted(control))})"
        )
    config = load_config(None, {**stored, **values}).model_dump(mode="json")
    return runs.requeue_run(store, name, lease=lease, config=config if changed else None)


def _progress() -> Progress:
    columns = (
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
    )
    return Progress(*columns, console=err_console, transient=False)


def _note(metrics: dict[str, Any]) -> str:
    shown = [f"{k} {v:.4g}" for k, v in sorted(metrics.items()) if k in ("loss", "accuracy/all")]
    return "  ".join(shown)


def _inline(store: Any, config_settings: Settings, name: str, as_json: bool) -> None:
    from esplora.services import runs
    from esplora_training.jobs import run_training_job

    progress = runs.run_progress(store, name)
    with _progress() as bar:
        steps = bar.add_task("train", total=progress["max_steps"], note="")
        checks = bar.add_task("validate", total=None, note="", visible=False)

        def on_step(step: int, metrics: Any) -> None:
            bar.update(steps, completed=step, note=_note(dict(metrics)))

        def on_validated(step: int, metrics: Any) -> None:
            bar.update(checks, visible=True, advance=1, note=f"step {step}: {_note(metrics)}")

        try:
            outcome = run_training_job(
                store, config_settings, name, progress=on_step, validated=on_validated
            )
        except KeyboardInterrupt:
            err_console.print(
                f"interrupted: `esplora runs show {name}` says where it stands; a cancelled run "
                f"continues with `esplora train --name {name} --resume`"
            )
            raise typer.Exit(130) from None
    if outcome is None:
        raise EsploraError(f"run {name!r} is held by a live worker, or finished")
    _report(store, name, as_json)


def _queued(
    store: Any, config_settings: Settings, name: str, *, detach: bool, as_json: bool
) -> None:
    """ARCHITECTURE.md's execution rule: enqueue, then follow the run row with progress bars."""
    from esplora.services.workers import live_workers
    from esplora_workers.app import create_app
    from esplora_workers.queues import GPU, TRAIN_TASK

    create_app(config_settings).send_task(TRAIN_TASK, args=[name], queue=GPU)
    err_console.print(f"enqueued training run {name} on the gpu queue")
    if detach:
        emit({"run": name, "status": "queued", "followed": False}, as_json, lambda: None)
        return
    if not any(GPU in w.queues for w in live_workers(store)):
        err_console.print(
            "no live worker is consuming the gpu queue: the run stays queued. Start one with\n"
            "  esplora worker --queues gpu"
        )
        data = {"run": name, "status": "queued", "followed": False, "workers": 0}
        emit(data, as_json, lambda: None)
        return
    try:
        _follow(store, name)
    except KeyboardInterrupt:
        err_console.print(f"stopped following; the run goes on (`esplora runs show {name}`)")
        return
    _report(store, name, as_json)


def _follow(store: Any, name: str) -> None:
    """Poll the run until it ended and every checkpoint due for validation was validated."""
    from esplora.services import runs

    with _progress() as bar:
        steps = bar.add_task("train", total=None, note="")
        checks = bar.add_task("validate", total=None, note="", visible=False)
        while True:
            state = runs.run_progress(store, name)
            bar.update(
                steps, completed=state["step"], total=state["max_steps"], note=state["status"]
            )
            due = state["due"]
            if due:
                done = len(set(due) & set(state["validated"]))
                bar.update(checks, visible=True, completed=done, total=len(due))
            ended = state["status"] in FINISHED
            if ended and (state["status"] != "succeeded" or set(due) <= set(state["validated"])):
                return
            time.sleep(POLL_S)


def _report(store: Any, name: str, as_json: bool) -> None:
    """The run's outcome; a failed run exits 1 with its reason."""
    from esplora.services import runs

    run = runs.show_run(store, name)
    data = {k: run[k] for k in ("name", "status", "step", "adapter", "error", "latest")}
    data["validation"] = _curves(run)
    emit(data, as_json, lambda: _print_run(run))
    if run["status"] == "failed":
        raise typer.Exit(1)


def _curves(run: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Strict accuracy per relation at each validated step: ``{step: {relation: value}}``."""
    out: dict[str, dict[str, float]] = {}
    for metric, points in run["metrics"].items():
        if metric.startswith("accuracy/"):
            for step, value in points:
                out.setdefault(str(int(step)), {})[metric.removeprefix("accuracy/")] = value
    return dict(sorted(out.items(), key=lambda item: int(item[0])))


def _print_run(run: dict[str, Any]) -> None:
    console.print(
        f"run {run['name']}: {run['status']} at step {run['step']}/{run.get('max_steps') or '?'}"
        f" on snapshot {run['snapshot']} ({run['snapshot_hash'][:12]})",
        highlight=False,
    )
    if run["error"]:
        console.print(f"  error: {run['error']}", style="red", highlight=False)
    if run["adapter"]:
        console.print(f"  adapter: {run['adapter']}", highlight=False, soft_wrap=True)
    curves = _curves(run)
    if curves:
        relations = sorted({r for values in curves.values() for r in values})
        table = Table(title="strict spatial accuracy of the probes per checkpoint")
        table.add_column("step", justify="right")
        for relation in relations:
            table.add_column(relation, justify="right")
        for step, values in curves.items():
            table.add_row(step, *(_cell(values.get(r)) for r in relations))
        console.print(table)


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


@runs_app.command("list")
def list_command(as_json: JsonOption = False) -> None:
    """Every training run, newest first."""
    from esplora.services import database, runs

    store = database.open_store(settings())
    try:
        rows = runs.list_runs(store)
    finally:
        store.dispose()
    emit(rows, as_json, lambda: console.print(_list_table(rows)))


def _list_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="training runs")
    for column in ("run", "snapshot", "status", "step", "loss", "accuracy", "adapter"):
        table.add_column(column)
    for r in rows:
        latest = r["latest"]
        table.add_row(
            r["name"], r["snapshot"], r["status"], f"{r['step']}/{r['max_steps'] or '?'}",
            _cell(latest.get("loss")), _cell(latest.get("accuracy/all")), r["adapter"] or "–",
        )  # fmt: skip
    return table


@runs_app.command("show")
def show_command(
    run: Annotated[str, typer.Argument(help="Run name.")], as_json: JsonOption = False
) -> None:
    """One run: lineage, config, metric curves, checkpoints, grids and evaluations."""
    from esplora.services import database, runs

    store = database.open_store(settings())
    try:
        data = runs.show_run(store, run)
    finally:
        store.dispose()
    emit(data, as_json, lambda: _print_show(data))


def _print_show(run: dict[str, Any]) -> None:
    _print_run(run)
    for checkpoint in run["checkpoints"]:
        grid = run["artefacts"].get("validation", {}).get(str(checkpoint["step"]), {})
        extra = grid.get("grid") or grid.get("error") or "not validated"
        console.print(f"  {run['name']}@{checkpoint['step']}: {extra}", highlight=False)
    for e in run["evaluations"]:
        console.print(
            f"  eval {e['name']} ({e['benchmark']}, TORE {e['tore']}): strict "
            f"{_cell(e['strict_accuracy'])}",
            highlight=False,
        )


@runs_app.command("cancel")
def cancel_command(run: Annotated[str, typer.Argument(help="Run name.")]) -> None:
    """Cancel a queued or running run (training stops at its next step; resumable)."""
    from esplora.services import database, runs

    store = database.open_store(settings())
    try:
        before = runs.cancel_run(store, run)
    finally:
        store.dispose()
    console.print(f"run {run} cancelled (was {before.value})")


@runs_app.command("validate")
def validate_command(
    run: Annotated[str, typer.Argument(help="Run name.")],
    step: Annotated[int, typer.Option("--step", help="The checkpoint's step.")],
    inline: Annotated[bool, typer.Option("--inline", help="Validate in this process.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Validate one checkpoint again (after a failed or interrupted validation): queued on the
    gpu queue, or --inline here."""
    from esplora.services import database, runs
    from esplora.services.workers import live_workers

    config_settings = settings()
    store = database.open_store(config_settings)
    try:
        runs.resolve_adapter(store, f"{run}@{step}")  # a clear error for a missing checkpoint
        if inline:
            from esplora_training.validation import validate_checkpoint

            metrics = validate_checkpoint(store, config_settings, run, step)
            emit(metrics, as_json, lambda: console.print(_note(metrics) or "validated"))
            return
        from esplora_workers.app import create_app
        from esplora_workers.queues import GPU, VALIDATE_TASK

        create_app(config_settings).send_task(VALIDATE_TASK, args=[run, step], queue=GPU)
        workers = sum(GPU in w.queues for w in live_workers(store))
    finally:
        store.dispose()
    err_console.print(f"enqueued the validation of {run}@{step} on the gpu queue")
    if not workers:
        err_console.print("no live worker consumes the gpu queue: start `esplora worker`")
    emit({"run": run, "step": step, "enqueued": True, "workers": workers}, as_json, lambda: None)


def resolve_adapter_option(text: str) -> tuple[str, int | None]:
    """``--adapter RUN_OR_PATH`` → the adapter path and its training run's id (None for a path).

    Only a name that could be a run consults the store, so a plain path works without one.
    """
    from pathlib import Path

    from esplora.services import database, runs

    path = Path(text).expanduser()
    if not runs.is_run_reference(text):
        if not path.exists():
            raise EsploraError(f"--adapter {text}: no such adapter directory or file")
        return str(path.resolve()), None
    try:
        store = database.open_store(settings())
    except EsploraError:
        if path.exists():  # no usable store, so no run by that name: the directory it is
            return str(path.resolve()), None
        raise
    try:
        return runs.resolve_adapter_run(store, text)
    finally:
        store.dispose()


def register(app: typer.Typer) -> None:
    """Add ``esplora train`` and the ``esplora runs`` group to ``app``."""
    app.command("train")(train)
    app.add_typer(runs_app, name="runs")
