"""Resumable uploads: the TUS 1.0.0 protocol (core + creation + termination) at
/storage/v1/upload/resumable, as Supabase Storage serves it (`Upload-Metadata` names
`bucketName`, `objectName`, `contentType`, `cacheControl`; `x-upsert` header).

Each PATCH streams into its own backend part; the offset advances under a row lock
once the part is stored (`service.add_part`), so no lock is held while bytes arrive.
A dropped connection keeps what the server read; the client's HEAD then tells it
where to resume. The last byte joins the parts into the object through
`service.upload`: the same type, size and quota checks as any upload."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tutorapp.core.db import SessionDep
from tutorapp.files import http, service
from tutorapp.files.deps import StorageCaller, StorageUser
from tutorapp.files.errors import InvalidObjectName, TooLarge, UploadOffsetMismatch
from tutorapp.files.storage_api import PREFIX, SettingsDep, StoreDep

VERSION = "1.0.0"
router = APIRouter(prefix=f"{PREFIX}/upload/resumable", tags=["storage"],
                   include_in_schema=False)
UPLOAD_TTL = timedelta(hours=24)
MAX_SIZE = 50 * 1024**3


def _headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": VERSION, "Cache-Control": "no-store", **extra}


def _metadata(header: str) -> dict[str, str]:
    """`key base64value,key2 base64value2` (TUS `Upload-Metadata`)."""
    values: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, encoded = pair.partition(" ")
        try:
            values[key] = base64.b64decode(encoded, validate=True).decode() if encoded else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidObjectName(f"Upload-Metadata: {key} is not base64") from exc
    return values


def _check_version(request: Request) -> Response | None:
    if request.headers.get("tus-resumable") != VERSION:
        return Response(status_code=412, headers={"Tus-Version": VERSION})
    return None


@router.options("")
async def capabilities(caller: StorageCaller) -> Response:
    return Response(status_code=204, headers={
        "Tus-Resumable": VERSION, "Tus-Version": VERSION,
        "Tus-Extension": "creation,termination", "Tus-Max-Size": str(MAX_SIZE)})


@router.post("")
async def create(request: Request, session: SessionDep, settings: SettingsDep,
                 caller: StorageUser) -> Response:
    if refused := _check_version(request):
        return refused
    length = request.headers.get("upload-length", "")
    if not length.isdigit():
        raise InvalidObjectName("Upload-Length is required (Upload-Defer-Length is not supported)")
    meta = _metadata(request.headers.get("upload-metadata", ""))
    upload = await service.start_resumable(
        session, settings, caller, meta.get("bucketName", ""), meta.get("objectName", ""),
        length=int(length), upsert=(request.headers.get("x-upsert") or "").lower() == "true",
        cache_control=http.cache_control(meta.get("cacheControl", "3600")), ttl=UPLOAD_TTL)
    location = f"{str(request.base_url).rstrip('/')}{router.prefix}/{upload.id}"
    return Response(status_code=201, headers=_headers(Location=location))


@router.head("/{upload_id}")
async def offset(upload_id: uuid.UUID, request: Request, session: SessionDep,
                 caller: StorageUser) -> Response:
    if refused := _check_version(request):
        return refused
    upload = await service.resumable(session, caller, upload_id)
    return Response(status_code=200, headers=_headers(
        **{"Upload-Offset": str(upload.offset), "Upload-Length": str(upload.length)}))


@router.patch("/{upload_id}")
async def append(upload_id: uuid.UUID, request: Request, session: SessionDep,
                 settings: SettingsDep, store: StoreDep, caller: StorageUser) -> Response:
    if refused := _check_version(request):
        return refused
    if request.headers.get("content-type") != "application/offset+octet-stream":
        return Response(status_code=415, headers=_headers())
    sent = request.headers.get("upload-offset", "")
    upload = await service.resumable(session, caller, upload_id)
    if not sent.isdigit() or int(sent) != upload.offset:
        raise UploadOffsetMismatch(f"Upload-Offset is {upload.offset}",
                                   headers=_headers(**{"Upload-Offset": str(upload.offset)}))
    room = upload.length - upload.offset
    key = service.new_key(f"uploads/{upload.id}")

    async def bounded() -> AsyncIterator[bytes]:
        left = room
        async for chunk in http.disconnect_safe(request.stream()):
            left -= len(chunk)
            if left < 0:
                raise TooLarge("The body goes past Upload-Length")
            yield chunk

    stored = await store.put(key, bounded(), content_type="application/octet-stream")
    upload = await service.add_part(session, store, settings, caller, upload_id, int(sent), key,
                                    stored.size)
    return Response(status_code=204, headers=_headers(**{"Upload-Offset": str(upload.offset)}))


@router.delete("/{upload_id}")
async def terminate(upload_id: uuid.UUID, request: Request, session: SessionDep,
                    store: StoreDep, caller: StorageUser) -> Response:
    if refused := _check_version(request):
        return refused
    await service.cancel_resumable(session, store, caller, upload_id)
    return Response(status_code=204, headers=_headers())
