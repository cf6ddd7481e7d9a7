"""supabase-py's storage client (storage3, from PyPI), unchanged, against /storage/v1,
on every backend."""

from __future__ import annotations

import io

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image
from storage3.exceptions import StorageApiError

from tests.files.conftest import signed_in, storage_client
from tutorapp.core.db import Database

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"


def png(size: tuple[int, int] = (40, 30), exif_gps: bool = False) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", size, (200, 30, 30))
    if exif_gps:
        exif = Image.Exif()
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}  # GPSInfo
        exif[0x010F] = "SpyCam"  # Make
        image.save(out, "JPEG", exif=exif)
    else:
        image.save(out, "PNG")
    return out.getvalue()


async def test_upload_sign_download_list_move_copy_delete(
    app: FastAPI, client: httpx.AsyncClient, db: Database
) -> None:
    tutor = await signed_in(db)
    uid = str(tutor.user.id)
    storage = storage_client(app, tutor.access_token or "")
    bucket = storage.from_("materials")

    uploaded = await bucket.upload(f"{uid}/notes/lesson 1.pdf", PDF,
                                   {"content-type": "application/pdf"})
    assert uploaded.path == f"{uid}/notes/lesson 1.pdf"
    assert uploaded.full_path == f"materials/{uid}/notes/lesson 1.pdf"

    assert await bucket.download(f"{uid}/notes/lesson 1.pdf") == PDF
    with pytest.raises(StorageApiError) as duplicate:
        await bucket.upload(f"{uid}/notes/lesson 1.pdf", PDF)
    assert (duplicate.value.status, duplicate.value.code) == ("409", "Duplicate")
    await bucket.upload(f"{uid}/notes/lesson 1.pdf", PDF + b"\n", {"upsert": "true"})
    assert await bucket.download(f"{uid}/notes/lesson 1.pdf") == PDF + b"\n"

    signed = await bucket.create_signed_url(f"{uid}/notes/lesson 1.pdf", 60)
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                  base_url="http://testserver")
    response = await anonymous.get(signed["signedURL"])
    if app.state.storage.name == "s3":  # a presigned S3 URL, served by the S3 server
        assert response.status_code == 302
        assert "X-Amz-Expires=" in response.headers["location"]
        response = httpx.get(response.headers["location"])
    else:
        assert response.headers["cache-control"] == "private, no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
    assert response.status_code == 200 and response.content == PDF + b"\n"
    assert response.headers["content-disposition"].startswith("attachment; filename=") or \
        response.headers["content-disposition"].startswith("inline; filename=")

    listed = await bucket.list(f"{uid}/notes")
    assert [entry["name"] for entry in listed] == ["lesson 1.pdf"]
    assert listed[0]["metadata"]["mimetype"] == "application/pdf"
    top = await bucket.list(uid)
    assert [(e["name"], e["id"]) for e in top] == [("notes", None)]

    await bucket.move(f"{uid}/notes/lesson 1.pdf", f"{uid}/notes/week 1.pdf")
    await bucket.copy(f"{uid}/notes/week 1.pdf", f"{uid}/archive/week 1.pdf")
    assert await bucket.download(f"{uid}/archive/week 1.pdf") == PDF + b"\n"
    assert await bucket.exists(f"{uid}/notes/lesson 1.pdf") is False
    # the link signed for the old name does not follow the object to its new name
    assert (await anonymous.get(signed["signedURL"])).status_code in (400, 404)

    removed = await bucket.remove([f"{uid}/notes/week 1.pdf", f"{uid}/archive/week 1.pdf"])
    assert sorted(r["name"] for r in removed) == [f"{uid}/archive/week 1.pdf",
                                                   f"{uid}/notes/week 1.pdf"]
    assert await bucket.list(uid) == []
    names = [b.id for b in await storage.list_buckets()]
    assert names == ["attachments", "avatars", "exports", "materials"]


