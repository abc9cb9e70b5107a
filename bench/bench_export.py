"""Snapshot exports: samples/s per format and peak memory growth at 10 k and 100 k members.

    .venv/bin/python bench/bench_export.py [--samples 100000] [--formats parquet,coco] [--check]

Builds a SQLite store with ``--samples`` distinct 128×96 JPEGs of the scene world (1,000
rendered scenes, each image stamped with its index so every one is distinct content, with the
scene's caption and every strict relation of its exact ground truth), one sample per image and
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
import functools
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

import psutil
from PIL import Image as PILImage
from PIL import ImageDraw

from esplora.core.snapshots import relation
from esplora.scenes.corpus import CorpusOptions, corpus_scene
from esplora.scenes.model import strict_relations

WIDTH, HEIGHT = 128, 96
POOL = 1_000  # distinct scene-world renders, reused with each image's index stamped on it
RATIO_TARGET = 1.5
NOISE_MIB = 16.0


@functools.cache
def _scene(k: int) -> tuple[PILImage.Image, str, list[dict[str, Any]]]:
    """Scene ``k`` of the scene world: its picture, caption and every strict relation (exact
    ground truth), frozen as the snapshot service freezes relations."""
    options = CorpusOptions(width=WIDTH, height=HEIGHT)
    scene, shown, caption = corpus_scene(k, 0, options, 0.0, 0.0)
    labels = [obj.label for obj in scene.objects]

    def side(index: int) -> tuple[str, list[float]]:
        box = shown.boxes[index]
        assert box is not None
        return labels[index], [float(v) for v in box]

    relations = [
        relation(t.relation.value, side(t.subject), side(t.object), soft=True, strict=True,
                 margin=t.margin, state="machine")
        for t in strict_relations(shown.boxes, shown.depths)
    ]  # fmt: skip
    return shown.image, caption.text, relations


def _draw(index: int) -> tuple[bytes, str, list[dict[str, Any]]]:
    """Image ``index``: a scene-world picture with the index stamped as a row of dots (so every
    image is distinct content), as a JPEG, with its caption and relations."""
    picture, caption, relations = _scene(index % POOL)
    image = picture.convert("RGB")
    draw = ImageDraw.Draw(image)
    for bit in range(17):
        if index >> bit & 1:
            draw.point((bit * 3 + 4, HEIGHT - 2), fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue(), caption, relations


def build(store: Any, artefacts: Path, samples: int) -> None:
    """Images on disk, image/sample rows, and the ``small``, ``large`` and ``warm`` snapshots."""
    from esplora.db.enums import Origin, SourceKind, Split
    from esplora.db.images import Image, Sample, Source
    from esplora.db.snapshots import Snapshot, SnapshotMember
    from esplora.db.writes import insert_rows
    from esplora.sources.images import original_uri

    images, sample_rows, members = [], [], []
    for i in range(samples):
        data, caption, relations = _draw(i)
        sha = hashlib.sha256(data).hexdigest()
        uri = original_uri(sha, "jpg")
        (artefacts / uri).parent.mkdir(parents=True, exist_ok=True)
        (artefacts / uri).write_bytes(data)
        images.append(
            {"id": i + 1, "sha256": sha, "uri": uri, "width": WIDTH, "height": HEIGHT,
             "origin": Origin.SYNTHETIC, "format": "JPEG", "byte_size": len(data)}
        )  # fmt: skip
        sample_rows.append(
            {"id": i + 1, "image_id": i + 1, "source_id": 1, "source_key": str(i),
             "caption": caption, "meta": {}}
        )  # fmt: skip
        members.append({"sample_id": i + 1, "image_sha256": sha, "text": caption,
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
