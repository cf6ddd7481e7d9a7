"""Functions used only by the jobs benchmark."""

from __future__ import annotations

from tutorapp.jobs.engine import function


@function("bench.noop", concurrency=100)
async def noop(n: int) -> int:
    return n
