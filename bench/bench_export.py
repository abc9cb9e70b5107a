"""Snapshot exports: samples/s per format and peak memory growth at 10 k and 100 k members.

    .venv/bin/python bench/bench_export.py [--samples 100000] [--formats parquet,coco] [--check]

Builds a SQLite store with ``--samples`` distinct 64×64 JPEGs (PIL drawings: a background and
two or three coloured boxes whose positions are the relations' boxes), one sample per image and
two snapshots: the first tenth of the samples (``small``) and all of them (``large``), members
bulk-inserted with :func:`esplora.db.writes.insert_rows`, each with two or three frozen
relations. Then every format exports ``small`` and ``large`` in this process while a thread
samples the RSS every 5 ms; the figure is the peak above the RSS just before the export. Each
format first exports a 200-member warm-up snapshot, so imports and caches do not count.
Memory stays flat when the peak growth does not scale with the size: the ratio large/small
should stay near 1 however large the snapshot (target ≤ 1.5; the member count grows 10×).
Growth under 16 MiB counts as 16 MiB in the ratio: below that it is the allocator's noise.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from PIL import Image as PILImage
from PIL import ImageDraw

SIZE = 64
RATIO_TARGET = 1.5
NOISE_MIB = 16.0
COLOURS = {"cat": (200, 60, 40), "dog": (40, 80, 200), "lamp": (230, 210, 60)}


def _draw(index: int, rng: np.random.Generator) -> tuple[bytes, list[dict[str, Any]]]:
    """A distinct small JPEG and the relations between the boxes drawn on it."""
    image = PILImage.new("RGB", (SIZE, SIZE), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for bit in range(17):  # the index in a row of dots: every image differs
        if index >> bit & 1:
            draw.point((bit * 3 + 4, SIZE - 2), fill=(255, 255, 255))
    boxes = {}
    for label in ("cat", "dog", "lamp")[: 2 + index % 2]:
        x0, y0 = (float(v) for v in rng.integers(0, SIZE - 20, 2))
        box = [x0, y0, x0 + float(rng.integers(8, 20)), y0 + float(rng.integers(8, 20))]
        draw.rectangle(box, fill=COLOURS[label])
        boxes[label] = box
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue(), _relations(boxes)


def _relations(boxes: dict[str, list[float]]) -> list[dict[str, Any]]:
    names = list(boxes)
    rows = []
    for subject, obj in zip(names, names[1:] + names[:1], strict=True):
        s, o = boxes[subject], boxes[obj]
        margin = ((o[0] + o[2]) - (s[0] + s[2])) / 2 / SIZE
        rows.append({"relation": "left_of" if margin > 0 else "right_of",
                     "subject": {"label": subject, "box": s}, "object": {"label": obj, "box": o},
                     "soft": True, "strict": abs(margin) > 0.1, "margin": round(margin, 4),
                     "state": "machine"})  # fmt: skip
    return rows[: max(2, len(names))]


def build(store: Any, artefacts: Path, samples: int) -> None:
    """Images on disk, image/sample rows, and the ``small``, ``large`` and ``warm`` snapshots."""
    from esplora.db.enums import Origin, SourceKind, Split
    from esplora.db.images import Image, Sample, Source
    from esplora.db.snapshots import Snapshot, SnapshotMember
    from esplora.db.writes import insert_rows
    from esplora.sources.images import original_uri

    rng = np.random.default_rng(0)
    images, sample_rows, members = [], [], []
    for i in range(samples):
        data, relations = _draw(i, rng)
        sha = hashlib.sha256(data).hexdigest()
        uri = original_uri(sha, "jpg")
        (artefacts / uri).parent.mkdir(parents=True, exist_ok=True)
        (artefacts / uri).write_bytes(data)
        images.append(
            {"id": i + 1, "sha256": sha, "uri": uri, "width": SIZE, "height": SIZE,
             "origin": Origin.SYNTHETIC, "format": "JPEG", "byte_size": len(data)}
        )  # fmt: skip
        sample_rows.append(
            {"id": i + 1, "image_id": i + 1, "source_id": 1, "source_key": str(i),
             "caption": f"sample {i}", "meta": {}}
        )  # fmt: skip
        members.append({"sample_id": i + 1, "image_sha256": sha, "text": f"sample {i}",
                        "text_source": "caption", "relations": relations,
                        "review_state": "machine",
                        "split": Split.VALIDATION if i % 20 == 0 else Split.TRAIN})  # fmt: skip
    with store.unit_of_work() as session:
        session.add(Source(id=1, name="bench", kind=SourceKind.SCENES, meta={}))
        session.flush()
        for start in range(0, samples, 5000):
            insert_rows(session, Image, images[start : start + 5000])
            insert_rows(session, Sample, sample_rows[start : start + 5000])
        for name, n in (("warm", min(200, samples)), ("small", samples // 10), ("large", samples)):
            snapshot = Snapshot(name=name, filter={}, filter_json="{}", text_source="caption",
                                content_hash=hashlib.sha256(name.encode()).hexdigest(),
                                counts={"members": n, "producers": {"rule": "bench"}})  # fmt: skip
            session.add(snapshot)
            session.flush()
            for start in range(0, n, 5000):
                chunk = members[start : min(start + 5000, n)]
                insert_rows(session, SnapshotMember, [{**m, "snapshot_id": snapshot.id}
                                                      for m in chunk])  # fmt: skip


class PeakRss:
    """Samples this process's RSS in a thread; ``growth`` is the peak above the start."""

    def __init__(self, every_s: float = 0.005) -> None:
        self.process, self.every_s = psutil.Process(), every_s
        self.stop = threading.Event()
        self.start = self.peak = 0

    def __enter__(self) -> PeakRss:
        gc.collect()
        self.start = self.peak = self.process.memory_info().rss
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.every_s)

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def run(samples: int, formats: list[str], root: Path) -> list[dict[str, Any]]:
    os.environ["ESPLORA_HOME"] = str(root / "home")
    from esplora.db import migrate
    from esplora.db.engine import Store
    from esplora.services.exports import export_snapshot
    from esplora.settings import get_settings

    settings = get_settings()
    url = f"sqlite:///{root / 'store.db'}"
    migrate.upgrade(url)
    store = Store.from_url(url)
    started = time.perf_counter()
    build(store, settings.artefacts_dir, samples)
    print(f"built {samples} images, samples and members in {time.perf_counter() - started:.1f} s")
    results = []
    for fmt in formats:
        export_snapshot(store, settings, "warm", fmt, root / "out" / f"warm-{fmt}")
        for name in ("small", "large"):
            out = root / "out" / f"{name}-{fmt}"
            with PeakRss() as rss:
                report = export_snapshot(store, settings, name, fmt, out)
            size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
            results.append({"format": fmt, "members": report.written, "seconds": report.seconds,
                            "rate": report.written / report.seconds,
                            "growth": rss.growth_mib, "size": size})  # fmt: skip
            row = results[-1]
            line = f"{fmt:>11} {row['members']:>7} members  {row['rate']:>7.0f} samples/s  "
            print(f"{line}peak RSS +{row['growth']:.1f} MiB  output {size:.0f} MiB", flush=True)
            shutil.rmtree(out)
    store.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--formats", default="parquet,webdataset,imagefolder,kohya,coco")
    parser.add_argument("--check", action="store_true", help="exit 1 when a ratio misses")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        results = run(args.samples, args.formats.split(","), Path(folder))
    ok = True
    print("\nformat       small→large members   samples/s (large)   peak RSS growth   ratio")
    for fmt in args.formats.split(","):
        small, large = (r for r in results if r["format"] == fmt)
        ratio = max(large["growth"], NOISE_MIB) / max(small["growth"], NOISE_MIB)
        ok &= ratio <= RATIO_TARGET
        print(f"{fmt:>11}  {small['members']:>7} → {large['members']:<7}  {large['rate']:>9.0f}"
              f"          {small['growth']:>5.1f} → {large['growth']:>5.1f} MiB   "
              f"{ratio:.2f}×")  # fmt: skip
    print(f"target: ratio ≤ {RATIO_TARGET} — {'PASS' if ok else 'MISS'}")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
