"""Readiness: is each component this process depends on usable right now?"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from sqlalchemy import text

from tutorapp.core.db import Database
from tutorapp.core.migrate import current_revisions, head_revisions, missing_heads


@dataclass(frozen=True)
class Check:
    component: str
    ok: bool
    detail: str


DISK_FULL_MEMORY_SECONDS = 300


def disk(database: Database) -> Check | None:
    """SQLite: is there room to write? Free space under `sqlite_min_free_mb`, or a
    write that failed with "database or disk is full" since the last commit that went
    through, make the process not ready (PostgreSQL's disk is the server's concern)."""
    path = database.settings.sqlite_path
    if path is None:
        return None
    folder = path.resolve().parent
    free_mb = shutil.disk_usage(folder).free // 2**20
    minimum = database.settings.sqlite_min_free_mb
    if free_mb < minimum:
        return Check("disk", False, f"{free_mb} MB free at {folder}, need {minimum} MB")
    full_at = database.disk_full_at
    if full_at is not None and time.monotonic() - full_at < DISK_FULL_MEMORY_SECONDS:
        ago = round(time.monotonic() - full_at)
        return Check("disk", False, f"a write to {path} failed {ago} s ago: database or disk "
                                    "is full (the SQLite file is at its size limit or the disk "
                                    "has no room)")
    return Check("disk", True, f"{free_mb} MB free at {folder}")


async def readiness(database: Database) -> list[Check]:
    try:
        async with database.check_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not reachable"
        return [Check("database", False, f"unreachable: {type(exc).__name__}: {exc}"[:300])]
    checks = [Check("database", True, f"{database.dialect} reachable")]
    if (room := disk(database)) is not None:
        checks.append(room)
    current = await current_revisions(database.check_engine)
    missing = missing_heads(current)
    if not missing:
        checks.append(Check("migrations", True, f"at head {', '.join(head_revisions())}"))
    else:
        checks.append(
            Check(
                "migrations", False,
                f"database at {', '.join(current) or 'nothing'}, missing {', '.join(missing)}"
                " (run `tutorapp migrate`)",
            )
        )
    return checks
