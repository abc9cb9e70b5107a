"""The procedural scene world: urban scenes with exact ground truth, rendered offline.

No detection, depth or text-to-image weights can be had offline, so the platform carries a small
world in which every answer is known (``docs/scenes.md``):

- :mod:`~esplora.scenes.model`: typed scenes and the ground truth (:func:`strict_relations`);
- :mod:`~esplora.scenes.layout`: seeded composition (:func:`compose`, :func:`random_scene`);
- :mod:`~esplora.scenes.render`: flat-shaded sprites with occlusion, depth written into pixels;
- :mod:`~esplora.scenes.captions` and :mod:`~esplora.scenes.corpus`: alt-text and corpora;
- :mod:`~esplora.scenes.backends`: the ``scenes`` detector, depth reader and generator.

numpy, Pillow and :mod:`esplora.core` only (the backends module also uses the backend protocols).
"""

from esplora.scenes.captions import Caption, CaptionKind, ClaimedRelation, caption_scene
from esplora.scenes.corpus import CorpusOptions, read_ground_truth, write_corpus
from esplora.scenes.layout import ComposeOptions, compose, compose_objects, random_scene
from esplora.scenes.model import (
    LEVELS,
    Background,
    Requirement,
    Scene,
    SceneError,
    SceneObject,
    TruthRelation,
    strict_relations,
)
from esplora.scenes.render import Rendering, render
from esplora.scenes.sprites import LABELS

__all__ = [
    "LABELS",
    "LEVELS",
    "Background",
    "Caption",
    "CaptionKind",
    "ClaimedRelation",
    "ComposeOptions",
    "CorpusOptions",
    "Rendering",
    "Requirement",
    "Scene",
    "SceneError",
    "SceneObject",
    "TruthRelation",
    "caption_scene",
    "compose",
    "compose_objects",
    "random_scene",
    "read_ground_truth",
    "render",
    "strict_relations",
    "write_corpus",
]
