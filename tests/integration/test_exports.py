"""Snapshot exports, loaded with the tools their users load them with: ``datasets`` (parquet,
imagefolder), ``webdataset`` (tar shards), ``pycocotools`` (COCO), ``tomllib`` (kohya's config).
Every format must give the same samples, splits and relations as the frozen member rows; bad
requests fail clearly; unreadable images are skipped and named; nothing half-written ever sits
at the target; jobs run inline and on a real worker process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from PIL import Image as PILImage
from sqlalchemy import select, update
from typer.testing import CliRunner

from esplora.cli.snapshot_export import register
from esplora.db.engine import Store
from esplora.db.enums import RunStatus
from esplora.db.exports import ExportJob
from esplora.db.images import Image
from esplora.errors import EsploraError
from esplora.services.exports import (
    FORMATS,
    LIVE_WITHIN,
    ExportOptions,
    export_jobs,
    export_snapshot,
    run_export_job,
    start_export,
)
from esplora.settings import Settings, get_settings
from esplora.sources.images import resolve_uri, sha256_hex
from support.export_seed import FILES, Seeded, seed_snapshot
from support.workers import wait_until, worker_env, workers

Seen = dict[int, tuple[str, str, tuple[Any, ...], tuple[int, int]]]  # sample → split, text, …


@pytest.fixture
def seeded(store: Store, settings: Settings, tmp_path: Path) -> Seeded:
    return seed_snapshot(store, settings, tmp_path / "sources")


def _relation(r: dict[str, Any]) -> tuple[Any, ...]:
    """A relation as every format can say it: boxes rounded (COCO stores width and height)."""
    box = lambda b: tuple(round(float(v), 6) for v in b)  # noqa: E731
    return (r["relation"], r["subject_label"], box(r["subject_box"]), r["object_label"],
            box(r["object_box"]), r["soft"], r["strict"], r["margin"], r["state"])  # fmt: skip


def _frozen(seeded: Seeded, sizes: dict[str, tuple[int, int]]) -> Seen:
    """What every export must say, straight from the member rows."""
    expected: Seen = {}
    for m in seeded.members:
        rows = [{**r, "subject_label": r["subject"]["label"], "subject_box": r["subject"]["box"],
                 "object_label": r["object"]["label"], "object_box": r["object"]["box"]}
                for r in m["relations"]]  # fmt: skip
        relations = tuple(sorted(_relation(r) for r in rows))
        expected[m["sample_id"]] = (m["split"].value, m["text"], relations,
                                    sizes[m["image_sha256"]])  # fmt: skip
    return expected


def _from_datasets(out: Path, cache: Path, builder: str | None) -> Seen:
    from datasets import load_dataset

    if builder is None:
        loaded = load_dataset(str(out), cache_dir=str(cache))
    else:
        loaded = load_dataset(builder, data_dir=str(out), cache_dir=str(cache))
    seen: Seen = {}
    for split, rows in loaded.items():
        for row in rows:
            relations = tuple(sorted(_relation(r) for r in row["relations"]))
            seen[row["sample_id"]] = (split, row["text"], relations, row["image"].size)
    return seen


def _from_webdataset(out: Path) -> Seen:
    import webdataset as wds

    seen: Seen = {}
    shards = sorted(str(p) for p in out.glob("*.tar"))
    for sample in wds.WebDataset(shards, shardshuffle=False, empty_check=False).decode("pil"):
        meta = sample["json"]
        assert sample["txt"] == meta["text"] and sample["jpg"].format is None  # decoded
        relations = tuple(sorted(_relation(r) for r in meta["relations"]))
        seen[meta["sample_id"]] = (meta["split"], meta["text"], relations, sample["jpg"].size)
    return seen


def _from_coco(out: Path) -> Seen:
    from pycocotools.coco import COCO

    coco = COCO(str(out / "annotations" / "instances.json"))
    names = {c["id"]: c["name"] for c in coco.dataset["categories"]}

    def end(annotation_id: int) -> tuple[str, list[float]]:
        a = coco.anns[annotation_id]
        x, y, w, h = a["bbox"]
        return names[a["category_id"]], [x, y, x + w, y + h]

    by_image: dict[int, list[tuple[Any, ...]]] = {i: [] for i in coco.imgs}
    for r in coco.dataset["relations"]:
        (sl, sb), (ol, ob) = end(r["subject_id"]), end(r["object_id"])
        row = {**r, "subject_label": sl, "subject_box": sb, "object_label": ol, "object_box": ob}
        by_image[r["image_id"]].append(_relation(row))
    seen: Seen = {}
    for image_id, image in coco.imgs.items():
        with PILImage.open(out / "images" / image["file_name"]) as pixels:
            assert pixels.size == (image["width"], image["height"])
        seen[image["sample_id"]] = (image["split"], image["caption"],
                                    tuple(sorted(by_image[image_id])), pixels.size)  # fmt: skip
    return seen


def _sizes(store: Store) -> dict[str, tuple[int, int]]:
    with store.reader() as session:
        return {r.sha256: (r.width, r.height) for r in session.scalars(select(Image))}


def test_every_format_loads_with_its_tool_and_says_the_same(
    store: Store, settings: Settings, seeded: Seeded, tmp_path: Path
) -> None:
    expected = _frozen(seeded, _sizes(store))
    reports = {f: export_snapshot(store, settings, seeded.name, f, tmp_path / f) for f in FORMATS}
    assert {r.written for r in reports.values()} == {7}
    assert {json.dumps(r.splits, sort_keys=True) for r in reports.values()} == {
        '{"train": 5, "validation": 2}'
    }
    cache = tmp_path / "hf-cache"
    assert _from_datasets(tmp_path / "parquet", cache, None) == expected
    assert _from_datasets(tmp_path / "imagefolder", cache, "imagefolder") == expected
    assert _from_webdataset(tmp_path / "webdataset") == expected
    assert _from_coco(tmp_path / "coco") == expected
    kohya = tmp_path / "kohya"
    config = tomllib.loads((kohya / "dataset_config.toml").read_text())
    subset = config["datasets"][0]["subsets"][0]
    captions = sorted(p.read_text().strip() for p in Path(subset["image_dir"]).glob("*.txt"))
    assert captions == sorted(t for s, t, _, _ in expected.values() if s == "train")
    assert len(list((kohya / "validation" / "1_spatial").glob("*.txt"))) == 2
    for f in FORMATS:
        card = (tmp_path / f / "README.md").read_text()
        assert "ab" * 32 in card and "| τ (tau) | 0.15 |" in card and "| depth gap | 0.1 |" in card
        assert "| depth models | tiny-depth-anything@1 |" in card and "esplora 0.1.0" in card
        assert "| split validation | 2 (2 exported) |" in card and "Nothing: every member" in card


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_non_jpeg_and_rotated_originals_are_reencoded_and_say_so(
    store: Store, settings: Settings, seeded: Seeded, tmp_path: Path
) -> None:
    export_snapshot(store, settings, seeded.name, "webdataset", tmp_path / "w")
    export_snapshot(store, settings, seeded.name, "imagefolder", tmp_path / "i")
    import webdataset as wds

    shards = sorted(str(p) for p in (tmp_path / "w").glob("*.tar"))
    samples = list(wds.WebDataset(shards, shardshuffle=False))  # undecoded: the stored bytes
    metas = {json.loads(s["json"])["source_key"]: s for s in samples}
    png = json.loads(metas["c.png"]["json"])
    assert png["original_format"] == "PNG" and png["reencoded"] == "PNG re-encoded as JPEG"
    assert metas["c.png"]["jpg"][:3] == b"\xff\xd8\xff"  # a JPEG now
    rows = [json.loads(line) for line in (tmp_path / "i" / "train" / "metadata.jsonl").open()]
    rotated = next(r for r in rows if r["source_key"] == "d.jpg")
    assert rotated["reencoded"] == "EXIF orientation 6 applied"
    with PILImage.open(tmp_path / "i" / "train" / rotated["file_name"]) as image:
        assert image.size == (80, 120) and image.getexif().get(0x0112) is None
    kept = next(r for r in rows if r["source_key"] == "c.png")
    assert kept["reencoded"] == "" and kept["file_name"].endswith(".png")  # kept as is
    assert rows[0]["relations"], "the first row must carry relations (datasets infers types)"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_missing_and_changed_images_are_skipped_and_named(
    store: Store, settings: Settings, seeded: Seeded, tmp_path: Path
) -> None:
    with store.reader() as session:
        uris = {i.sha256: i.uri for i in session.scalars(select(Image))}
    path = {f: resolve_uri(uris[sha256_hex(data)], settings.artefacts_dir) for f, data in
            FILES.items()}  # fmt: skip
    path["c.png"].unlink()
    path["b.jpg"].write_bytes(FILES["b.jpg"] + b"\0")  # no longer what the store hashed
    report = export_snapshot(store, settings, seeded.name, "imagefolder", tmp_path / "out")
    assert report.written == 5 and report.skip_reasons == {"missing": 1, "changed": 1}
    assert {s.reason: s.split for s in report.skips} == {"missing": "train", "changed": "train"}
    skipped = [json.loads(line) for line in (tmp_path / "out" / "skipped.jsonl").open()]
    assert len(skipped) == report.skipped
    card = (tmp_path / "out" / "README.md").read_text()
    assert f"{report.skipped} members were not exported" in card and "missing: 1" in card
    loaded = _from_datasets(tmp_path / "out", tmp_path / "hf", "imagefolder")
    assert len(loaded) == report.written


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_bad_requests_fail_clearly_and_create_nothing(
    store: Store, settings: Settings, seeded: Seeded, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cases = [
        (lambda: export_snapshot(store, settings, seeded.name, "tfrecord", out), "unknown export"),
        (lambda: export_snapshot(store, settings, "nope", "coco", out), "no snapshot named 'nope'"),
        (lambda: ExportOptions(shard_size=0), "shard_size must be at least 1"),
    ]
    for call, message in cases:
        with pytest.raises(EsploraError, match=message):
            call()
    assert not out.exists()
    (out / "old").mkdir(parents=True)
    with pytest.raises(EsploraError, match="exists and is not empty"):
        start_export(store, snapshot=seeded.name, fmt="coco", out=out)
    (tmp_path / "file").write_text("x")
    with pytest.raises(EsploraError, match="not a directory"):
        export_snapshot(store, settings, seeded.name, "coco", tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty directory is taken
    assert export_snapshot(store, settings, seeded.name, "coco", empty).written == 7
    assert export_jobs(store) == []


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_an_export_that_fails_half_way_leaves_nothing_at_its_target(
    store: Store, settings: Settings, seeded: Seeded, tmp_path: Path
) -> None:
    def explode(done: int, total: int) -> None:
        if done >= 2:
            raise RuntimeError("disk full")

    options, out = ExportOptions(batch_size=2), tmp_path / "exports" / "o"
    with pytest.raises(RuntimeError, match="disk full"):
        export_snapshot(store, settings, seeded.name, "parquet", out, options, explode)
    assert list(out.parent.iterdir()) == []  # neither the target nor a partial sibling


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_killed_job_leaves_no_export_and_its_rerun_cleans_up(
    store: Store, settings: Settings, seeded: Seeded, tmp_path: Path, store_url: str
) -> None:
    out = tmp_path / "exports" / "k"
    job = start_export(store, snapshot=seeded.name, fmt="webdataset", out=out,
                       options=ExportOptions(batch_size=2, shard_size=2))  # fmt: skip
    # A process that dies (SIGKILL, as the OOM killer would) after writing two pages.
    script = (
        "import os, signal, sys\n"
        "from esplora.db.engine import Store\n"
        "from esplora.services.exports import run_export_job\n"
        "from esplora.settings import get_settings\n"
        "def die(done, total):\n"
        "    if done >= 4: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"run_export_job(Store.from_url(sys.argv[1]), get_settings(), {job}, die)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, store_url], env=dict(os.environ))
    assert killed.returncode == -signal.SIGKILL
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir()] == [f".k.partial-job{job}"]  # hidden, partial
    assert export_jobs(store)[0].status is RunStatus.RUNNING and not export_jobs(store)[0].stale
    # A task delivered again while the row still moves: another worker runs it; leave it be.
    assert run_export_job(store, settings, job).status is RunStatus.RUNNING
    assert not out.exists()
    with store.unit_of_work() as session:  # the row stopped moving a while ago: a dead run
        stale = datetime.now(UTC) - LIVE_WITHIN - timedelta(seconds=1)
        session.execute(update(ExportJob).where(ExportJob.id == job).values(updated_at=stale))
    assert export_jobs(store)[0].stale  # listed as such, with what to do (the CLI says it)
    finished = run_export_job(store, settings, job)  # the redelivered task runs it again
    assert finished.status is RunStatus.SUCCEEDED and finished.done == finished.total == 7
    assert sorted(p.name for p in out.parent.iterdir()) == ["k"]
    assert run_export_job(store, settings, job).finished_at == finished.finished_at  # not rerun


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_cli_inline_export_and_job_listing(
    seeded: Seeded, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESPLORA_DATABASE_URL", store_url)
    get_settings.cache_clear()
    out = tmp_path / "k"
    args = ["export", seeded.name, "-f", "kohya", "--out", str(out), "--trigger", "sks",
            "--caption-prefix", "photo of ", "--repeats", "3", "--inline", "--json"]  # fmt: skip
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["status"] == "succeeded" and job["report"]["written"] == 7
    captions = [p.read_text() for p in (out / "train" / "3_sks").glob("*.txt")]
    assert len(captions) == 5 and all(c.startswith("sks, photo of ") for c in captions)
    config = tomllib.loads((out / "dataset_config.toml").read_text())
    assert config["general"]["keep_tokens"] == 1
    assert config["datasets"][0]["subsets"][0]["num_repeats"] == 3
    listing = CliRunner().invoke(_cli(), ["export-jobs", "--json"])
    assert [j["id"] for j in json.loads(listing.stdout)] == [job["id"]]
    again = CliRunner().invoke(_cli(), args)  # the directory is taken now
    assert isinstance(again.exception, EsploraError) and "not empty" in str(again.exception)
    unknown = CliRunner().invoke(_cli(), ["export", seeded.name, "-f", "x", "--out", "y"])
    assert "formats are: parquet, webdataset, imagefolder, kohya, coco" in str(unknown.exception)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_queued_export_runs_on_a_real_worker_and_the_cli_follows_it(
    seeded: Seeded, store: Store, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESPLORA_DATABASE_URL", store_url)
    get_settings.cache_clear()
    early = tmp_path / "early"
    result = CliRunner().invoke(_cli(), ["export", seeded.name, "-f", "coco", "--out",
                                         str(early), "--json"])  # fmt: skip
    assert json.loads(result.stdout)["workers"] == 0 and "esplora worker" in result.stderr
    args = ["export", seeded.name, "-f", "kohya", "--out", str(tmp_path / "detached")]
    detached = CliRunner().invoke(_cli(), [*args, "--detach", "--json"])
    assert json.loads(detached.stdout) == {"job": 2, "followed": False}
    env = worker_env(database_url=store_url, models_dir=tmp_path / "no-models")
    with workers(env, tmp_path / "logs") as pool:
        pool.start("cpu@exports", queues="cpu")
        out = tmp_path / "followed"
        followed = CliRunner().invoke(_cli(), ["export", seeded.name, "-f", "parquet", "--out",
                                               str(out), "--json"])  # fmt: skip
        assert followed.exit_code == 0, followed.output
        job = json.loads(followed.stdout)
        assert job["status"] == "succeeded" and job["done"] == job["total"] == 7
        assert (out / "README.md").is_file()
        # The jobs queued while no worker ran are taken up too: state lives in the store.
        wait_until(lambda: all(j.finished for j in export_jobs(store)), 30, what="queued jobs")
    assert Counter(j.status for j in export_jobs(store)) == {RunStatus.SUCCEEDED: 3}
    assert (early / "images").is_dir() and (tmp_path / "detached" / "dataset_config.toml").is_file()


def test_kohya_config_escapes_what_toml_must(tmp_path: Path) -> None:
    from esplora.services.exports.common import FileSink, WriteTarget
    from esplora.services.exports.to_kohya import dataset_config

    final = tmp_path / 'a "quoted" \\ dir\tx'
    options = ExportOptions(trigger='sk"s\\', repeats=2)
    with FileSink(1) as files:
        target = WriteTarget(tmp_path, final, "snap", options, files)
        config = tomllib.loads(dataset_config(target, "2_sks", ["train", "validation"]))
    subset = config["datasets"][0]["subsets"][0]
    assert subset["image_dir"] == str(final / "train" / "2_sks")
    assert subset["class_tokens"] == 'sk"s\\' and subset["num_repeats"] == 2
