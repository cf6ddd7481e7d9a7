"""/api/v1 routes of the files domain: the caller's avatar, lesson materials of a
booking, downloads by id, the GDPR export as a file, and storage use for admins."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tutorapp.core.db import SessionDep
from tutorapp.files import http, service
from tutorapp.files.buckets import AVATARS
from tutorapp.files.deps import PUBLIC, AdminPrincipal, CurrentPrincipal, caller_of
from tutorapp.files.models import StoredObject
from tutorapp.files.schemas import FileOut, StorageUsage
from tutorapp.files.storage_api import SettingsDep, StoreDep

router = APIRouter(prefix="/api/v1", tags=["files"])
AvatarSize = Literal["64", "256", "fallback"]
UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "no file in the request, or an invalid name"},
    413: {"description": "larger than the bucket allows, or past the user's quota"},
    415: {"description": "the file's content is not a type this bucket takes"},
    507: {"description": "the platform's storage quota is used up"},
}
DEFAULT_AVATAR = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" role="img" aria-label="">'
    '<rect width="64" height="64" rx="32" fill="#dbe5f5"/><circle cx="32" cy="25" r="12" '
    'fill="#7d93b8"/><path d="M10 56c3-12 12-18 22-18s19 6 22 18" fill="#7d93b8"/></svg>')


def file_out(obj: StoredObject) -> FileOut:
    return FileOut(id=obj.id, bucket=obj.bucket_id, name=obj.name,
                   filename=obj.name.rsplit("/", 1)[-1], size=obj.size, mime_type=obj.mime_type,
                   booking_id=obj.booking_id, created_at=obj.created_at,
                   expires_at=obj.expires_at, download_url=f"/api/v1/files/{obj.id}")


@router.put("/files/avatar", response_model=FileOut, responses=UPLOAD_RESPONSES)
async def put_avatar(request: Request, principal: CurrentPrincipal, session: SessionDep,
                     store: StoreDep, settings: SettingsDep) -> FileOut:
    """Upload the caller's avatar (an image, raw or as the `file` of a form): stored
    without its EXIF data, with 64 and 256 px WebP sizes and a PNG fallback."""
    name = f"{principal.id}/avatar"
    bucket = await service.bucket(session, AVATARS)
    body = await http.read_upload(request, name, max_bytes=bucket.file_size_limit)
    obj = await service.upload(session, store, settings, caller_of(principal), AVATARS, name,
                               body, upsert=True)
    return file_out(obj)


@router.delete("/files/avatar", status_code=204)
async def delete_avatar(principal: CurrentPrincipal, session: SessionDep, store: StoreDep
                        ) -> Response:
    await service.remove(session, store, caller_of(principal), AVATARS,
                         [f"{principal.id}/avatar"])
    return Response(status_code=204)


AVATAR_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/webp": {}, "image/png": {}, "image/svg+xml": {}}},
    304: {"description": "not modified"}}


# An avatar's URL names the person, not the picture: browsers keep their copy but ask
# again each time (a 304 while it is unchanged), so a new picture shows at once.
AVATAR_CACHE = "public, no-cache"
DEFAULT_AVATAR_ETAG = '"default-avatar-1"'


async def _avatar(request: Request, obj: StoredObject | None, size: str,
                  store: StoreDep) -> Response:
    if obj is None or not obj.variants:
        headers = {"Cache-Control": AVATAR_CACHE, "ETag": DEFAULT_AVATAR_ETAG,
                   "X-Content-Type-Options": "nosniff"}
        if DEFAULT_AVATAR_ETAG in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(DEFAULT_AVATAR, media_type="image/svg+xml", headers=headers)
    variant = obj.variants[size]
    return await http.serve(request, obj, service.opener(store, obj, size), public=True,
                            mime_type=variant["mime_type"], size=variant["size"],
                            etag=f"{obj.etag[:32]}-{size}", cache_control=AVATAR_CACHE)


@router.get("/files/avatars/users/{user_id}/{size}", dependencies=[PUBLIC], responses=AVATAR_RESPONSES)
async def avatar(user_id: uuid.UUID, size: AvatarSize, request: Request, session: SessionDep,
                 store: StoreDep) -> Response:
    """A user's avatar at a size (WebP; `fallback`: PNG), or the default picture."""
    return await _avatar(request, await service.avatar_of(session, user_id), size, store)


