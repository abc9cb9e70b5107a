"""Captions of scenes: true ones state strict relations, wrong ones an inverted one, vague ones
none; all name every object, in words the platform's grammar and extractor read back."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from esplora.backends.extractors import caption_objects
from esplora.core.grammar import parse
from esplora.core.relations import INVERSE
from esplora.core.vocabulary import load_vocabulary
from esplora.scenes.captions import Caption, CaptionKind, caption_scene
from esplora.scenes.layout import random_scene
from esplora.scenes.model import Scene, TruthRelation, strict_relations
from esplora.scenes.render import render


def _captioned(
    n: int, seed: int, **rates: float
) -> list[tuple[Scene, list[TruthRelation], Caption]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        scene = random_scene(rng, int(rng.integers(2, 6)))
        shown = render(scene)
        truth = strict_relations(shown.boxes, shown.depths)
        out.append((scene, truth, caption_scene(scene, truth, rng, **rates)))
    return out


def _facts(scene: Scene, truth: list[TruthRelation]) -> set[tuple[str, str, str]]:
    """Every strict relation as labels, in both readings (left_of and its right_of view)."""
    out = set()
    for t in truth:
        s, o = scene.objects[t.subject].label, scene.objects[t.object].label
        out |= {(s, t.relation.value, o), (o, INVERSE[t.relation].value, s)}
    return out


def test_captions_follow_their_kind_and_name_every_object() -> None:
    lexicon = load_vocabulary().lexicon
    kinds: Counter[CaptionKind] = Counter()
    for scene, truth, caption in _captioned(80, 1, wrong_rate=0.25, vague_rate=0.25):
        kinds[caption.kind] += 1
        assert {o.label for o in caption_objects([caption.text])} == {
            o.label for o in scene.objects
        }
        parsed = [
            (s.label, c.relation.value, o.label)
            for c in parse(caption.text, lexicon=lexicon).unambiguous
            for s in c.subject_mentions
            for o in c.object_mentions
        ]
        assert parsed == [(c.subject, c.relation.value, c.object) for c in caption.claims]
        facts = _facts(scene, truth)
        for k, claim in enumerate(caption.claims):
            said = (claim.subject, claim.relation.value, claim.object)
            assert (said in facts) == claim.holds
            assert claim.holds == (caption.kind is CaptionKind.TRUE or k > 0)
        assert (caption.kind is CaptionKind.VAGUE) == (not caption.claims)
    assert all(12 <= kinds[k] for k in CaptionKind)


def test_clean_captions_state_only_true_relations() -> None:
    for _, _, caption in _captioned(30, 2):
        assert caption.kind in (CaptionKind.TRUE, CaptionKind.VAGUE)
        assert all(c.holds for c in caption.claims)


def test_caption_rates_are_checked() -> None:
    scene, truth, _ = _captioned(1, 3)[0]
    with pytest.raises(ValueError, match="rates"):
        caption_scene(scene, truth, np.random.default_rng(0), wrong_rate=0.7, vague_rate=0.6)
