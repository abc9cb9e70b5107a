"""Loading stored images for a stage, each decoded the one way the platform measures images
(EXIF-transposed, RGB)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from esplora.services.pipeline.context import StageContext
from esplora.sources.images import load_rgb, resolve_uri


def load_images(ctx: StageContext, uris: Mapping[int, str]) -> dict[int, Any]:
    """Image id → PIL image, or the exception that explains why it could not be read."""
    out: dict[int, Any] = {}
    with ctx.clock.phase("decode"):
        for image_id, uri in uris.items():
            try:
                out[image_id] = load_rgb(resolve_uri(uri, ctx.artefacts_dir))
            except Exception as error:  # one unreadable file fails only its image
                out[image_id] = error
    return out
