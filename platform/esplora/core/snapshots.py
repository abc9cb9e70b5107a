"""Freezing a subset: caps, a stratified split, the content hash, contamination (pure).

A snapshot member is one image-text pair with the relations it carries. Everything here works on
plain values so the same members give the same caps, split and hash wherever they came from
(SQLite or PostgreSQL, any insertion order): nothing depends on database ids.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TRAIN = "train"
VALIDATION = "validation"

# From least to most settled: a member is as settled as its least settled relation.
_STATE_ORDER = ("disputed", "unreviewed", "changed", "accepted")


@dataclass(frozen=True, slots=True)
class Member:
    """One frozen image-text pair. ``relations`` are JSON-ready dicts (see :func:`relation`)."""

    image_sha256: str
    text: str
    text_source: str
    relations: tuple[dict[str, Any], ...]
    review_state: str
    sample_id: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        """What identifies a member across snapshots: the image content and the text."""
        return (self.image_sha256, self.text)

    def relation_names(self) -> set[str]:
        return {str(r["relation"]) for r in self.relations}

    def label_pairs(self) -> set[str]:
        return {pair_key(r["subject"]["label"], r["object"]["label"]) for r in self.relations}


def pair_key(first: str, second: str) -> str:
    """A label pair regardless of direction (``cat|dog`` for both ``cat ↔ dog`` readings)."""
    low, high = sorted((first, second))
    return f"{low}|{high}"


def relation(
    name: str,
    subject: tuple[str, Sequence[float]],
    obj: tuple[str, Sequence[float]],
    *,
    soft: bool,
    strict: bool,
    margin: float,
    state: str,
) -> dict[str, Any]:
    """A member's relation as stored and exported (boxes in pixels, rounded for stability)."""
    return {
        "relation": name,
        "subject": {"label": subject[0], "box": [round(float(v), 3) for v in subject[1]]},
        "object": {"label": obj[0], "box": [round(float(v), 3) for v in obj[1]]},
        "soft": bool(soft),
        "strict": bool(strict),
        "margin": round(float(margin), 6),
        "state": state,
    }


def combined_state(states: Iterable[str]) -> str:
    """The least settled of the relations' review states (``unreviewed`` when there are none)."""
    ranks = [_STATE_ORDER.index(s) for s in states if s in _STATE_ORDER]
    return _STATE_ORDER[min(ranks)] if ranks else "unreviewed"


def sort_members(members: Iterable[Member]) -> list[Member]:
    """Canonical order: by image SHA-256, then text (the order caps and hashes follow)."""
    return sorted(members, key=lambda m: m.key)


def apply_caps(
    members: Sequence[Member], *, per_relation: int | None, per_pair: int | None
) -> tuple[list[Member], int]:
    """Keep members in canonical order while every relation and label pair they carry is under
    its cap; returns the kept members and how many the caps dropped."""
    kept: list[Member] = []
    by_relation: Counter[str] = Counter()
    by_pair: Counter[str] = Counter()
    for member in sort_members(members):
        names, pairs = member.relation_names(), member.label_pairs()
        if per_relation is not None and any(by_relation[n] >= per_relation for n in names):
            continue
        if per_pair is not None and any(by_pair[p] >= per_pair for p in pairs):
            continue
        kept.append(member)
        by_relation.update(names)
        by_pair.update(pairs)
    return kept, len(members) - len(kept)


def stratum(relations: Sequence[Mapping[str, Any]]) -> str:
    """An image's stratum: the relation and label pair of its first relation (sorted)."""
    if not relations:
        return ""
    first = min(
        (str(r["relation"]), pair_key(r["subject"]["label"], r["object"]["label"]))
        for r in relations
    )
    return f"{first[0]}:{first[1]}"


def assign_splits(members: Sequence[Member], fraction: float, seed: int) -> dict[str, str]:
    """Image SHA-256 → split. Whole images go to one split (no image leaks into both through a
    second caption), stratified by relation and label pair; a carried remainder keeps the total
    at ``round(images × fraction)`` even when strata are small."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction {fraction} is outside [0, 1)")
    strata: dict[str, set[str]] = defaultdict(set)
    relations_of: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for member in members:
        relations_of[member.image_sha256].extend(member.relations)
    for sha, rels in relations_of.items():
        strata[stratum(rels)].add(sha)
    out: dict[str, str] = {}
    carry = 0.0
    for name in sorted(strata):
        shas = sorted(strata[name])
        random.Random(f"{seed}:{name}").shuffle(shas)
        exact = len(shas) * fraction + carry
        count = int(exact + 0.5) if fraction else 0
        carry = exact - count
        out.update((sha, VALIDATION if i < count else TRAIN) for i, sha in enumerate(shas))
    return out


def member_line(member: Member) -> str:
    """The canonical text of one member in the hash: no ids, sorted keys and relations."""
    relations = sorted(
        json.dumps(r, sort_keys=True, separators=(",", ":")) for r in member.relations
    )
    return json.dumps(
        [member.image_sha256, member.text, relations, member.review_state],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def content_hash(members: Iterable[Member]) -> str:
    """SHA-256 over the sorted member lines: equal content gives an equal hash."""
    digest = hashlib.sha256()
    for line in sorted(member_line(m) for m in members):
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_text(text: str) -> str:
    """Case, punctuation and spacing folded away: how prompts are compared for overlap."""
    return " ".join(_NON_WORD.sub(" ", text.casefold()).split())


def contamination(
    texts: Iterable[str], benchmark_prompts: Iterable[tuple[str, str]]
) -> list[dict[str, str]]:
    """Training texts equal (after :func:`normalise_text`) to a benchmark prompt."""
    index: dict[str, tuple[str, str]] = {}
    for prompt, benchmark in benchmark_prompts:
        index.setdefault(normalise_text(prompt), (prompt, benchmark))
    hits = {}
    for text in texts:
        found = index.get(normalise_text(text))
        if found is not None:
            hits[text] = {"text": text, "prompt": found[0], "benchmark": found[1]}
    return [hits[t] for t in sorted(hits)]


def tally(members: Sequence[Member], splits: Mapping[str, str]) -> dict[str, Any]:
    """The counts a snapshot shows: members, images, split sizes, per relation, per label pair
    (members carrying it), per review state and per text source."""
    relations: Counter[str] = Counter()
    pairs: Counter[str] = Counter()
    for member in members:
        relations.update(member.relation_names())
        pairs.update(member.label_pairs())
    split_sizes = Counter(splits[m.image_sha256] for m in members)
    return {
        "members": len(members),
        "images": len({m.image_sha256 for m in members}),
        "splits": {TRAIN: split_sizes[TRAIN], VALIDATION: split_sizes[VALIDATION]},
        "relations": dict(sorted(relations.items())),
        "pairs": dict(sorted(pairs.items())),
        "review_states": dict(sorted(Counter(m.review_state for m in members).items())),
        "text_sources": dict(sorted(Counter(m.text_source for m in members).items())),
    }
