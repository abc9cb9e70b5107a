"""The peers' image-level scoring: which detections each benchmark compares, how it aggregates."""

from __future__ import annotations

import pytest

from esplora.core.peer_metrics import (
    PeerDetection,
    geneval_correct,
    t2i_compbench_score,
    visor_image,
    visor_summary,
)
from esplora.core.relations import Relation

LEFT = PeerDetection((0, 0, 40, 40), 0.9, 0.8)
RIGHT = PeerDetection((300, 0, 340, 40), 0.8, 0.2)
WEAK_RIGHT = PeerDetection((300, 0, 340, 40), 0.25)


def test_t2i_compbench_uses_the_most_confident_detections_and_cuts_below_half() -> None:
    score = t2i_compbench_score(Relation.LEFT_OF, [LEFT], [RIGHT], (512, 512))
    assert score == pytest.approx(0.25 * 0.9 + 0.25 * 0.8 + 0.5)
    decoy = PeerDetection((400, 0, 440, 40), 0.95)  # more confident, wrong side: it decides
    assert t2i_compbench_score(Relation.LEFT_OF, [LEFT, decoy], [RIGHT], (512, 512)) == 0.0
    assert t2i_compbench_score(Relation.LEFT_OF, [], [RIGHT], (512, 512)) == 0.0


def test_t2i_compbench_rescales_into_its_480_pixel_frame_for_near() -> None:
    # 320 px apart in a 960-px image are ~160 px in the 479-px frame: just not "near" (150 px).
    a, b = PeerDetection((0, 0, 10, 10), 1.0), PeerDetection((320, 320, 330, 330), 1.0)
    far = t2i_compbench_score(Relation.NEAR, [a], [b], (960, 960))
    assert far == pytest.approx(0.5 + 0.5 * 150 / (320 * 479 / 960))
    near = t2i_compbench_score(
        Relation.NEAR, [a], [PeerDetection((290, 290, 300, 300), 1.0)], (960, 960)
    )
    assert near == 1.0  # 290 px here are ~145 px there


def test_t2i_compbench_depth_uses_mean_disparity_without_the_cut() -> None:
    front, overlap = (
        PeerDetection((0, 0, 40, 40), 0.1, 0.8),
        PeerDetection((20, 0, 60, 40), 0.1, 0.2),
    )
    score = t2i_compbench_score(Relation.IN_FRONT_OF, [front], [overlap], (512, 512))
    assert score == pytest.approx(0.05 + 0.5 * (1 / 3) / 0.5)  # IoU 1/3; no 0.5 cut in 3D


def test_geneval_needs_confidence_above_0_3() -> None:
    assert geneval_correct(Relation.LEFT_OF, [LEFT], [RIGHT])
    assert not geneval_correct(Relation.LEFT_OF, [LEFT], [WEAK_RIGHT])


def test_visor_any_pair_and_summary() -> None:
    wrong = PeerDetection((500, 0, 540, 40), 0.9)
    assert visor_image(Relation.LEFT_OF, [wrong, LEFT], [RIGHT]) == (True, True)
    assert visor_image(Relation.LEFT_OF, [], [RIGHT]) == (False, False)
    summary = visor_summary(
        [[(True, True)] * 4, [(True, False), (False, False), (True, True), (True, False)]]
    )
    assert summary["OA"] == pytest.approx(7 / 8) and summary["VISOR_uncond"] == pytest.approx(5 / 8)
    assert summary["VISOR_cond"] == pytest.approx(5 / 7)
    assert (summary["VISOR_1"], summary["VISOR_2"], summary["VISOR_4"]) == (1.0, 0.5, 0.5)
