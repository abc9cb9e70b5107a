"""Write small real datasets to a folder, laid out exactly as their tools write them.

Images are synthetic (smooth random colour fields made with numpy and Pillow, distinct enough
for perceptual hashes to tell them apart); the odd and broken ones are made the way they occur
in the wild: a truncated JPEG, zero bytes, text named ``.jpg``, a PNG whose header claims
60000×60000 pixels, CMYK, 16-bit, palette with transparency, animated GIF, EXIF orientation 6.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

# --- images -----------------------------------------------------------------------------------


def photo(seed: int, size: tuple[int, int] = (96, 80)) -> Image.Image:
    """A smooth random colour field: a coarse random grid upsampled, plus a bright disc."""
    rng = np.random.default_rng(seed)
    coarse = (rng.random((5, 5, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    pixels = np.asarray(image).copy()
    yy, xx = np.mgrid[: size[1], : size[0]]
    cx, cy, r = rng.uniform(0.2, 0.8) * size[0], rng.uniform(0.2, 0.8) * size[1], min(size) / 5
    pixels[(xx - cx) ** 2 + (yy - cy) ** 2 < r**2] = rng.integers(0, 256, 3)
    return Image.fromarray(pixels)


def encode(image: Image.Image, fmt: str = "JPEG", **params: Any) -> bytes:
    """``image`` encoded in ``fmt``."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def jpeg(seed: int, size: tuple[int, int] = (96, 80)) -> bytes:
    """A JPEG of :func:`photo`."""
    return encode(photo(seed, size), "JPEG", quality=90)


