"""The functions of every domain: `function` declares one (a DBOS workflow with its
own queue), `step` checkpoints a part of it, `load_functions` imports each domain's
`jobs` module so they are all declared before a worker starts."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib
import logging
import pkgutil
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from dbos import DBOS, StepOptions

from tutorapp.config import Settings
from tutorapp.core.errors import PermanentFailure
from tutorapp.jobs.runtime import runtime
from tutorapp.metering import service as usage

log = logging.getLogger("tutorapp.jobs")

T = TypeVar("T")



@dataclass(frozen=True)
class RateLimit:
    """At most `limit` runs start within any `period` seconds (across all workers)."""

    limit: int
    period: float


RateLimitSpec = RateLimit | Callable[[Settings], RateLimit | None] | None


@dataclass
class JobFunction:
    name: str
    workflow: Callable[..., Awaitable[Any]]
    events: tuple[str, ...] = ()
    cron: str | None = None
    concurrency: int | Callable[[Settings], int | None] | None = None
    rate_limit: RateLimitSpec = None

    def max_concurrency(self, settings: Settings) -> int | None:
        if callable(self.concurrency):
            return self.concurrency(settings)
        return self.concurrency

    def limiter(self, settings: Settings) -> RateLimit | None:
        if callable(self.rate_limit):
            return self.rate_limit(settings)
        return self.rate_limit


FUNCTIONS: dict[str, JobFunction] = {}
_step_count: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "tutorapp_job_steps", default=None
)


def function(
    name: str,
    *,
    on: str | Sequence[str] = (),
    cron: str | None = None,
    concurrency: int | Callable[[Settings], int | None] | None = 10,
    rate_limit: RateLimitSpec = None,
) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Declare a background function `domain.verb`.

    `on`: event names that start it; it is then called with the event
    (`{"name", "id", "data"}`). `cron`: a cron expression (UTC; 5 or 6 fields); it
    is then called with the scheduled time. Otherwise it is started by `enqueue`
    with the arguments given there (JSON-like values: ids, not objects).
    """
    events = (on,) if isinstance(on, str) else tuple(on)
    if name in FUNCTIONS:
        raise ValueError(f"job function {name!r} is declared twice")

    def decorate(body: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        run: Callable[..., Awaitable[T]]
        if cron is not None:

            async def scheduled(scheduled_at: datetime, _context: Any = None) -> T:
                return await _counted(body, scheduled_at)

            run = scheduled
        else:

            async def called(*args: Any, **kwargs: Any) -> T:
                return await _counted(body, *args, **kwargs)

            run = called

        functools.update_wrapper(run, body)
        workflow = DBOS.workflow(name=name)(run)
        FUNCTIONS[name] = JobFunction(
            name=name, workflow=workflow, events=events, cron=cron,
            concurrency=concurrency, rate_limit=rate_limit,
        )
        return workflow

    return decorate


async def _counted(body: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run a function body, then meter it: one run plus each step it executed
    (replayed steps are not executed again, so they do not count)."""
    counter = [1]
    token = _step_count.set(counter)
    try:
        return await body(*args, **kwargs)
    except asyncio.CancelledError:
        counter.clear()  # the worker stops under it: the run is recovered and metered then
        raise
    finally:
        _step_count.reset(token)
        if counter:
            await _meter(counter[0])


async def _meter(steps: int) -> None:
    try:
        async with runtime.database().unit_of_work() as session:
            await usage.add_steps(session, steps)
    except Exception:  # metering must never fail a job
        log.exception("could not record job step usage")


def describe_error(exc: BaseException) -> str:
    """`Type: message`; for a step out of retries, with the last attempt's error."""
    text = f"{type(exc).__name__}: {exc}"
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors:
        last = errors[-1]
        text += f" (last: {type(last).__name__}: {last})"
    return text[:2000]


def _should_retry(exc: BaseException) -> bool:
    return not isinstance(exc, PermanentFailure)


async def step(
    name: str, fn: Callable[..., Awaitable[T]], *args: Any, retry: bool = False,
    max_attempts: int | None = None,
) -> T:
    """Run `fn(*args)` as a checkpointed step of the current function.

    `retry=True` for steps that call the outside: exponential backoff
    (`TUTORAPP_JOBS_STEP_RETRY_INTERVAL_SECONDS`, doubling) up to
    `TUTORAPP_JOBS_STEP_MAX_ATTEMPTS` attempts; a `PermanentFailure` stops at once.
    The step's return value is stored, so it must be JSON-like.
    """
    settings = runtime.settings

    async def counted(*a: Any) -> T:
        counter = _step_count.get()
        if counter is not None:
            counter[0] += 1
        return await fn(*a)

    options: StepOptions = {"name": name}
    if retry:
        options.update({
            "retries_allowed": True,
            "max_attempts": max_attempts or settings.jobs_step_max_attempts,
            "interval_seconds": settings.jobs_step_retry_interval_seconds,
            "backoff_rate": 2.0,
            "should_retry": _should_retry,
        })
    return await DBOS.run_step_async(options, counted, *args)


def load_functions() -> dict[str, JobFunction]:
    """Import every domain's `jobs` module, so each declares its functions."""
    import tutorapp

    for module in pkgutil.iter_modules(tutorapp.__path__):
        if not module.ispkg:
            continue
        try:
            importlib.import_module(f"tutorapp.{module.name}.jobs")
        except ModuleNotFoundError as exc:
            if exc.name != f"tutorapp.{module.name}.jobs":
                raise
    return FUNCTIONS


def subscribers(event_name: str) -> list[str]:
    return [f.name for f in FUNCTIONS.values() if event_name in f.events]


def workflow_id(function_name: str, key: str) -> str:
    return f"{function_name}:{key}"
