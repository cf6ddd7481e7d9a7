"""Who may read lesson materials: the booking's tutor, student and the student's
parent; a stranger gets 404 (BOLA) for the object, its signed link and its listing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from storage3.exceptions import StorageApiError

from tests.files.conftest import signed_in, storage_client
from tests.files.test_storage3 import PDF
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database
from tutorapp.core.time import utcnow
from tutorapp.files import service
from tutorapp.files.content import once
from tutorapp.files.service import Caller, Upload
from tutorapp.scheduling.models import Booking, BookingStatus
from tutorapp.tutors.models import TutorProfile


async def _booking(db: Database, tutor_id, student_id) -> Booking:
    async with db.unit_of_work() as session:
        profile = TutorProfile(user_id=tutor_id, display_name="T", time_zone="UTC")
        session.add(profile)
        await session.flush()
        start = utcnow() + timedelta(days=2)
        booking = Booking(tutor_id=profile.id, tutor_user_id=tutor_id, student_id=student_id,
                          booked_by_id=student_id, start_at=start,
                          end_at=start + timedelta(hours=1),
                          blocked_until=start + timedelta(hours=1), length=60,
                          status=BookingStatus.confirmed)
        session.add(booking)
    return booking


async def test_materials_reach_the_booking_and_nobody_else(app: FastAPI, db: Database) -> None:
    tutor = await signed_in(db, Role.tutor)
    parent = await signed_in(db, Role.parent)
    student = await signed_in(db, Role.student, parent=parent.user)
    stranger = await signed_in(db, Role.student)
    booking = await _booking(db, tutor.user.id, student.user.id)
    async with db.unit_of_work() as session:
        material = await service.attach_to_booking(
            session, app.state.storage, db.settings, Caller(user_id=tutor.user.id), booking.id,
            Upload(chunks=once(PDF), filename="Fractions & Décimales.pdf"))
    name = material.name

    for reader in (tutor, student, parent):
        bucket = storage_client(app, reader.access_token or "").from_("materials")
        assert await bucket.download(name) == PDF
        folder = name.rsplit("/", 1)[0]
        assert [e["name"] for e in await bucket.list(folder)] == [name.rsplit("/", 1)[1]]

    outsider = storage_client(app, stranger.access_token or "").from_("materials")
    with pytest.raises(StorageApiError) as hidden:
        await outsider.download(name)
    assert (hidden.value.status, hidden.value.code) == ("404", "not_found")
    with pytest.raises(StorageApiError) as unsigned:
        await outsider.create_signed_url(name, 60)
    assert unsigned.value.status == "404"
    assert await outsider.list(name.rsplit("/", 1)[0]) == []
    assert await outsider.remove([name]) == []
    # the student may read but not delete the tutor's material
    with pytest.raises(StorageApiError) as refused:
        await storage_client(app, student.access_token or "").from_("materials").remove([name])
    assert refused.value.status == "403"

    raw = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    response = await raw.get(f"/storage/v1/object/materials/{name}",
                             headers={"Authorization": f"Bearer {student.access_token}",
                                      "Range": "bytes=0-3"})
    assert response.status_code == 206 and response.content == PDF[:4]
    assert response.headers["content-range"] == f"bytes 0-3/{len(PDF)}"
    assert response.headers["cache-control"] == "private, no-store"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('inline; filename="')
    assert disposition.endswith("filename*=UTF-8''" + quote(name.rsplit("/", 1)[1], safe=""))
    anonymous = await raw.get(f"/storage/v1/object/materials/{name}")
    assert anonymous.status_code == 404

    # a signed link is for that object only: changing the path refuses it
    signed = await storage_client(app, tutor.access_token or "").from_("materials") \
        .create_signed_url(name, 60)
    widened = signed["signedURL"].replace(str(booking.id), str(uuid.uuid4()))
    assert widened != signed["signedURL"]
    assert (await raw.get(widened)).status_code == 400
    assert (await raw.get(signed["signedURL"].split("?")[0] + "?token=forged")).status_code == 400


async def test_deleted_user_objects_are_swept(app: FastAPI, db: Database) -> None:
    user = await signed_in(db)
    storage = storage_client(app, user.access_token or "")
    await storage.from_("materials").upload(f"{user.user.id}/a.pdf", PDF)
    from tutorapp.accounts.models import User
    from tutorapp.accounts.service import delete_account

    async with db.unit_of_work() as session:
        await delete_account(session, await session.get(User, user.user.id), ip=None)
    async with db.unit_of_work() as session:
        assert await service.usage_by_bucket(session) == [
            {"bucket": b, "public": b == "avatars", "file_size_limit": limit, "objects": 0,
             "bytes": 0, "metered_bytes": 0}
            for b, limit in (("attachments", 10 << 20), ("avatars", 2 << 20),
                             ("exports", 512 << 20), ("materials", 25 << 20))]
        removed = await service.orphans(session, app.state.storage, older_than=timedelta(0))
    assert removed == 1  # the bytes no row names any more
    assert [k async for k in app.state.storage.keys("materials")] == []