def truncated_jpeg(seed: int = 900) -> bytes:
    """A JPEG cut off half-way through its scan data."""
    data = jpeg(seed, (128, 128))
    return data[: len(data) // 2]


def text_as_jpg() -> bytes:
    """A text file, as found named ``.jpg`` (an HTML error page saved as an image)."""
    return b"<html><body>403 Forbidden</body></html>\n"


def bomb_png(width: int = 60000, height: int = 60000) -> bytes:
    """A tiny PNG whose header claims ``width``×``height`` pixels (a decompression bomb)."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    body = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data[8 : 8 + 25] = struct.pack(">I", 13) + body + struct.pack(">I", zlib.crc32(body))
    return bytes(data)


def cmyk_jpeg(seed: int = 901) -> bytes:
    """A CMYK JPEG (print workflows, some stock sites)."""
    return encode(photo(seed).convert("CMYK"), "JPEG", quality=90)


def png16(seed: int = 902, size: tuple[int, int] = (96, 80)) -> bytes:
    """A 16-bit grayscale PNG using the full 0–65535 range."""
    gray = np.asarray(photo(seed, size).convert("L"), dtype=np.uint16) * 257
    return encode(Image.fromarray(gray), "PNG")


def palette_png(seed: int = 903) -> bytes:
    """A palette PNG whose colour 0 is transparent."""
    image = photo(seed).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    return encode(image, "PNG", transparency=0)


def rgba_png(seed: int = 904) -> bytes:
    """An RGBA PNG, left half transparent."""
    image = photo(seed).convert("RGBA")
    alpha = np.full((image.height, image.width), 255, dtype=np.uint8)
    alpha[:, : image.width // 2] = 0
    image.putalpha(Image.fromarray(alpha))
    return encode(image, "PNG")


def animated_gif(seed: int = 905, frames: int = 3) -> bytes:
    """An animated GIF of ``frames`` different frames."""
    images = [photo(seed + i).convert("P") for i in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=100)


def exif_rotated_jpeg(
    seed: int = 906, size: tuple[int, int] = (120, 80), orientation: int = 6
) -> bytes:
    """A JPEG stored ``size`` (w×h) with an EXIF orientation tag: shown rotated."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(photo(seed, size), "JPEG", quality=90, exif=exif.tobytes())


# --- img2dataset ------------------------------------------------------------------------------


@dataclass
class Pair:
    """One input row of img2dataset: downloaded (``data``) or not (``status``)."""

    key: str
    caption: str
    data: bytes | None = None
    status: str = "success"
    error_message: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    members: Sequence[str] = ("jpg", "txt", "json")  # drop one to simulate a broken shard

    def meta(self) -> dict[str, Any]:
        """The metadata row img2dataset writes (json member and parquet row)."""
        size = _size(self.data) if self.status == "success" else (None, None)
        return {
            "url": f"https://example.org/{self.key}.jpg",
            "caption": self.caption,
            "key": self.key,
            "status": self.status,
            "error_message": self.error_message,
            "width": size[0],
            "height": size[1],
            "original_width": size[0] * 2 if size[0] else None,
            "original_height": size[1] * 2 if size[1] else None,
            "exif": None,
            "sha256": hashlib.sha256(self.data).hexdigest() if self.data else None,
            **self.extra,
        }


def _size(data: bytes | None) -> tuple[int | None, int | None]:
    try:
        with Image.open(io.BytesIO(data or b"")) as image:
            return image.size
    except Exception:
        return None, None


def key_of(shard: int, index: int) -> str:
    """img2dataset's key: 5-digit shard then 4-digit index."""
    return f"{shard:05d}{index:04d}"


def _write_parquet(path: Path, rows: list[dict[str, Any]], drop: Iterable[str] = ()) -> None:
    names = dict.fromkeys(c for row in rows for c in row)  # every row's columns, in order
    columns = [c for c in names if c not in set(drop)]
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
    pq.write_table(table, path)


def _stats(path: Path, pairs: Sequence[Pair]) -> None:
    ok = sum(p.status == "success" for p in pairs)
    stats = {"count": len(pairs), "successes": ok, "failed_to_download": len(pairs) - ok}
    path.write_text(json.dumps(stats))


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
    tar.addfile(info, io.BytesIO(data))


def _members(pair: Pair) -> dict[str, bytes]:
    content = {
        "jpg": pair.data or b"",
        "txt": pair.caption.encode(),
        "json": json.dumps(pair.meta(), indent=4).encode(),
    }
    return {ext: content[ext] for ext in pair.members}


def write_webdataset(root: Path, shards: Sequence[Sequence[Pair]]) -> Path:
    """img2dataset ``--output_format webdataset``: ``NNNNN.tar`` + ``NNNNN.parquet`` per shard."""
    root.mkdir(parents=True, exist_ok=True)
    for number, pairs in enumerate(shards):
        with tarfile.open(root / f"{number:05d}.tar", "w") as tar:
            for pair in pairs:
                if pair.status == "success":
                    for ext, data in _members(pair).items():
                        _add_member(tar, f"{pair.key}.{ext}", data)
        _write_parquet(root / f"{number:05d}.parquet", [p.meta() for p in pairs])
        _stats(root / f"{number:05d}_stats.json", pairs)
    return root


def corrupt_tar_after(shard: Path, keep_members: int) -> None:
    """Overwrite the header of member ``keep_members`` so the shard ends in garbage there."""
    data = bytearray(shard.read_bytes())
    offset = 0
    for _ in range(keep_members):
        size = int(data[offset + 124 : offset + 136].rstrip(b"\0 ").decode() or "0", 8)
        offset += 512 + (size + 511) // 512 * 512
    data[offset : offset + 512] = b"\xff" * 512
    shard.write_bytes(bytes(data))


def write_files_layout(root: Path, shards: Sequence[Sequence[Pair]]) -> Path:
    """img2dataset ``--output_format files``: folders ``NNNNN/`` plus ``NNNNN.parquet``."""
    root.mkdir(parents=True, exist_ok=True)
    for number, pairs in enumerate(shards):
        folder = root / f"{number:05d}"
        folder.mkdir()
        for pair in pairs:
            if pair.status == "success":
                for ext, data in _members(pair).items():
                    (folder / f"{pair.key}.{ext}").write_bytes(data)
        _write_parquet(root / f"{number:05d}.parquet", [p.meta() for p in pairs])
        _stats(root / f"{number:05d}_stats.json", pairs)
    return root


def write_parquet_layout(
    root: Path, shards: Sequence[Sequence[Pair]], drop_columns: Iterable[str] = ()
) -> Path:
    """img2dataset ``--output_format parquet``: image bytes in ``jpg``, caption in ``txt``."""
    root.mkdir(parents=True, exist_ok=True)
    for number, pairs in enumerate(shards):
        rows = [
            {"key": p.key, "jpg": p.data, "txt": p.caption if p.data else None, **p.meta()}
            for p in pairs
        ]
        _write_parquet(root / f"{number:05d}.parquet", rows, drop_columns)
        _stats(root / f"{number:05d}_stats.json", pairs)
    return root


# --- folders ----------------------------------------------------------------------------------


def write_folder(root: Path, files: dict[str, tuple[bytes, str | None]]) -> Path:
    """Images with sidecar captions: ``{relative path: (bytes, caption or None)}``."""
    for name, (data, caption) in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if caption is not None:
            path.with_suffix(".txt").write_text(caption)
    return root


def write_imagefolder(
    root: Path, files: dict[str, tuple[bytes, str]], extra_rows: Sequence[str] = ()
) -> Path:
    """Hugging Face imagefolder: ``train/`` images and one ``metadata.jsonl`` beside them."""
    folder = root / "train"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, (data, caption) in files.items():
        (folder / name).write_bytes(data)
        lines.append(json.dumps({"file_name": name, "text": caption, "source": "test"}))
    (folder / "metadata.jsonl").write_text("\n".join([*lines, *extra_rows]) + "\n")
    return root


# --- COCO -------------------------------------------------------------------------------------


@dataclass
class CocoImage:
    """An image of a COCO file, its boxes ``(category name, [x, y, w, h])`` and captions."""

    id: int
    data: bytes
    boxes: list[tuple[str, list[float]]] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    declared_size: tuple[int, int] | None = None  # default: the stored pixel grid


def write_coco(
    root: Path,
    images: Sequence[CocoImage],
    *,
    split: str = "val2017",
    dangling: bool = False,
    with_captions: bool = True,
) -> Path:
    """``annotations/instances_<split>.json`` (+ ``captions_<split>.json``) and ``<split>/``.

    ``dangling`` adds an annotation naming a missing image, one naming a missing category,
    and a caption naming a missing image.
    """
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    names = sorted({name for image in images for name, _ in image.boxes})
    categories = [{"id": i + 1, "name": n, "supercategory": "thing"} for i, n in enumerate(names)]
    ids = {c["name"]: c["id"] for c in categories}
    entries, annotations, captions = [], [], []
    for image in images:
        file_name = f"{image.id:012d}.jpg"
        (root / split / file_name).write_bytes(image.data)
        width, height = image.declared_size or _size(image.data)
        entries.append({"id": image.id, "file_name": file_name, "width": width, "height": height})
        for name, bbox in image.boxes:
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image.id, "category_id": ids[name],
                 "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0}
            )  # fmt: skip
        for text in image.captions:
            captions.append({"id": 1000 + len(captions), "image_id": image.id, "caption": text})
    if dangling:
        annotations.append(
            {"id": 9001, "image_id": 424242, "category_id": 1, "bbox": [1, 1, 5, 5], "iscrowd": 0}
        )
        annotations.append(
            {"id": 9002, "image_id": images[0].id, "category_id": 77, "bbox": [1, 1, 5, 5]}
        )
        captions.append({"id": 9003, "image_id": 424242, "caption": "a ghost left of a cat"})
    instances = {"images": entries, "annotations": annotations, "categories": categories}
    path = root / "annotations" / f"instances_{split}.json"
    path.write_text(json.dumps(instances))
    if with_captions:
        caption_file = {"images": entries, "annotations": captions}
        (root / "annotations" / f"captions_{split}.json").write_text(json.dumps(caption_file))
    return path
