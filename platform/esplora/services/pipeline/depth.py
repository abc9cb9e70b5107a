"""The depth stage: a disparity map per image (stored for the UI's overlay) and per-object
statistics of the normalised disparity inside each box."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from esplora.core.depth import DepthStats, box_depth_stats, normalise_disparity
from esplora.db.changes import next_change_seq
from esplora.db.detections import ObjectDepth
from esplora.db.enums import Stage
from esplora.db.images import Image
from esplora.db.writes import insert_rows
from esplora.services.pipeline.context import StageContext
from esplora.services.pipeline.images import load_images
from esplora.services.pipeline.objects import ObjectRow, objects_for


@dataclass(frozen=True, slots=True)
class DepthResult:
    uri: str
    stats: tuple[tuple[int, DepthStats], ...]  # (object id, statistics)


def depth_map_uri(producer: str, sha256: str) -> str:
    """Where an image's map lives under the artefacts directory (one folder per producer)."""
    slug = hashlib.sha256(producer.encode()).hexdigest()[:12]
    return f"depth/{slug}/{sha256[:2]}/{sha256}.png"


def encode_depth_png(normalised: np.ndarray) -> bytes:
    """A 16-bit greyscale PNG of a [0, 1] map at fast compression (the UI's overlay)."""
    scaled = np.round(np.clip(normalised, 0.0, 1.0) * 65535.0).astype(np.uint16)
    buffer = io.BytesIO()
    PILImage.fromarray(scaled).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_depth_png(path: Path) -> np.ndarray:
    """The stored map back as float32 in [0, 1]."""
    with PILImage.open(path) as image:
        return np.asarray(image, dtype=np.float32) / 65535.0


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers never see half of it (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    Path(temp).replace(path)


class DepthRunner:
    stage = Stage.DEPTH

    def producer(self, ctx: StageContext) -> str:
        return str(ctx.depth.producer)

    def load(self, ctx: StageContext, image_ids: Sequence[int]) -> dict[int, Any]:
        with ctx.store.reader() as session:
            rows = session.execute(
                select(Image.id, Image.uri, Image.sha256).where(Image.id.in_(image_ids))
            ).all()
            objects = objects_for(session, image_ids)
        images = load_images(ctx, {i: uri for i, uri, _ in rows})
        return {
            i: images[i] if isinstance(images[i], BaseException) else (images[i], sha, objects[i])
            for i, _, sha in rows
        }

    def compute(self, ctx: StageContext, inputs: Mapping[int, Any]) -> dict[int, Any]:
        ids = list(inputs)
        maps = ctx.depth.estimate([inputs[i][0] for i in ids])
        producer = self.producer(ctx)
        out: dict[int, Any] = {}
        for image_id, raw in zip(ids, maps, strict=True):
            try:
                out[image_id] = self._one(
                    ctx, producer, raw, inputs[image_id][1], inputs[image_id][2]
                )
            except ValueError as error:  # a non-finite map fails its image only
                out[image_id] = error
        return out

    def _one(
        self, ctx: StageContext, producer: str, raw: np.ndarray, sha: str, objects: list[ObjectRow]
    ) -> DepthResult:
        normalised = normalise_disparity(raw)
        uri = depth_map_uri(producer, sha)
        write_atomic(ctx.artefacts_dir / uri, encode_depth_png(normalised))
        boxes = np.array([o.box for o in objects], dtype=np.float64).reshape(-1, 4)
        stats = box_depth_stats(normalised, boxes) if objects else []
        return DepthResult(uri, tuple((o.id, s) for o, s in zip(objects, stats, strict=True)))

    def write(
        self, session: Session, ctx: StageContext, results: Mapping[int, Any]
    ) -> dict[int, dict[str, Any]]:
        producer = self.producer(ctx)
        object_ids = [oid for r in results.values() for oid, _ in r.stats]
        session.execute(
            delete(ObjectDepth).where(
                ObjectDepth.object_id.in_(object_ids), ObjectDepth.producer == producer
            )
        )
        insert_rows(
            session,
            ObjectDepth,
            [
                {
                    "object_id": oid,
                    "producer": producer,
                    "median": s.median,
                    "mean": s.mean,
                    "p10": s.p10,
                    "p90": s.p90,
                }
                for r in results.values()
                for oid, s in r.stats
            ],
        )
        seq = next_change_seq(session)
        for image_id, result in results.items():
            session.execute(
                update(Image)
                .where(Image.id == image_id)
                .values(depth_map_uri=result.uri, depth_producer=producer, change_seq=seq)
            )
        return {i: {"objects": len(r.stats)} for i, r in results.items()}
