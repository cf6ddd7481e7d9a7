"""Supabase Storage's HTTP API (the subset its clients use) at /storage/v1, over the
files service: storage3 (supabase-py) and storage-js work against it unchanged.

Routes, bodies and error shapes follow supabase/storage (`src/http/routes/object`,
`bucket`, `render`); errors are `{"statusCode": "404", "code": "NoSuchKey", "error":
"not_found", "message": "Object not found"}` with the real HTTP status (the server's
`respectStatusCode` mode), so a stranger's object is a 404 here as everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from tutorapp.config import Settings
from tutorapp.core.db import SessionDep
from tutorapp.core.deps import limiter_of
from tutorapp.core.ratelimit import Limit
from tutorapp.core.time import utcnow
from tutorapp.files import http, service
from tutorapp.files.deps import StorageAdmin, StorageCaller, StorageUser
from tutorapp.files.errors import InvalidObjectName, ObjectNotFound
from tutorapp.files.models import StorageBucket, StoredObject
from tutorapp.integrations.storage import StorageBackend

PREFIX = "/storage/v1"
# Supabase documents this API; it is left out of our OpenAPI (as /auth/v1 is).
router = APIRouter(prefix=PREFIX, tags=["storage"], include_in_schema=False)


def _store(request: Request) -> StorageBackend:
    return request.app.state.storage


def _settings(request: Request) -> Settings:
    return request.app.state.settings


StoreDep = Annotated[StorageBackend, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]


def _truthy(value: str | None) -> bool:
    return (value or "").lower() == "true"


def bucket_json(bucket: StorageBucket) -> dict[str, Any]:
    return {"id": bucket.id, "name": bucket.id, "owner": "", "owner_id": "",
            "public": bucket.public, "type": "STANDARD",
            "file_size_limit": bucket.file_size_limit,
            "allowed_mime_types": bucket.allowed_mime_types,
            "created_at": bucket.created_at.isoformat(),
            "updated_at": bucket.updated_at.isoformat()}


# --- buckets -------------------------------------------------------------------------


class BucketIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$")
    name: str | None = None
    public: bool = False
    file_size_limit: int | str | None = None
    allowed_mime_types: list[str] | None = None


def _size_limit(value: int | str | None) -> int | None:
    """Supabase accepts a byte count or `"2MB"`-style text."""
    if value is None or isinstance(value, int):
        return value
    units = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
    text = value.strip().lower()
    for unit in ("kb", "mb", "gb", "b"):
        if text.endswith(unit) and text[: -len(unit)].strip().isdigit():
            return int(text[: -len(unit)]) * units[unit]
    if text.isdigit():
        return int(text)
    raise InvalidObjectName("file_size_limit: a number of bytes or e.g. 2MB")


@router.get("/bucket")
async def list_buckets(session: SessionDep, caller: StorageUser) -> list[dict[str, Any]]:
    return [bucket_json(b) for b in await service.buckets(session)]


@router.get("/bucket/{bucket_id}")
async def get_bucket(bucket_id: str, session: SessionDep, caller: StorageUser) -> dict[str, Any]:
    return bucket_json(await service.bucket(session, bucket_id))


@router.post("/bucket")
async def create_bucket(body: BucketIn, session: SessionDep, caller: StorageAdmin
                        ) -> dict[str, str]:
    await service.create_bucket(session, body.id, public=body.public,
                                file_size_limit=_size_limit(body.file_size_limit),
                                allowed_mime_types=body.allowed_mime_types)
    return {"name": body.id}


@router.put("/bucket/{bucket_id}")
async def update_bucket(bucket_id: str, body: BucketIn, session: SessionDep,
                        caller: StorageAdmin) -> dict[str, str]:
    await service.update_bucket(session, bucket_id, public=body.public,
                                file_size_limit=_size_limit(body.file_size_limit),
                                allowed_mime_types=body.allowed_mime_types)
    return {"message": "Successfully updated"}


# --- signed URLs (before the catch-all object routes) --------------------------------


class SignIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    expiresIn: int = Field(ge=1)
    download: str | bool | None = None


class SignManyIn(SignIn):
    paths: list[str] = Field(min_length=1, max_length=1000)


def _object_path(kind: str, bucket_id: str, name: str, token: str) -> str:
    return f"/object/{kind}/{bucket_id}/{quote(name)}?token={token}"


@router.post("/object/sign/{bucket_id}/{name:path}")
async def sign_object(bucket_id: str, name: str, body: SignIn, session: SessionDep,
                      settings: SettingsDep, caller: StorageUser) -> dict[str, str]:
    token = await service.sign_download(session, settings, caller, bucket_id, name,
                                        body.expiresIn)
    return {"signedURL": _object_path("sign", bucket_id, name, token)}


@router.post("/object/sign/{bucket_id}")
async def sign_objects(bucket_id: str, body: SignManyIn, session: SessionDep,
                       settings: SettingsDep, caller: StorageUser) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for name in body.paths:
        try:
            token = await service.sign_download(session, settings, caller, bucket_id, name,
                                                body.expiresIn)
            results.append({"error": None, "path": name,
                            "signedURL": _object_path("sign", bucket_id, name, token)})
        except ObjectNotFound:
            results.append({"error": "Either the object does not exist or you do not have "
                            "access to it", "path": name, "signedURL": None})
    return results


@router.get("/object/sign/{bucket_id}/{name:path}")
async def get_signed_object(
    bucket_id: str, name: str, request: Request, session: SessionDep, settings: SettingsDep,
    store: StoreDep, caller: StorageCaller, token: str = Query(default=""),
    download: str | None = None,
) -> Response:
    obj, expires = await service.signed_object(session, settings, token, bucket_id, name)
    bucket = await service.bucket(session, bucket_id)
    left = expires - int(utcnow().timestamp())
    if download is None and left > 0:
        direct = await store.presign_get(obj.key, timedelta(seconds=left))
        if direct is not None:  # S3: the bytes come from the store, by a presigned URL
            return RedirectResponse(direct, status_code=302,
                                    headers={"Cache-Control": http.PRIVATE})
    return await http.serve(request, obj, service.opener(store, obj), public=bucket.public,
                            download=download, expires=datetime.fromtimestamp(expires, UTC))


@router.post("/object/upload/sign/{bucket_id}/{name:path}")
async def sign_upload(bucket_id: str, name: str, request: Request, session: SessionDep,
                      settings: SettingsDep, caller: StorageUser) -> dict[str, str]:
    token = await service.sign_upload(session, settings, caller, bucket_id, name,
                                      upsert=_truthy(request.headers.get("x-upsert")))
    return {"url": f"/object/upload/sign/{bucket_id}/{quote(name)}?token={token}",
            "token": token}


@router.put("/object/upload/sign/{bucket_id}/{name:path}")
async def upload_to_signed_url(bucket_id: str, name: str, request: Request, session: SessionDep,
                               settings: SettingsDep, store: StoreDep, caller: StorageCaller,
                               token: str = Query(default="")) -> dict[str, str]:
    signer, upsert = service.upload_caller(settings, token, bucket_id, name)
    obj = await _upload(request, session, store, settings, signer, bucket_id, name, upsert)
    return {"Key": f"{obj.bucket_id}/{obj.name}"}


# --- listing, info, move, copy, delete -----------------------------------------------


class SortBy(BaseModel):
    column: str = "name"
    order: str = "asc"


class ListIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prefix: str = ""
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
    sortBy: SortBy = SortBy()
    search: str = ""


@router.post("/object/list/{bucket_id}")
async def list_objects(bucket_id: str, body: ListIn, session: SessionDep,
                       caller: StorageUser) -> list[dict[str, Any]]:
    return await service.listing(session, caller, bucket_id, body.prefix, limit=body.limit,
                                 offset=body.offset, search=body.search,
                                 sort_column=body.sortBy.column,
                                 descending=body.sortBy.order.lower() == "desc")


@router.get("/object/info/{bucket_id}/{name:path}")
async def object_info(bucket_id: str, name: str, session: SessionDep,
                      caller: StorageUser) -> dict[str, Any]:
    obj = await service.find(session, caller, bucket_id, name)
    info = service.object_json(obj)
    return {**info, "size": obj.size, "content_type": obj.mime_type, "etag": f'"{obj.etag}"',
            "cache_control": obj.cache_control, "last_modified": info["updated_at"]}


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    bucketId: str
    sourceKey: str
    destinationKey: str
    destinationBucket: str | None = None


@router.post("/object/move")
async def move_object(body: MoveIn, session: SessionDep, caller: StorageUser) -> dict[str, str]:
    obj = await service.move(session, caller, body.bucketId, body.sourceKey,
                             body.destinationKey, body.destinationBucket)
    return {"message": "Successfully moved", "Id": str(obj.id), "Key": obj.name}


@router.post("/object/copy")
async def copy_object(body: MoveIn, request: Request, session: SessionDep, store: StoreDep,
                      settings: SettingsDep, caller: StorageUser) -> dict[str, Any]:
    obj = await service.copy(session, store, settings, caller, body.bucketId, body.sourceKey,
                             body.destinationKey, body.destinationBucket,
                             upsert=_truthy(request.headers.get("x-upsert")))
    return {"Id": str(obj.id), "Key": f"{obj.bucket_id}/{obj.name}", **service.object_json(obj)}


class DeleteIn(BaseModel):
    prefixes: list[str] = Field(min_length=1, max_length=1000)


@router.delete("/object/{bucket_id}")
async def delete_objects(bucket_id: str, session: SessionDep, store: StoreDep,
                         caller: StorageUser, body: Annotated[DeleteIn, Body()]) -> list[dict[str, Any]]:
    deleted = await service.remove(session, store, caller, bucket_id, body.prefixes)
    return [service.object_json(obj) for obj in deleted]


@router.delete("/object/{bucket_id}/{name:path}")
async def delete_object(bucket_id: str, name: str, session: SessionDep, store: StoreDep,
                        caller: StorageUser) -> dict[str, str]:
    await service.find(session, caller, bucket_id, name)
    await service.remove(session, store, caller, bucket_id, [name])
    return {"message": "Successfully deleted"}


# --- downloads -----------------------------------------------------------------------


async def _download(request: Request, session: SessionDep, store: StorageBackend,
                    caller: service.Caller, bucket_id: str, name: str, *, public: bool,
                    download: str | None) -> Response:
    obj = await service.find(session, caller, bucket_id, name, public=public)
    bucket = await service.bucket(session, bucket_id)
    return await http.serve(request, obj, service.opener(store, obj), public=bucket.public,
                            download=download)


@router.get("/object/public/{bucket_id}/{name:path}")
async def get_public_object(bucket_id: str, name: str, request: Request, session: SessionDep,
                            store: StoreDep, caller: StorageCaller,
                            download: str | None = None) -> Response:
    return await _download(request, session, store, service.ANONYMOUS, bucket_id, name,
                           public=True, download=download)


@router.get("/object/authenticated/{bucket_id}/{name:path}")
async def get_authenticated_object(bucket_id: str, name: str, request: Request,
                                   session: SessionDep, store: StoreDep, caller: StorageUser,
                                   download: str | None = None) -> Response:
    return await _download(request, session, store, caller, bucket_id, name, public=False,
                           download=download)


@router.get("/object/{bucket_id}/{name:path}")
async def get_object(bucket_id: str, name: str, request: Request, session: SessionDep,
                     store: StoreDep, caller: StorageCaller,
                     download: str | None = None) -> Response:
    return await _download(request, session, store, caller, bucket_id, name, public=False,
                           download=download)


# --- uploads -------------------------------------------------------------------------


async def _upload(request: Request, session: SessionDep, store: StorageBackend,
                  settings: Settings, caller: service.Caller, bucket_id: str, name: str,
                  upsert: bool) -> StoredObject:
    bucket = await service.bucket(session, bucket_id)
    body = await http.read_upload(request, name, max_bytes=bucket.file_size_limit)
    body.filename = name.rsplit("/", 1)[-1]  # the object's name, not the form part's ("blob")
    return await service.upload(session, store, settings, caller, bucket_id, name, body,
                                upsert=upsert)


@router.post("/object/{bucket_id}/{name:path}")
async def create_object(bucket_id: str, name: str, request: Request, session: SessionDep,
                        store: StoreDep, settings: SettingsDep, caller: StorageUser
                        ) -> dict[str, str]:
    obj = await _upload(request, session, store, settings, caller, bucket_id, name,
                        _truthy(request.headers.get("x-upsert")))
    return {"Id": str(obj.id), "Key": f"{obj.bucket_id}/{obj.name}"}


@router.put("/object/{bucket_id}/{name:path}")
async def update_object(bucket_id: str, name: str, request: Request, session: SessionDep,
                        store: StoreDep, settings: SettingsDep, caller: StorageUser
                        ) -> dict[str, str]:
    obj = await _upload(request, session, store, settings, caller, bucket_id, name, True)
    return {"Id": str(obj.id), "Key": f"{obj.bucket_id}/{obj.name}"}


# --- image transformations (Supabase's /render/image) --------------------------------


class RenderQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    width: int | None = Field(default=None, ge=1, le=2500)
    height: int | None = Field(default=None, ge=1, le=2500)
    resize: Literal["cover", "contain", "fill"] = "cover"
    format: Literal["origin"] | None = None
    quality: int = Field(default=80, ge=20, le=100)


async def _render(request: Request, session: SessionDep, store: StorageBackend,
                  caller: service.Caller, bucket_id: str, name: str, query: RenderQuery,
                  *, public: bool) -> Response:
    obj = await service.find(session, caller, bucket_id, name, public=public)
    bucket = await service.bucket(session, bucket_id)
    settings: Settings = request.app.state.settings
    limit = Limit("storage-render", settings.storage_renders_per_minute, 60)
    client = request.client.host if request.client else "unknown"

    async def count_render() -> None:
        await limiter_of(request).hit(limit, client)

    data, mime = await service.rendered(store, obj, width=query.width, height=query.height,
                                        resize=query.resize, fmt=query.format,
                                        quality=query.quality, before_rendering=count_render)
    tag = f"{obj.etag[:24]}-{query.width}x{query.height}-{query.resize}-{query.format}-{query.quality}"
    return await http.serve(request, obj, lambda start, end: http.slice_of(data, start, end),
                            public=bucket.public, mime_type=mime, size=len(data), etag=tag)


@router.get("/render/image/public/{bucket_id}/{name:path}")
async def render_public_image(bucket_id: str, name: str, request: Request, session: SessionDep,
                              store: StoreDep, caller: StorageCaller,
                              query: Annotated[RenderQuery, Query()]) -> Response:
    return await _render(request, session, store, service.ANONYMOUS, bucket_id, name, query,
                         public=True)


@router.get("/render/image/authenticated/{bucket_id}/{name:path}")
async def render_authenticated_image(bucket_id: str, name: str, request: Request,
                                     session: SessionDep, store: StoreDep, caller: StorageUser,
                                     query: Annotated[RenderQuery, Query()]) -> Response:
    return await _render(request, session, store, caller, bucket_id, name, query, public=False)
