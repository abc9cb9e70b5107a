"""The snapshot → export → LoRA training → adapter evaluation part of ``esplora demo``.

The snapshot holds the scene generator's images that re-validated strictly (the paper's training
set: synthetic images whose every prompted relation holds), with their prompts as training text.
The LoRA trains the tiny random Flux twin: it runs the real diffusers + peft code paths, and its
numbers mean nothing, which the demo says.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

from esplora.cli._common import console
from esplora.cli._sections import section
from esplora.settings import Settings

SNAPSHOT = "demo-synthetic"
RUN = "demo-lora"
TRAIN_STEPS = 20
EVAL_PROMPTS = 12


def step_snapshot(store: Any, config: Settings) -> dict[str, Any]:
    from esplora.errors import EsploraError
    from esplora.services.filters import ItemFilter
    from esplora.services.snapshots import SnapshotRequest, create_snapshot, show_snapshot

    section("8. Snapshot: the kept synthetic images, frozen and hashed")
    try:
        summary = show_snapshot(store, SNAPSHOT).to_dict()
    except EsploraError:
        request = SnapshotRequest(
            SNAPSHOT,
            ItemFilter(origin="synthetic", strict=True),
            validation_fraction=0.1,
            text_source="prompt",
            created_by="demo",
        )
        summary = create_snapshot(store, request).to_dict()
    splits = summary["splits"]
    console.print(
        f"{SNAPSHOT}: {summary['members']} image-prompt pairs "
        f"(train {splits['train']}, validation {splits['validation']}), sha256 "
        f"{summary['hash'][:16]}…; relations {summary['relations']}",
        highlight=False,
    )
    for reason, count in summary["skipped"].items():
        console.print(f"  [dim]left out {count}: {reason}[/]", highlight=False)
    return summary


def step_export(store: Any, config: Settings) -> None:
    from esplora.services.exports import FORMATS, export_snapshot

    section("9. Exports: one sample per image-text pair, relations included, with a dataset card")
    table = Table()
    for column in ("format", "samples", "skipped", "where"):
        table.add_column(column)
    for fmt in sorted(FORMATS):
        out = config.home / "exports" / f"{SNAPSHOT}-{fmt}"
        if out.is_dir() and any(out.iterdir()):
            table.add_row(fmt, "", "", f"{out} (already written)")
            continue
        report = export_snapshot(store, config, SNAPSHOT, fmt, out)
        table.add_row(fmt, str(report.written), str(report.skipped), str(out))
    console.print(table)


def step_training(store: Any, config: Settings) -> Any:
    from esplora.errors import EsploraError
    from esplora.services import runs
    from esplora_training.config import load_config
    from esplora_training.jobs import run_training_job

    section(f"10. ESPLoRA LoRA training, a short run ({config.profile} Flux)")
    try:
        run = runs.get_run(store, RUN)
    except EsploraError:
        shipped = "tiny-flux" if config.profile == "tiny" else "flux"
        recipe = load_config(shipped, {"snapshot": SNAPSHOT, "max_steps": TRAIN_STEPS})
        run = runs.create_run(
            store, name=RUN, snapshot=SNAPSHOT, config=recipe.model_dump(mode="json")
        )
    if run.status.value != "succeeded":
        run_training_job(store, config, RUN)
    _print_run(runs.show_run(store, RUN), tiny=config.profile == "tiny")
    return runs.get_run(store, RUN)


def _print_run(shown: dict[str, Any], *, tiny: bool) -> None:
    loss = shown["metrics"].get("loss") or []
    first = f"{loss[0][1]:.4f}" if loss else "–"
    last = f"{loss[-1][1]:.4f}" if loss else "–"
    console.print(
        f"run {shown['name']}: {shown['status']} after {shown['step']} steps, loss {first} → "
        f"{last}; adapter {shown['adapter']}",
        highlight=False,
    )
    table = Table(title="spatial accuracy of the validation probes per checkpoint (strict)")
    curves = {k: v for k, v in shown["metrics"].items() if k.startswith("accuracy/")}
    steps = sorted({int(step) for series in curves.values() for step, _ in series})
    table.add_column("relation")
    for step in steps:
        table.add_column(f"step {step}", justify="right")
    for name, series in sorted(curves.items()):
        values = {int(step): value for step, value in series}
        table.add_row(name.split("/", 1)[1], *(f"{values.get(s, 0):.0%}" for s in steps))
    console.print(table)
    for step, entry in sorted((shown["artefacts"].get("validation") or {}).items()):
        if entry.get("grid"):
            console.print(f"  sample grid at step {step}: {entry['grid']}", highlight=False)
    if tiny:
        console.print(
            "[yellow]A rank-128 LoRA on a randomly initialised tiny Flux: the loss and the "
            "spatial accuracy curves prove the loop (caching, checkpoints, validation jobs), "
            "not a model.[/]"
        )


def step_adapter_eval(store: Any, config: Settings, run: Any) -> None:
    from esplora.cli.evaluate import _table
    from esplora.services.evaluation import EvalConfig, compare, evaluate
    from esplora.services.pipeline import StageContext

    section(f"11. Evaluation with {config.profile} Flux: base vs adapter vs adapter + TORE")
    flux = config.model_copy(update={"generator": "flux"})
    ctx = StageContext(store, flux)
    adapter = str(run.adapter_uri or "")
    plans = (("base", "", "off"), ("adapter", adapter, "off"), ("adapter-tore", adapter, "static"))
    names = []
    for label, path, tore in plans:
        name = f"demo-flux-{label}"
        names.append(name)
        if _exists(store, name):
            continue
        generator = ctx.generator_with(path, 1.0) if path else ctx.generator
        evaluate(
            store,
            flux,
            EvalConfig(
                name,
                "urban",
                generator="flux",
                adapter=path,
                tore=tore,
                images_per_prompt=1,
                limit=EVAL_PROMPTS,
                size=64,
                training_run_id=run.id if path else None,
            ),
            generator,
        )
    console.print(_table(compare(store, names)))
    if config.profile == "tiny":
        console.print(
            "[dim]Tiny random weights: these accuracies only show that base, adapter and TORE "
            "runs are generated, validated and compared the same way as real ones.[/]"
        )


def _exists(store: Any, name: str) -> bool:
    from esplora.cli.demo_synthetic import compare_exists

    return compare_exists(store, name)
