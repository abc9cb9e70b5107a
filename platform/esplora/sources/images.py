"""Decoding images the one way every stage sees them, and storing originals by content.

Every image is EXIF-transposed and then converted to 8-bit RGB before anything measures it:
stored sizes and boxes refer to that orientation. Odd inputs are normalised rather than refused
(CMYK, 16-bit, palette with transparency, alpha composited on white, the first frame of an
animation) and the decoder says what it did in :attr:`DecodedImage.notes` (``"code: detail"``
strings; codes ``animated``, ``exif_orientation``, ``scaled``, ``transparency``, ``alpha``,
``cmyk``). Inputs that cannot be read raise :class:`ImageReadError` with a stable reason code
(see :data:`REASONS`).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from esplora.sources.items import Box
from esplora.sources.phash import phash

# Pillow's own default. Pillow refuses anything over twice its global limit before we can look,
# so a larger setting is capped there (and Pillow warns past its limit).
DEFAULT_MAX_PIXELS = 89_478_485
ORIENTATION_TAG = 0x0112

REASONS: dict[str, str] = {
    "empty": "the file has no bytes",
    "truncated": "the image data ends early",
    "not_an_image": "no image format recognises the bytes",
    "too_large": "more pixels than the limit (decompression-bomb guard)",
    "unsupported": "a recognised format or mode that cannot be decoded here",
    "corrupt": "the decoder failed on damaged data",
}

_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}
_EXTENSIONS |= {"BMP": "bmp", "TIFF": "tif"}


class ImageReadError(Exception):
    """An image that cannot be read: ``reason`` is a stable code, ``detail`` says more."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """What ingest keeps of a decoded image (the pixels themselves are not kept).

    ``width``/``height`` are after EXIF orientation; ``raw_width``/``raw_height`` are the stored
    pixel grid before it, and ``orientation`` the EXIF tag (1 = as stored).
    """

    sha256: str
    format: str
    width: int
    height: int
    raw_width: int
    raw_height: int
    orientation: int
    phash: str
    byte_size: int
    notes: tuple[str, ...] = ()

    @property
    def extension(self) -> str:
        """The file extension the original is stored under."""
        return _EXTENSIONS.get(self.format.upper(), self.format.lower() or "bin")


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of ``data`` as hex: the image's identity in the store."""
    return hashlib.sha256(data).hexdigest()


def decode_image(
    data: bytes, *, name: str, max_pixels: int = DEFAULT_MAX_PIXELS, digest: str | None = None
) -> DecodedImage:
    """Decode ``data`` fully (catching truncation), normalise it, and measure it.

    ``digest`` skips re-hashing when the caller already has the SHA-256 of ``data``.
    Raises :class:`ImageReadError` naming ``name`` when it cannot be read.
    """
    image, raw, fmt, orientation, notes = _open_normalised(data, name, max_pixels)
    return DecodedImage(
        sha256=digest or sha256_hex(data),
        format=fmt,
        width=image.width,
        height=image.height,
        raw_width=raw[0],
        raw_height=raw[1],
        orientation=orientation,
        phash=phash(image),
        byte_size=len(data),
        notes=notes,
    )


