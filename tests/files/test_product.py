"""The product on top of storage: avatars, lesson materials, the GDPR export file,
quotas, and the admin's storage view (API and pages)."""

from __future__ import annotations

import io
import re

import httpx
from fastapi import FastAPI
from PIL import Image

from tests.conftest import make_settings
from tests.factories import last_email
from tests.files.conftest import signed_in
from tests.files.test_access import _booking
from tests.files.test_storage3 import PDF, png
from tutorapp.app import create_app
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database


def _bearer(account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.access_token}"}


async def test_avatar_sizes_exif_and_caching(app: FastAPI, client: httpx.AsyncClient,
                                             db: Database) -> None:
    user = await signed_in(db, Role.tutor)
    default = await client.get(f"/api/v1/files/avatars/users/{user.user.id}/64")
    assert default.headers["content-type"] == "image/svg+xml"
    assert default.headers["cache-control"] == "public, no-cache"
    unchanged = await client.get(f"/api/v1/files/avatars/users/{user.user.id}/64",
                                 headers={"If-None-Match": default.headers["etag"]})
    assert unchanged.status_code == 304
    uploaded = await client.put("/api/v1/files/avatar", content=png((600, 400), exif_gps=True),
                                headers=_bearer(user))
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["mime_type"] == "image/jpeg"
    # A browser that kept the default picture asks again and gets the new one at once.
    revalidated = await client.get(f"/api/v1/files/avatars/users/{user.user.id}/64",
                                   headers={"If-None-Match": default.headers["etag"]})
    assert revalidated.status_code == 200
    assert revalidated.headers["content-type"] == "image/webp"
    for size, kind, pixels in (("64", "image/webp", 64), ("256", "image/webp", 256),
                               ("fallback", "image/png", 256)):
        response = await client.get(f"/api/v1/files/avatars/users/{user.user.id}/{size}")
        assert response.status_code == 200 and response.headers["content-type"] == kind
        assert response.headers["cache-control"] == "public, no-cache"
        with Image.open(io.BytesIO(response.content)) as image:
            assert image.size == (pixels, pixels)
            assert dict(image.getexif()) == {}
        cached = await client.get(f"/api/v1/files/avatars/users/{user.user.id}/{size}",
                                  headers={"If-None-Match": response.headers["etag"]})
        assert cached.status_code == 304
    spoofed = await client.put("/api/v1/files/avatar", content=b"<?php system($_GET[1]);",
                               headers=_bearer(user))
    assert spoofed.status_code == 415
    assert spoofed.headers["content-type"] == "application/problem+json"
    broken = await client.put("/api/v1/files/avatar", content=b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
                              headers=_bearer(user))
    assert broken.status_code == 415, broken.text  # a PNG signature, no picture behind it
    out = io.BytesIO()
    Image.new("1", (8000, 8000)).save(out, "PNG")  # a few kB that decode to 64 Mpx
    bomb = await client.put("/api/v1/files/avatar", content=out.getvalue(), headers=_bearer(user))
    assert bomb.status_code == 415 and "pixels" in bomb.json()["detail"]
    page = await client.get("/tutors", headers={"accept": "text/html"})
    assert page.status_code == 200


async def test_materials_by_api_and_quota(app: FastAPI, client: httpx.AsyncClient,
                                          db: Database) -> None:
    tutor = await signed_in(db, Role.tutor)
    student = await signed_in(db, Role.student)
    stranger = await signed_in(db, Role.student)
    booking = await _booking(db, tutor.user.id, student.user.id)
    added = await client.post(f"/api/v1/files/materials/{booking.id}?filename=Week 1.pdf",
                              content=PDF, headers=_bearer(tutor))
    assert added.status_code == 201, added.text
    material = added.json()
    refused = await client.post(f"/api/v1/files/materials/{booking.id}", content=PDF,
                                headers=_bearer(student))
    assert refused.status_code == 404  # not the booking's tutor
    listed = await client.get(f"/api/v1/files/materials/{booking.id}", headers=_bearer(student))
    assert [m["id"] for m in listed.json()] == [material["id"]]
    download = await client.get(material["download_url"], headers=_bearer(student))
    assert download.status_code == 200 and download.content == PDF
    assert download.headers["content-disposition"].startswith('attachment; filename="Week 1.pdf"')
    assert download.headers["cache-control"] == "private, no-store"
    assert (await client.get(material["download_url"], headers=_bearer(stranger))).status_code == 404
    assert (await client.get(f"/api/v1/files/materials/{booking.id}",
                             headers=_bearer(stranger))).json() == []
    assert (await client.delete(material["download_url"], headers=_bearer(stranger))).status_code == 404
    panel = await client.get(f"/app/files/materials/{booking.id}", headers=_bearer(student))
    assert "Week 1.pdf" in panel.text and 'enctype="multipart/form-data"' not in panel.text


