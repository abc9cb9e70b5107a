"""The paper's loop on the scene world, offline and exact: natural scenes → strict relations →
synthesized prompts → generated images → re-validation keeps only what was rendered right;
evaluation with the peers' metrics, and adaptive TORE against a directional bias."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from esplora.backends.registry import BackendOptions, create
from esplora.db.engine import Store
from esplora.db.synthetic import Generation, SpatialPrompt, Validation
from esplora.services.benchmarks import install
from esplora.services.evaluation import EvalConfig, compare, evaluate
from esplora.services.generation import GenerationPlan, generate, prompt_ids, retention
from esplora.services.ingest import ingest
from esplora.services.pipeline import StageContext, run_inline
from esplora.services.synthesis import synthesize
from esplora.settings import Settings
from support.workers import workers

SQLITE = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture
def scene_settings(settings: Settings, store_url: str) -> Settings:
    return settings.model_copy(
        update={
            "database_url": store_url,
            "detector": "scenes",
            "depth_model": "scenes",
            "generator": "scenes",
            "batch_size": 8,
        }
    )


def _scene_generator(rates: tuple[tuple[str, float], ...]) -> object:
    return create("generator", "scenes", BackendOptions(error_rates=rates))


@SQLITE
def test_only_images_rendered_right_are_kept(
    store: Store, scene_settings: Settings, tmp_path: Path
) -> None:
    from esplora.scenes.corpus import write_corpus

    corpus = write_corpus(
        tmp_path / "corpus", 30, 4, wrong_caption_rate=0.0, vague_caption_rate=0.0
    )
    ingest(store, scene_settings, corpus, source_format="folder")
    run_inline(StageContext(store, scene_settings))
    report = synthesize(store, 24, seed=3)
    assert report.added >= 12 and len(report.per_relation) == 6  # every relation, both readings
    with store.reader() as session:
        ids = prompt_ids(session, origin="synthesized")
    # A generator that always draws right_of wrong and everything else right.
    generator = _scene_generator((("right_of", 1.0),))
    new = generate(
        store, scene_settings, generator, GenerationPlan(tuple(ids), images_per_prompt=2)
    )
    assert len(new) == 2 * len(ids)
    assert (
        generate(store, scene_settings, generator, GenerationPlan(tuple(ids), images_per_prompt=2))
        == []
    )
    run_inline(StageContext(store, scene_settings))
    with store.reader() as session:
        rows = session.execute(
            select(SpatialPrompt.relations, Validation.strict)
            .join(Generation, Generation.prompt_id == SpatialPrompt.id)
            .join(Validation, Validation.generation_id == Generation.id)
        ).all()
        kept = {
            r["relation"]: rate
            for r in [row for row in retention(session)]
            for rate in [r["retention"]]
        }
    assert len(rows) == len(new)
    for relations, strict in rows:
        assert strict == (relations[0]["relation"] != "right_of"), relations
    assert kept["right_of"] == 0.0 and all(v == 1.0 for k, v in kept.items() if k != "right_of")


@SQLITE
def test_adaptive_tore_raises_accuracy_under_a_directional_bias(
    store: Store, scene_settings: Settings
) -> None:
    install(store, "urban")
    generator = _scene_generator((("right_of", 0.8), ("below", 0.8)))
    common = {"benchmark": "urban", "images_per_prompt": 1, "limit": 48}
    evaluate(store, scene_settings, EvalConfig("base", tore="off", **common), generator)
    evaluate(store, scene_settings, EvalConfig("adaptive", tore="adaptive", **common), generator)
    base, adaptive = compare(store, ["base", "adaptive"])
    before, after = base["strict_accuracy"], adaptive["strict_accuracy"]
    print(f"\nurban benchmark, strict accuracy: {before:.3f} → adaptive TORE {after:.3f}")
    assert base["per_relation"]["right_of"] < base["per_relation"]["left_of"]
    assert adaptive["strict_accuracy"] > base["strict_accuracy"] + 0.1
    assert adaptive["per_relation"]["right_of"] > base["per_relation"]["right_of"]
    for metric in ("t2i_compbench", "geneval_position", "VISOR_uncond", "OA"):
        assert 0.0 <= base[metric] <= 1.0
    from esplora.cli.evaluate import markdown_table

    table = markdown_table([base, adaptive]).splitlines()
    assert table[0] == "| metric | base | adaptive |" and table[1] == "|---|---|---|"
    assert any(line.startswith("| strict_accuracy | ") for line in table)


def test_the_loop_from_the_command_line(settings: Settings, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    esplora = str(Path(sys.executable).parent / "esplora")
    env = {
        **os.environ,
        "ESPLORA_DETECTOR": "scenes",
        "ESPLORA_DEPTH_MODEL": "scenes",
        "ESPLORA_SCENE_ERROR_RATES": "below=1.0",
    }

    def run(*args: str) -> dict:  # type: ignore[type-arg]
        result = subprocess.run([esplora, *args, "--json"], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else {}

    subprocess.run([esplora, "db", "upgrade"], check=True, capture_output=True, env=env)
    run(
        "scenes",
        "make-corpus",
        str(tmp_path / "c"),
        "--n",
        "12",
        "--wrong-rate",
        "0",
        "--vague-rate",
        "0",
    )
    run("ingest", str(tmp_path / "c"), "--format", "folder")
    run("pipeline", "run", "--inline")
    assert run("prompts", "synthesize", "--n", "12")["added"] >= 6
    out = run("generate", "--prompts", "origin=synthesized", "--generator", "scenes", "--inline")
    kept = {r["relation"]: r["retention"] for r in out["retention"]}
    assert kept["below"] == 0.0 and kept["above"] == 1.0
    queued = run("generate", "--prompts", "all", "--generator", "scenes", "--detach", "--seed", "9")
    assert queued["enqueued"] >= 1
    # With a worker alive the command follows the queued batches to their validation.
    worker_env = {**env, "ESPLORA_GENERATOR": "scenes",
                  "ESPLORA_DATABASE_URL": settings.resolved_database_url}  # fmt: skip
    with workers(worker_env, tmp_path / "logs") as pool:
        pool.start("gpu@loop", pool="solo")
        followed = run("generate", "--prompts", "all", "--generator", "scenes", "--seed", "9")
    assert followed["followed"] and followed["finished"]
    with Store.from_url(settings.resolved_database_url).reader() as session:
        seeded = session.scalars(select(Generation.image_id).where(Generation.seed == 9)).all()
        assert seeded and len(session.scalars(select(Validation.generation_id)).all()) > 0
