"""HTTP for stored bytes: reading an upload from a request (raw or multipart, as
Supabase's clients send it), and answering a download with ETag/304, Cache-Control,
Range (206/416), a safe Content-Disposition and nosniff."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import orjson
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from tutorapp.files import content
from tutorapp.files.errors import InvalidObjectName, TooLarge
from tutorapp.files.models import StoredObject
from tutorapp.files.service import Opener, Upload
from tutorapp.integrations.storage.base import CHUNK_BYTES

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
PRIVATE = "private, no-store"


async def _file_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    try:
        while chunk := await upload.read(CHUNK_BYTES):
            yield chunk
    finally:
        await upload.close()


async def _body_chunks(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


async def read_upload(request: Request, name: str, *, max_bytes: int | None) -> Upload:
    """The file of a request: the `file` part of a multipart form (spooled to disk by
    Starlette past 1 MB), or else the raw body, streamed. The client's Content-Type
    is ignored: the bytes decide."""
    declared = request.headers.get("content-length")
    size = int(declared) if declared and declared.isdigit() else None
    cache = request.headers.get("cache-control", "max-age=3600")
    metadata: dict[str, Any] | None = None
    filename = name.rsplit("/", 1)[-1]
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        if max_bytes is not None and size is not None and size > max_bytes + 64 * 1024:
            raise TooLarge(f"The object exceeded the maximum allowed size ({max_bytes} bytes)")
        form = await request.form(max_files=1, max_fields=10)
        part = next((v for v in form.values() if isinstance(v, UploadFile)), None)
        if part is None:
            raise InvalidObjectName("The form has no file")
        cache = str(form.get("cacheControl") or cache)
        raw_metadata = form.get("metadata")
        if isinstance(raw_metadata, str):
            try:
                parsed = orjson.loads(raw_metadata)
                metadata = parsed if isinstance(parsed, dict) else None
            except orjson.JSONDecodeError:
                metadata = None
        return Upload(chunks=_file_chunks(part), filename=part.filename or filename,
                      declared_size=part.size, cache_control=cache_control(cache),
                      user_metadata=metadata)
    return Upload(chunks=_body_chunks(request), filename=filename, declared_size=size,
                  cache_control=cache_control(cache))


def cache_control(value: str) -> str:
    """Supabase's `cacheControl` is seconds (`3600`) or a header value."""
    value = value.strip()[:100]
    if value.isdigit():
        return f"max-age={value}"
    return value if re.fullmatch(r"[\w=, -]+", value) else "max-age=3600"


def _http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


async def _primed(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Fetch the first chunk before the status line goes out, so a missing object or an
    unreachable backend still gets a proper error response."""
    first = await anext(chunks, None)

    async def rest() -> AsyncIterator[bytes]:
        if first is not None:
            yield first
        async for chunk in chunks:
            yield chunk

    return rest()


async def serve(request: Request, obj: StoredObject, open_range: Opener, *, public: bool,
                mime_type: str | None = None, size: int | None = None, etag: str | None = None,
                download: str | None = None, expires: datetime | None = None,
                cache_control: str | None = None) -> Response:
    """The object's bytes (or a range of them) with validators and caching headers.
    `download`: Supabase's `?download=` (attachment, with that name if not empty);
    `cache_control` overrides the object's own."""
    mime = mime_type or obj.mime_type
    total = obj.size if size is None else size
    tag = f'"{etag or obj.etag}"'
    inline = download is None and (mime.startswith(("image/", "audio/")) or mime == "application/pdf")
    filename = download or obj.name.rsplit("/", 1)[-1]
    headers = {
        "ETag": tag, "Last-Modified": _http_date(obj.updated_at), "Accept-Ranges": "bytes",
        "Cache-Control": cache_control or (f"public, {obj.cache_control}" if public else PRIVATE),
        "Content-Disposition": content.content_disposition(filename, inline=inline),
        "X-Content-Type-Options": "nosniff",
        # A stored file never runs as a page of ours, even if a browser is told to render it.
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if expires is not None:
        headers["Expires"] = _http_date(expires)
    if tag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    start, end, status = 0, total, 200
    wanted = request.headers.get("range")
    if wanted and request.headers.get("if-range", tag) == tag:
        match = _RANGE.match(wanted.strip())
        if match and (match.group(1) or match.group(2)):
            first, last = match.group(1), match.group(2)
            if first:
                start, end = int(first), min(int(last) + 1, total) if last else total
            else:
                start, end = max(total - int(last), 0), total
            if start >= total or start >= end:
                return Response(status_code=416, headers={**headers,
                                "Content-Range": f"bytes */{total}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD" or end == start:
        return Response(status_code=status, headers=headers, media_type=mime)
    body = await _primed(open_range(start, end if status == 206 else None))
    return StreamingResponse(body, status_code=status, headers=headers, media_type=mime)


async def disconnect_safe(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A body that ends where the client dropped it (TUS keeps what arrived)."""
    try:
        async for chunk in chunks:
            yield chunk
    except ClientDisconnect:
        return


async def slice_of(data: bytes, start: int, end: int | None) -> AsyncIterator[bytes]:
    """Bytes already in memory (a rendered image) as an opener's range."""
    yield data[start:end]
