"""Every files test runs once per backend: local disk, and S3 against moto's server
mode (a real S3 wire protocol) started here on port 8635 (TUTORAPP_TEST_MOTO_PORT)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.factories import Account, make_user
from tutorapp.accounts import sessions
from tutorapp.accounts.models import User
from tutorapp.app import create_app
from tutorapp.auth.roles import Role
from tutorapp.config import Settings
from tutorapp.core.db import Database

MOTO_PORT = int(os.environ.get("TUTORAPP_TEST_MOTO_PORT", "8635"))
MOTO_URL = f"http://127.0.0.1:{MOTO_PORT}"
S3_BUCKET = "tutorapp-test"
SERVICE_KEY = "sb_secret_tutorapp_files_test_service_key_0123456789"
SCALE = float(os.environ.get("TUTORAPP_TEST_TIMEOUT_SCALE", "1"))


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's S3 server on MOTO_PORT, with our bucket (an already running one is reused)."""
    process = None
    if not _listening(MOTO_PORT):
        binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(MOTO_PORT)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30 * SCALE
        while not _listening(MOTO_PORT):
            assert process.poll() is None and time.monotonic() < deadline, "moto did not start"
            time.sleep(0.1)
    httpx.put(f"{MOTO_URL}/{S3_BUCKET}")  # CreateBucket (idempotent on moto)
    try:
        yield MOTO_URL
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, object]:
    if request.param == "local":
        return {"storage_url": f"file://{tmp_path / 'storage'}", "data_dir": tmp_path}
    request.getfixturevalue("moto_server")
    return {"storage_url": f"s3://{S3_BUCKET}/run-{uuid.uuid4().hex[:12]}",
            "s3_endpoint_url": MOTO_URL, "s3_access_key_id": "test",
            "s3_secret_access_key": "test", "data_dir": tmp_path}


@pytest.fixture
def settings(database_url: str, backend: dict[str, object]) -> Settings:
    return make_settings(database_url, supabase_service_key=SERVICE_KEY, **backend)


async def token_for(db: Database, user: User, aal: str = "aal2") -> str:
    async with db.unit_of_work() as session:
        tokens = await sessions.start_session(
            session, db.settings, await session.get(User, user.id), amr=["pwd"], aal=aal,
            client=sessions.Client(ip="127.0.0.1", user_agent="files-tests"))
    return tokens.access_token


async def signed_in(db: Database, role: Role = Role.student, **kwargs: object) -> Account:
    account = await make_user(db, role=role, **kwargs)  # type: ignore[arg-type]
    account.access_token = await token_for(db, account.user)
    return account


def storage_client(app: FastAPI, token: str):
    """storage3's AsyncStorageClient as `supabase.create_client` builds it, over the app."""
    from storage3 import AsyncStorageClient

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"apikey": "anon", "Authorization": f"Bearer {token}"}
    http = httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers,
                             follow_redirects=True)
    return AsyncStorageClient("http://testserver/storage/v1/", headers, http_client=http)


@pytest.fixture
def live_url(app: FastAPI) -> Iterator[str]:
    """A second app on the same settings, served by uvicorn in a thread (its own event
    loop and engines), for clients that speak real HTTP (tuspy, the 100 MB upload).
    Depends on `app` so the tables are emptied after the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    served = create_app(app.state.settings)
    server = uvicorn.Server(uvicorn.Config(served, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30 * SCALE
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30 * SCALE)
