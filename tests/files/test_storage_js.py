"""supabase-js's storage client (storage-js, npm: tests/node/package-lock.json),
unchanged, run by Node against /storage/v1 on every backend."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from fastapi import FastAPI

from tests.files.conftest import SCALE, signed_in
from tests.gotrue.conftest import NODE_DIR, node_modules  # noqa: F401 - the npm fixture
from tutorapp.core.db import Database


async def test_storage_js_uploads_signs_downloads_lists_moves_and_deletes(
    app: FastAPI, db: Database, live_url: str, node_modules: Path,
) -> None:
    user = await signed_in(db)
    process = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node", str(NODE_DIR / "storage_flow.mjs"), live_url, "anon",
        user.access_token or "", str(user.user.id), cwd=NODE_DIR,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120 * SCALE)
    assert process.returncode == 0, stderr.decode()
    result = json.loads(stdout.decode().strip().splitlines()[-1])["result"]
    uid = user.user.id
    assert result == {
        "uploaded": f"materials/{uid}/js/notes.pdf", "duplicate": "409",
        "downloadedSame": True, "signedStatus": 200, "signedSame": True,
        "listed": ["notes.pdf"], "spoofed": "415",
        "removed": [f"{uid}/js/week1-copy.pdf", f"{uid}/js/week1.pdf"], "afterRemove": 0,
    }
