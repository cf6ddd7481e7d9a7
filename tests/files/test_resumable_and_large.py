"""TUS resumable uploads with tuspy (the TUS project's Python client), including a
connection dropped mid-PATCH that resumes; and a 100 MB upload streamed through the
app with the process's memory measured. Real HTTP: the app runs under uvicorn."""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI
from tusclient import client as tus

from tests.files.conftest import SERVICE_KEY, signed_in
from tests.files.test_storage3 import PDF
from tutorapp.core.db import Database

MB = 1024 * 1024


def _offset(url: str, headers: dict[str, str]) -> int:
    response = httpx.head(url, headers={**headers, "Tus-Resumable": "1.0.0"})
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return int(response.headers["upload-offset"])


async def test_tus_upload_resumes_after_a_dropped_connection(
    app: FastAPI, db: Database, live_url: str
) -> None:
    user = await signed_in(db)
    name = f"{user.user.id}/recording.pdf"
    data = PDF + os.urandom(300 * 1024)
    headers = {"Authorization": f"Bearer {user.access_token}", "apikey": "anon"}
    uploads = tus.TusClient(f"{live_url}/storage/v1/upload/resumable", headers=headers)
    first = uploads.uploader(file_stream=io.BytesIO(data), chunk_size=100 * 1024, metadata={
        "bucketName": "materials", "objectName": name, "contentType": "application/pdf"})
    first.upload_chunk()
    assert first.offset == 100 * 1024 and first.url is not None
    assert _offset(first.url, headers) == 100 * 1024

    # A PATCH that promises 50 kB and dies after 20 kB.
    parts = urlsplit(first.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port)
    connection.putrequest("PATCH", parts.path)
    for key, value in {**headers, "Tus-Resumable": "1.0.0", "Upload-Offset": str(100 * 1024),
                       "Content-Type": "application/offset+octet-stream",
                       "Content-Length": str(50 * 1024)}.items():
        connection.putheader(key, value)
    connection.endheaders()
    connection.send(data[100 * 1024:120 * 1024])
    connection.sock.close()
    # The server keeps what it read before the drop (uvicorn may discard bytes that
    # came with the closing packet): the offset is where a part ended, never past it.
    assert _offset(first.url, headers) in (100 * 1024, 120 * 1024)

    resumed = uploads.uploader(file_stream=io.BytesIO(data), url=first.url, chunk_size=128 * 1024)
    assert resumed.offset == _offset(first.url, headers)  # tuspy asked HEAD where to go on
    resumed.upload()
    download = httpx.get(f"{live_url}/storage/v1/object/materials/{name}", headers=headers)
    assert download.status_code == 200 and download.content == data
    assert httpx.head(first.url, headers={**headers, "Tus-Resumable": "1.0.0"}).status_code == 404


async def test_tus_refuses_other_users_and_spoofed_types(
    app: FastAPI, db: Database, live_url: str
) -> None:
    owner, stranger = await signed_in(db), await signed_in(db)
    headers = {"Authorization": f"Bearer {owner.access_token}"}
    uploads = tus.TusClient(f"{live_url}/storage/v1/upload/resumable", headers=headers)
    script = b"<script>alert(1)</script>" * 100
    uploader = uploads.uploader(file_stream=io.BytesIO(script), chunk_size=1024, metadata={
        "bucketName": "avatars", "objectName": f"{owner.user.id}/a.png"})
    uploader.upload_chunk()
    other = {"Authorization": f"Bearer {stranger.access_token}", "Tus-Resumable": "1.0.0"}
    assert httpx.head(uploader.url, headers=other).status_code == 404
    refused = httpx.patch(uploader.url, content=script[1024:], headers={
        **headers, "Tus-Resumable": "1.0.0", "Upload-Offset": "1024",
        "Content-Type": "application/offset+octet-stream"})
    assert refused.status_code == 415
    assert refused.json()["error"] == "invalid_mime_type"


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_100_mb_streams_through_with_bounded_memory(
    app: FastAPI, db: Database, live_url: str
) -> None:
    service = {"Authorization": f"Bearer {SERVICE_KEY}", "apikey": SERVICE_KEY}
    created = httpx.post(f"{live_url}/storage/v1/bucket", headers=service, json={
        "id": "bench-large", "public": False, "file_size_limit": 200 * MB})
    assert created.status_code == 200, created.text
    user = await signed_in(db)
    headers = {"Authorization": f"Bearer {user.access_token}"}
    block = os.urandom(MB)
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for _ in range(100):
            digest.update(block)
            yield block

    peak = [_rss_mb()]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    baseline = _rss_mb()
    sampler.start()
    try:
        response = httpx.post(f"{live_url}/storage/v1/object/bench-large/{user.user.id}/big.bin",
                              content=body(), headers=headers, timeout=300)
        assert response.status_code == 200, response.text
        received = hashlib.sha256()
        with httpx.stream("GET", f"{live_url}/storage/v1/object/bench-large/"
                          f"{user.user.id}/big.bin", headers=headers, timeout=300) as download:
            assert download.status_code == 200
            for chunk in download.iter_bytes():
                received.update(chunk)
    finally:
        done.set()
        sampler.join()
        async with db.unit_of_work() as session:  # buckets outlive a test (seed data)
            from sqlalchemy import delete

            from tutorapp.files.models import StorageBucket, StoredObject

            await session.execute(delete(StoredObject).where(StoredObject.bucket_id == "bench-large"))
            await session.execute(delete(StorageBucket).where(StorageBucket.id == "bench-large"))
    growth = peak[0] - baseline
    print(f"\n100 MB up and down through {app.state.storage.name}: RSS grew {growth:.1f} MB "
          f"(baseline {baseline:.0f} MB, peak {peak[0]:.0f} MB)")
    assert received.hexdigest() == digest.hexdigest()
    assert growth < 100, f"RSS grew {growth:.0f} MB for a 100 MB upload: not streaming?"
