"""Relation rules: vectorised ``score_many`` against a plain-Python loop of ``score``.

Runs on one core (the process is pinned to one CPU and numpy's thread pools are set to one
thread before numpy loads; the rules are elementwise, so this changes nothing but honesty).
Targets for the ESPLoRA strict rule: at least 5 M pairs/s vectorised and at least 10x the loop.

    .venv/bin/python bench/bench_rules.py            # print the figures
    .venv/bin/python bench/bench_rules.py --check    # exit 1 when a target is missed
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402 - the thread variables must be set before numpy is imported
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

from esplora.core.relations import Relation  # noqa: E402
from esplora.core.rules import Rule, get_rule  # noqa: E402

TARGET_RATE = 5e6
TARGET_RATIO = 10.0
# (rule, relation): the main target first, then the others for information
CASES = [
    ("esplora-strict", Relation.LEFT_OF),
    ("esplora-strict", Relation.ABOVE),
    ("esplora-strict", Relation.IN_FRONT_OF),
    ("esplora-soft", Relation.LEFT_OF),
    ("t2i-compbench", Relation.LEFT_OF),
    ("t2i-compbench", Relation.IN_FRONT_OF),
    ("geneval", Relation.LEFT_OF),
    ("visor", Relation.LEFT_OF),
]


@dataclass(frozen=True, slots=True)
class Row:
    rule: str
    relation: Relation
    vector_rate: float
    loop_rate: float

    @property
    def ratio(self) -> float:
        return self.vector_rate / self.loop_rate


def pin_one_core() -> str:
    """Pin this process to one CPU where the OS allows it; say which."""
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity here)"


def make_pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random valid boxes in a 1024 px image, and disparities in [0, 1]."""
    rng = np.random.default_rng(seed)

    def boxes() -> np.ndarray:
        xy = rng.uniform(0, 900, size=(n, 2))
        wh = rng.uniform(4, 300, size=(n, 2))
        return np.ascontiguousarray(np.hstack([xy, xy + wh]))

    return boxes(), boxes(), rng.uniform(0, 1, size=(n, 2))


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs, in seconds (the least disturbed by the machine)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure(rule: Rule, relation: Relation, data: tuple[np.ndarray, ...], loop_n: int) -> Row:
    subjects, objects, disparity = data
    n = subjects.shape[0]
    vector = best_time(lambda: rule.score_many(relation, subjects, objects, disparity=disparity), 5)
    s_list, o_list = subjects[:loop_n].tolist(), objects[:loop_n].tolist()
    d_list = [tuple(d) for d in disparity[:loop_n].tolist()]

    def loop() -> list[float]:
        return [
            rule.score(relation, s, o, disparity=d)
            for s, o, d in zip(s_list, o_list, d_list, strict=True)
        ]

    loop_time = best_time(loop, 3)
    many = rule.score_many(
        relation, subjects[:loop_n], objects[:loop_n], disparity=disparity[:loop_n]
    )
    if many.tolist() != loop():
        raise SystemExit(f"{rule.name} {relation}: score_many and score disagree")
    return Row(rule.name, relation, n / vector, loop_n / loop_time)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:  # noqa: PTH123
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}; nproc {os.cpu_count()}; Python {platform.python_version()}; numpy {np.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2_000_000, help="pairs for score_many")
    parser.add_argument("--loop-pairs", type=int, default=50_000, help="pairs for the loop")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}; {pin_one_core()}")
    print(f"{args.pairs:,} pairs vectorised, {args.loop_pairs:,} in the loop; best of 5 / 3 runs")
    data = make_pairs(args.pairs)
    print(f"{'rule':16} {'relation':12} {'score_many/s':>14} {'loop/s':>12} {'ratio':>8}")
    rows = []
    for name, relation in CASES:
        row = measure(get_rule(name), relation, data, args.loop_pairs)
        rows.append(row)
        print(
            f"{row.rule:16} {row.relation.value:12} {row.vector_rate / 1e6:11.1f} M "
            f"{row.loop_rate / 1e3:9.1f} k {row.ratio:7.0f}x"
        )
    main_rows = [r for r in rows if r.rule == "esplora-strict" and r.relation in (
        Relation.LEFT_OF, Relation.ABOVE, Relation.IN_FRONT_OF)]  # fmt: skip
    ok = True
    for row in main_rows:
        rate_ok, ratio_ok = row.vector_rate >= TARGET_RATE, row.ratio >= TARGET_RATIO
        ok &= rate_ok and ratio_ok
        print(
            f"{'PASS' if rate_ok else 'FAIL'} esplora-strict {row.relation.value}: "
            f"{row.vector_rate / 1e6:.1f} M pairs/s >= {TARGET_RATE / 1e6:.0f} M on one core"
        )
        print(
            f"{'PASS' if ratio_ok else 'FAIL'} esplora-strict {row.relation.value}: "
            f"{row.ratio:.0f}x the plain-Python loop >= {TARGET_RATIO:.0f}x"
        )
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
