"""Ingest rate from img2dataset webdataset shards: metadata only, decode only, full ingest.

Generates img2dataset-style shards (``NNNNN.tar`` with ``.jpg/.txt/.json`` members plus
``NNNNN.parquet``; 256×256 JPEGs by default) in a temporary folder, then measures, in one
process (one thread unless said):

- **metadata only**: the reader streams the shards (tar members, parquet rows, JSON-safe
  metadata) and each image's bytes are SHA-256 hashed; nothing decoded, nothing stored;
- **decode only**: the same plus :func:`decode_image` (full decode, EXIF transpose, RGB, pHash);
- **full ingest**: :func:`esplora.services.ingest.ingest` into a fresh SQLite store (decode,
  originals written content-addressed, rows for images, stages, samples; one unit of work per
  256 items), once with one thread and once with the default decode threads (one per CPU, at
  most 8);
- **re-run**: the same ingest again over the same shards (every key already stored: reads and
  hashes, no decode, writes nothing).

Rates are images per second, best and median of ``--repeats`` runs (each full ingest on a
fresh store).

    .venv/bin/python bench/bench_ingest.py
    .venv/bin/python bench/bench_ingest.py --images 500 --shards 2 --repeats 1   # quick
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from esplora.db import migrate
from esplora.db.engine import Store
from esplora.services.ingest import IngestOptions, ingest
from esplora.settings import Settings
from esplora.sources import open_reader
from esplora.sources.images import decode_image

CAPTIONS = ("a cat to the left of a dog", "a dog under a table", "a car and a person")


def synthetic_jpeg(seed: int, size: int) -> bytes:
    """A smooth random colour field (a coarse grid upsampled), as a JPEG at quality 90."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((6, 6, 3)) * 255).astype(np.uint8))
    buffer = io.BytesIO()
    coarse.resize((size, size), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_shards(root: Path, images: int, shards: int, size: int) -> None:
    """img2dataset's webdataset layout: a tar and a parquet per shard."""
    per_shard = -(-images // shards)
    for shard in range(shards):
        rows = []
        with tarfile.open(root / f"{shard:05d}.tar", "w") as tar:
            for index in range(min(per_shard, images - shard * per_shard)):
                key = f"{shard:05d}{index:04d}"
                data = synthetic_jpeg(shard * per_shard + index, size)
                meta = {
                    "url": f"https://example.org/{key}.jpg", "caption": CAPTIONS[index % 3],
                    "key": key, "status": "success", "error_message": None, "width": size,
                    "height": size, "original_width": size * 2, "original_height": size * 2,
                    "exif": None, "sha256": hashlib.sha256(data).hexdigest(),
                    "similarity": 0.3, "pwatermark": 0.1, "punsafe": 0.01,
                }  # fmt: skip
                for ext, content in (("jpg", data), ("txt", meta["caption"].encode()),
                                     ("json", json.dumps(meta).encode())):  # fmt: skip
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
                rows.append(meta)
        pq.write_table(pa.Table.from_pylist(rows), root / f"{shard:05d}.parquet")


def metadata_only(root: Path) -> int:
    count = 0
    for item in open_reader("img2dataset", root):
        if item.data is not None:
            hashlib.sha256(item.data).hexdigest()
            count += 1
    return count


def decode_only(root: Path) -> int:
    count = 0
    for item in open_reader("img2dataset", root):
        if item.data is not None:
            decode_image(item.data, name=item.key, digest=hashlib.sha256(item.data).hexdigest())
            count += 1
    return count


def full_ingest(root: Path, work: Path, workers: int) -> tuple[float, float]:
    """Seconds for a first ingest on a fresh store, and for the re-run."""
    home = Path(tempfile.mkdtemp(dir=work))
    url = f"sqlite:///{home / 'esplora.db'}"
    migrate.upgrade(url)
    store, settings = Store.from_url(url), Settings(home=home)
    try:
        start = time.perf_counter()
        options = IngestOptions(workers=workers)
        report = ingest(store, settings, root, source_format="img2dataset", options=options)
        first = time.perf_counter() - start
        assert report.imported_images > 0 and not report.failed, report
        start = time.perf_counter()
        again = ingest(store, settings, root, source_format="img2dataset", options=options)
        second = time.perf_counter() - start
        assert again.imported_samples == 0
    finally:
        store.dispose()
    return first, second


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rates(n: int, seconds: list[float]) -> str:
    """Best and median rate: this machine's file creation is noisy, so both are shown."""
    return f"{n / min(seconds):9.0f} images/s (median {n / statistics.median(seconds):5.0f})"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:  # noqa: PTH123
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import PIL

    return (
        f"{cpu}; nproc {os.cpu_count()}; Python {platform.python_version()}; "
        f"Pillow {PIL.__version__}; numpy {np.__version__}; SQLite (WAL) on local disk"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    workers = IngestOptions().workers
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="esplora-bench-") as temp:
        work = Path(temp)
        shards = work / "shards"
        shards.mkdir()
        write_shards(shards, args.images, args.shards, args.size)
        size_mb = sum(p.stat().st_size for p in shards.iterdir()) / 1e6
        print(f"{args.images} images {args.size}x{args.size} JPEG in {args.shards} shards "
              f"({size_mb:.1f} MB); {args.repeats} runs each")  # fmt: skip
        n, repeats = args.images, range(args.repeats)
        meta = [timed(lambda: metadata_only(shards)) for _ in repeats]
        decode = [timed(lambda: decode_only(shards)) for _ in repeats]
        # Interleaved, so both see the same machine.
        runs = [(full_ingest(shards, work, 1), full_ingest(shards, work, workers)) for _ in repeats]
    single = [one[0] for one, _ in runs]
    full, rerun = [many[0] for _, many in runs], [many[1] for _, many in runs]
    print(f"{'metadata only (read + sha256)':36} {rates(n, meta)}")
    print(f"{'decode only (read + decode + pHash)':36} {rates(n, decode)}")
    print(f"{'full ingest, 1 thread':36} {rates(n, single)}")
    print(f"{f'full ingest, {workers} decode threads':36} {rates(n, full)}")
    print(f"{'re-run (all keys already stored)':36} {rates(n, rerun)}")
    ratio = statistics.median(full) / statistics.median(meta)
    print(f"ratio (medians): full ingest takes {ratio:.1f}x the time of metadata only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
