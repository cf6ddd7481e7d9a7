"""The jobs engine: events run each function once, steps are checkpointed and
retried, failures are kept, delayed runs wait, usage is metered."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from tests.jobs.conftest import Worker
from tests.waiting import wait_until
from tutorapp.core.db import Database
from tutorapp.core.errors import PermanentFailure
from tutorapp.core.time import utcnow
from tutorapp.jobs import registry
from tutorapp.jobs.models import JobEvent
from tutorapp.jobs.queue import emit, enqueue
from tutorapp.jobs.registry import function, step
from tutorapp.jobs.runtime import runtime
from tutorapp.metering import service as usage

calls: list[tuple[str, Any]] = []
attempts: dict[str, int] = {}


async def _record(kind: str, value: Any) -> Any:
    calls.append((kind, value))
    return value


@function("test.on_signup", on="test.user_signed_up")
async def on_signup(event: dict[str, Any]) -> str:
    await step("test.record", _record, "signup", event["data"]["user"])
    return event["id"]


@function("test.also_on_signup", on="test.user_signed_up")
async def also_on_signup(event: dict[str, Any]) -> str:
    await step("test.record", _record, "also", event["data"]["user"])
    return event["id"]


async def _flaky(key: str, fail_times: int) -> int:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] <= fail_times:
        raise ConnectionError(f"outage #{attempts[key]}")
    return attempts[key]


@function("test.flaky")
async def flaky(key: str, fail_times: int) -> int:
    return await step("test.call_vendor", _flaky, key, fail_times, retry=True)


async def _refuse(key: str) -> None:
    attempts[key] = attempts.get(key, 0) + 1
    raise PermanentFailure("422 from the vendor")


@function("test.refused")
async def refused(key: str) -> None:
    await step("test.call_vendor", _refuse, key, retry=True)


@pytest.fixture(autouse=True)
def _clean() -> None:
    calls.clear()
    attempts.clear()


async def _emit(db: Database, event_id: str, user: str) -> bool:
    async with db.unit_of_work() as session:
        return await emit(session, "test.user_signed_up", {"user": user}, event_id=event_id)


async def test_an_event_starts_each_listening_function_once(
    running: Worker, db: Database
) -> None:
    assert await _emit(db, "evt-1", "ada") is True
    assert await _emit(db, "evt-1", "ada") is False  # the same event again
    assert await running.result("test.on_signup:evt-1") == "evt-1"
    assert await running.result("test.also_on_signup:evt-1") == "evt-1"
    # The duplicate emit stored nothing and started nothing.
    assert sorted(calls) == [("also", "ada"), ("signup", "ada")]
    async with db.session() as session:
        event = await session.scalar(select(JobEvent))
        assert event is not None and event.dispatched_at is not None
        assert await session.scalar(select(func.count()).select_from(JobEvent)) == 1


async def test_an_event_is_not_dispatched_when_the_transaction_rolls_back(
    running: Worker, db: Database
) -> None:
    with pytest.raises(RuntimeError):  # noqa: PT012 - the failure must come from inside the unit of work
        async with db.unit_of_work() as session:
            await emit(session, "test.user_signed_up", {"user": "bob"}, event_id="evt-rb")
            raise RuntimeError("the request failed")
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(JobEvent)) == 0
    from dbos import DBOS

    assert await DBOS.list_workflows_async(workflow_id_prefix="test.on_signup:evt-rb") == []


async def test_an_event_whose_dispatch_was_lost_is_started_by_the_sweep(
    running: Worker, db: Database
) -> None:
    # As if the process died between commit and enqueue: stored, never dispatched.
    async with db.unit_of_work() as session:
        session.add(JobEvent(name="test.user_signed_up", key="evt-lost",
                             payload={"user": "cy"}, created_at=utcnow() - timedelta(minutes=5)))
    wid = await enqueue("jobs.dispatch", utcnow(), key="manual-1")  # as its cron would
    assert await running.result(wid) == 1
    assert await running.result("test.on_signup:evt-lost") == "evt-lost"
    assert ("signup", "cy") in calls
    async with db.session() as session:
        event = await session.scalar(select(JobEvent))
        assert event is not None and event.dispatched_at is not None


async def test_a_keyed_enqueue_runs_once(running: Worker) -> None:
    first = await enqueue("test.flaky", "k-once", 0, key="once")
    second = await enqueue("test.flaky", "k-once", 0, key="once")
    assert first == second == "test.flaky:once"
    assert await running.result(first) == 1
    assert attempts == {"k-once": 1}


async def test_a_failing_step_is_retried_with_backoff_then_succeeds(running: Worker) -> None:
    wid = await enqueue("test.flaky", "k-flaky", 2, key="flaky")
    assert await running.result(wid) == 3  # failed twice, third attempt worked
    assert await running.status(wid) == "SUCCESS"


async def test_a_function_that_exhausts_its_retries_is_failed_and_kept(running: Worker) -> None:
    wid = await enqueue("test.flaky", "k-dead", 99, key="dead")
    with pytest.raises(Exception, match="has exceeded its maximum of 3 retries"):
        await running.result(wid)
    assert attempts["k-dead"] == 3  # TUTORAPP_JOBS_STEP_MAX_ATTEMPTS in the tests
    assert await running.status(wid) == "ERROR"


async def test_a_permanent_failure_is_not_retried(running: Worker) -> None:
    wid = await enqueue("test.refused", "k-perm", key="perm")
    with pytest.raises(PermanentFailure):
        await running.result(wid)
    assert attempts["k-perm"] == 1
    assert await running.status(wid) == "ERROR"


async def test_a_delayed_run_waits_until_due(running: Worker) -> None:
    wid = await enqueue("test.flaky", "k-later", 0, key="later", delay=3600)
    assert await running.status(wid) == "DELAYED"
    assert attempts == {}
    now = await enqueue("test.flaky", "k-now", 0, key="now", at=utcnow() - timedelta(seconds=1))
    assert await running.result(now) == 1
    assert await running.status(wid) == "DELAYED"


async def test_runs_and_steps_are_metered(running: Worker, db: Database) -> None:
    wid = await enqueue("test.flaky", "k-meter", 1, key="meter")
    await running.result(wid)

    async def metered() -> int:  # written as the run ends, just after its result
        async with db.session() as session:
            return await usage.get(session, usage.JOB_STEPS, usage.month(utcnow()))

    used = await wait_until(metered, timeout=10, what="the run's usage")
    # one run + two attempts of its step (each attempt counts, as on Inngest)
    assert used == 3


async def test_enqueue_from_a_process_without_worker_is_run_by_the_worker(
    worker: Worker, app: FastAPI
) -> None:
    # The web app only enqueues (test profile: no embedded worker) ...
    assert runtime.launched is False
    wid = await enqueue("test.flaky", "k-client", 0, key="client")
    # ... and a worker started later picks the run up.
    await worker.start()
    assert await worker.result(wid) == 1


def test_functions_of_every_domain_are_registered() -> None:
    names = set(registry.load_functions())
    assert {"email.deliver", "email.sweep", "webhooks.process", "webhooks.sweep",
            "billing.reconcile", "jobs.dispatch", "accounts.purge_expired"} <= names
    assert registry.subscribers("booking.held") == ["billing.settle_booking"]
    # Resend's and Lemon Squeezy's webhooks go through the one inbox, not events
    from tutorapp.webhooks.service import HANDLERS

    assert {"lemonsqueezy", "resend"} <= set(HANDLERS)


def test_a_function_name_is_declared_once() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        function("test.flaky")(flaky)
