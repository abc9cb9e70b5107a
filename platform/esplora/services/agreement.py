"""Agreement between reviewers per relation type (Fleiss' κ and Krippendorff's α).

A vote's category is its *choice* (verdict and proposal, as in
:mod:`esplora.services.review_state`). Fleiss' κ needs the same number of raters per item: it
uses the items with at least k votes, each with its first k votes. Krippendorff's α uses every
item with two or more votes, all of them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from sqlalchemy import select

from esplora.core.agreement import fleiss_kappa, krippendorff_alpha_nominal
from esplora.db.engine import Store
from esplora.db.enums import ReviewTarget
from esplora.db.relations import GeometricRelation
from esplora.db.review import ReviewVote
from esplora.services.review_state import DEFAULT_OVERLAP, choice_key


def agreement_by_relation(store: Store, *, k: int = DEFAULT_OVERLAP) -> dict[str, dict[str, Any]]:
    """Per relation name (and ``all``): items, votes, Fleiss' κ and Krippendorff's α.

    A coefficient is ``None`` when undefined (too few items, or no variation at all).
    """
    per_item: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    with store.reader() as session:
        rows = session.execute(
            select(
                GeometricRelation.relation,
                ReviewVote.target_id,
                ReviewVote.verdict,
                ReviewVote.proposal,
            )
            .join(GeometricRelation, GeometricRelation.id == ReviewVote.target_id)
            .where(ReviewVote.target_type == ReviewTarget.RELATION)
            .order_by(ReviewVote.id)
        )
        for relation, target_id, verdict, proposal in rows:
            key = choice_key(verdict, proposal or {})
            per_item[relation][target_id].append(key)
            per_item["all"][target_id].append(key)
    return {name: _summary(items, k) for name, items in sorted(per_item.items())}


def _summary(items: dict[int, list[str]], k: int) -> dict[str, Any]:
    full = [votes[:k] for votes in items.values() if len(votes) >= k]
    categories = sorted({c for votes in full for c in votes})
    table = [[votes.count(c) for c in categories] for votes in full]
    kappa = fleiss_kappa(table) if table and k >= 2 else math.nan
    alpha = krippendorff_alpha_nominal(list(items.values()))
    return {
        "items": len(items),
        "votes": sum(len(v) for v in items.values()),
        "items_with_k_votes": len(full),
        "fleiss_kappa": None if math.isnan(kappa) else round(kappa, 4),
        "krippendorff_alpha": None if math.isnan(alpha) else round(alpha, 4),
    }
