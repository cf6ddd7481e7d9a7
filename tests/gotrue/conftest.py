"""Supabase's own clients against a real TutorApp server.

- `live` (module, per dialect): the app served by uvicorn on a free port in a thread,
  with email confirmation required and an anon/service key pair, as a Supabase
  project is configured. Tests read the dev mailbox (the email outbox) through
  `live.db`.
- `node_modules` (session): `npm ci` in tests/node from its lockfile when the
  installed tree is missing or older than the lock; skips only without node/npm.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import uvicorn

from tests.conftest import ROOT, _empty_all_tables, make_settings
from tests.factories import last_email
from tests.waiting import timeout_scale, wait_until_sync
from tutorapp.app import create_app
from tutorapp.core.db import Database

ANON_KEY = "sb_publishable_tutorapp_test_anon_key_0123456789"
SERVICE_KEY = "sb_secret_tutorapp_test_service_key_0123456789"
PASSWORD = "correct horse battery staple 42"
NODE_DIR = ROOT / "tests" / "node"
SCALE = timeout_scale()


@dataclass
class Live:
    url: str
    db: Database

    @property
    def auth_url(self) -> str:
        return f"{self.url}/auth/v1"

    async def mail_link_token(self, address: str, template: str) -> str:
        message = await last_email(self.db, address, template)
        match = re.search(r"[?&]token=([\w-]+)", message.text)
        assert match, message.text
        return match.group(1)

    async def mail_link(self, address: str, template: str) -> str:
        message = await last_email(self.db, address, template)
        match = re.search(r"(https?://\S+[?&]token=[\w-]+)", message.text)
        assert match, message.text
        return match.group(1)

    async def mail_code(self, address: str) -> str:
        message = await last_email(self.db, address, "auth/login_code")
        match = re.search(r"\b(\d{6})\b", message.text)
        assert match, message.text
        return match.group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(database_url: str) -> Iterator[str]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(
        database_url, public_url=base, allowed_hosts=["127.0.0.1"],
        email_confirmation_required=True, supabase_anon_key=ANON_KEY,
        supabase_service_key=SERVICE_KEY, login_attempts_per_ip=1000,
    )
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    def started() -> bool:
        assert thread.is_alive(), "the server thread ended"
        return server.started

    wait_until_sync(started, timeout=30, what="the server to start")
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30 * SCALE)
        cleaner = threading.Thread(target=asyncio.run, args=(_empty(database_url),))
        cleaner.start()
        cleaner.join()


async def _empty(database_url: str) -> None:
    db = Database(make_settings(database_url))
    try:
        await _empty_all_tables(SimpleNamespace(state=SimpleNamespace(database=db)))  # type: ignore[arg-type]
    finally:
        await db.dispose()


@pytest.fixture
async def live(live_server: str, database_url: str) -> AsyncIterator[Live]:
    db = Database(make_settings(database_url))
    try:
        yield Live(url=live_server, db=db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """Installs the JS client from tests/node/package-lock.json (npm ci)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the supabase-js tests (apt-get install nodejs npm)")
    installed = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=NODE_DIR, check=True, timeout=600 * SCALE)
    return NODE_DIR / "node_modules"
