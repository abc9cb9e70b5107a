"""Training examples, aspect-ratio buckets, a deterministic data order and caption dropout.

Every image goes to the bucket whose aspect ratio is nearest its own (on a log scale), is resized
to cover the bucket and centre-cropped to it. No flips: a horizontal flip turns "left of" into
"right of" and would teach the model the opposite of the caption.

The order of the data is a pure function of the seed and the micro-step: epoch ``e`` shuffles
each bucket's examples and then the batches with a generator seeded from ``(seed, e)``, so a
resumed run finds its place from the step count alone. Caption dropout likewise draws from a
generator seeded from ``(seed, micro-step, process)``.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from esplora.backends.lora import file_sha256

if TYPE_CHECKING:
    import torch

__all__ = [
    "BatchPlan",
    "Bucket",
    "Example",
    "ExampleLike",
    "Item",
    "crop_geometry",
    "dataset_digest",
    "drop_captions",
    "epoch_batches",
    "file_sha256",
    "load_pixels",
    "make_buckets",
    "nearest_bucket",
    "prepare_items",
]

Bucket = tuple[int, int]  # (width, height) in pixels
_DROPOUT_STREAM = 1  # the generator streams' tags (data order uses the bare epoch)


@dataclass(frozen=True, slots=True)
class Example:
    """One training pair: an image file and its caption, with what the store knows about it."""

    image_path: Path
    text: str
    relations: tuple[Any, ...] = ()
    split: str = "train"
    image_sha256: str = ""  # computed from the file when empty
    width: int = 0  # read from the file when 0
    height: int = 0


class ExampleLike(Protocol):
    """What the engine reads of an example (``Example`` or the store's snapshot rows)."""

    @property
    def image_path(self) -> Path: ...
    @property
    def text(self) -> str: ...
    @property
    def image_sha256(self) -> str: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Item:
    """An example placed in its bucket: what the loader and the caches need."""

    index: int
    image_path: Path
    text: str
    image_sha256: str
    size: tuple[int, int]  # the original (width, height)
    bucket: Bucket

    @property
    def latent_key(self) -> str:
        """The image's cache key: its content and the bucket it is cropped to."""
        return f"{self.image_sha256}-{self.bucket[0]}x{self.bucket[1]}"


def make_buckets(resolution: int, step: int, ratios: Sequence[float]) -> list[Bucket]:
    """Buckets of about ``resolution²`` pixels, one per aspect ratio (width / height), with
    sides rounded to multiples of ``step``; duplicates dropped, sorted by aspect ratio."""
    area = resolution * resolution
    found: dict[Bucket, None] = {}
    for ratio in ratios:
        width = max(step, round(math.sqrt(area * ratio) / step) * step)
        height = max(step, round(math.sqrt(area / ratio) / step) * step)
        found.setdefault((width, height), None)
    return sorted(found, key=lambda b: (b[0] / b[1], b[0]))


def nearest_bucket(width: int, height: int, buckets: Sequence[Bucket]) -> Bucket:
    """The bucket whose aspect ratio is nearest ``width / height`` (the first on a tie)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}×{height}")
    target = math.log(width / height)
    return min(buckets, key=lambda b: abs(math.log(b[0] / b[1]) - target))


def crop_geometry(size: tuple[int, int], bucket: Bucket) -> tuple[tuple[int, int], int, int]:
    """The resized (width, height) that covers ``bucket``, and the crop's (top, left)."""
    width, height = size
    scale = max(bucket[0] / width, bucket[1] / height)
    resized = (max(bucket[0], round(width * scale)), max(bucket[1], round(height * scale)))
    top, left = (resized[1] - bucket[1]) // 2, (resized[0] - bucket[0]) // 2
    return resized, top, left


def load_pixels(path: Path, bucket: Bucket) -> torch.Tensor:
    """The image at ``path`` as a (3, height, width) float tensor in [-1, 1] at ``bucket``."""
    import torch
    from PIL import Image, ImageOps

    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    resized, top, left = crop_geometry(image.size, bucket)
    image = image.resize(resized, Image.Resampling.BICUBIC)
    image = image.crop((left, top, left + bucket[0], top + bucket[1]))
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def _size(example: ExampleLike) -> tuple[int, int]:
    if example.width > 0 and example.height > 0:
        return example.width, example.height
    from PIL import Image, ImageOps

    with Image.open(example.image_path) as image:
        transposed = ImageOps.exif_transpose(image)
        return transposed.size


def prepare_items(examples: Sequence[ExampleLike], buckets: Sequence[Bucket]) -> list[Item]:
    """The examples in their buckets, in the given order; missing hashes and sizes are read
    from the files. Raises ``FileNotFoundError`` for a missing image."""
    items = []
    for index, example in enumerate(examples):
        path = Path(example.image_path)
        if not path.is_file():
            raise FileNotFoundError(f"training image {path} does not exist")
        size = _size(example)
        sha = example.image_sha256 or file_sha256(path)
        bucket = nearest_bucket(*size, buckets)
        items.append(Item(index, path, example.text, sha, size, bucket))
    return items


def epoch_batches(
    bucket_of: Sequence[Bucket], batch_size: int, seed: int, epoch: int
) -> list[list[int]]:
    """Epoch ``epoch``'s batches of item indices: each bucket's items shuffled and cut into
    batches of at most ``batch_size`` (one bucket per batch), then the batches shuffled."""
    rng = np.random.default_rng([seed, epoch])
    groups: dict[Bucket, list[int]] = {}
    for index, bucket in enumerate(bucket_of):
        groups.setdefault(bucket, []).append(index)
    batches: list[list[int]] = []
    for bucket in sorted(groups):
        members = [groups[bucket][i] for i in rng.permutation(len(groups[bucket]))]
        batches += [members[i : i + batch_size] for i in range(0, len(members), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class BatchPlan:
    """Which items each micro-step trains on, for every process: a pure function of the step.

    Global batch ``g = micro_step × processes + process`` is batch ``g mod n`` of epoch
    ``g div n`` (``n`` batches per epoch, the same every epoch).
    """

    def __init__(self, items: Sequence[Item], batch_size: int, seed: int) -> None:
        self.buckets = [item.bucket for item in items]
        self.batch_size = batch_size
        self.seed = seed
        self._epochs: dict[int, list[list[int]]] = {}
        self.per_epoch = len(self._epoch(0))

    def _epoch(self, epoch: int) -> list[list[int]]:
        if epoch not in self._epochs:
            if len(self._epochs) >= 4:  # a run moves forward: keep only recent epochs
                del self._epochs[min(self._epochs)]
            self._epochs[epoch] = epoch_batches(self.buckets, self.batch_size, self.seed, epoch)
        return self._epochs[epoch]

    def position(self, micro_step: int, process: int = 0, processes: int = 1) -> tuple[int, int]:
        """(epoch, batch index within the epoch) of a micro-step on a process."""
        return divmod(micro_step * processes + process, self.per_epoch)

    def batch(self, micro_step: int, process: int = 0, processes: int = 1) -> list[int]:
        """The item indices of a micro-step on a process."""
        epoch, index = self.position(micro_step, process, processes)
        return self._epoch(epoch)[index]


def drop_captions(
    texts: Sequence[str], rate: float, seed: int, micro_step: int, process: int = 0
) -> list[str]:
    """``texts`` with each one replaced by ``""`` with probability ``rate``, drawn from a
    generator seeded from (seed, micro-step, process): the same draw on a resumed run."""
    if rate <= 0:
        return list(texts)
    # A str seed is hashed with SHA-512 (stable across Python versions and platforms).
    rng = random.Random(f"{seed}:{_DROPOUT_STREAM}:{micro_step}:{process}")
    return ["" if rng.random() < rate else text for text in texts]


def dataset_digest(items: Sequence[Item]) -> str:
    """A digest of the items, their order and buckets: a resume must see the same data."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.image_sha256}|{item.bucket}|{item.text}\n".encode())
    return digest.hexdigest()[:16]
