"""Relative depth with Depth Anything V2 through transformers, batched with padding.

The processor keeps each image's aspect ratio (sides a multiple of the patch size), so images of
one batch differ in size: they are padded to the batch's largest height and width, and each
prediction is cropped back to its own region before it is resized to the image's own (H, W).
The maps are raw relative disparity (larger = closer); the core normalises them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from esplora.backends._hf import LoadedModel, batched, rgb
from esplora.backends.base import PhaseClock
from esplora.backends.registry import DEPTH_ANYTHING_ID, BackendOptions

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["DepthAnythingEstimator"]


class DepthAnythingEstimator:
    """Depth Anything (V2) via ``AutoImageProcessor`` + ``AutoModelForDepthEstimation``."""

    def __init__(
        self,
        options: BackendOptions,
        *,
        name: str = "depth-anything",
        real_id: str | None = DEPTH_ANYTHING_ID,
    ) -> None:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        self.options = options
        self._loaded = LoadedModel(
            options,
            name,
            real_id or DEPTH_ANYTHING_ID,
            AutoModelForDepthEstimation.from_pretrained,
            AutoImageProcessor.from_pretrained,
        )
        self.producer = self._loaded.producer
        self.clock = PhaseClock()

    def estimate(self, images: Sequence[Image]) -> list[np.ndarray]:
        """One float32 disparity map per image, shaped like the image: ``(height, width)``."""
        maps: list[np.ndarray] = []
        for chunk in batched(images, self.options.batch_size):
            maps.extend(self._estimate(chunk))
        return maps

    def _estimate(self, images: Sequence[Image]) -> list[np.ndarray]:
        import torch

        with self.clock.phase("preprocess"):
            pixels = [
                torch.as_tensor(np.asarray(p))
                for p in self._loaded.processor(images=rgb(images))["pixel_values"]
            ]
            batch, regions = _pad(pixels)
        with self.clock.phase("forward"), torch.inference_mode():
            outputs = self._loaded.model(**self._loaded.inputs({"pixel_values": batch}))
        with self.clock.phase("postprocess"):
            predicted = outputs.predicted_depth.float()
            return [
                _resize(_crop(predicted[i], regions[i], batch.shape[-2:]), image)
                for i, image in enumerate(images)
            ]


def _pad(pixels: Sequence[Any]) -> tuple[Any, list[tuple[int, int]]]:
    """Stack ``(C, h, w)`` tensors into one ``(N, C, H, W)`` batch, zero-padded bottom/right."""
    import torch

    height = max(int(p.shape[-2]) for p in pixels)
    width = max(int(p.shape[-1]) for p in pixels)
    batch = torch.zeros((len(pixels), int(pixels[0].shape[0]), height, width))
    regions = []
    for i, p in enumerate(pixels):
        h, w = int(p.shape[-2]), int(p.shape[-1])
        batch[i, :, :h, :w] = p
        regions.append((h, w))
    return batch, regions


def _crop(depth: Any, region: tuple[int, int], padded: Any) -> Any:
    """The part of a ``(H', W')`` prediction that covers the unpadded input region."""
    scale_h = depth.shape[-2] / int(padded[0])
    scale_w = depth.shape[-1] / int(padded[1])
    h = max(1, round(region[0] * scale_h))
    w = max(1, round(region[1] * scale_w))
    return depth[..., :h, :w]


def _resize(depth: Any, image: Image) -> np.ndarray:
    """Bilinear resize to the image's (height, width): it keeps values within the input range."""
    import torch

    resized = torch.nn.functional.interpolate(
        depth[None, None], size=(image.height, image.width), mode="bilinear", align_corners=False
    )[0, 0]
    out: np.ndarray = resized.cpu().numpy().astype(np.float32, copy=False)
    return out
