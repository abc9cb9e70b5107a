"""Cached VAE latents and text embeddings, and the batches built from them.

Each example's latent distribution (keyed by image SHA-256 and bucket) and each distinct
caption's embeddings (keyed by the caption's SHA-256) are computed once and kept on disk, one
safetensors file each, under ``run_dir/cache/<model digest>/``: a resumed run finds them there
and computes nothing again. With both caches on, the text encoders and the VAE leave memory
before training starts (for Flux, T5-XXL alone is ~9.5 GB in bf16).

Cached and uncached runs are the same computation: the cache stores exactly the tensors the
uncached path computes per batch (the VAE's distribution parameters, not a sample), and the
step's generator samples them either way. They agree bit for bit when the encoders give the
same numbers for an example alone as inside a batch, which holds for batch-independent kernels
(the CPU ones here, ``cache_batch_size`` equal to ``batch_size`` elsewhere); see
docs/training.md.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from esplora_training.data import Item, load_pixels
from esplora_training.families import Family, Tensors

__all__ = ["FeatureCache", "Feeder", "cache_dir", "fill_latents", "fill_text", "text_key"]

LATENTS, TEXT = "latents", "text"


def text_key(text: str) -> str:
    """The cache key of a caption."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def cache_dir(run_dir: Path, identity: Iterable[object]) -> Path:
    """``run_dir/cache/<digest>``: one directory per model, precision and text length."""
    digest = hashlib.sha256("|".join(map(str, identity)).encode("utf-8")).hexdigest()[:12]
    return run_dir / "cache" / digest


class FeatureCache:
    """Tensors on disk, one safetensors file per (kind, key), written atomically; what was
    read is kept in memory up to ``memory_bytes`` (then read from disk each time)."""

    def __init__(self, root: Path, memory_bytes: int = 0) -> None:
        self.root = root
        self.memory_bytes = memory_bytes
        self._memory: dict[tuple[str, str], Tensors] = {}
        self._held = 0

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.safetensors"

    def has(self, kind: str, key: str) -> bool:
        return self.path(kind, key).is_file()

    def load(self, kind: str, key: str) -> Tensors:
        """The tensors of (kind, key); callers must not modify them in place."""
        from safetensors.torch import load_file

        held = self._memory.get((kind, key))
        if held is not None:
            return held
        tensors = dict(load_file(str(self.path(kind, key)), device="cpu"))
        size = sum(t.numel() * t.element_size() for t in tensors.values())
        if self._held + size <= self.memory_bytes:
            self._memory[(kind, key)] = tensors
            self._held += size
        return tensors

    def save(self, kind: str, key: str, tensors: Tensors) -> None:
        from safetensors.torch import save_file

        target = self.path(kind, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = target.with_suffix(f".{os.getpid()}.tmp")
        rows = {
            name: value.detach().to("cpu").contiguous().clone() for name, value in tensors.items()
        }
        save_file(rows, str(scratch))
        scratch.replace(target)


def _chunks(values: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def fill_latents(
    cache: FeatureCache,
    items: Sequence[Item],
    family: Family,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Encode every image not yet cached (grouped by bucket); returns how many were encoded."""
    import torch

    missing: dict[str, Item] = {}
    for item in items:
        if item.latent_key not in missing and not cache.has(LATENTS, item.latent_key):
            missing[item.latent_key] = item
    by_bucket: dict[tuple[int, int], list[Item]] = {}
    for item in missing.values():
        by_bucket.setdefault(item.bucket, []).append(item)
    for bucket in sorted(by_bucket):
        for chunk in _chunks(by_bucket[bucket], batch_size):
            pixels = torch.stack([load_pixels(item.image_path, bucket) for item in chunk])
            params = family.encode_images(pixels)
            for row, item in enumerate(chunk):
                cache.save(LATENTS, item.latent_key, {"latent_params": params[row]})
            if progress is not None:
                progress(len(chunk))
    return len(missing)


def fill_text(cache: FeatureCache, texts: Iterable[str], family: Family, batch_size: int) -> int:
    """Encode every distinct caption not yet cached; returns how many were encoded."""
    missing = sorted({t for t in texts if not cache.has(TEXT, text_key(t))})
    for chunk in _chunks(missing, batch_size):
        encoded = family.encode_text(chunk)
        for row, text in enumerate(chunk):
            cache.save(TEXT, text_key(text), {k: v[row] for k, v in encoded.items()})
    return len(missing)


class Feeder:
    """A micro-step's tensors: from the caches where they are on, encoded on the fly otherwise."""

    def __init__(
        self,
        family: Family,
        items: Sequence[Item],
        cache: FeatureCache,
        *,
        cached_latents: bool,
        cached_text: bool,
    ) -> None:
        self.family, self.items, self.cache = family, items, cache
        self.cached_latents, self.cached_text = cached_latents, cached_text

    def _stack(self, kind: str, keys: Sequence[str]) -> Tensors:
        import torch

        rows = [self.cache.load(kind, key) for key in keys]
        return {name: torch.stack([row[name] for row in rows]) for name in rows[0]}

    def batch(self, indices: Sequence[int], texts: Sequence[str]) -> Tensors:
        """The batch of items ``indices`` with captions ``texts`` (after caption dropout)."""
        import torch

        chosen = [self.items[i] for i in indices]
        if self.cached_latents:
            tensors = self._stack(LATENTS, [item.latent_key for item in chosen])
        else:
            pixels = torch.stack([load_pixels(item.image_path, item.bucket) for item in chosen])
            tensors = {"latent_params": self.family.encode_images(pixels)}
        if self.cached_text:
            tensors |= self._stack(TEXT, [text_key(text) for text in texts])
        else:
            tensors |= self.family.encode_text(texts)
        return tensors | self.family.conditions(chosen)
