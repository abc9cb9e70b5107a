"""Composition: asked relations hold strictly (or inverted, when wrong) on the visible boxes,
clean scenes keep every pair off the rule's boundary, and the ground truth is the rule itself."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from esplora.core.relations import INVERSE, Relation
from esplora.core.rules import canonical_relations
from esplora.core.rules.esplora import evaluate
from esplora.scenes.layout import CLEAN_MARGIN, ComposeOptions, compose, random_scene
from esplora.scenes.model import SceneError, strict_relations
from esplora.scenes.render import Rendering, render

SIX = [r for r in Relation if r is not Relation.NEAR]


def _holds(relation: Relation, shown: Rendering, s: int, o: int) -> float:
    """The ESPLoRA margin of ``s relation o`` on the visible boxes and exact depths."""
    a, b = shown.boxes[s], shown.boxes[o]
    assert a is not None and b is not None
    result = evaluate(relation, a, b, disparity=(shown.depths[s], shown.depths[o]))
    assert result.strict == (result.margin >= 0)
    return result.margin


@pytest.mark.parametrize("relation", SIX)
@pytest.mark.parametrize("wrong", [False, True])
def test_compose_shows_each_relation_or_its_inverse(relation: Relation, wrong: bool) -> None:
    rng = np.random.default_rng(5)
    for _ in range(5):
        scene = compose(
            [("car", relation, "tree")], rng, wrong={0} if wrong else set(), extra=["dog"]
        )
        shown = render(scene)
        assert [o.label for o in scene.objects] == ["car", "tree", "dog"]
        assert _holds(INVERSE[relation] if wrong else relation, shown, 0, 1) >= CLEAN_MARGIN
        assert (_holds(relation, shown, 0, 1) < 0) == wrong


def test_clean_scenes_keep_every_pair_and_axis_off_the_boundary() -> None:
    rng = np.random.default_rng(9)
    for n in (2, 4, 6, 8):
        shown = render(random_scene(rng, n))
        for i, j in combinations(range(n), 2):
            rows = canonical_relations(
                shown.boxes[i], shown.boxes[j], disparity=(shown.depths[i], shown.depths[j])
            )
            assert len(rows) == 3 and all(abs(r.margin) >= CLEAN_MARGIN for r in rows)


def test_strict_relations_are_the_rule_over_all_pairs() -> None:
    shown = render(random_scene(np.random.default_rng(4), 5))
    truth = strict_relations(shown.boxes, shown.depths)
    expected = set()
    for i, j in combinations(range(5), 2):
        for rel in (Relation.LEFT_OF, Relation.ABOVE, Relation.IN_FRONT_OF):
            for s, o in ((i, j), (j, i)):
                if _holds(rel, shown, s, o) >= 0:
                    expected.add((s, rel, o))
    assert {(t.subject, t.relation, t.object) for t in truth} == expected
    assert all(t.margin >= 0 for t in truth)


def test_composition_is_seeded() -> None:
    relations = [("person", "left_of", "bus"), ("bus", "behind", "bench")]
    a = compose(relations, np.random.default_rng(3))
    b = compose(relations, np.random.default_rng(3))
    c = compose(relations, np.random.default_rng(4))
    assert a == b and a != c


def test_contradictions_and_unknown_labels_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(SceneError, match="no scene"):
        compose([("car", "left_of", "tree"), ("car", "right_of", "tree")], rng,
                options=ComposeOptions(attempts=3, clean=False))  # fmt: skip
    with pytest.raises(SceneError, match="no sprite"):
        compose([("car", "left_of", "unicorn")], rng)
    with pytest.raises(SceneError, match="at most"):
        random_scene(rng, 60)
