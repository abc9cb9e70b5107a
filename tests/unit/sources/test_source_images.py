"""Decoding: odd kinds normalised to RGB and said so, bad kinds refused with their reason."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from esplora.sources.images import (
    REASONS,
    ImageReadError,
    clip_box,
    decode_image,
    load_rgb,
    orient_box,
    oriented_boxes,
    original_uri,
    resolve_uri,
    rgb_from_bytes,
    store_original,
)
from support import datasets


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (datasets.truncated_jpeg(), "truncated"),
        (b"", "empty"),
        (datasets.text_as_jpg(), "not_an_image"),
        (datasets.bomb_png(), "too_large"),
    ],
    ids=["truncated", "zero-byte", "text-named-jpg", "decompression-bomb"],
)
def test_bad_images_are_refused_with_a_stable_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageReadError) as caught:
        decode_image(data, name="item-7")
    assert caught.value.reason == reason and reason in REASONS
    assert "item-7" in caught.value.detail


def test_the_pixel_limit_is_a_parameter() -> None:
    data = datasets.jpeg(1, (100, 100))
    assert decode_image(data, name="x", max_pixels=10_000).width == 100
    with pytest.raises(ImageReadError) as caught:
        decode_image(data, name="x", max_pixels=9_999)
    assert caught.value.reason == "too_large"


def test_a_truncated_png_is_truncated() -> None:
    data = datasets.encode(datasets.photo(3), "PNG")
    with pytest.raises(ImageReadError, match="truncated"):
        decode_image(data[: len(data) // 2], name="x")


def test_a_plain_jpeg_is_measured_and_hashed() -> None:
    data = datasets.jpeg(1, (96, 80))
    decoded = decode_image(data, name="x")
    assert (decoded.width, decoded.height, decoded.orientation) == (96, 80, 1)
    assert decoded.sha256 == hashlib.sha256(data).hexdigest()
    assert decoded.format == "JPEG" and decoded.extension == "jpg"
    assert decoded.byte_size == len(data) and decoded.notes == ()
    assert len(decoded.phash) == 16 and int(decoded.phash, 16) >= 0


@pytest.mark.parametrize(
    ("data", "note"),
    [
        (datasets.cmyk_jpeg(), "cmyk"),
        (datasets.png16(), "scaled"),
        (datasets.palette_png(), "transparency"),
        (datasets.rgba_png(), "alpha"),
        (datasets.animated_gif(), "animated"),
    ],
    ids=["cmyk", "16-bit", "palette", "rgba", "animated"],
)
def test_odd_images_become_rgb_and_say_how(data: bytes, note: str) -> None:
    decoded = decode_image(data, name="x")
    assert [n.split(":")[0] for n in decoded.notes] == [note]
    image = rgb_from_bytes(data, name="x")
    assert image.mode == "RGB" and image.size == (decoded.width, decoded.height) == (96, 80)


def test_16_bit_values_are_scaled_not_clipped() -> None:
    source = np.asarray(datasets.photo(902).convert("L"))
    image = rgb_from_bytes(datasets.png16(902), name="x")
    assert np.array_equal(np.asarray(image)[..., 0], source)  # 257·v / 257 = v


def test_transparency_is_composited_on_white() -> None:
    image = np.asarray(rgb_from_bytes(datasets.rgba_png(), name="x"))
    assert (image[:, :40] == 255).all()  # the transparent left half
    assert not (image[:, 60:] == 255).all()


def test_an_animation_gives_its_first_frame() -> None:
    first = np.asarray(rgb_from_bytes(datasets.animated_gif(905), name="x"))
    expected = np.asarray(datasets.photo(905).convert("P").convert("RGB"))
    assert np.array_equal(first, expected)


def test_exif_orientation_is_applied_before_measuring() -> None:
    decoded = decode_image(datasets.exif_rotated_jpeg(size=(120, 80)), name="x")
    assert (decoded.raw_width, decoded.raw_height) == (120, 80)
    assert (decoded.width, decoded.height) == (80, 120) and decoded.orientation == 6
    assert decoded.notes == ("exif_orientation: 6",)


def test_load_rgb_reads_a_stored_file_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "r.jpg"
    path.write_bytes(datasets.exif_rotated_jpeg())
    image = load_rgb(path)
    assert image.mode == "RGB" and image.size == (80, 120)


def _marked(size: tuple[int, int], box: tuple[int, int, int, int], orientation: int) -> bytes:
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    pixels[box[1] : box[3], box[0] : box[2]] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    return datasets.encode(Image.fromarray(pixels), "PNG", exif=exif.tobytes())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_box_follows_the_pixels(orientation: int) -> None:
    raw, box = (60, 40), (5, 10, 25, 30)
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(_marked(raw, box, orientation))))
    ys, xs = np.nonzero(np.asarray(shown)[..., 0])
    expected = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert orient_box(box, orientation, raw) == tuple(float(v) for v in expected)


def test_dataset_boxes_on_the_stored_grid_are_rotated_and_clipped() -> None:
    decoded = decode_image(datasets.exif_rotated_jpeg(size=(120, 80)), name="x")
    boxes = [(10.0, 20.0, 40.0, 60.0), (100.0, 70.0, 200.0, 90.0), (130.0, 0.0, 140.0, 5.0)]
    result = oriented_boxes(boxes, (120, 80), decoded)
    assert result[0] == (20.0, 10.0, 60.0, 40.0)  # (h - y1, x0, h - y0, x1)
    assert result[1] == (0.0, 100.0, 10.0, 120.0)  # clipped to the 80×120 image
    assert result[2] is None  # outside the image
    # Declared in the transposed size: drawn on the shown image, only clipped.
    assert oriented_boxes(boxes[:1], (80, 120), decoded) == [boxes[0]]


def test_clip_box() -> None:
    assert clip_box((-5, -5, 10, 10), (8, 8)) == (0, 0, 8, 8)
    assert clip_box((9, 0, 12, 4), (8, 8)) is None


def test_originals_are_stored_once_by_content(tmp_path: Path) -> None:
    data = datasets.jpeg(5)
    sha = hashlib.sha256(data).hexdigest()
    uri = store_original(data, sha, "jpg", tmp_path)
    assert uri == original_uri(sha, "jpg") == f"images/{sha[:2]}/{sha}.jpg"
    path = resolve_uri(uri, tmp_path)
    assert path.read_bytes() == data
    before = path.stat().st_mtime_ns
    assert store_original(data, sha, "jpg", tmp_path) == uri
    assert path.stat().st_mtime_ns == before  # not rewritten
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind


def test_resolve_uri_passes_absolute_paths_through(tmp_path: Path) -> None:
    assert resolve_uri(str(tmp_path / "a.png"), Path("/elsewhere")) == tmp_path / "a.png"
    assert resolve_uri(f"file://{tmp_path}/b.png", Path("/x")) == tmp_path / "b.png"
