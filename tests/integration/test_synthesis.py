"""Prompts synthesized from natural images' strict relations, with the all-pairs rule."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from esplora.core.prompts import prompt_spec
from esplora.db.engine import Store
from esplora.db.enums import ReviewTarget, Stage, VoteVerdict
from esplora.db.relations import GeometricRelation
from esplora.db.review import Override
from esplora.db.synthetic import SpatialPrompt
from esplora.services.ingest import ingest
from esplora.services.pipeline import StageContext, run_inline
from esplora.services.synthesis import strict_facts, synthesize
from esplora.settings import Settings
from support.datasets import CocoImage, jpeg, write_coco

# Image 1: a cat clearly left of a dog. Image 2: three cars, two left of the tree, one right of
# it: "car left of tree" does not hold for every instance pair, so no fact about cars and tree.
IMAGE_1 = [("cat", [4.0, 20.0, 30.0, 30.0]), ("dog", [60.0, 22.0, 30.0, 28.0])]
IMAGE_2 = [
    ("car", [2.0, 100.0, 30.0, 20.0]),
    ("car", [40.0, 100.0, 30.0, 20.0]),
    ("car", [180.0, 100.0, 30.0, 20.0]),
    ("tree", [110.0, 10.0, 30.0, 60.0]),
    ("bench", [150.0, 110.0, 40.0, 15.0]),  # right of and below the tree: a second label pair
]


def _relate(store: Store, settings: Settings, tmp_path: Path) -> None:
    images = [CocoImage(1, jpeg(1, (96, 80)), IMAGE_1), CocoImage(2, jpeg(2, (220, 130)), IMAGE_2)]
    ingest(
        store,
        settings,
        write_coco(tmp_path / "coco", images, with_captions=False),
        source_format="coco",
    )
    # Depth is not needed for the 2D facts: relate without it (no depth axis rows).
    ctx = StageContext(store, settings.model_copy(update={"pair_filter": None}))
    with store.unit_of_work() as session:
        from esplora.db.enums import StageStatus
        from esplora.db.images import ImageStage

        for row in session.scalars(
            select(ImageStage).where(ImageStage.stage.in_([Stage.EXTRACT, Stage.DEPTH]))
        ):
            row.status = StageStatus.SKIPPED
    run_inline(ctx, [Stage.RELATE])


def _facts(store: Store) -> set[tuple[str, str, str]]:
    with store.reader() as session:
        return {(f.subject, f.relation.value, f.object) for _, f in strict_facts(session)}


def test_only_relations_that_hold_for_every_instance_pair_are_facts(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    _relate(store, settings, tmp_path)
    facts = _facts(store)
    assert ("cat", "left_of", "dog") in facts
    assert not {
        f for f in facts if {"car", "tree"} == {f[0], f[2]} and f[1] in ("left_of", "right_of")
    }
    # Vertically every car is below the tree: that one holds for all three pairs.
    assert ("car", "below", "tree") in facts


def test_prompts_are_balanced_deduplicated_and_parse_back(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    _relate(store, settings, tmp_path)
    report = synthesize(store, 20, seed=1)
    with store.reader() as session:
        prompts = session.scalars(select(SpatialPrompt)).all()
    assert report.added == len(prompts) and len({p.text for p in prompts}) == len(prompts)
    relations = {p.relations[0]["relation"] for p in prompts}
    assert {"left_of", "right_of"} <= relations  # both readings of the cat/dog fact
    for p in prompts:  # each prompt says exactly what it stores
        spec = prompt_spec(p.text)
        parsed = {
            (spec.objects[r.subject].label, r.relation.value, spec.objects[r.object].label)
            for r in spec.relations
        }
        assert parsed == {(r["subject"], r["relation"], r["object"]) for r in p.relations}
        assert p.origin == "synthesized" and p.origin_image_id in (1, 2)
    assert synthesize(store, 20, seed=1).added == 0  # de-duplicated across runs


def test_a_rejected_relation_gives_no_prompt(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    _relate(store, settings, tmp_path)
    with store.unit_of_work() as session:
        row = session.scalars(
            select(GeometricRelation).where(
                GeometricRelation.axis == "horizontal", GeometricRelation.image_id == 1
            )
        ).one()
        session.add(
            Override(
                target_type=ReviewTarget.RELATION,
                target_id=row.id,
                decision=VoteVerdict.REJECT,
                values={},
                decided_by="alice",
            )
        )
    assert ("cat", "left_of", "dog") not in _facts(store)


def test_complex_prompts_hold_two_relations_of_one_image(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    _relate(store, settings, tmp_path)
    synthesize(store, 10, complex_prompts=True, seed=2)
    with store.reader() as session:
        prompts = session.scalars(select(SpatialPrompt)).all()
    assert prompts and all(p.kind.value == "complex" and len(p.relations) == 2 for p in prompts)
    assert all(len(prompt_spec(p.text).relations) == 2 for p in prompts)
