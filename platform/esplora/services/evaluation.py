"""Evaluation runs: a generator configuration on a benchmark, scored by the ESPLoRA verdicts and
by each peer's own rule and aggregation, stored per relation.

A run generates (or reuses) K images per prompt, runs the pipeline on them (extract → detect →
depth → relate → validate), then reads the validations and detections back. Adaptive TORE takes
its weak relations from the latest finished run of the same generator and adapter without TORE.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from esplora.core import tore as tore_core
from esplora.core.peer_metrics import (
    PeerDetection,
    geneval_correct,
    t2i_compbench_score,
    visor_image,
    visor_summary,
)
from esplora.core.relations import PLANAR, Relation
from esplora.db.detections import ObjectDepth
from esplora.db.engine import Store
from esplora.db.enums import RunStatus
from esplora.db.images import Image
from esplora.db.runs import EvaluationResult, EvaluationRun, TrainingRun
from esplora.db.synthetic import Generation, SpatialPrompt, Validation
from esplora.errors import EsploraError
from esplora.services.benchmarks import prompt_ids_of
from esplora.services.generation import GenerationPlan, generate, generation_key
from esplora.services.pipeline import StageContext, run_inline
from esplora.services.pipeline.objects import objects_for
from esplora.services.pipeline.validate import validator_name
from esplora.settings import Settings


@dataclass(frozen=True, slots=True)
class EvalConfig:
    """One configuration to evaluate."""

    name: str
    benchmark: str
    generator: str = "scenes"
    adapter: str = ""
    adapter_scale: float = 1.0
    tore: str = "off"  # off | static | adaptive
    images_per_prompt: int = 4
    limit: int | None = None
    seed: int = 0
    steps: int = 4
    guidance: float = 3.5
    size: int = 256
    training_run_id: int | None = None  # the run whose adapter this is (lineage)


@dataclass
class _Tally:
    soft: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    strict: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))
    t2i: list[float] = field(default_factory=list)
    geneval: list[bool] = field(default_factory=list)
    visor: dict[int, list[tuple[bool, bool]]] = field(default_factory=lambda: defaultdict(list))


def weak_from_runs(session: Session, generator: str, adapter: str) -> frozenset[str]:
    """Adaptive TORE: the weak side of each inverse pair, measured without TORE."""
    run = session.scalars(
        select(EvaluationRun)
        .where(
            EvaluationRun.generator == generator,
            EvaluationRun.adapter == adapter,
            EvaluationRun.tore == "off",
            EvaluationRun.status == RunStatus.SUCCEEDED,
        )
        .order_by(EvaluationRun.id.desc())
    ).first()
    if run is None:
        raise EsploraError(
            f"adaptive TORE needs a finished evaluation of {generator} without TORE: run "
            "`esplora eval --benchmark urban` first"
        )
    results = session.scalars(
        select(EvaluationResult).where(EvaluationResult.evaluation_id == run.id)
    )
    accuracy = {r.relation: r.strict_accuracy for r in results if r.relation != "all"}
    return tore_core.weak_relations(accuracy)


def evaluate(store: Store, settings: Settings, config: EvalConfig, generator: Any) -> int:
    """Run ``config`` with ``generator`` (a backend); return the stored evaluation run's id."""
    with store.reader() as session:
        prompt_ids = prompt_ids_of(session, config.benchmark)[: config.limit]
        weak = (
            weak_from_runs(session, str(generator.producer), config.adapter)
            if config.tore == "adaptive"
            else frozenset(tore_core.DEFAULT_WEAK)
        )
    if not prompt_ids:
        raise EsploraError(
            f"benchmark {config.benchmark!r} has no stored prompts: install it first"
        )
    run_id = _start(store, config, generator, weak)
    try:
        plan = GenerationPlan(
            tuple(prompt_ids),
            config.images_per_prompt,
            config.seed,
            config.steps,
            config.guidance,
            config.size,
            config.size,
            config.tore,
            weak,
        )
        generate(
            store,
            settings,
            generator,
            plan,
            adapter=config.adapter,
            adapter_scale=config.adapter_scale,
        )
        run_inline(StageContext(store, settings))
        key = generation_key(generator, plan, config.adapter, config.adapter_scale)
        _finish(store, run_id, _score(store, settings, plan, key))
    except Exception as error:
        with store.unit_of_work() as session:
            row = session.get(EvaluationRun, run_id)
            if row is not None:
                row.status, row.error = RunStatus.FAILED, str(error)[:2000]
        raise
    return run_id


def _start(store: Store, config: EvalConfig, generator: Any, weak: frozenset[str]) -> int:
    with store.unit_of_work() as session:
        if session.scalars(
            select(EvaluationRun.id).where(EvaluationRun.name == config.name)
        ).first():
            raise EsploraError(
                f"an evaluation run named {config.name!r} exists; choose another --name"
            )
        skip = ("name", "training_run_id")
        params = {f: getattr(config, f) for f in config.__dataclass_fields__ if f not in skip}
        params["weak"] = sorted(weak)
        run = EvaluationRun(
            name=config.name,
            benchmark=config.benchmark,
            generator=str(generator.producer),
            adapter=config.adapter,
            tore=config.tore,
            training_run_id=config.training_run_id,
            rule="esplora-strict",
            params=params,
            status=RunStatus.RUNNING,
        )
        session.add(run)
        session.flush()
        return run.id


