"""Turning raw detections into results: clipping, degenerate boxes, top-K, query phrases."""

from __future__ import annotations

import math

from esplora.backends.base import ExtractedObject
from esplora.backends.detectors import Candidate, finalise, query_phrase

CAT = ExtractedObject("cat", "a cat")
DOG = ExtractedObject("dog", "a dog")


def test_boxes_are_clipped_and_degenerate_ones_dropped_with_a_reason() -> None:
    candidates = [
        Candidate(CAT, (-5.0, 10.0, 40.0, 30.0), 0.9),  # partly outside: clipped
        Candidate(DOG, (10.0, 10.0, 20.0, 20.0), 0.8),  # inside: kept
        Candidate(CAT, (120.0, 10.0, 150.0, 20.0), 0.7),  # entirely right of the image
        Candidate(DOG, (10.0, 10.0, 10.4, 30.0), 0.6),  # under a pixel wide
        Candidate(CAT, (math.nan, 0.0, 5.0, 5.0), 0.5),
        Candidate(DOG, (30.0, 30.0, 20.0, 40.0), 0.4),  # x1 < x0
        Candidate(CAT, (1.0, 1.0, 9.0, 9.0), 0.3, "below_text_threshold"),
    ]
    result = finalise(candidates, width=100, height=50, max_objects=10)
    assert [(b.label, b.box, b.score) for b in result.boxes] == [
        ("cat", (0.0, 10.0, 40.0, 30.0), 0.9),
        ("dog", (10.0, 10.0, 20.0, 20.0), 0.8),
    ]
    reasons = [(d.phrase, d.reason) for d in result.dropped]
    assert reasons == [
        ("a cat", "outside"), ("a dog", "too_small"), ("a cat", "non_finite"),
        ("a dog", "inverted"), ("a cat", "below_text_threshold"),
    ]  # fmt: skip
    assert all(isinstance(v, float) for b in result.boxes for v in b.box)


def test_only_the_top_k_by_score_are_kept() -> None:
    candidates = [
        Candidate(CAT, (i, 0.0, i + 10.0, 10.0), s) for i, s in enumerate([0.2, 0.9, 0.5])
    ]
    result = finalise(candidates, width=100, height=100, max_objects=2)
    assert [b.score for b in result.boxes] == [0.9, 0.5]
    assert [(d.reason, d.box) for d in result.dropped] == [("top_k", (0.0, 0.0, 10.0, 10.0))]


def test_scores_are_clamped_to_the_unit_interval() -> None:
    result = finalise([Candidate(DOG, (0.0, 0.0, 5.0, 5.0), 1.0000001)], 10, 10, 1)
    assert result.boxes[0].score == 1.0


def test_query_phrases_hold_no_periods() -> None:
    assert query_phrase(ExtractedObject("bus", "A red  Bus.")) == "a red bus"
    assert query_phrase(ExtractedObject("dog", "")) == "dog"
    assert query_phrase(ExtractedObject("dog", "...")) == "dog"
