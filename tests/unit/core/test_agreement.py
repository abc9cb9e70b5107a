"""Agreement coefficients against the published worked examples."""

from __future__ import annotations

import math

import pytest

from esplora.core.agreement import fleiss_kappa, krippendorff_alpha_nominal

# Fleiss (1971), the worked example (10 subjects, 14 raters, 5 categories):
# P̄ = 0.378, P̄e = 0.213, κ = 0.210.
FLEISS_1971 = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]

_: None = None
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
# 12 units, missing values; nominal α = 0.743. Rows are units, columns observers A–D.
KRIPPENDORFF_2011_C = [
    [1, 1, _, 1],
    [2, 2, 3, 2],
    [3, 3, 3, 3],
    [3, 3, 3, 3],
    [2, 2, 2, 2],
    [1, 2, 3, 4],
    [4, 4, 4, 4],
    [1, 1, 2, 1],
    [2, 2, 2, 2],
    [_, 5, 5, 5],
    [_, _, 1, 1],
    [_, 3, _, _],
]
# Same paper, section A: two observers, binary data, 10 units; α = 0.095.
KRIPPENDORFF_2011_A = list(
    zip([0, 1, 0, 0, 0, 0, 0, 0, 1, 0], [1, 1, 1, 0, 0, 1, 0, 0, 0, 0], strict=True)
)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (FLEISS_1971, 0.210),
        ([[2, 0], [0, 2], [2, 0], [0, 2]], 1.0),  # perfect agreement on two categories
        ([[1, 1], [1, 1]], -1.0),  # every pair disagrees
    ],
)
def test_fleiss_kappa_matches_published_values(table: list[list[int]], expected: float) -> None:
    assert fleiss_kappa(table) == pytest.approx(expected, abs=5e-4)


def test_fleiss_kappa_is_undefined_on_one_category_and_refuses_uneven_rows() -> None:
    assert math.isnan(fleiss_kappa([[3, 0], [3, 0]]))
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[2, 0], [1, 2]])
    with pytest.raises(ValueError, match="non-empty"):
        fleiss_kappa([])


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        (KRIPPENDORFF_2011_C, 0.743),
        (KRIPPENDORFF_2011_A, 0.095),
        ([["a", "a"], ["b", "b", None]], 1.0),
    ],
)
def test_krippendorff_alpha_matches_published_values(
    units: list[list[object]], expected: float
) -> None:
    assert krippendorff_alpha_nominal(units) == pytest.approx(expected, abs=5e-4)


def test_alpha_ignores_unpairable_units_and_is_undefined_without_variation() -> None:
    assert math.isnan(krippendorff_alpha_nominal([["a", "a"], ["a", None]]))
    assert math.isnan(krippendorff_alpha_nominal([["a"], [None, "b"]]))


def test_alpha_equals_kappa_like_agreement_on_complete_two_rater_data() -> None:
    # Complete data, two raters: α and Fleiss' κ differ only by the small-sample factor.
    units = [["x", "x"], ["y", "y"], ["x", "y"], ["x", "x"]]
    table = [[2, 0], [0, 2], [1, 1], [2, 0]]
    n = 8
    kappa = fleiss_kappa(table)
    alpha = krippendorff_alpha_nominal(units)
    assert alpha == pytest.approx(1 - (n - 1) / n * (1 - kappa), abs=1e-9)
