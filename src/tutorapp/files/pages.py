"""HTML routes of the files domain: the avatar form of the account page, the lesson
materials panel of a booking page (loaded by HTMX), downloads, and the admin's
storage page."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tutorapp.core.db import SessionDep
from tutorapp.core.pages import render
from tutorapp.files import http, service
from tutorapp.files.buckets import AVATARS, MATERIALS
from tutorapp.files.deps import AdminPrincipal, CurrentPrincipal, caller_of
from tutorapp.files.storage_api import SettingsDep, StoreDep

router = APIRouter(include_in_schema=False)


@router.post("/app/files/avatar")
async def upload_avatar(request: Request, principal: CurrentPrincipal, session: SessionDep,
                        store: StoreDep, settings: SettingsDep) -> Response:
    bucket = await service.bucket(session, AVATARS)
    body = await http.read_upload(request, f"{principal.id}/avatar",
                                  max_bytes=bucket.file_size_limit)
    await service.upload(session, store, settings, caller_of(principal), AVATARS,
                         f"{principal.id}/avatar", body, upsert=True)
    return RedirectResponse("/app/account?done=avatar", status_code=303)


@router.get("/app/files/materials/{booking_id}")
async def materials_panel(booking_id: uuid.UUID, request: Request, principal: CurrentPrincipal,
                          session: SessionDep) -> Response:
    files = await service.materials_of(session, caller_of(principal), booking_id)
    is_tutor = await service.is_booking_tutor(session, principal.id, booking_id)
    return render(request, "files/_materials.html", files=files, booking_id=booking_id,
                  is_tutor=is_tutor, display_filename=service.display_filename)


@router.post("/app/files/materials/{booking_id}")
async def add_material(booking_id: uuid.UUID, request: Request, principal: CurrentPrincipal,
                       session: SessionDep, store: StoreDep, settings: SettingsDep) -> Response:
    bucket = await service.bucket(session, MATERIALS)
    body = await http.read_upload(request, "material", max_bytes=bucket.file_size_limit)
    await service.attach_to_booking(session, store, settings, caller_of(principal), booking_id,
                                    body)
    return RedirectResponse(f"/app/bookings/{booking_id}?materials=added", status_code=303)


@router.get("/app/files/{object_id}")
async def download(object_id: uuid.UUID, request: Request, principal: CurrentPrincipal,
                   session: SessionDep, store: StoreDep) -> Response:
    obj = await service.find_by_id(session, caller_of(principal), object_id)
    bucket = await service.bucket(session, obj.bucket_id)
    return await http.serve(request, obj, service.opener(store, obj), public=bucket.public,
                            download=service.display_filename(obj))


@router.get("/admin/storage")
async def storage_page(request: Request, principal: AdminPrincipal, session: SessionDep,
                       settings: SettingsDep) -> Response:
    buckets = await service.usage_by_bucket(session)
    return render(request, "files/admin_storage.html", buckets=buckets,
                  total=sum(b["metered_bytes"] for b in buckets),
                  quota=settings.storage_total_quota_bytes)
