"""The data-engine part of ``esplora demo``: real photos in, relation statistics out."""

from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

from rich.table import Table

from esplora.cli._common import console, err_console
from esplora.settings import Settings


def demo_settings(config: Settings) -> Settings:
    """The demo runs on the tiny offline twins unless ESPLORA_PROFILE asks for the real models."""
    if "ESPLORA_PROFILE" in os.environ:
        return config
    return config.model_copy(update={"profile": "tiny"})


def write_photos(out: Path) -> Path:
    """An image folder (Hugging Face ``metadata.jsonl``) of the photos shipped in scikit-image."""
    import skimage

    spec = json.loads(resources.files("esplora.data").joinpath("demo_photos.json").read_text())
    source = Path(skimage.__file__).parent / "data"
    folder = out / "train"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for photo in spec["photos"]:
        stem, suffix = Path(photo.get("name", photo["file"])).stem, Path(photo["file"]).suffix
        for k, caption in enumerate(photo["captions"]):
            # One file per caption, as a web crawl finds the same bytes under many URLs.
            name = f"{stem}-{k}{suffix}"
            shutil.copyfile(source / photo["file"], folder / name)
            rows.append(json.dumps({"file_name": name, "text": caption}))
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return out


def ensure_tiny_models(config: Settings) -> None:
    from esplora.backends.tiny import make_tiny

    models = config.resolved_models_dir
    if config.profile == "tiny" and not (models / "grounding-dino").is_dir():
        err_console.print(f"writing the tiny models to {models}")
        make_tiny(models)


def step_ingest(store: Any, config: Settings) -> None:
    from esplora.cli._sections import section
    from esplora.services.ingest import ingest

    section("2. Ingest: real photos with LAION-style captions (scikit-image's sample photos)")
    photos = write_photos(config.home / "demo-photos")
    report = ingest(store, config, photos, source_format="folder", source_name="demo-photos")
    console.print(
        f"read {report.read} image-text pairs: {report.imported_images} new images, "
        f"{report.imported_samples} new samples, {report.duplicate_images} repeated images, "
        f"{report.near_duplicates} near-duplicates, excluded {report.excluded or 'none'}"
    )


def step_pipeline(store: Any, config: Settings) -> None:
    from esplora.cli._sections import section
    from esplora.services.pipeline import StageContext, run_inline

    section(f"3. Pipeline: extract → detect → depth → relate ({config.profile} models)")
    ensure_tiny_models(config)
    if config.profile == "tiny":
        console.print(
            "[yellow]The tiny profile runs the real architectures with random weights: its boxes "
            "and depth are random, so the statistics below show the machinery, not the photos.[/]"
        )
    report = run_inline(StageContext(store, config))
    for stage, done in report.done.items():
        failed = report.failed.get(stage, {})
        console.print(f"{stage:>8}: {done} images done, {len(failed)} failed")


def step_statistics(store: Any) -> None:
    from esplora.cli._sections import section
    from esplora.services.relation_stats import relation_stats

    section("4. Relation statistics")
    with store.reader() as session:
        stats = relation_stats(session)
    table = Table(title="geometric relations (canonical direction)")
    for column in ("relation", "pairs (soft)", "strict", "mean margin"):
        table.add_column(column, justify="left" if column == "relation" else "right")
    for r in stats.relations:
        table.add_row(r["relation"], str(r["soft"]), str(r["strict"]), f"{r['mean_margin']:+.3f}")
    console.print(table)
    claims = Table(title="what the captions claim, judged by the geometry")
    for column in ("relation", "confirmed", "contradicted", "unresolved"):
        claims.add_column(column, justify="left" if column == "relation" else "right")
    for c in stats.claims:
        claims.add_row(
            c["relation"], str(c["confirmed"]), str(c["contradicted"]), str(c["unresolved"])
        )
    console.print(claims)