@router.get("/files/avatars/tutors/{tutor_id}/{size}", dependencies=[PUBLIC],
            responses=AVATAR_RESPONSES)
async def tutor_avatar(tutor_id: uuid.UUID, size: AvatarSize, request: Request,
                       session: SessionDep, store: StoreDep) -> Response:
    """A tutor's avatar by their public profile id (tutor cards know no user ids)."""
    return await _avatar(request, await service.avatar_of_tutor(session, tutor_id), size, store)


@router.get("/files/materials/{booking_id}", response_model=list[FileOut])
async def list_materials(booking_id: uuid.UUID, principal: CurrentPrincipal,
                         session: SessionDep) -> list[FileOut]:
    """The lesson's materials the caller may read (none for a stranger)."""
    return [file_out(o) for o in
            await service.materials_of(session, caller_of(principal), booking_id)]


@router.post("/files/materials/{booking_id}", response_model=FileOut, status_code=201,
             responses=UPLOAD_RESPONSES)
async def add_material(booking_id: uuid.UUID, request: Request, principal: CurrentPrincipal,
                       session: SessionDep, store: StoreDep, settings: SettingsDep,
                       filename: str = "material") -> FileOut:
    """The booking's tutor attaches a file (PDF, image, Office document, audio) for the
    student; `filename` names a raw body (a form's file has its own name)."""
    from tutorapp.files.buckets import MATERIALS

    bucket = await service.bucket(session, MATERIALS)
    body = await http.read_upload(request, filename, max_bytes=bucket.file_size_limit)
    obj = await service.attach_to_booking(session, store, settings, caller_of(principal),
                                          booking_id, body)
    return file_out(obj)


@router.get("/files/{object_id}", responses={200: {"content": {"application/octet-stream": {}}},
                                             206: {"description": "a range of the file"},
                                             304: {"description": "not modified"},
                                             416: {"description": "range not satisfiable"}})
async def download(object_id: uuid.UUID, request: Request, principal: CurrentPrincipal,
                   session: SessionDep, store: StoreDep) -> Response:
    """A file the caller may read (404 otherwise), with Range and ETag support."""
    obj = await service.find_by_id(session, caller_of(principal), object_id)
    bucket = await service.bucket(session, obj.bucket_id)
    download = None if bucket.public else service.display_filename(obj)
    return await http.serve(request, obj, service.opener(store, obj), public=bucket.public,
                            download=download)


@router.delete("/files/{object_id}", status_code=204)
async def delete_file(object_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep,
                      store: StoreDep) -> Response:
    caller = caller_of(principal)
    obj = await service.find_by_id(session, caller, object_id)
    await service.remove(session, store, caller, obj.bucket_id, [obj.name])
    return Response(status_code=204)


@router.post("/files/export", response_model=FileOut, status_code=201,
             responses={507: {"description": "the platform's storage quota is used up"}})
async def export_file(principal: CurrentPrincipal, session: SessionDep, store: StoreDep,
                      settings: SettingsDep) -> FileOut:
    """Your data as a JSON file in the `exports` bucket (deleted after 7 days); a signed
    link to it is emailed to you."""
    return file_out(await service.export_to_file(session, store, settings, principal.user))


@router.get("/admin/storage", response_model=StorageUsage)
async def storage_usage(principal: AdminPrincipal, session: SessionDep,
                        settings: SettingsDep) -> StorageUsage:
    """Objects and bytes per bucket, against the quotas."""
    buckets = await service.usage_by_bucket(session)
    return StorageUsage.model_validate({
        "buckets": buckets, "total_bytes": sum(b["metered_bytes"] for b in buckets),
        "total_quota_bytes": settings.storage_total_quota_bytes,
        "user_quota_bytes": settings.storage_user_quota_bytes})
