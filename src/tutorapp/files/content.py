"""What a file is, told by its bytes (puremagic), and what images become (Pillow):
the client's Content-Type and the file's extension are never trusted."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from urllib.parse import quote

import puremagic
from PIL import Image, ImageOps

HEAD_BYTES = 8192  # enough for every signature we allow (zip-based Office files too)
OCTET_STREAM = "application/octet-stream"
IMAGE_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP",
                 "image/gif": "GIF"}
AVATAR_SIZES = (64, 256)
MAX_PIXELS = 40_000_000  # a 2 MB PNG can decode to gigabytes: refuse bigger pictures


class UnreadableImage(ValueError):
    """Bytes that claim to be an image Pillow cannot (or will not) decode."""


def _open(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise UnreadableImage(f"the picture has more than {MAX_PIXELS} pixels")
        image.load()
    except UnreadableImage:
        raise
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImage(str(exc)) from exc
    return image
_ALIASES = {"audio/x-wav": "audio/wav", "audio/wave": "audio/wav", "audio/x-flac": "audio/flac",
            "audio/mp3": "audio/mpeg", "audio/x-m4a": "audio/mp4", "video/mp4": "audio/mp4"}


def sniff(head: bytes, filename: str, allowed: list[str] | None) -> str | None:
    """The MIME type the first bytes prove, preferring the one the file name suggests
    when the bytes fit several (a .docx and an .xlsx are both zips). None: the bytes
    match no allowed type. A bucket without a type list takes anything."""
    try:
        matches = puremagic.magic_string(head, filename) if head else []
    except puremagic.PureError:
        matches = []
    # Given a file name, puremagic also guesses by the extension alone (an empty
    # `byte_match`): such a guess proves nothing about the bytes and is dropped.
    matches = [m for m in matches if m.byte_match]
    suffix = PurePosixPath(filename).suffix.lower()
    ranked = sorted(matches, key=lambda m: (m.extension.lower() != suffix, -m.confidence))
    for match in ranked:
        mime = _ALIASES.get(match.mime_type, match.mime_type)
        if mime and (allowed is None or mime in allowed):
            return mime
    if allowed is None:
        return OCTET_STREAM
    return None


def content_disposition(filename: str, *, inline: bool = False) -> str:
    """RFC 6266: an ASCII fallback plus the exact name as RFC 5987 `filename*`."""
    name = filename.replace("\r", "").replace("\n", "") or "download"
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in name)
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def clean_image(data: bytes, mime: str) -> bytes:
    """The image re-encoded without its metadata (EXIF with GPS, XMP, comments), turned
    the way its EXIF orientation said."""
    with _open(data) as image:
        if getattr(image, "is_animated", False):
            image.seek(0)
        upright = ImageOps.exif_transpose(image)
        out = io.BytesIO()
        upright.save(out, IMAGE_FORMATS[mime], **({"quality": 90} if mime != "image/png" else {}))
        return out.getvalue()


def avatar_variants(data: bytes) -> dict[str, tuple[bytes, str]]:
    """Square avatars: `<size>` WebP for each size, and `fallback`, a 256 px PNG for
    clients without WebP."""
    variants: dict[str, tuple[bytes, str]] = {}
    with _open(data) as image:
        square = ImageOps.fit(image.convert("RGBA"), (max(AVATAR_SIZES),) * 2)
        for size in AVATAR_SIZES:
            out = io.BytesIO()
            square.resize((size, size), Image.Resampling.LANCZOS).save(out, "WEBP", quality=85)
            variants[str(size)] = (out.getvalue(), "image/webp")
        out = io.BytesIO()
        square.save(out, "PNG", optimize=True)
        variants["fallback"] = (out.getvalue(), "image/png")
    return variants


def render(data: bytes, *, width: int | None, height: int | None, resize: str,
           fmt: str | None, quality: int = 80) -> tuple[bytes, str]:
    """An image transformation (Supabase's `resize`: cover, contain or fill)."""
    with _open(data) as image:
        picture = ImageOps.exif_transpose(image).convert("RGBA")
        w, h = width or picture.width, height or picture.height
        if width and not height:
            h = max(1, round(picture.height * width / picture.width))
        if height and not width:
            w = max(1, round(picture.width * height / picture.height))
        if resize == "fill":
            picture = picture.resize((w, h), Image.Resampling.LANCZOS)
        elif resize == "contain":
            picture = ImageOps.contain(picture, (w, h), Image.Resampling.LANCZOS)
        else:
            picture = ImageOps.fit(picture, (w, h), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        if fmt == "origin":
            mime = "image/png"
            picture.save(out, "PNG")
        else:
            mime = "image/webp"
            picture.save(out, "WEBP", quality=quality)
        return out.getvalue(), mime


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data