async def test_signed_upload_url_and_public_avatar(app: FastAPI, db: Database) -> None:
    user = await signed_in(db)
    uid = str(user.user.id)
    storage = storage_client(app, user.access_token or "")
    avatars = storage.from_("avatars")
    signed = await avatars.create_signed_upload_url(f"{uid}/me.jpg")
    await avatars.upload_to_signed_url(signed["path"], signed["token"], png(exif_gps=True))
    public = await avatars.get_public_url(f"{uid}/me.jpg")
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                  base_url="http://testserver")
    response = await anonymous.get(public)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "public, max-age=3600"
    with Image.open(io.BytesIO(response.content)) as image:
        assert dict(image.getexif()) == {}  # GPS and camera gone
    again = await anonymous.get(public, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


async def test_spoofed_type_and_size_limit(app: FastAPI, db: Database) -> None:
    user = await signed_in(db)
    uid = str(user.user.id)
    avatars = storage_client(app, user.access_token or "").from_("avatars")
    with pytest.raises(StorageApiError) as spoofed:
        await avatars.upload(f"{uid}/evil.png", b"#!/bin/sh\nrm -rf /\n",
                             {"content-type": "image/png"})
    assert (spoofed.value.status, spoofed.value.code) == ("415", "invalid_mime_type")
    materials = storage_client(app, user.access_token or "").from_("materials")
    with pytest.raises(StorageApiError) as named_pdf:  # the extension proves nothing
        await materials.upload(f"{uid}/evil.pdf", b"<script>alert(1)</script>")
    assert named_pdf.value.status == "415"
    with pytest.raises(StorageApiError) as big:
        await avatars.upload(f"{uid}/big.png", png() + b"\0" * (2 * 1024 * 1024))
    assert (big.value.status, big.value.code) == ("413", "Payload too large")
    with pytest.raises(StorageApiError) as elsewhere:
        await avatars.upload("someone-else/me.png", png())
    assert elsewhere.value.status == "403"
    assert await avatars.list(uid) == []


async def test_image_render_is_cached_and_sized(app: FastAPI, db: Database) -> None:
    user = await signed_in(db)
    avatars = storage_client(app, user.access_token or "").from_("avatars")
    await avatars.upload(f"{user.user.id}/wide.png", png((400, 200)))
    url = await avatars.get_public_url(f"{user.user.id}/wide.png",
                                       {"transform": {"width": 100, "height": 100,
                                                      "resize": "contain"}})
    assert "/render/image/public/avatars/" in url
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                  base_url="http://testserver")
    first = await anonymous.get(url)
    assert first.status_code == 200 and first.headers["content-type"] == "image/webp"
    with Image.open(io.BytesIO(first.content)) as image:
        assert image.size == (100, 50)  # contained: the aspect ratio is kept
    again = await anonymous.get(url)
    assert again.content == first.content
    assert (await anonymous.get(url, headers={"If-None-Match": first.headers["etag"]})
            ).status_code == 304
    cached = [k async for k in app.state.storage.keys("avatars") if ".r100x100-contain" in k]
    assert len(cached) == 1
    too_wide = await anonymous.get(url.replace("width=100", "width=9000"))
    assert too_wide.status_code == 400 and too_wide.json()["code"] == "InvalidRequest"


async def test_new_renders_are_rate_limited(database_url: str, tmp_path) -> None:
    from tests.conftest import _empty_all_tables, make_settings
    from tutorapp.app import create_app

    limited = create_app(make_settings(database_url, storage_url=f"file://{tmp_path}",
                                       storage_renders_per_minute=1))
    async with limited.router.lifespan_context(limited):
        try:
            user = await signed_in(limited.state.database)
            avatars = storage_client(limited, user.access_token or "").from_("avatars")
            await avatars.upload(f"{user.user.id}/p.png", png())
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=limited),
                                     base_url="http://testserver")
            path = f"/storage/v1/render/image/public/avatars/{user.user.id}/p.png"
            assert (await http.get(f"{path}?width=20")).status_code == 200
            assert (await http.get(f"{path}?width=20")).status_code == 200  # cached: free
            refused = await http.get(f"{path}?width=21")
            assert refused.status_code == 429 and refused.headers["retry-after"]
            assert refused.json()["code"] == "SlowDown"
        finally:
            await _empty_all_tables(limited)
