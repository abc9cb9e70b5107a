"""A member made ready to write: its image bytes checked and, where needed, re-encoded.

The stored original is exported as is when a loader will see exactly the pixels its boxes were
measured on: a single-frame JPEG, PNG or WebP in RGB or grayscale, with no EXIF rotation and
the stored size. Anything else (EXIF-rotated, CMYK, 16-bit, palette, alpha, animated, BMP/TIFF)
is decoded the one way every stage saw it (:func:`esplora.sources.images.rgb_from_bytes`) and
re-encoded; the item records the original format and why. A file that is missing, unreadable
or no longer the content the store hashed is a :class:`Skip`, never an error.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from esplora.services.exports.common import ExportItem, ExportOptions, Member, Skip, parse_relations
from esplora.sources.images import ImageReadError, resolve_uri, rgb_from_bytes, sha256_hex

_PLAIN_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
_PLAIN_MODES = {"RGB", "L"}
_ORIENTATION = 0x0112
JPEG_QUALITY = 95


class _Skipped(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def prepare(
    member: Member, key: str, artefacts_dir: Path, options: ExportOptions, *, jpeg_only: bool
) -> ExportItem | Skip:
    """``member`` as an :class:`ExportItem` keyed ``key``, or the reason it is skipped."""
    try:
        objects, relations = parse_relations(member.relations)
    except ValueError as error:
        return _skip(member, "malformed", f"relations of sample {member.sample_id}: {error}")
    try:
        data, path = _read(member, artefacts_dir)
        image, extension, original, why = _encode(data, path, member, jpeg_only=jpeg_only)
    except _Skipped as skipped:
        return _skip(member, skipped.reason, skipped.detail)
    return ExportItem(
        key=key,
        member=member,
        text=options.training_text(member.text),
        image=image,
        extension=extension,
        original_format=original,
        reencoded=why,
        objects=objects,
        relations=relations,
    )


def _skip(member: Member, reason: str, detail: str) -> Skip:
    return Skip(member.sample_id, member.image_sha256, member.split, reason, detail)


def _read(member: Member, artefacts_dir: Path) -> tuple[bytes, Path]:
    if member.uri is None:
        raise _Skipped("no_image_row", f"no image row has SHA-256 {member.image_sha256}")
    path = resolve_uri(member.uri, artefacts_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _Skipped("missing", f"{path} does not exist") from None
    except OSError as error:
        raise _Skipped("unreadable", f"{path}: {error.strerror or error}") from None
    # The store names images by the SHA-256 of their bytes: a file that no longer hashes to
    # it is not the image the snapshot froze (replaced or damaged on disk).
    if sha256_hex(data) != member.image_sha256:
        raise _Skipped("changed", f"{path} no longer has the SHA-256 the store recorded")
    return data, path


def _encode(
    data: bytes, path: Path, member: Member, *, jpeg_only: bool
) -> tuple[bytes, str, str, str]:
    """(bytes, extension, original format, why re-encoded or "")."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            original = probe.format or "unknown"
            why = _why_not_plain(probe, member)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise _Skipped("unreadable", f"{path}: {error}") from None
    if why is None and not (jpeg_only and original != "JPEG"):
        return data, _PLAIN_FORMATS[original], original, ""
    why = why or f"{original} re-encoded as JPEG"
    try:
        rgb = rgb_from_bytes(data, name=str(path))
    except ImageReadError as error:
        raise _Skipped("unreadable", str(error)) from None
    buffer = io.BytesIO()
    # JPEG where the format needs it or the original was one (a rotated photo stays a photo);
    # lossless PNG for everything else.
    if jpeg_only or original in ("JPEG", "MPO"):
        rgb.save(buffer, "JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue(), "jpg", original, why
    rgb.save(buffer, "PNG")
    return buffer.getvalue(), "png", original, why


def _why_not_plain(probe: Image.Image, member: Member) -> str | None:
    """Why the original cannot go out as is (None: it can)."""
    if probe.format not in _PLAIN_FORMATS:
        return f"{probe.format} is not a training format"
    if getattr(probe, "n_frames", 1) > 1:
        return "animated: first frame"
    if probe.mode not in _PLAIN_MODES:
        return f"mode {probe.mode} converted to RGB"
    try:
        orientation = probe.getexif().get(_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError):
        orientation = 1
    if orientation not in (1, None):
        return f"EXIF orientation {orientation} applied"
    if member.width is not None and probe.size != (member.width, member.height):
        return "stored size differs from the file's"
    return None