async def test_quotas_answer_413_and_507(database_url: str, tmp_path) -> None:
    settings = make_settings(database_url, storage_url=f"file://{tmp_path}",
                             storage_user_quota_bytes=len(PDF) + 10,
                             storage_total_quota_bytes=2 * len(PDF) + 5)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        from tests.conftest import _empty_all_tables

        try:
            db = app.state.database
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://testserver")
            first, second = await signed_in(db), await signed_in(db)
            url = f"/storage/v1/object/materials/{first.user.id}/a.pdf"
            assert (await http.post(url, content=PDF, headers=_bearer(first))).status_code == 200
            over = await http.post(url.replace("a.pdf", "b.pdf"), content=PDF,
                                   headers=_bearer(first))
            assert (over.status_code, over.json()["error"]) == (413, "Payload too large")
            for name in ("a.pdf", "b.pdf"):
                response = await http.post(f"/storage/v1/object/materials/{second.user.id}/"
                                           f"{name}", content=PDF if name == "a.pdf" else PDF[:-1],
                                           headers=_bearer(second))
            third = await signed_in(db)
            full = await http.post(f"/storage/v1/object/materials/{third.user.id}/c.pdf",
                                   content=PDF, headers=_bearer(third))
            assert response.status_code == 413  # second's own quota
            assert (full.status_code, full.json()["code"]) == (507, "InsufficientStorage")
            assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 2  # refused: not kept
        finally:
            await _empty_all_tables(app)


async def test_export_file_is_emailed_as_a_signed_link(app: FastAPI, client: httpx.AsyncClient,
                                                       db: Database) -> None:
    user = await signed_in(db)
    exported = await client.post("/api/v1/files/export", headers=_bearer(user))
    assert exported.status_code == 201, exported.text
    assert exported.json()["bucket"] == "exports" and exported.json()["expires_at"]
    mail = await last_email(db, user.email or "", "files/export_ready")
    link = re.search(r"(https?://\S+/storage/v1/object/sign/\S+)", mail.text)
    assert link, mail.text
    response = await client.get(httpx.URL(link.group(1)).raw_path.decode())
    if response.status_code == 302:
        response = httpx.get(response.headers["location"])
    assert response.status_code == 200 and response.json()["user"]["id"] == str(user.user.id)


async def test_admin_sees_storage_per_bucket(app: FastAPI, client: httpx.AsyncClient,
                                             db: Database) -> None:
    admin = await signed_in(db, Role.admin, totp=True)
    student = await signed_in(db)
    await client.put("/api/v1/files/avatar", content=png(), headers=_bearer(student))
    usage = await client.get("/api/v1/admin/storage", headers=_bearer(admin))
    assert usage.status_code == 200, usage.text
    avatars = next(b for b in usage.json()["buckets"] if b["bucket"] == "avatars")
    assert avatars["objects"] == 1 and avatars["bytes"] == avatars["metered_bytes"] > 0
    page = await client.get("/admin/storage", headers={**_bearer(admin), "accept": "text/html"})
    assert page.status_code == 200 and "avatars" in page.text
    assert (await client.get("/api/v1/admin/storage", headers=_bearer(student))).status_code == 403



async def test_uploads_past_the_general_body_limit_reach_the_bucket_limit(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    """Upload routes are bounded by their bucket (2 MB avatars), not by
    `TUTORAPP_MAX_BODY_BYTES` (1 MB): a 1.5 MB photo is taken."""
    import os

    user = await signed_in(db)
    out = io.BytesIO()
    Image.frombytes("RGB", (720, 720), os.urandom(720 * 720 * 3)).save(out, "PNG")
    photo = out.getvalue()
    assert 1024 * 1024 < len(photo) < 2 * 1024 * 1024
    response = await client.put("/api/v1/files/avatar", content=photo, headers=_bearer(user))
    assert response.status_code == 200, response.text
