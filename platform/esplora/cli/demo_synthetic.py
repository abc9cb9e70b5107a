"""The synthetic-loop part of ``esplora demo``, on the scene world (exact ground truth, offline):
scenes → strict relations → prompts → biased generator → re-validation → evaluation with TORE."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from esplora.cli._common import console
from esplora.cli._sections import section
from esplora.settings import Settings

BIAS = "right_of=0.5,below=0.5"  # the scene generator's directional bias (as real models have)


def scene_settings(config: Settings) -> Settings:
    return config.model_copy(
        update={
            "detector": "scenes",
            "depth_model": "scenes",
            "generator": "scenes",
            "scene_error_rates": BIAS,
        }
    )


def step_scene_corpus(store: Any, config: Settings) -> None:
    from esplora.scenes.corpus import write_corpus
    from esplora.services.ingest import ingest
    from esplora.services.pipeline import StageContext, run_inline

    section("5. The scene world: rendered street scenes with exact ground truth")
    corpus = write_corpus(
        config.home / "scene-corpus", 40, 7, wrong_caption_rate=0.1, vague_caption_rate=0.2
    )
    report = ingest(store, config, corpus, source_format="folder", source_name="scene-corpus")
    run = run_inline(StageContext(store, config))
    console.print(
        f"{report.imported_images} scenes ingested; relate done on {run.done.get('relate', 0)}"
        " (pixel detector and depth reader: the pipeline reads pixels, not the renderer)"
    )


def step_synthetic(store: Any, config: Settings) -> None:
    from esplora.services.generation import GenerationPlan, generate, prompt_ids, retention
    from esplora.services.pipeline import StageContext, run_inline
    from esplora.services.pipeline.relate import producer_name
    from esplora.services.synthesis import synthesize

    section("6. Synthetic loop: prompts from strict relations → generate → re-validate → keep")
    ctx = StageContext(store, config)
    report = synthesize(store, 36, seed=0, producer=producer_name(ctx))
    console.print(
        f"{report.facts} strict facts → {report.added} new prompts "
        f"(balanced: {dict(sorted(report.per_relation.items()))})"
    )
    with store.reader() as session:
        ids = prompt_ids(session, origin="synthesized")
    created = generate(store, config, ctx.generator, GenerationPlan(tuple(ids), 2))
    run_inline(ctx)
    console.print(f"{len(created)} images from the scene generator, biased: {BIAS}")
    table = Table(title="re-validation: only strict passes become training candidates")
    for column in ("relation", "validated", "kept", "retention"):
        table.add_column(column, justify="left" if column == "relation" else "right")
    with store.reader() as session:
        for row in retention(session):
            table.add_row(
                row["relation"], str(row["validated"]), str(row["kept"]), f"{row['retention']:.0%}"
            )
    console.print(table)


def step_evaluation(store: Any, config: Settings) -> None:
    from esplora.cli.evaluate import _table
    from esplora.services.benchmarks import install
    from esplora.services.evaluation import EvalConfig, compare, evaluate
    from esplora.services.pipeline import StageContext

    section("7. Evaluation on the urban benchmark: base vs TORE vs adaptive TORE")
    install(store, "urban")
    generator = StageContext(store, config).generator
    names = []
    for tore in ("off", "static", "adaptive"):
        name = f"demo-urban-{tore}"
        names.append(name)
        if not compare_exists(store, name):
            evaluate(
                store,
                config,
                EvalConfig(name, "urban", tore=tore, images_per_prompt=1, limit=60),
                generator,
            )
    console.print(_table(compare(store, names)))
    console.print(
        "[dim]Adaptive TORE reads the weak relations off the base run; static TORE "
        "assumes the paper's (right_of, below, behind).[/]"
    )


def compare_exists(store: Any, name: str) -> bool:
    from sqlalchemy import select

    from esplora.db.runs import EvaluationRun

    with store.reader() as session:
        return (
            session.scalar(select(EvaluationRun.id).where(EvaluationRun.name == name)) is not None
        )