def rgb_from_bytes(data: bytes, *, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The image in ``data`` as ingest normalised it: EXIF-transposed 8-bit RGB."""
    return _open_normalised(data, name, max_pixels)[0]


def load_rgb(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The stored image at ``path`` as every stage sees it: EXIF-transposed 8-bit RGB."""
    return rgb_from_bytes(path.read_bytes(), name=str(path), max_pixels=max_pixels)


def _open_normalised(
    data: bytes, name: str, max_pixels: int
) -> tuple[Image.Image, tuple[int, int], str, int, tuple[str, ...]]:
    if not data:
        raise ImageReadError("empty", f"{name} has no bytes")
    image = _open(data, name, max_pixels)
    raw, fmt = image.size, image.format or ""
    notes: list[str] = []
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        notes.append(f"animated: first of {frames} frames")
    orientation = _orientation(image)
    _load(image, name)
    if orientation != 1:
        image = ImageOps.exif_transpose(image)
        notes.append(f"exif_orientation: {orientation}")
    rgb = _to_rgb(image, name, notes)
    return rgb, raw, fmt, orientation, tuple(notes)


def _open(data: bytes, name: str, max_pixels: int) -> Image.Image:
    try:
        # Pillow's own guard also applies: a warning past its global limit (raised here when
        # the warning filters turn it into an error; no catch_warnings, which is not thread
        # safe) and an error past twice that.
        image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageReadError("too_large", f"{name}: {error}") from None
    except UnidentifiedImageError:
        raise ImageReadError("not_an_image", f"{name}: no image format recognises it") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise _classify(error, name) from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageReadError("too_large", f"{name}: {width}x{height} exceeds {max_pixels} pixels")
    if width <= 0 or height <= 0:
        raise ImageReadError("corrupt", f"{name}: size {width}x{height}")
    return image


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except (OSError, SyntaxError, ValueError):
        return 1  # unreadable EXIF: treat as stored, the pixels may still be fine
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _load(image: Image.Image, name: str) -> None:
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageReadError("too_large", f"{name}: {error}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise _classify(error, name) from None


def _classify(error: BaseException, name: str) -> ImageReadError:
    text = str(error) or type(error).__name__
    lowered = text.lower()
    if "truncated" in lowered or "broken data stream" in lowered or isinstance(error, EOFError):
        return ImageReadError("truncated", f"{name}: {text}")
    if "not available" in lowered or "unsupported" in lowered or "not supported" in lowered:
        return ImageReadError("unsupported", f"{name}: {text}")
    return ImageReadError("corrupt", f"{name}: {text}")


def _to_rgb(image: Image.Image, name: str, notes: list[str]) -> Image.Image:
    """8-bit RGB: high bit depths scaled, alpha and transparency composited on white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I", "F") or mode.startswith("I;"):
        notes.append(f"scaled: {mode} to 8 bits")
        return _scale_to_8bit(image).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        notes.append("transparency: palette composited on white")
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        notes.append(f"alpha: {mode} composited on white")
        image = image.convert("RGBA")
    elif mode == "CMYK":
        notes.append("cmyk: converted to RGB")
    try:
        if image.mode == "RGBA":
            return _on_white(image)
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise ImageReadError("unsupported", f"{name}: mode {mode}: {error}") from None


def _on_white(image: Image.Image) -> Image.Image:
    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, image).convert("RGB")


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit grayscale to 8 bits: by the 16-bit range, or min–max for floats."""
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low or 1.0) * 255.0
    else:
        # 16-bit data (I;16*, and "I" as Pillow opens 16-bit PNGs and TIFFs): 65535 → 255.
        scaled = np.clip(values, 0, 65535) / 257.0
    return Image.fromarray(np.round(scaled).astype(np.uint8))


def orient_box(box: Box, orientation: int, raw_size: tuple[int, int]) -> Box:
    """A box in the stored pixel grid mapped into the EXIF-transposed image.

    Follows :func:`PIL.ImageOps.exif_transpose`: 2 mirror, 3 rotate 180°, 4 flip, 5 transpose,
    6 rotate 90° clockwise, 7 transverse, 8 rotate 90° counter-clockwise.
    """
    w, h = raw_size
    x0, y0, x1, y1 = box
    corners = [_orient_point(x, y, orientation, w, h) for x, y in ((x0, y0), (x1, y1))]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    return min(xs), min(ys), max(xs), max(ys)


def _orient_point(x: float, y: float, orientation: int, w: int, h: int) -> tuple[float, float]:
    mapping = {
        2: (w - x, y),
        3: (w - x, h - y),
        4: (x, h - y),
        5: (y, x),
        6: (h - y, x),
        7: (h - y, w - x),
        8: (y, w - x),
    }
    return mapping.get(orientation, (x, y))


def oriented_boxes(
    boxes: Sequence[Box], declared_size: tuple[int, int] | None, decoded: DecodedImage
) -> list[Box | None]:
    """Dataset boxes in the stored (EXIF-transposed) orientation, clipped to the image.

    Boxes drawn on the stored pixel grid (COCO's convention) are mapped with the image's EXIF
    transform; when the dataset's declared size is the transposed one and differs from the
    stored grid, the boxes were drawn on the transposed image and only get clipped. ``None``
    marks a box with nothing left inside the image.
    """
    raw = (decoded.raw_width, decoded.raw_height)
    size = (decoded.width, decoded.height)
    transform = decoded.orientation != 1 and (declared_size != size or raw == size)
    mapped = [orient_box(b, decoded.orientation, raw) if transform else b for b in boxes]
    return [clip_box(box, size) for box in mapped]


def clip_box(box: Box, size: tuple[int, int]) -> Box | None:
    """``box`` clipped to a ``(width, height)`` image, or ``None`` when nothing is left."""
    w, h = size
    x0, y0 = max(0.0, min(box[0], w)), max(0.0, min(box[1], h))
    x1, y1 = max(0.0, min(box[2], w)), max(0.0, min(box[3], h))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def original_uri(sha256: str, extension: str) -> str:
    """The artefact-relative URI of an original: ``images/ab/<sha256>.<ext>``."""
    return f"images/{sha256[:2]}/{sha256}.{extension}"


def store_original(data: bytes, sha256: str, extension: str, artefacts_dir: Path) -> str:
    """Write the original bytes once, content-addressed; return the relative URI.

    The write goes to a temporary file in the same directory and is renamed into place, so a
    reader never sees half a file and a crash leaves no partial original. An existing file is
    left alone (same name, same content).
    """
    uri = original_uri(sha256, extension)
    target = artefacts_dir / uri
    if target.exists():
        return uri
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=f".{extension}")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(temp).replace(target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return uri


def resolve_uri(uri: str, artefacts_dir: Path) -> Path:
    """The file a stored artefact URI points at (absolute paths and ``file://`` pass through)."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    path = Path(uri)
    return path if path.is_absolute() else artefacts_dir / path
