"""The dataset card (``README.md``) every export carries: where the data came from and how to
load it. The YAML header is what the Hugging Face Hub and ``load_dataset(DIR)`` read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from esplora import __version__
from esplora.services.exports.common import ExportOptions, FormatSpec, Skip
from esplora.services.exports.members import SnapshotInfo

CARD_SKIPS = 100  # skipped members listed by name in the card; all are in skipped.jsonl


@dataclass(frozen=True, slots=True)
class CardFacts:
    """What the export did: per-split counts written, skips, and the writer's notes."""

    total: int
    splits: dict[str, int]
    skip_reasons: dict[str, int]
    skips: tuple[Skip, ...]
    notes: dict[str, Any]


def render_card(
    info: SnapshotInfo, spec: FormatSpec, options: ExportOptions, facts: CardFacts, out: str
) -> str:
    """The card's Markdown, YAML front matter first."""
    written = sum(facts.splits.values())
    sections = [
        _front_matter(spec, facts),
        f"# {info.name}\n\nThe esplora snapshot `{info.name}` exported as **{spec.name}**: "
        f"{spec.summary}. {written} of its {facts.total} samples (image-text pairs), each with "
        "its labelled boxes and spatial relations as frozen in the snapshot.",
        _snapshot(info),
        _counts(info, facts),
        _producers(info),
        _export(spec, options),
        _skipped(facts),
        *[f"## Warning\n\n{w}." for w in facts.notes.get("warnings", [])],
        f"## Layout\n\n`{spec.layout}`\n\n## Loading\n\n{spec.usage.replace('{out}', out)}",
    ]
    return "\n\n".join(sections) + "\n"


def _front_matter(spec: FormatSpec, facts: CardFacts) -> str:
    lines = ["---", "tags: [esplora, spatial-relations, text-to-image]",
             "task_categories: [text-to-image]"]  # fmt: skip
    data_files = facts.notes.get("data_files")
    if spec.name == "parquet" and data_files:
        lines += ["configs:", "- config_name: default", "  data_files:"]
        for split, pattern in sorted(data_files.items()):
            lines += [f"  - split: {split}", f"    path: {json.dumps(pattern)}"]
    return "\n".join([*lines, "---"])


def _table(rows: list[tuple[str, Any]]) -> str:
    body = [f"| {name} | {_cell(value)} |" for name, value in rows]
    return "\n".join(["| | |", "|---|---|", *body])


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def _snapshot(info: SnapshotInfo) -> str:
    created = info.created_at.isoformat() if info.created_at else "unknown"
    return "## Snapshot\n\n" + _table([
        ("name", info.name), ("content hash", f"`{info.content_hash}`"),
        ("created", f"{created} by {info.created_by or 'unknown'}"),
        ("text source", info.text_source), ("validation fraction", info.validation_fraction),
        ("seed", info.seed), ("filter", f"`{_cell(info.filter)}`"), ("caps", info.caps),
    ])  # fmt: skip


def _counts(info: SnapshotInfo, facts: CardFacts) -> str:
    counts = info.counts
    recorded = counts.get("splits") or {}
    rows = [("members", f"{counts.get('members', facts.total)} ({sum(facts.splits.values())} "
             "exported)")]  # fmt: skip
    for split in sorted(set(recorded) | set(facts.splits)):
        rows.append((f"split {split}", f"{recorded.get(split, '?')} "
                     f"({facts.splits.get(split, 0)} exported)"))  # fmt: skip
    for name in ("images", "pairs"):
        if name in counts:
            rows.append((name, counts[name]))
    rows += [("relations", counts.get("relations", {})),
             ("review states", counts.get("review_states", {}))]  # fmt: skip
    return "## Counts\n\n" + _table(rows)


# Names of the producers' keys on the card; keys not listed here are shown as they are.
_PRODUCER_NAMES = {"relations": "relation producers", "detectors": "detectors",
                   "depth": "depth models"}  # fmt: skip


def _producers(info: SnapshotInfo) -> str:
    """Rules, τ, depth gap, then the model ids and versions (each a value or a list)."""
    producers = dict(info.counts.get("producers") or {})
    rows: list[tuple[str, Any]] = []
    for title, keys in (("rules", ("rules", "rule")), ("τ (tau)", ("tau",)),
                        ("depth gap", ("depth_gap",))):  # fmt: skip
        found = [producers.pop(k) for k in keys if k in producers]
        rows.append((title, _listed(found[0]) if found else "unknown"))
    rows += [
        (_PRODUCER_NAMES.get(str(k), str(k)), _listed(v)) for k, v in sorted(producers.items())
    ]
    rows.append(("platform", f"esplora {__version__}"))
    return "## Producers\n\n" + _table(rows)


def _listed(value: Any) -> str:
    if isinstance(value, list | tuple | set):
        return ", ".join(str(v) for v in value) or "none"
    return "unknown" if value is None else str(value)


def _export(spec: FormatSpec, options: ExportOptions) -> str:
    return "## Export\n\n" + _table([
        ("format", spec.name), ("exported at", datetime.now(UTC).isoformat(timespec="seconds")),
        ("trigger", options.trigger or "none"),
        ("caption prefix", json.dumps(options.caption_prefix)),
        ("shard size", options.shard_size),
    ])  # fmt: skip


def _skipped(facts: CardFacts) -> str:
    skipped = sum(facts.skip_reasons.values())
    if not skipped:
        return "## Skipped\n\nNothing: every member was exported."
    reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(facts.skip_reasons.items()))
    lines = [f"## Skipped\n\n{skipped} members were not exported ({reasons}); every one is "
             "listed in `skipped.jsonl`.\n"]  # fmt: skip
    for skip in facts.skips[:CARD_SKIPS]:
        lines.append(f"- sample {skip.sample_id} ({skip.split}): {skip.reason}: {skip.detail}")
    if skipped > CARD_SKIPS:
        lines.append(f"- … and {skipped - CARD_SKIPS} more")
    return "\n".join(lines)
