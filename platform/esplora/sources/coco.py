"""COCO instances JSON: images, their boxes as annotations, and captions when given.

Boxes are COCO's ``[x, y, width, height]`` in pixels, turned into ``(x0, y0, x1, y1)``; labels
are the lexicon's canonical label of the category name (``"dining table"`` → ``"table"``, the
phrase keeps the name). Captions come from the sibling ``captions_<split>.json`` of an
``instances_<split>.json`` (or ``captions=``): one item per caption (key ``<image id>:<caption
id>``), all sharing the image; without captions one item per image (key ``<image id>``) with an
empty caption. Crowd regions (``iscrowd: 1``) are not objects and are left out (counted in the
item's metadata). Annotations or captions naming a missing image or category, and boxes without
area, are failures of their own (``annotation:<id>``, ``caption:<id>``); the image still imports.

Orientation: COCO's boxes and its ``width``/``height`` refer to the stored pixel grid. When an
image carries an EXIF orientation, ingest maps the boxes with the same transform as the pixels
(:func:`esplora.sources.images.orient_box`) unless the declared size already matches the
transposed image. The whole JSON is loaded at once (COCO train 2017 needs a few GB of memory).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from esplora.core.vocabulary import load_vocabulary
from esplora.errors import EsploraError
from esplora.sources.items import Annotation, SourceItem, clean_text, json_safe

# image id → (caption id, caption) pairs
_Captions = dict[Any, list[tuple[str | None, str]]]


class CocoReader:
    """Reads one COCO instances file (or the single one under a dataset folder)."""

    layout = "coco"

    def __init__(self, path: Path, *, captions: Path | None = None) -> None:
        self.path = _instances_file(path)
        self.captions_path = captions or _sibling_captions(self.path)
        self._data: dict[str, Any] | None = None

    def _instances(self) -> dict[str, Any]:
        if self._data is None:
            self._data = _load_json(self.path)
        return self._data

    def total(self) -> int | None:
        """Images plus annotations: what the reader will yield at most."""
        data = self._instances()
        return len(data.get("images", [])) + len(data.get("annotations", []))

    def __iter__(self) -> Iterator[SourceItem]:
        data = self._instances()
        images = {image["id"]: image for image in data.get("images", []) if "id" in image}
        categories = {c["id"]: str(c.get("name", "")) for c in data.get("categories", [])}
        boxes: dict[Any, list[Annotation]] = defaultdict(list)
        crowds: dict[Any, int] = defaultdict(int)
        for annotation in data.get("annotations", []):
            problem = _annotation(annotation, images, categories, boxes, crowds)
            if problem is not None:
                yield problem
        captions = yield from self._captions(images)
        for image in images.values():
            yield from _image_items(self._locate(image), image, boxes, crowds, captions)

    def _captions(self, images: dict[Any, Any]) -> Generator[SourceItem, None, _Captions]:
        """Yields dangling captions as failures; returns the captions by image id."""
        by_image: _Captions = defaultdict(list)
        if self.captions_path is None:
            return by_image
        for entry in _load_json(self.captions_path).get("annotations", []):
            key = f"caption:{entry.get('id')}"
            if entry.get("image_id") not in images:
                yield SourceItem.failed(key, "dangling_image_id", f"image {entry.get('image_id')}")
            else:
                text = clean_text(str(entry.get("caption") or "")).strip()
                by_image[entry["image_id"]].append((str(entry.get("id")), text))
        return by_image

    def _locate(self, image: dict[str, Any]) -> Path | None:
        name = str(image.get("file_name", ""))
        split = self.path.stem.removeprefix("instances_")
        base, parent = self.path.parent, self.path.parent.parent
        for folder in (
            base / split,
            parent / split,
            base / "images",
            parent / "images",
            base,
            parent,
        ):
            if name and (folder / name).is_file():
                return folder / name
        return None


def _instances_file(path: Path) -> Path:
    if path.is_file():
        return path
    found = sorted(path.glob("instances_*.json")) + sorted(
        path.glob("annotations/instances_*.json")
    )
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise EsploraError(f"expected one COCO instances_*.json in {path}, found {names}")
    return found[0]


def _sibling_captions(instances: Path) -> Path | None:
    split = instances.stem.removeprefix("instances_")
    candidate = instances.with_name(f"captions_{split}.json")
    return candidate if candidate.is_file() and candidate != instances else None


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EsploraError(f"cannot read COCO file {path}: {error}") from None
    if not isinstance(data, dict):
        raise EsploraError(f"{path} is not a COCO file (expected a JSON object)")
    return data


def _annotation(
    entry: dict[str, Any],
    images: dict[Any, Any],
    categories: dict[Any, str],
    boxes: dict[Any, list[Annotation]],
    crowds: dict[Any, int],
) -> SourceItem | None:
    """File one annotation under its image; a failure item when it cannot be."""
    key = f"annotation:{entry.get('id')}"
    if entry.get("image_id") not in images:
        return SourceItem.failed(key, "dangling_image_id", f"image {entry.get('image_id')}")
    if entry.get("category_id") not in categories:
        return SourceItem.failed(
            key, "dangling_category_id", f"category {entry.get('category_id')}"
        )
    if entry.get("iscrowd"):
        crowds[entry["image_id"]] += 1
        return None
    try:
        x, y, w, h = (float(v) for v in entry["bbox"])
    except (KeyError, TypeError, ValueError):
        return SourceItem.failed(key, "bad_box", f"bbox {entry.get('bbox')!r}")
    if not (w > 0 and h > 0):
        return SourceItem.failed(key, "degenerate_box", f"bbox {entry.get('bbox')!r}")
    name = categories[entry["category_id"]]
    boxes[entry["image_id"]].append(
        Annotation(key, category_label(name), name, (x, y, x + w, y + h))
    )
    return None


def _image_items(
    path: Path | None,
    image: dict[str, Any],
    boxes: dict[Any, list[Annotation]],
    crowds: dict[Any, int],
    captions: _Captions,
) -> Iterator[SourceItem]:
    image_id = image["id"]
    if path is None:
        yield SourceItem.failed(str(image_id), "missing_file", str(image.get("file_name")))
        return
    try:
        data = path.read_bytes()  # read once, shared by every caption of the image
    except OSError as error:
        yield SourceItem.failed(str(image_id), "unreadable", str(error))
        return
    meta = json_safe({**image, "coco_image_id": image_id, "crowd_annotations": crowds[image_id]})
    size = _declared_size(image)
    pairs = captions.get(image_id) or [(None, "")]
    for caption_id, text in pairs:
        key = str(image_id) if caption_id is None else f"{image_id}:{caption_id}"
        yield SourceItem(
            key=key,
            caption=text,
            meta=meta,
            data=data,
            annotations=tuple(boxes.get(image_id, ())),
            annotation_size=size,
        )


def _declared_size(image: dict[str, Any]) -> tuple[int, int] | None:
    try:
        return int(image["width"]), int(image["height"])
    except (KeyError, TypeError, ValueError):
        return None


def category_label(name: str) -> str:
    """The label a COCO category denotes in the shared vocabulary ("tv" → "television"), so
    annotation boxes and caption mentions meet on the same labels."""
    vocabulary = load_vocabulary()
    return vocabulary.canonical(name) or vocabulary.label_of(name)
