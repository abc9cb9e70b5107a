"""The peer benchmarks' image-level scoring and aggregation (SPATIAL.md, "Peer rules").

The pair rules are in :mod:`esplora.core.rules`; this module picks the detections each benchmark
compares and aggregates images the way its published evaluator does, so that numbers are
comparable with the peers' papers (not identical: their detectors differ from ours).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from esplora.core.relations import DEPTH_RELATIONS, Relation
from esplora.core.rules import get_rule

T2I_FRAME = (479.0, 480.0)  # T2I-CompBench's detector frame: shorter side 479, longer ≤ 480
GENEVAL_MIN_CONFIDENCE = 0.3
VISOR_MAX_N = 4


@dataclass(frozen=True, slots=True)
class PeerDetection:
    """A detection as the peers see it: box, confidence, and the mean disparity in the box."""

    box: tuple[float, float, float, float]
    score: float
    mean_disparity: float | None = None


def _top(detections: Sequence[PeerDetection]) -> PeerDetection | None:
    return max(detections, key=lambda d: d.score, default=None)


def _scaled(box: tuple[float, float, float, float], factor: float) -> tuple[float, ...]:
    return tuple(v * factor for v in box)


def t2i_compbench_score(
    relation: Relation,
    subjects: Sequence[PeerDetection],
    objects: Sequence[PeerDetection],
    image_size: tuple[int, int],
) -> float:
    """``0.25·conf_A + 0.25·conf_B + 0.5·rule`` on the most confident detection of each noun,
    boxes rescaled into the benchmark's 480-px frame; 2D scores below 0.5 count as 0."""
    a, b = _top(subjects), _top(objects)
    if a is None or b is None:
        return 0.0
    width, height = image_size
    factor = min(T2I_FRAME[0] / min(width, height), T2I_FRAME[1] / max(width, height))
    disparity = None
    if relation in DEPTH_RELATIONS:
        if a.mean_disparity is None or b.mean_disparity is None:
            return 0.0
        disparity = (a.mean_disparity, b.mean_disparity)
    rule = get_rule("t2i-compbench").score(
        relation, _scaled(a.box, factor), _scaled(b.box, factor), disparity=disparity
    )
    score = 0.25 * a.score + 0.25 * b.score + 0.5 * rule
    return 0.0 if relation not in DEPTH_RELATIONS and score < 0.5 else score


def geneval_correct(
    relation: Relation, subjects: Sequence[PeerDetection], objects: Sequence[PeerDetection]
) -> bool:
    """GenEval "position": top-1 against top-1, each with confidence strictly above 0.3."""
    a = _top([d for d in subjects if d.score > GENEVAL_MIN_CONFIDENCE])
    b = _top([d for d in objects if d.score > GENEVAL_MIN_CONFIDENCE])
    if a is None or b is None:
        return False
    return get_rule("geneval").score(relation, a.box, b.box) == 1.0


def visor_image(
    relation: Relation, subjects: Sequence[PeerDetection], objects: Sequence[PeerDetection]
) -> tuple[bool, bool]:
    """(both objects present, correct): correct when **any** pair satisfies the centroid rule."""
    present = bool(subjects) and bool(objects)
    rule = get_rule("visor")
    correct = any(rule.score(relation, a.box, b.box) == 1.0 for a in subjects for b in objects)
    return present, present and correct


def visor_summary(per_prompt: Sequence[Sequence[tuple[bool, bool]]]) -> dict[str, float]:
    """OA, VISOR_cond, VISOR_uncond and VISOR_1..4 over prompts' images (present, correct)."""
    images = [image for prompt in per_prompt for image in prompt]
    if not images:
        return {}
    present = sum(p for p, _ in images)
    correct = sum(c for _, c in images)
    out = {
        "OA": present / len(images),
        "VISOR_uncond": correct / len(images),
        "VISOR_cond": correct / present if present else 0.0,
    }
    for n in range(1, VISOR_MAX_N + 1):
        out[f"VISOR_{n}"] = sum(sum(c for _, c in p) >= n for p in per_prompt) / len(per_prompt)
    return out
