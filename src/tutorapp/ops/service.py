"""Readiness: is each component this process depends on usable right now?"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text

from tutorapp.core.db import Database
from tutorapp.core.migrate import current_revisions, head_revisions, missing_heads


@dataclass(frozen=True)
class Check:
    component: str
    ok: bool
    detail: str


async def readiness(database: Database) -> list[Check]:
    try:
        async with database.check_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not reachable"
        return [Check("database", False, f"unreachable: {type(exc).__name__}: {exc}"[:300])]
    checks = [Check("database", True, f"{database.dialect} reachable")]
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
