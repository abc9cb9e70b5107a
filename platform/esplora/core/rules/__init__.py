"""Relation rules by name: the ESPLoRA τ rule (soft and strict) and the peers' rules.

``get_rule(name, **params)`` returns an object satisfying :class:`Rule`;
``get_pair_filter("compass-scop", **thresholds)`` returns CoMPaSS's SCOP pair filter.
See ``docs/relations.md`` for the formulas and figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from esplora.core.errors import UnknownRule
from esplora.core.rules.base import RelationResult, Rule, check_params
from esplora.core.rules.compass import CompassScop
from esplora.core.rules.esplora import (
    DEFAULT_DEPTH_GAP,
    DEFAULT_TAU,
    CanonicalRelation,
    EsploraRule,
    RelationArrays,
    canonical_relations,
)
from esplora.core.rules.geneval import GenEvalRule
from esplora.core.rules.t2i_compbench import T2ICompBenchRule
from esplora.core.rules.visor import VisorRule

__all__ = [
    "DEFAULT_DEPTH_GAP",
    "DEFAULT_TAU",
    "PAIR_FILTER_NAMES",
    "RULE_NAMES",
    "CanonicalRelation",
    "CompassScop",
    "EsploraRule",
    "GenEvalRule",
    "RelationArrays",
    "RelationResult",
    "Rule",
    "T2ICompBenchRule",
    "VisorRule",
    "canonical_relations",
    "get_pair_filter",
    "get_rule",
]


def _esplora(strict: bool) -> Callable[..., Rule]:
    def make(tau: float = DEFAULT_TAU, depth_gap: float = DEFAULT_DEPTH_GAP) -> Rule:
        return EsploraRule(strict=strict, tau=tau, depth_gap=depth_gap)

    return make


# name -> (factory, accepted parameter names)
_RULES: Mapping[str, tuple[Callable[..., Rule], frozenset[str]]] = MappingProxyType(
    {
        "esplora-soft": (_esplora(False), frozenset({"tau", "depth_gap"})),
        "esplora-strict": (_esplora(True), frozenset({"tau", "depth_gap"})),
        "t2i-compbench": (T2ICompBenchRule, frozenset()),
        "geneval": (GenEvalRule, frozenset()),
        "visor": (VisorRule, frozenset()),
    }
)
RULE_NAMES: tuple[str, ...] = tuple(_RULES)
PAIR_FILTER_NAMES: tuple[str, ...] = ("compass-scop",)


def get_rule(name: str, **params: object) -> Rule:
    """The rule called ``name`` with ``params``.

    ``esplora-soft`` and ``esplora-strict`` take ``tau`` (≥ 1, default 3) and ``depth_gap``
    (in (0, 1), default 1/3); the peers take none. Raises :class:`UnknownRule` listing the names for
    an unknown rule and :class:`InvalidParameter` for an unknown or out-of-range parameter.
    """
    try:
        factory, accepted = _RULES[name]
    except KeyError:
        raise UnknownRule(
            f"unknown rule {name!r}; expected one of: {', '.join(RULE_NAMES)}"
        ) from None
    check_params(name, params, accepted)
    return factory(**params)


def get_pair_filter(name: str, **thresholds: object) -> CompassScop:
    """The pair filter called ``name`` (only ``compass-scop``) with its thresholds overridden.

    Thresholds: ``min_box_area``, ``min_total_area``, ``max_centre_distance``,
    ``max_intersection``, ``min_area_ratio``, ``both_axes_overlap`` (see :class:`CompassScop`).
    """
    if name not in PAIR_FILTER_NAMES:
        expected = ", ".join(PAIR_FILTER_NAMES)
        raise UnknownRule(f"unknown pair filter {name!r}; expected one of: {expected}")
    check_params(name, thresholds, CompassScop.__dataclass_fields__)
    return CompassScop(**thresholds)  # type: ignore[arg-type]  # validated in __post_init__