def _score(store: Store, settings: Settings, plan: GenerationPlan, key: dict[str, Any]) -> _Tally:
    tally = _Tally()
    with store.reader() as session:
        rows = session.execute(
            select(
                Generation.id,
                Generation.prompt_id,
                Generation.image_id,
                Image.width,
                Image.height,
                SpatialPrompt.relations,
                Validation.strict,
                Validation.soft,
                Validation.per_relation,
            )
            .join(SpatialPrompt, SpatialPrompt.id == Generation.prompt_id)
            .join(Image, Image.id == Generation.image_id)
            .join(Validation, Validation.generation_id == Generation.id)
            .where(*(getattr(Generation, k) == v for k, v in key.items()))
            .where(Generation.prompt_id.in_(plan.prompt_ids))
            .where(Validation.producer == validator_name(StageContext(store, settings)))
        ).all()
        image_ids = [r.image_id for r in rows]
        objects = objects_for(session, image_ids)
        means = _means(session, image_ids)
    for r in rows:
        for rel in r.per_relation:
            tally.soft[rel["relation"]].append(rel["soft"])
            tally.strict[rel["relation"]].append(rel["strict"])
        tally.soft["all"].append(r.soft)
        tally.strict["all"].append(r.strict)
        if len(r.relations) == 1:  # the peers' protocols score one-relation prompts
            _peer(tally, r, objects[r.image_id], means)
    return tally


def _means(session: Session, image_ids: list[int]) -> dict[int, float]:
    """Mean disparity per object of these images (the peers' statistic)."""
    from esplora.db.detections import DetectedObject

    rows = session.execute(
        select(ObjectDepth.object_id, ObjectDepth.mean)
        .join(DetectedObject, DetectedObject.id == ObjectDepth.object_id)
        .where(DetectedObject.image_id.in_(image_ids))
    )
    return {object_id: mean for object_id, mean in rows}


def _peer(tally: _Tally, row: Any, objects: list[Any], means: dict[int, float]) -> None:
    fact = row.relations[0]
    relation = Relation(fact["relation"])
    subjects = [
        PeerDetection(o.box, o.score, means.get(o.id))
        for o in objects
        if o.label == fact["subject"]
    ]
    targets = [
        PeerDetection(o.box, o.score, means.get(o.id)) for o in objects if o.label == fact["object"]
    ]
    tally.t2i.append(t2i_compbench_score(relation, subjects, targets, (row.width, row.height)))
    if relation in PLANAR:
        tally.geneval.append(geneval_correct(relation, subjects, targets))
        tally.visor[row.prompt_id].append(visor_image(relation, subjects, targets))


def _mean(values: list[Any]) -> float:
    return sum(values) / len(values) if values else 0.0


def _finish(store: Store, run_id: int, tally: _Tally) -> None:
    metrics = {
        "soft_accuracy": _mean(tally.soft["all"]),
        "strict_accuracy": _mean(tally.strict["all"]),
        "images": len(tally.strict["all"]),
        "t2i_compbench": _mean(tally.t2i),
        "geneval_position": _mean(tally.geneval),
        **visor_summary(list(tally.visor.values())),
    }
    with store.unit_of_work() as session:
        session.add_all(
            EvaluationResult(
                evaluation_id=run_id,
                relation=relation,
                images=len(flags),
                soft_accuracy=_mean(tally.soft[relation]),
                strict_accuracy=_mean(flags),
            )
            for relation, flags in sorted(tally.strict.items())
        )
        run = session.get(EvaluationRun, run_id)
        assert run is not None
        run.metrics, run.status, run.finished_at = metrics, RunStatus.SUCCEEDED, datetime.now(UTC)


def compare(store: Store, names: list[str]) -> list[dict[str, Any]]:
    """Runs side by side: headline metrics and strict accuracy per relation."""
    with store.reader() as session:
        runs = session.scalars(select(EvaluationRun).where(EvaluationRun.name.in_(names))).all()
        linked = [r.training_run_id for r in runs if r.training_run_id]
        trained = {
            run_id: name
            for run_id, name in session.execute(
                select(TrainingRun.id, TrainingRun.name).where(TrainingRun.id.in_(linked))
            )
        }
        missing = set(names) - {r.name for r in runs}
        if missing:
            raise EsploraError(f"no evaluation run named {sorted(missing)[0]!r}")
        out = []
        for run in sorted(runs, key=lambda r: names.index(r.name)):
            results = session.scalars(
                select(EvaluationResult).where(EvaluationResult.evaluation_id == run.id)
            )
            out.append(
                {
                    "name": run.name,
                    "generator": run.generator,
                    "adapter": run.adapter,
                    "tore": run.tore,
                    "training_run": trained.get(run.training_run_id or 0),
                    "benchmark": run.benchmark,
                    "status": run.status.value,
                    **run.metrics,
                    "per_relation": {r.relation: r.strict_accuracy for r in results},
                }
            )
    return out
