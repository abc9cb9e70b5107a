"""Training runs on a real store (SQLite and PostgreSQL): lifecycle and lineage, adapters by run
name, checkpoint validation on the tiny Flux twin, ``esplora train`` inline and through a real
worker process, ``runs list/show``, ``generate --adapter RUN`` and ``eval`` lineage."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from PIL import Image as PILImage
from typer.testing import CliRunner

from esplora.backends import registry
from esplora.core.snapshots import relation
from esplora.db.engine import Store
from esplora.db.enums import Origin, RunStatus, SourceKind, Split
from esplora.db.images import Image, Sample, Source
from esplora.db.runs import EvaluationRun
from esplora.db.snapshots import Snapshot, SnapshotMember
from esplora.errors import EsploraError
from esplora.services import runs
from esplora.settings import Settings, get_settings
from esplora.sources.images import sha256_hex, store_original
from support.datasets import encode, photo
from support.workers import wait_until, worker_env, workers

TEXT = "a cat to the left of a dog"
LEASE = timedelta(minutes=5)
TINY = {"max_steps": 2, "checkpoint_every": 2, "validation_steps": 2}  # a few seconds on a CPU


def make_snapshot(store: Store, settings: Settings, name: str = "tiny-set", count: int = 4) -> str:
    """A frozen snapshot of ``count`` 64×64 images with one relation each, written directly."""
    facts = [relation("left_of", ("cat", [4, 20, 28, 44]), ("dog", [36, 20, 60, 44]), soft=True,
                      strict=True, margin=0.5, state="accepted")]  # fmt: skip
    with store.unit_of_work() as session:
        source = Source(name=f"photos-{name}", kind=SourceKind.FOLDER, meta={})
        digest = hashlib.sha256(name.encode()).hexdigest()
        snapshot = Snapshot(name=name, filter={}, filter_json="{}", text_source="caption",
                            content_hash=digest, counts={})  # fmt: skip
        session.add_all([source, snapshot])
        session.flush()
        for i in range(count):
            data = encode(photo(i, (64, 64)), "PNG")
            sha = sha256_hex(data)
            uri = store_original(data, sha, "png", settings.artefacts_dir)
            image = Image(sha256=sha, uri=uri, width=64, height=64, origin=Origin.NATURAL,
                          format="PNG", byte_size=len(data))  # fmt: skip
            session.add(image)
            session.flush()
            sample = Sample(image_id=image.id, source_id=source.id, source_key=str(i), caption=TEXT)
            session.add(sample)
            session.flush()
            session.add(SnapshotMember(snapshot_id=snapshot.id, sample_id=sample.id,
                                       image_sha256=sha, text=TEXT, text_source="caption",
                                       relations=facts, review_state="accepted",
                                       split=Split.TRAIN))  # fmt: skip
    return name


def tiny_config(**overrides: Any) -> dict[str, Any]:
    from esplora_training.config import load_config

    return load_config("tiny-flux", {**TINY, **overrides}).model_dump(mode="json")


@pytest.fixture
def tiny(tiny_models: Path, monkeypatch: pytest.MonkeyPatch, store_url: str) -> Iterator[Settings]:
    """The process's settings on the tiny profile and this test's store (the engine and the CLI
    read them from the environment); detector thresholds 0 so that probes get boxes."""
    env = {"ESPLORA_DATABASE_URL": store_url, "ESPLORA_PROFILE": "tiny",
           "ESPLORA_MODELS_DIR": str(tiny_models), "ESPLORA_BOX_THRESHOLD": "0",
           "ESPLORA_TEXT_THRESHOLD": "0", "ESPLORA_MAX_OBJECTS": "4"}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield get_settings()
    registry.clear_cache()


def cli() -> typer.Typer:
    from esplora.cli import evaluate, generate, train

    app = typer.Typer()
    train.register(app)
    generate.register(app)
    app.add_typer(evaluate.app, name="eval")
    return app


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(cli(), list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else result


# --- the service on both stores -----------------------------------------------------------


def test_a_run_records_its_lineage_metrics_checkpoints_and_outcome(
    store: Store, settings: Settings
) -> None:
    make_snapshot(store, settings)
    with pytest.raises(EsploraError, match="no snapshot named 'nope'"):
        runs.create_run(store, name="r", snapshot="nope", config={})
    with pytest.raises(EsploraError, match="run name 'a/b'"):
        runs.create_run(store, name="a/b", snapshot="tiny-set", config={})
    view = runs.create_run(store, name="r", snapshot="tiny-set", config={"max_steps": 3})
    with pytest.raises(EsploraError, match="a training run named 'r' exists"):
        runs.create_run(store, name="r", snapshot="tiny-set", config={})
    assert (
        view.status is RunStatus.QUEUED
        and view.snapshot_hash == hashlib.sha256(b"tiny-set").hexdigest()
    )

    assert runs.start_run(store, "r", worker="w:1", lease=LEASE) is not None
    runs.record_metrics(store, view.id, 1, {"loss": 2.0, "lr": 1e-4, "grad_norm": float("nan")})
    runs.record_metrics(store, view.id, 1, {"loss": 1.5}, heartbeat=True)  # a replayed step
    runs.record_metrics(store, view.id, 2, {"loss": 1.0, "accuracy/left_of": 0.5})
    runs.record_checkpoint(store, view.id, 2, "/tmp/a")
    runs.record_checkpoint(store, view.id, 2, "/tmp/b")  # idempotent on (run, step)
    runs.record_artefact(store, view.id, ("validation", "2"), {"grid": "g.png"})
    runs.record_artefact(store, view.id, ("validation", "4"), {"error": "x"})
    assert runs.finish_run(store, view.id, adapter_uri="/tmp/ad", artefacts={"run_dir": "d"}) \
        is RunStatus.SUCCEEDED  # fmt: skip
    assert runs.start_run(store, "r", worker="w:2", lease=LEASE) is None  # finished: never again
    with store.unit_of_work() as session:
        session.add(EvaluationRun(name="e", benchmark="urban", generator="g", rule="r",
                                  training_run_id=view.id, metrics={"strict_accuracy": 0.25},
                                  status=RunStatus.SUCCEEDED))  # fmt: skip

    shown = runs.show_run(store, "r")
    assert shown["metrics"] == {"accuracy/left_of": [[2, 0.5]], "loss": [[1, 1.5], [2, 1.0]],
                                "lr": [[1, 1e-4]]}  # fmt: skip
    assert shown["checkpoints"] == [{"step": 2, "uri": "/tmp/b"}]
    assert shown["artefacts"]["validation"] == {"2": {"grid": "g.png"}, "4": {"error": "x"}}
    assert shown["artefacts"]["run_dir"] == "d" and shown["adapter"] == "/tmp/ad"
    assert (shown["status"], shown["step"], shown["max_steps"]) == ("succeeded", 2, 3)
    assert shown["latest"] == {"loss": 1.0, "lr": 1e-4, "accuracy/left_of": 0.5}
    assert [(e["name"], e["strict_accuracy"]) for e in shown["evaluations"]] == [("e", 0.25)]
    assert [r["name"] for r in runs.list_runs(store)] == ["r"]
    assert runs.run_progress(store, "r")["validated"] == [2, 4]


def test_cancel_fail_and_resume_rules(store: Store, settings: Settings) -> None:
    make_snapshot(store, settings)
    for name in ("a", "b", "c"):
        runs.create_run(store, name=name, snapshot="tiny-set", config={})
    assert runs.cancel_run(store, "a") is RunStatus.QUEUED
    with pytest.raises(EsploraError, match="already cancelled"):
        runs.cancel_run(store, "a")
    assert runs.start_run(store, "a", worker="w:1", lease=LEASE) is None  # cancelled: skipped
    assert runs.requeue_run(store, "a", lease=LEASE).status is RunStatus.QUEUED

    b = runs.start_run(store, "b", worker="w:1", lease=LEASE)
    assert b is not None
    runs.fail_run(store, b.id, "RuntimeError: boom")
    assert runs.get_run(store, "b").status is RunStatus.FAILED
    assert runs.requeue_run(store, "b", lease=LEASE, config={"max_steps": 9}).config == {
        "max_steps": 9
    }

    # A redelivered job must not train a run whose worker still beats; a silent one is taken
    # over, as is one whose process is gone from this host.
    c = runs.start_run(store, "c", worker="elsewhere:1", lease=LEASE)
    assert c is not None and runs.start_run(store, "c", worker="w:2", lease=LEASE) is None
    with pytest.raises(EsploraError, match="only a failed, cancelled or stale run"):
        runs.requeue_run(store, "c", lease=LEASE)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = f"{socket.gethostname()}:{dead.pid}"
    assert runs.start_run(store, "c", worker=gone, lease=timedelta(0)) is not None  # silent
    assert runs.start_run(store, "c", worker="w:3", lease=LEASE) is not None  # holder is dead
    assert runs.is_cancelled(store, c.id) is False


def test_adapters_resolve_by_run_name_checkpoint_or_path(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    make_snapshot(store, settings)
    view = runs.create_run(store, name="spatial", snapshot="tiny-set", config={})
    runs.record_checkpoint(store, view.id, 10, str(tmp_path / "ck10"))
    with pytest.raises(EsploraError, match=r"queued and has no adapter yet; .*spatial@10"):
        runs.resolve_adapter(store, "spatial")
    runs.finish_run(store, view.id, adapter_uri=str(tmp_path / "final"), artefacts={})
    assert runs.resolve_adapter(store, "spatial") == str(tmp_path / "final")
    assert runs.resolve_adapter_run(store, "spatial@10") == (str(tmp_path / "ck10"), view.id)
    with pytest.raises(EsploraError, match="no checkpoint at step 7"):
        runs.resolve_adapter(store, "spatial@7")
    (tmp_path / "loose").mkdir()
    assert runs.resolve_adapter_run(store, str(tmp_path / "loose")) == (
        str(tmp_path / "loose"), None)  # fmt: skip
    with pytest.raises(EsploraError, match="neither a training run"):
        runs.resolve_adapter(store, "missing")


# --- validation, training and the CLI on the tiny Flux twin ---------------------------------


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_validate_checkpoint_stores_accuracy_per_relation_and_a_grid(
    tiny: Settings, store: Store, tiny_models: Path
) -> None:
    import diffusers

    from esplora.backends.lora import add_lora, save_adapter
    from esplora_training.validation import run_grid_path, validate_checkpoint

    make_snapshot(store, tiny)
    # No validation prompts: the default balanced probe set, 2 pairs × 6 relations.
    view = runs.create_run(
        store, name="probe", snapshot="tiny-set", config=tiny_config(validation_prompts=[])
    )
    pipe = diffusers.FluxPipeline.from_pretrained(tiny_models / "flux")
    add_lora(pipe.transformer, 4, 4.0)
    adapter = runs.run_dir(tiny, "probe") / "adapters" / "step-00000010"
    save_adapter(diffusers.FluxPipeline, pipe.transformer, adapter, base="tiny/flux")
    runs.record_checkpoint(store, view.id, 10, str(adapter))

    metrics = validate_checkpoint(store, tiny, "probe", 10)
    relations = ["above", "behind", "below", "in_front_of", "left_of", "right_of"]
    assert sorted(k.removeprefix("accuracy/") for k in metrics if k.startswith("accuracy/")) \
        == sorted([*relations, "all"])  # fmt: skip
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert all(metrics[f"accuracy/{r}"] <= metrics[f"soft_accuracy/{r}"] for r in relations)
    shown = runs.show_run(store, "probe")
    assert shown["metrics"]["accuracy/left_of"] == [[10, metrics["accuracy/left_of"]]]
    entry = shown["artefacts"]["validation"]["10"]
    assert entry["probes"] == 12 and entry["adapter"] == str(adapter)
    with PILImage.open(entry["grid"]) as grid:
        assert grid.format == "PNG" and grid.size == (2 * 192, 6 * (192 + 30))
    assert Path(entry["grid"]) == run_grid_path(tiny, "probe", 10)

    again = invoke("runs", "validate", "probe", "--step", "10", "--inline", "--json")
    assert again == metrics  # fixed probes, seeds and adapter: the same verdicts
    with pytest.raises(EsploraError, match="no checkpoint at step 20"):
        invoke("runs", "validate", "probe", "--step", "20")
    with pytest.raises(EsploraError, match="no checkpoint at step 20"):
        validate_checkpoint(store, tiny, "probe", 20)
    assert "no checkpoint at step 20" in runs.show_run(store, "probe")["artefacts"]["validation"][
        "20"]["error"]  # fmt: skip


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_cancelled_job_resumes_from_its_checkpoint(tiny: Settings, store: Store) -> None:
    from esplora_training.jobs import run_training_job

    make_snapshot(store, tiny)
    runs.create_run(store, name="stop", snapshot="tiny-set",
                    config=tiny_config(max_steps=3, checkpoint_every=4))  # fmt: skip

    def cancel_at_first(step: int, _: Any) -> None:
        if step == 1:
            runs.cancel_run(store, "stop")

    first = run_training_job(store, tiny, "stop", progress=cancel_at_first)
    assert first is not None and first.status is RunStatus.CANCELLED and first.adapter is None
    assert first.steps == 1 and first.validated == ()  # a stop's checkpoint is not validated
    with pytest.raises(EsploraError, match="rank cannot change"):
        invoke("train", "--name", "stop", "--resume", "--set", "rank=8")
    # Resumed with a longer schedule (a run-control key): the final adapter is validated.
    out = invoke("train", "--name", "stop", "--resume", "--set", "max_steps=4", "--inline",
                 "--json")  # fmt: skip
    assert (out["status"], out["step"], sorted(out["validation"])) == ("succeeded", 4, ["4"])
    shown = runs.show_run(store, "stop")
    assert [c["step"] for c in shown["checkpoints"]] == [1, 4]
    assert [s for s, _ in shown["metrics"]["loss"]] == [1, 2, 3, 4]
    assert shown["config"]["max_steps"] == 4 and shown["error"] is None
    assert Path(shown["adapter"], "pytorch_lora_weights.safetensors").is_file()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_train_inline_then_runs_show_and_generate_by_run_name(
    tiny: Settings, store: Store, tmp_path: Path
) -> None:
    make_snapshot(store, tiny)
    with pytest.raises(EsploraError, match="unknown training config 'nope'"):
        invoke("train", "--snapshot", "tiny-set", "--name", "x", "--config", "nope")
    out = invoke("train", "--snapshot", "tiny-set", "--name", "inline", "--config", "tiny-flux",
                 "--set", "max_steps=4", "--set", "checkpoint_every=2", "--set",
                 "validation_steps=2", "--inline", "--json")  # fmt: skip
    assert out["status"] == "succeeded" and out["step"] == 4
    assert sorted(out["validation"]) == ["2", "4"]
    relations = {"left_of", "right_of", "above", "below", "in_front_of", "behind", "all"}
    assert set(out["validation"]["4"]) == relations  # the balanced default probes

    listing = invoke("runs", "list", "--json")
    assert [(r["name"], r["status"], r["snapshot"]) for r in listing] == [
        ("inline", "succeeded", "tiny-set")]  # fmt: skip
    shown = invoke("runs", "show", "inline", "--json")
    assert shown["config"]["snapshot"] == "tiny-set" and shown["config"]["max_steps"] == 4
    assert [c["step"] for c in shown["checkpoints"]] == [2, 4]
    assert all(Path(v["grid"]).is_file() for v in shown["artefacts"]["validation"].values())
    assert "strict spatial accuracy" in invoke("runs", "show", "inline").stdout

    image = tmp_path / "by-run.png"
    made = invoke("generate", "a dog to the right of a cat", "--adapter", "inline@2", "--tore",
                  "--out", str(image), "--steps", "2", "--width", "64", "--height", "64",
                  "--json")  # fmt: skip
    assert made["adapter"] == shown["checkpoints"][0]["uri"]
    assert made["prompt"] == "a cat to the left of a dog"  # TORE's rewrite is what the model read
    with PILImage.open(image) as png:
        assert png.text["adapter"] == made["adapter"]
        assert png.text["original_prompt"] == "a dog to the right of a cat"
    final = invoke("generate", "a cat", "--adapter", "inline", "--out", str(image), "--steps", "2",
                   "--width", "64", "--height", "64", "--json")  # fmt: skip
    assert final["adapter"] == shown["adapter"] and "+lora:adapter@" in final["producer"]
    with pytest.raises(EsploraError, match="neither a training run"):
        invoke("generate", "a cat", "--adapter", "nosuchrun", "--out", str(image))

    # Evaluations of the run's adapter link to it: base vs adapter vs adapter + TORE.
    common = ["--benchmark", "visor", "--generator", "flux", "--limit", "1",
              "--images-per-prompt", "1", "--json"]  # fmt: skip
    invoke("eval", *common, "--name", "base")
    invoke("eval", *common, "--name", "lora", "--adapter", "inline")
    invoke("eval", *common, "--name", "lora-tore", "--adapter", "inline", "--tore", "static")
    compared = invoke("eval", "compare", "base", "lora", "lora-tore", "--json")
    assert [(r["training_run"], r["tore"]) for r in compared] == [
        (None, "off"), ("inline", "off"), ("inline", "static")]  # fmt: skip
    assert [e["name"] for e in runs.show_run(store, "inline")["evaluations"]] == [
        "lora",
        "lora-tore",
    ]
    table = invoke("eval", "compare", "base", "lora", "lora-tore").stdout
    assert "training run" in table and "inline" in table


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_train_is_queued_and_a_real_worker_trains_and_validates(
    tiny: Settings, store: Store, store_url: str, tiny_models: Path, tmp_path: Path
) -> None:
    from esplora_workers.app import create_app

    app = create_app(tiny)
    assert {"esplora.train.run", "esplora.train.validate"} <= set(app.tasks)
    make_snapshot(store, tiny)
    args = ["train", "--snapshot", "tiny-set", "--config", "tiny-flux", "--set", "max_steps=4",
            "--set", "checkpoint_every=2", "--set", "validation_steps=2", "--json"]  # fmt: skip
    result = CliRunner().invoke(cli(), [*args, "--name", "queued"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"run": "queued", "status": "queued", "followed": False,
                                         "workers": 0}  # fmt: skip
    assert "esplora worker --queues gpu" in result.stderr

    env = worker_env(database_url=store_url, models_dir=tiny_models, lease_s=600,
                     ESPLORA_HOME=os.environ["ESPLORA_HOME"])  # fmt: skip
    with workers(env, tmp_path / "logs") as pool:
        worker = pool.start("gpu@test", pool="solo")
        # The run queued before any worker existed is picked up; with a worker alive the CLI
        # follows the next one to its end, validations included.
        followed = invoke(*args, "--name", "followed")
        assert followed["status"] == "succeeded" and sorted(followed["validation"]) == ["2", "4"]

        def done() -> bool:
            state = runs.run_progress(store, "queued")
            return state["status"] == "succeeded" and state["validated"] == [2, 4]

        wait_until(done, 120, interval=0.5, what=f"run 'queued':\n{worker.log()[-3000:]}")
    shown = runs.show_run(store, "queued")
    relations = ("above", "all", "behind", "below", "in_front_of", "left_of", "right_of")
    assert sorted(k for k in shown["metrics"] if k.startswith("accuracy/")) == [
        f"accuracy/{r}" for r in relations]  # fmt: skip
    assert Path(shown["adapter"]).is_dir()
