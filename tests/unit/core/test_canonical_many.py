"""The vectorised canonical rows agree with the scalar ones pair by pair."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from esplora.core.relations import AXIS_OF
from esplora.core.rules import canonical_relations
from esplora.core.rules.canonical import canonical_relations_many

coordinate = st.integers(0, 40).map(float)


@st.composite
def box(draw: st.DrawFn) -> tuple[float, float, float, float]:
    x0, y0 = draw(coordinate), draw(coordinate)
    return x0, y0, x0 + draw(st.integers(1, 30)), y0 + draw(st.integers(1, 30))


pairs = st.lists(
    st.tuples(box(), box(), st.tuples(st.sampled_from([0.0, 0.2, 0.5, 0.6, 1.0]), st.floats(0, 1))),
    min_size=1,
    max_size=30,
)


@settings(max_examples=200)
@given(pairs, st.sampled_from([1.0, 2.0, 3.0, 5.0]))
def test_vectorised_rows_equal_scalar_rows(rows: list, tau: float) -> None:  # type: ignore[type-arg]
    a = np.array([r[0] for r in rows])
    b = np.array([r[1] for r in rows])
    d = np.array([r[2] for r in rows])
    many = canonical_relations_many(a, b, disparity=d, tau=tau)
    for i, (box_a, box_b, disparity) in enumerate(rows):
        expected = {
            AXIS_OF[r.relation]: r
            for r in canonical_relations(box_a, box_b, disparity=disparity, tau=tau)
        }
        for axis_rows in many:
            if not axis_rows.present[i]:
                assert axis_rows.axis not in expected
                continue
            row = expected[axis_rows.axis]
            assert row.subject_index == (0 if axis_rows.subject_is_a[i] else 1)
            assert (row.soft, row.strict) == (bool(axis_rows.soft[i]), bool(axis_rows.strict[i]))
            assert row.margin == axis_rows.margin[i]


def test_without_disparity_there_is_no_depth_axis() -> None:
    many = canonical_relations_many([[0, 0, 1, 1]], [[2, 2, 3, 3]])
    assert [m.axis.value for m in many] == ["horizontal", "vertical"]
