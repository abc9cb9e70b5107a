"""``esplora demo``: the main job on the embedded default, offline, start to finish.

Each step is a small function over the services so later stages slot in as they land.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.rule import Rule
from rich.table import Table

from esplora.cli import demo_engine, demo_synthetic, demo_training
from esplora.cli._common import console, settings
from esplora.cli._sections import section
from esplora.services.spatial import BoxTuple
from esplora.settings import Settings

EXAMPLE_PAIRS: tuple[tuple[str, str, BoxTuple, BoxTuple], ...] = (
    ("side by side", "left_of", (40, 120, 200, 300), (260, 100, 460, 320)),
    ("overlapping a third", "left_of", (40, 120, 220, 300), (160, 100, 460, 320)),
    ("mostly overlapping", "left_of", (100, 120, 300, 300), (140, 100, 400, 320)),
    ("stacked", "above", (180, 20, 320, 140), (150, 160, 350, 380)),
    ("nested", "above", (220, 140, 280, 200), (100, 100, 400, 400)),
)
TAUS = (1.0, 2.0, 3.0, 5.0)


def step_store(config: Settings) -> Any:
    from esplora.services import database

    section("1. The store (embedded default: SQLite under ESPLORA_HOME)")
    status = database.upgrade(config)
    console.print(f"store {status.url} migrated to revision {status.current}")
    return database.open_store(config)


def step_prompts(store: Any) -> list[str]:
    from esplora.services.prompts import add_prompts

    section("12. Benchmark prompts parsed into structured relations and stored")
    text = resources.files("esplora.data").joinpath("benchmark_prompts.txt").read_text()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    result = add_prompts(store, lines, origin="benchmark", benchmark="demo")
    console.print(
        f"{len(lines)} prompts: {result.added} stored, {result.existing} already in the store, "
        f"{len(result.rejected)} without an unambiguous spatial clause"
    )
    for reason in result.rejected:
        console.print(f"  [dim]skipped: {reason}[/]")
    return lines


def step_tore(prompts: list[str]) -> None:
    from esplora.core import tore

    section("13. TORE: weak relations (right_of, below, behind) rewritten to their strong inverse")
    table = Table(show_lines=False)
    table.add_column("prompt")
    table.add_column("TORE rewrite")
    table.add_column("note", style="dim")
    for prompt in prompts:
        result = tore.analyse(prompt)
        notes = {str(c.ambiguous) for c in result.clauses if c.ambiguous}
        note = ", ".join(sorted(notes)) or ("rewritten" if result.changed else "already strong")
        table.add_row(prompt, result.rewritten if result.changed else "", note)
    console.print(table)


def step_rules() -> None:
    from esplora.core.relations import parse_relation
    from esplora.services.spatial import score_pair

    section("14. One box pair, every rule (ESPLoRA at τ = 3 next to the peers)")
    table = Table()
    for column in ("pair", "relation", "esplora soft", "esplora strict", "margin"):
        table.add_column(column)
    for column in ("t2i-compbench", "geneval", "visor"):
        table.add_column(column, justify="right")
    for label, relation, subject, object_ in EXAMPLE_PAIRS:
        rows = {
            r["rule"]: r
            for r in score_pair(
                parse_relation(relation), subject, object_, tau=3.0, depth_gap=1 / 3
            )
        }  # type: ignore[arg-type]
        strict = rows["esplora-strict"]
        peers = [f"{rows[name]['score']:.2f}" for name in ("t2i-compbench", "geneval", "visor")]
        table.add_row(
            label,
            relation,
            str(strict["soft"]),
            str(strict["strict"]),
            f"{strict['margin']:+.3f}",
            *peers,
        )
    console.print(table)


def step_tau_sweep() -> None:
    from esplora.services.spatial import tau_sweep

    section("15. How strict is τ? Share of 100 000 random box pairs holding each relation")
    table = Table()
    table.add_column("relation")
    table.add_column("soft", justify="right")
    for tau in TAUS:
        table.add_column(f"strict τ={tau:g}", justify="right")
    for row in tau_sweep(TAUS):
        cells = [f"{row['soft']:.1%}", *(f"{row[f'strict@{t:g}']:.1%}" for t in TAUS)]
        table.add_row(row["relation"], *cells)
    console.print(table)
    console.print("[dim]τ = 1 makes strict equal soft; larger τ allows less overlap.[/]")


def step_figures(out: Path) -> None:
    from esplora.analytics.figures import write_relation_figures

    section("16. Figures of the relation rules")
    for path in write_relation_figures(out):
        console.print(f"wrote {path}")


def demo(
    figures: Annotated[
        Path | None, typer.Option(help="Where to write figures (default: ESPLORA_HOME/figures).")
    ] = None,
    no_ui: Annotated[
        bool, typer.Option("--no-ui", help="Do everything but start the UI at the end.")
    ] = False,
    ui_port: Annotated[
        int, typer.Option("--ui-port", min=1, max=65535, help="Port of the UI at the end.")
    ] = 8501,
) -> None:
    """Run the platform's main job end to end on the embedded default, offline, then start the
    UI on everything it made (unless --no-ui)."""
    config = demo_engine.demo_settings(settings())
    console.print(f"[bold]esplora demo[/]  home: {config.home}  profile: {config.profile}")
    store = step_store(config)
    try:
        demo_engine.step_ingest(store, config)
        demo_engine.step_pipeline(store, config)
        demo_engine.step_statistics(store)
        scenes = demo_synthetic.scene_settings(config)
        demo_synthetic.step_scene_corpus(store, scenes)
        demo_synthetic.step_synthetic(store, scenes)
        demo_synthetic.step_evaluation(store, scenes)
        demo_training.step_snapshot(store, config)
        demo_training.step_export(store, config)
        run = demo_training.step_training(store, config)
        demo_training.step_adapter_eval(store, config, run)
        prompts = step_prompts(store)
        step_tore(prompts)
        step_rules()
        step_tau_sweep()
        step_figures(figures or config.home / "figures")
    finally:
        store.dispose()
    console.print(Rule("[green]done"))
    step_summary(config)
    if not no_ui:
        from esplora.cli.ui import ui

        ui(host=None, port=ui_port)


def step_summary(config: Settings) -> None:
    """Where everything is, and which results mean something offline."""
    home = config.home
    rows = (
        ("store", str(config.resolved_database_url)),
        ("images, depth maps, adapters, runs", str(config.artefacts_dir)),
        ("tiny models", str(config.resolved_models_dir)),
        ("exports (5 formats + dataset cards)", str(home / "exports")),
        ("figures", str(home / "figures")),
    )
    table = Table(title="where to look", show_header=False)
    for what, where in rows:
        table.add_row(what, where)
    console.print(table)
    console.print(
        "[bold]Meaningful offline:[/] the scene world's relations (exact ground truth read back "
        "from pixels), the synthetic loop's retention and TORE on the biased scene generator.\n"
        "[bold]Machinery only:[/] boxes from the tiny random detectors on the photos, the LoRA "
        "on the random tiny Flux and its evaluation. ESPLORA_PROFILE=real runs the same steps on "
        "the real models."
    )


def register(app: typer.Typer) -> None:
    """Add ``esplora demo`` to ``app``."""
    app.command()(demo)
