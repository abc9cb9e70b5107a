"""Inter-rater agreement: Fleiss' κ (fixed number of raters) and Krippendorff's α (nominal).

Pure functions over plain counts and values. Both return ``nan`` when agreement is undefined
(every rating in one category: chance agreement is already perfect).

References:
- J. L. Fleiss (1971), "Measuring nominal scale agreement among many raters", Psychological
  Bulletin 76(5).
- K. Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", Annenberg School for
  Communication, University of Pennsylvania.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from itertools import permutations

import numpy as np


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float:
    """Fleiss' κ of an items × categories table of counts.

    Every row must sum to the same number of raters n ≥ 2 (Fleiss' κ assumes a fixed n);
    raises ``ValueError`` otherwise.
    """
    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or counts.shape[0] == 0:
        raise ValueError("fleiss_kappa needs a non-empty items × categories table")
    raters = counts.sum(axis=1)
    n = float(raters[0])
    if n < 2 or not np.all(raters == n) or np.any(counts < 0):
        raise ValueError("every item needs the same number (≥ 2) of non-negative ratings")
    per_item = (np.square(counts).sum(axis=1) - n) / (n * (n - 1))
    proportions = counts.sum(axis=0) / counts.sum()
    observed = float(per_item.mean())
    expected = float(np.square(proportions).sum())
    if expected >= 1.0:
        return float("nan")
    return (observed - expected) / (1.0 - expected)


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable | None]]) -> float:
    """Krippendorff's α for nominal values; each unit lists its raters' values (``None`` = missing).

    Units with fewer than two values are not pairable and are left out, as in Krippendorff's
    coincidence-matrix method.
    """
    coincidences: Counter[tuple[Hashable, Hashable]] = Counter()
    for unit in units:
        values = [v for v in unit if v is not None]
        m = len(values)
        if m < 2:
            continue
        for a, b in permutations(values, 2):
            coincidences[(a, b)] += 1.0 / (m - 1)  # type: ignore[assignment]
    totals: Counter[Hashable] = Counter()
    for (a, _b), weight in coincidences.items():
        totals[a] += weight  # type: ignore[assignment]
    n = sum(totals.values())
    if n <= 1:
        return float("nan")
    disagreement = sum(w for (a, b), w in coincidences.items() if a != b)
    expected = sum(totals[a] * totals[b] for a in totals for b in totals if a != b)
    if expected == 0:
        return float("nan")
    return float(1.0 - (n - 1) * disagreement / expected)
