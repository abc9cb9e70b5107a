"""``esplora eval``: a generator configuration on a benchmark; ``eval compare`` side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from esplora.cli._common import JsonOption, console, emit, settings

app = typer.Typer(help="Evaluate spatial accuracy (ESPLoRA verdicts and the peers' metrics).")


@app.callback(invoke_without_command=True)
def evaluate(
    ctx: typer.Context,
    benchmark: Annotated[
        str | None, typer.Option(help="urban, t2i-compbench, geneval, visor.")
    ] = None,
    prompts_file: Annotated[
        Path | None, typer.Option("--prompts", help="An official prompt file.")
    ] = None,
    protocol: Annotated[str | None, typer.Option(help="The prompt file's protocol.")] = None,
    generator: Annotated[str | None, typer.Option(help="flux, sdxl or scenes.")] = None,
    adapter: Annotated[
        str, typer.Option(help="A LoRA adapter: a training run (RUN, RUN@STEP) or a directory.")
    ] = "",
    scale: Annotated[float, typer.Option(help="Adapter scale.")] = 1.0,
    tore: Annotated[str, typer.Option(help="off, static or adaptive.")] = "off",
    images_per_prompt: Annotated[int, typer.Option(min=1)] = 4,
    limit: Annotated[int | None, typer.Option(min=1, help="First N prompts only.")] = None,
    name: Annotated[str | None, typer.Option(help="Run name (default: derived).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate one configuration and store the run (inline; the gpu queue runs it at scale)."""
    if ctx.invoked_subcommand is not None:
        return
    from esplora.errors import EsploraError
    from esplora.services import benchmarks, database
    from esplora.services.evaluation import EvalConfig, compare
    from esplora.services.evaluation import evaluate as run
    from esplora.services.pipeline import StageContext

    if tore not in ("off", "static", "adaptive"):
        raise EsploraError(f"--tore must be off, static or adaptive, got {tore!r}")
    config = _configured(generator)
    adapter_path, training_run = _adapter(adapter)
    store = database.open_store(config)
    try:
        if prompts_file is not None:
            benchmark, _ = benchmarks.install_file(store, prompts_file, protocol or "")
        elif benchmark is None:
            raise EsploraError("name --benchmark or --prompts FILE --protocol P")
        elif benchmark in benchmarks.BENCHMARKS:
            benchmarks.install(store, benchmark)  # idempotent: stores the set on first use
        label = Path(adapter).name if adapter else "base"
        run_name = name or f"{benchmark}-{config.generator}-{tore}-{label}"
        cfg = EvalConfig(
            run_name, benchmark, config.generator, adapter_path, scale, tore, images_per_prompt,
            limit, training_run_id=training_run,
        )  # fmt: skip
        generator_backend = StageContext(store, config).generator_with(adapter_path, scale)
        run(store, config, cfg, generator_backend)
        rows = compare(store, [run_name])
    finally:
        store.dispose()
    emit(rows[0], as_json, lambda: console.print(_table(rows)))


def _adapter(text: str) -> tuple[str, int | None]:
    """``--adapter``: a training run resolves to its adapter (and links the evaluation to it)."""
    if not text:
        return "", None
    from esplora.cli.train import resolve_adapter_option

    return resolve_adapter_option(text)


def _configured(generator: str | None) -> Any:
    """With the scene generator, validate with the scene detector and depth reader."""
    config = settings()
    updates: dict[str, Any] = {}
    if generator:
        updates["generator"] = generator
    if (generator or config.generator) == "scenes":
        updates.update(detector="scenes", depth_model="scenes")
    return config.model_copy(update=updates)


@app.command("compare")
def compare_runs(
    runs: Annotated[list[str], typer.Argument(help="Evaluation run names.")],
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a markdown table.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Runs side by side: ESPLoRA accuracy, the peers' scores, strict accuracy per relation."""
    from esplora.services import database
    from esplora.services.evaluation import compare

    store = database.open_store(settings())
    try:
        rows = compare(store, runs)
    finally:
        store.dispose()
    if markdown and not as_json:
        typer.echo(markdown_table(rows))
        return
    emit(rows, as_json, lambda: console.print(_table(rows)))


def _table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="spatial evaluation")
    table.add_column("metric")
    for row in rows:
        table.add_column(row["name"], justify="right")
    metrics = [
        "strict_accuracy",
        "soft_accuracy",
        "t2i_compbench",
        "geneval_position",
        "VISOR_uncond",
        "VISOR_cond",
        "OA",
        "images",
    ]
    # Which configuration each column is: base, adapter, adapter + TORE.
    table.add_row("training run", *(r.get("training_run") or "–" for r in rows))
    table.add_row("adapter", *(Path(r["adapter"]).name if r["adapter"] else "base" for r in rows))
    table.add_row("TORE", *(r["tore"] for r in rows))
    for metric in metrics:
        table.add_row(metric, *(_cell(r.get(metric)) for r in rows))
    relations = sorted({k for r in rows for k in r["per_relation"]})
    for relation in relations:
        table.add_row(f"strict {relation}", *(_cell(r["per_relation"].get(relation)) for r in rows))
    return table


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The same comparison as a GitHub-flavoured markdown table (for papers, PRs, issues)."""
    table = _table(rows)
    header = [str(c.header) for c in table.columns]
    cells = [list(map(str, c._cells)) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(col[i] for col in cells) + " |" for i in range(len(cells[0]))]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
