"""Resumable uploads: the TUS 1.0.0 protocol (core + creation + termination) at
/storage/v1/upload/resumable, as Supabase Storage serves it (`Upload-Metadata` names
`bucketName`, `objectName`, `contentType`, `cacheControl`; `x-upsert` header).

Each PATCH streams into its own backend part; the offset advances under a row lock
once the part is stored, so no lock is held while bytes arrive. A dropped connection
keeps what arrived (the client's HEAD then tells it where to resume). The last byte
joins the parts into the object through `service.upload`: the same type, size and
quota checks as any upload."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from tutorapp.core.db import SessionDep
from tutorapp.core.time import utcnow
from tutorapp.files import http, service
from tutorapp.files.deps import StorageCaller, StorageUser
from tutorapp.files.errors import InvalidObjectName, ObjectNotFound, TooLarge, UploadOffsetMismatch
from tutorapp.files.models import ResumableUpload
from tutorapp.files.storage_api import PREFIX, SettingsDep, StoreDep
from tutorapp.integrations.storage import StorageBackend

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
    bucket_id, name = meta.get("bucketName", ""), meta.get("objectName", "")
    bucket = await service.bucket(session, bucket_id)
    service.check_name(name)
    await service.sign_upload(session, settings, caller, bucket_id, name, upsert=False)  # rights
    if bucket.file_size_limit is not None and int(length) > bucket.file_size_limit:
        raise TooLarge(f"The object exceeded the maximum allowed size "
                       f"({bucket.file_size_limit} bytes)")
    if caller.user_id is None:
        raise InvalidObjectName("Resumable uploads need a signed-in user")
    upload = ResumableUpload(
        bucket_id=bucket_id, name=name, owner_id=caller.user_id, length=int(length),
        upsert=(request.headers.get("x-upsert") or "").lower() == "true", part_keys=[],
        cache_control=http._cache_control(meta.get("cacheControl", "3600")),
        expires_at=utcnow() + UPLOAD_TTL)
    session.add(upload)
    await session.flush()
    location = f"{str(request.base_url).rstrip('/')}{router.prefix}/{upload.id}"
    return Response(status_code=201, headers=_headers(Location=location))


async def _mine(session: SessionDep, caller: service.Caller, upload_id: uuid.UUID,
                *, lock: bool = False) -> ResumableUpload:
    query = select(ResumableUpload).where(ResumableUpload.id == upload_id)
    upload = await session.scalar(query.with_for_update() if lock else query)
    if upload is None or (upload.owner_id != caller.user_id and not caller.admin):
        raise ObjectNotFound("Upload not found")
    return upload


@router.head("/{upload_id}")
async def offset(upload_id: uuid.UUID, request: Request, session: SessionDep,
                 caller: StorageUser) -> Response:
    if refused := _check_version(request):
        return refused
    upload = await _mine(session, caller, upload_id)
    return Response(status_code=200, headers=_headers(
        **{"Upload-Offset": str(upload.offset), "Upload-Length": str(upload.length)}))


async def _joined(store: StorageBackend, keys: list[str]) -> AsyncIterator[bytes]:
    for key in keys:
        async for chunk in store.get(key):
            yield chunk


@router.patch("/{upload_id}")
async def append(upload_id: uuid.UUID, request: Request, session: SessionDep,
                 settings: SettingsDep, store: StoreDep, caller: StorageUser) -> Response:
    if refused := _check_version(request):
        return refused
    if request.headers.get("content-type") != "application/offset+octet-stream":
        return Response(status_code=415, headers=_headers())
    sent = request.headers.get("upload-offset", "")
    upload = await _mine(session, caller, upload_id)
    if not sent.isdigit() or int(sent) != upload.offset:
        raise UploadOffsetMismatch(f"Upload-Offset is {upload.offset}",
                                   headers=_headers(**{"Upload-Offset": str(upload.offset)}))
    key = service.new_key(f"uploads/{upload.id}")

    async def bounded() -> AsyncIterator[bytes]:
        room = upload.length - upload.offset
        async for chunk in http.disconnect_safe(request.stream()):
            room -= len(chunk)
            if room < 0:
                raise TooLarge("The body goes past Upload-Length")
            yield chunk

    stored = await store.put(key, bounded(), content_type="application/octet-stream")
    upload = await _mine(session, caller, upload_id, lock=True)
    if upload.offset != int(sent):  # another PATCH got there first
        await store.delete(key)
        raise UploadOffsetMismatch(f"Upload-Offset is {upload.offset}")
    if stored.size == 0:
        await store.delete(key)
    else:
        upload.part_keys = [*upload.part_keys, key]
        upload.offset += stored.size
    if upload.offset == upload.length:
        parts = list(upload.part_keys)
        body = service.Upload(chunks=_joined(store, parts), filename=upload.name.rsplit("/", 1)[-1],
                              declared_size=upload.length, cache_control=upload.cache_control)
        owner = service.Caller(user_id=upload.owner_id, admin=caller.admin)
        await session.delete(upload)
        await service.upload(session, store, settings, owner, upload.bucket_id, upload.name, body,
                             upsert=upload.upsert)
        service.delete_after_commit(session, store, parts)
    await session.flush()
    return Response(status_code=204, headers=_headers(**{"Upload-Offset": str(upload.offset)}))


@router.delete("/{upload_id}")
async def terminate(upload_id: uuid.UUID, request: Request, session: SessionDep,
                    store: StoreDep, caller: StorageUser) -> Response:
    if refused := _check_version(request):
        return refused
    upload = await _mine(session, caller, upload_id, lock=True)
    parts = list(upload.part_keys)
    await session.delete(upload)
    await session.flush()
    service.delete_after_commit(session, store, parts)
    return Response(status_code=204, headers=_headers())
