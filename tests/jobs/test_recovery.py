"""Recovery across releases with DBOS's public API: a run left PENDING by a worker of
an older release is finished by the new one (once, its completed steps kept), and a
dead worker is marked recovered only when none of its runs is left."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from dbos import DBOS

from tests.jobs.conftest import Worker
from tests.waiting import wait_until
from tutorapp.core.db import Database
from tutorapp.core.time import utcnow
from tutorapp.jobs import lease, service
from tutorapp.jobs.models import JobWorker
from tutorapp.jobs.queue import enqueue
from tutorapp.jobs.registry import function, step
from tutorapp.jobs.runtime import runtime

ran: dict[str, int] = {}
gate = asyncio.Event()


async def _count(name: str) -> int:
    ran[name] = ran.get(name, 0) + 1
    return ran[name]


async def _wait_for_gate(name: str) -> str:
    ran[name] = ran.get(name, 0) + 1
    while not gate.is_set():  # noqa: ASYNC110 - set from the test's event loop, not the worker's
        await asyncio.sleep(0.02)
    return "done"


@function("test.long_run")
async def long_run(key: str) -> str:
    await step("test.prepare", _count, f"{key}:prepare")
    return await step("test.wait", _wait_for_gate, f"{key}:wait")


@pytest.fixture(autouse=True)
def _clean() -> None:
    ran.clear()
    gate.clear()


async def test_a_run_left_by_the_previous_release_is_finished_by_the_next(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DBOS__APPVERSION: how two releases differ without our setting (DBOS hashes the
    # workflows' source otherwise, which a release changes).
    monkeypatch.setenv("DBOS__APPVERSION", "release-1")
    # The same executor id restarts on the new release (on SQLite it is always "local";
    # a dead worker's runs under another id: tests/jobs/test_worker_crash.py).
    await worker.start(jobs_application_version="release-1", jobs_executor_id="w1")
    wid = await enqueue("test.long_run", "r1", key="r1")
    await wait_until(lambda: ran.get("r1:wait"), timeout=30, what="the run to reach its wait")
    await worker.stop(drain_seconds=0)  # the worker dies mid-run: the run stays PENDING
    [left] = await (await asyncio.to_thread(runtime.client)).list_workflows_async(
        workflow_ids=[wid], load_input=False)
    assert (left.status, left.app_version) == ("PENDING", "release-1")

    gate.set()
    monkeypatch.setenv("DBOS__APPVERSION", "release-2")
    await worker.start(jobs_application_version="release-2", jobs_executor_id="w1")

    async def finished() -> Any:  # (moving it, recovery cancels then rewinds it)
        [run] = await DBOS.list_workflows_async(workflow_ids=[wid], load_input=False)
        return run if run.status == "SUCCESS" else None

    run = await wait_until(finished, timeout=30, what="the run to finish on release-2")
    assert (run.output, run.app_version, run.executor_id) == ("done", "release-2", "w1")
    assert (await service.get_run(wid))[0].version == "release-2"  # shown to operators
    # Completed steps were kept; only the step in flight ran again.
    assert ran == {"r1:prepare": 1, "r1:wait": 2}


async def test_a_rolled_back_release_takes_new_work(worker: Worker) -> None:
    """Deploy release-2, then roll back to release-1: the release started last runs
    what web processes enqueue (unversioned runs go to the latest release only)."""
    for release in ("release-1", "release-2"):
        await worker.start(jobs_application_version=release)
        await worker.stop()
    await worker.start(jobs_application_version="release-1")
    gate.set()
    wid = await enqueue("test.long_run", "rb", key="rb")
    assert await worker.result(wid) == "done"
    [run] = await DBOS.list_workflows_async(workflow_ids=[wid], load_input=False)
    assert run.app_version == "release-1"


class FakeClient:
    """DBOS's client as recovery uses it, with one PENDING run of a dead worker."""

    def __init__(self, *, resumable: bool) -> None:
        self.resumable = resumable
        self.pending = [type("Run", (), {
            "workflow_id": "email.deliver:m1", "status": "PENDING", "name": "email.deliver",
            "queue_name": "email.deliver", "app_version": "release-2", "attributes": None,
        })()]
        self.resumed: list[tuple[str, str]] = []

    def list_workflows(self, *, status: str, **_: Any) -> list[Any]:
        return list(self.pending) if status == "PENDING" else []

    def resume_workflow(self, workflow_id: str, *, queue_name: str) -> None:
        if not self.resumable:
            raise ConnectionError("system database unreachable")
        self.resumed.append((workflow_id, queue_name))
        self.pending = []


async def test_a_dead_worker_is_marked_recovered_only_once_its_runs_are_back(
    db: Database, app: Any
) -> None:
    async with db.unit_of_work() as session:
        session.add(JobWorker(executor_id="ghost", hostname="h", pid=1,
                              heartbeat_at=utcnow() - timedelta(minutes=5)))
    assert await lease.claim_expired(db, "alive", 30) == ["ghost"]
    assert await lease.claim_expired(db, "other", 30) == []  # claimed by "alive"

    failing = FakeClient(resumable=False)
    assert await lease.recover_worker(db, failing, "ghost", "alive", "release-2") is False
    async with db.session() as session:
        ghost = await session.get(JobWorker, "ghost")
        assert ghost is not None and (ghost.recovered_by, ghost.recovered_at) == ("alive", None)

    # The next heartbeat's pass claims it again and finishes the job.
    assert await lease.claim_expired(db, "alive", 30) == ["ghost"]
    working = FakeClient(resumable=True)
    assert await lease.recover_worker(db, working, "ghost", "alive", "release-2") is True
    assert working.resumed == [("email.deliver:m1", "email.deliver")]
    async with db.session() as session:
        ghost = await session.get(JobWorker, "ghost")
        assert ghost is not None and ghost.recovered_at is not None
    assert await lease.claim_expired(db, "alive", 30) == []


async def test_a_worker_taken_for_dead_registers_again_on_its_next_heartbeat(
    db: Database, app: Any
) -> None:
    """Only slow (starved of CPU past its lease): once claimed, it renews its lease by
    registering again instead of staying "dead" for others to recover again and again."""
    async with db.unit_of_work() as session:
        session.add(JobWorker(executor_id="slow", hostname="h", pid=1,
                              heartbeat_at=utcnow() - timedelta(minutes=5)))
    assert await lease.claim_expired(db, "other", 30) == ["slow"]
    await lease.heartbeat(db, "slow")
    async with db.session() as session:
        slow = await session.get(JobWorker, "slow")
        assert slow is not None and (slow.recovered_by, slow.recovered_at) == (None, None)
        assert slow.heartbeat_at > utcnow() - timedelta(minutes=1)
    assert await lease.claim_expired(db, "other", 30) == []
    await lease.mark_recovered(db, "slow", "other")  # the claimer's late end: no effect
    async with db.session() as session:
        slow = await session.get(JobWorker, "slow")
        assert slow is not None and slow.recovered_at is None
