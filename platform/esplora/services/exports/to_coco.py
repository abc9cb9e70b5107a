"""COCO detection format with relations: ``annotations/instances.json`` and ``images/KEY.ext``.

Each member is one COCO image (its caption and split in the image entry), each distinct box one
annotation (``bbox`` as x, y, width, height), and a top-level ``relations`` array links subject
and object annotation ids with the relation, soft/strict verdicts, margin and review state.
``pycocotools.coco.COCO`` loads it as any COCO file (it ignores the extra array).

The images, annotations and relations arrays are spooled to temporary files as they stream
and concatenated at the end: only the category table (one entry per label) stays in memory.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import IO, Any

from esplora.services.exports.common import ExportItem, FormatSpec, WriteTarget

_ARRAYS = ("images", "annotations", "relations")


class _Spool:
    """A JSON array written one element at a time to a file (commas between elements)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[str] = path.open("w", encoding="utf-8")
        self.count = 0

    def add(self, entry: dict[str, Any]) -> int:
        """Append ``entry``; returns its 1-based position (COCO ids start at 1)."""
        self.handle.write(("," if self.count else "") + json.dumps(entry, ensure_ascii=False))
        self.count += 1
        return self.count


class CocoWriter:
    """Writes ``images/`` as it goes and ``annotations/instances.json`` on close."""

    def __init__(self, target: WriteTarget) -> None:
        self.target = target
        (target.root / "images").mkdir(parents=True)
        (target.root / "annotations").mkdir()
        self.spools = {name: _Spool(target.root / f".{name}.spool") for name in _ARRAYS}
        self.categories: dict[str, int] = {}

    def write(self, item: ExportItem) -> None:
        self.target.files.write(self.target.root / "images" / item.file_name, item.image)
        image_id = self.spools["images"].count + 1
        self.spools["images"].add({
            "id": image_id, "file_name": item.file_name, "width": item.member.width,
            "height": item.member.height, "caption": item.text, "split": item.split,
            "key": item.key, **item.provenance(),
        })  # fmt: skip
        annotation_ids = [self._annotation(image_id, o.label, o.box) for o in item.objects]
        for r in item.relations:
            self.spools["relations"].add({
                "id": self.spools["relations"].count + 1, "image_id": image_id,
                "subject_id": annotation_ids[r.subject], "object_id": annotation_ids[r.object],
                "relation": r.relation, "soft": r.soft, "strict": r.strict, "margin": r.margin,
                "state": r.state,
            })  # fmt: skip

    def _annotation(self, image_id: int, label: str, box: tuple[float, ...]) -> int:
        category = self.categories.setdefault(label, len(self.categories) + 1)
        x0, y0, x1, y1 = box
        width, height = x1 - x0, y1 - y0
        spool = self.spools["annotations"]
        return spool.add({
            "id": spool.count + 1, "image_id": image_id, "category_id": category,
            "bbox": [x0, y0, width, height], "area": width * height, "iscrowd": 0,
        })  # fmt: skip

    def close(self) -> dict[str, Any]:
        for spool in self.spools.values():
            spool.handle.close()
        categories = [
            {"id": i, "name": name, "supercategory": "object"}
            for name, i in sorted(self.categories.items(), key=lambda pair: pair[1])
        ]
        head = {"info": {"description": f"esplora snapshot {self.target.snapshot}"},
                "licenses": [], "categories": categories}  # fmt: skip
        with (self.target.root / "annotations" / "instances.json").open("w", encoding="utf-8") as f:
            f.write(json.dumps(head, ensure_ascii=False)[:-1])  # leave the object open
            for name in _ARRAYS:
                f.write(f', "{name}": [')
                with self.spools[name].path.open(encoding="utf-8") as part:
                    shutil.copyfileobj(part, f)
                f.write("]")
            f.write("}\n")
        for spool in self.spools.values():
            spool.path.unlink()
        return {name: spool.count for name, spool in self.spools.items()} | {
            "categories": len(categories)
        }


SPEC = FormatSpec(
    name="coco",
    summary="COCO instances.json (images, categories, bbox annotations) + a relations array",
    layout="annotations/instances.json, images/KEY.jpg …",
    usage=(
        "```python\nfrom pycocotools.coco import COCO\n\n"
        'coco = COCO("{out}/annotations/instances.json")\n'
        "image = coco.loadImgs(coco.getImgIds()[0])[0]  # file under {out}/images/\n"
        'boxes = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))\n'
        'relations = [r for r in coco.dataset["relations"] if r["image_id"] == image["id"]]\n```'
    ),
    jpeg_only=False,
    open=CocoWriter,
)
