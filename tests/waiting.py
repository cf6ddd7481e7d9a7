"""Waiting in tests: for an event (a condition polled), never for a fixed time.

Every deadline is multiplied by `TUTORAPP_TEST_TIMEOUT_SCALE` (default 1): a loaded CI
machine raises it (`.ci/run` does) instead of a test failing for being slow. A
deadline is only a bound on how long a test may hang; nothing asserts a timing.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
SCALE_VARIABLE = "TUTORAPP_TEST_TIMEOUT_SCALE"


def timeout_scale() -> float:
    raw = os.environ.get(SCALE_VARIABLE, "1")
    try:
        scale = float(raw)
    except ValueError:
        raise ValueError(f"{SCALE_VARIABLE} must be a number, not {raw!r}") from None
    if not scale > 0:
        raise ValueError(f"{SCALE_VARIABLE} must be above 0, not {raw!r}")
    return scale


def deadline(seconds: float) -> float:
    """`seconds` scaled for this machine: pass it wherever a test bounds a wait."""
    return seconds * timeout_scale()


async def wait_until(
    predicate: Callable[[], Any | Awaitable[Any]], *, timeout: float, what: str,
    interval: float = 0.05,
) -> Any:
    """Poll `predicate` (sync or async) until it returns a truthy value, and return
    that value; fail naming `what` once the scaled `timeout` has passed."""
    limit = deadline(timeout)
    end = time.monotonic() + limit
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {limit:g}s waiting for {what}")
        await asyncio.sleep(interval)


def wait_until_sync(
    predicate: Callable[[], T], *, timeout: float, what: str, interval: float = 0.05
) -> T:
    """`wait_until` for code outside an event loop (threads, subprocesses)."""
    limit = deadline(timeout)
    end = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {limit:g}s waiting for {what}")
        time.sleep(interval)
