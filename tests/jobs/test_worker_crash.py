"""Scale mode: several `tutorapp worker` processes on PostgreSQL share the work; when
one is killed with SIGKILL mid-workflow, a survivor recovers its runs after the
lease, and every workflow completes exactly once, every email is sent once. The
survivor may run the next release: it still finishes the dead worker's runs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import POSTGRES_URL, ROOT, TEST_SECRET, make_settings, postgres_database
from tests.waiting import deadline, wait_until, wait_until_sync
from tutorapp.core.db import Database
from tutorapp.jobs.models import JobWorker
from tutorapp.jobs.runtime import runtime
from tutorapp.notifications import service
from tutorapp.notifications.models import EmailMessage, EmailStatus

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="needs TUTORAPP_TEST_POSTGRES_URL")

API_KEY = "re_crash_test"
EMAILS = 30
# A short lease so a dead worker is found quickly, scaled so a worker that is only
# starved of CPU is not taken for dead; steps ride out a busy PostgreSQL ("too many
# clients") for a while, as they would in production.
LOADED_MACHINE = {
    "jobs_recovery_lease_seconds": deadline(2.0), "jobs_poll_interval_seconds": 0.05,
    "jobs_step_retry_interval_seconds": deadline(0.5), "jobs_step_max_attempts": 6,
}


class SlowResend:
    """Resend's POST /emails over real HTTP, with idempotency keys, slow enough that
    a killed worker leaves sends in flight."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sent: dict[str, str] = {}  # idempotency key -> email id (sent once)
        self.requests: list[str] = []
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:  # ASGI
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, reply = 200, {}
        if headers.get("authorization") != f"Bearer {API_KEY}":
            status, reply = 401, {"statusCode": 401, "name": "missing_api_key", "message": "no"}
        else:
            await asyncio.sleep(self.delay)
            key = headers["idempotency-key"]
            json.loads(body)
            with self.lock:
                self.requests.append(key)
                email_id = self.sent.setdefault(key, str(uuid.uuid4()))
            reply = {"id": email_id}
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(reply).encode()})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def resend_server():
    import uvicorn

    fake = SlowResend(delay=0.25)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until_sync(lambda: server.started, timeout=10, what="the fake Resend to start",
                    interval=0.02)
    yield fake, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=deadline(10))


@pytest.fixture
def crash_database():
    with postgres_database("tutorapp_crash") as url:
        yield url


def start_worker(env: dict[str, str], executor_id: str, log: Path) -> subprocess.Popen:
    tutorapp = Path(sys.executable).with_name("tutorapp")
    return subprocess.Popen(
        [str(tutorapp), "worker", "--executor-id", executor_id, "--drain", "2"],
        env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )


def worker_env(database_url: str, overrides: dict[str, object]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TUTORAPP_", "DBOS_"))}
    env |= {"TUTORAPP_PROFILE": "test", "TUTORAPP_DATABASE_URL": database_url,
            "TUTORAPP_SECRET_KEY": TEST_SECRET, "TUTORAPP_LOG_LEVEL": "WARNING"}
    return env | {f"TUTORAPP_{k.upper()}": str(v) for k, v in overrides.items()}


def stop_all(workers: dict[str, subprocess.Popen]) -> None:
    for process in workers.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in workers.values():
        try:
            process.wait(timeout=deadline(20))
        except subprocess.TimeoutExpired:
            process.kill()


async def queue_emails(database: Database, count: int) -> list[EmailMessage]:
    async with database.unit_of_work() as session:
        return [
            await service.enqueue_email(
                session, to=f"learner{i}@example.org", template="notice",
                context={"title": f"Reminder {i}", "body": "Lesson tomorrow.", "link": None})
            for i in range(count)
        ]


async def running(database: Database, *names: str) -> bool:
    """Every named worker registered (DBOS launched, its queues polled)."""
    async with database.session() as session:
        found = set((await session.scalars(
            select(JobWorker.executor_id).where(JobWorker.executor_id.in_(names),
                                                JobWorker.stopped_at.is_(None)))).all())
    return found == set(names)


async def pending_on(client, executor: str) -> list[str]:
    found = await client.list_workflows_async(
        status="PENDING", executor_id=executor, name="email.deliver", load_input=False)
    return [w.workflow_id for w in found]


async def all_delivered(client, count: int) -> bool:
    found = await client.list_workflows_async(name="email.deliver", load_input=False,
                                              load_output=False)
    return len(found) == count and all(w.status == "SUCCESS" for w in found)


async def wait_for_deliveries(client, count: int, timeout: float, logs: Path) -> None:
    """Wait for every delivery; on a timeout, say where each run is and what the
    workers logged."""
    try:
        await wait_until(lambda: all_delivered(client, count), timeout=timeout,
                         what="every delivery to finish")
    except AssertionError as exc:
        found = await client.list_workflows_async(name="email.deliver", load_input=False,
                                                  load_output=False)
        states = sorted(f"{w.status}/{w.executor_id}/{w.app_version}" for w in found)
        tails = "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-40:])
                          for log in sorted(logs.glob("*.log")))  # noqa: ASYNC240 - only to explain a failure
        raise AssertionError(f"{exc}: {len(found)} runs {states}\n{tails}") from None


async def test_a_killed_worker_loses_nothing_and_duplicates_nothing(
    crash_database: str, resend_server, tmp_path: Path
) -> None:
    fake, api_url = resend_server
    overrides = {
        "email_provider": "resend", "resend_api_key": API_KEY, "resend_api_url": api_url,
        "email_rate_limit_per_second": 4.0, **LOADED_MACHINE,  # ~8 s of work to kill into
    }
    settings = make_settings(crash_database, **overrides)
    env = worker_env(crash_database, overrides)

    previous = runtime.settings
    runtime.configure(settings)
    database = Database(settings)
    workers: dict[str, subprocess.Popen] = {}
    try:
        for name in ("crash-a", "crash-b"):
            workers[name] = start_worker(env, name, tmp_path / f"{name}.log")
        # Work starts once both run (a loaded machine starts them far apart).
        await wait_until(lambda: running(database, "crash-a", "crash-b"), timeout=60,
                         what="both workers to start")
        messages = await queue_emails(database, EMAILS)
        ids = {str(m.id) for m in messages}
        runs = {f"email.deliver:{service.delivery_key(m)}" for m in messages}

        client = await asyncio.to_thread(runtime.client)
        # Kill crash-a while it runs deliveries (and after both did some work).
        await wait_until(lambda: len(fake.sent) >= 4, timeout=60, what="first sends")
        in_flight = await wait_until(lambda: pending_on(client, "crash-a"), timeout=30,
                                     what="crash-a busy")
        workers["crash-a"].send_signal(signal.SIGKILL)
        workers["crash-a"].wait(timeout=deadline(10))

        await wait_for_deliveries(client, EMAILS, 90, tmp_path)

        found = await client.list_workflows_async(name="email.deliver", load_input=False)
        assert {w.workflow_id for w in found} == runs
        assert all(w.output == "sent" for w in found)
        # The runs crash-a held were finished by the survivor.
        finished_by = {w.workflow_id: w.executor_id for w in found}
        assert {finished_by[wid] for wid in in_flight} == {"crash-b"}

        # Every email reached the vendor once: one Resend email per message.
        assert set(fake.sent) == {f"email/{i}" for i in ids}
        async with database.session() as session:
            rows = (await session.scalars(select(EmailMessage))).all()
            assert {r.status for r in rows} == {EmailStatus.sent}
            assert {r.provider_message_id for r in rows} == set(fake.sent.values())
            dead = await session.get(JobWorker, "crash-a")
            assert dead is not None and dead.recovered_by == "crash-b"
            assert dead.recovered_at is not None
    finally:
        stop_all(workers)
        await database.dispose()
        runtime.close()
        runtime.configure(previous)


class SlowInbox:
    """An SMTP server (aiosmtpd) that takes its time to accept each message, so a killed
    worker leaves sends in flight; it keeps the Message-ID of every message received."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.message_ids: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes

        await asyncio.sleep(self.delay)
        self.message_ids.append(message_from_bytes(envelope.content)["Message-ID"])
        return "250 Message accepted"


@pytest.fixture
def smtp_inbox():
    from aiosmtpd.controller import Controller

    inbox = SlowInbox(delay=1.0)
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


async def test_a_worker_of_the_next_release_finishes_a_killed_workers_runs_once(
    crash_database: str, smtp_inbox, tmp_path: Path
) -> None:
    """Kill a worker of release-1 mid-delivery, start one of release-2: it takes over
    the dead worker's runs (DBOS would only let release-1 run them), each run completes
    once, and every email carries its own stable Message-ID (a send repeated after the
    kill is a duplicate the receiver recognises)."""
    inbox, port = smtp_inbox
    count = 16
    overrides = {
        "email_provider": "smtp", "smtp_host": "127.0.0.1", "smtp_port": port,
        "smtp_starttls": False, "email_rate_limit_per_second": 4.0, **LOADED_MACHINE,
    }
    settings = make_settings(crash_database, **overrides)

    def release(version: str) -> dict[str, str]:
        # DBOS__APPVERSION: how two releases differ without our setting (DBOS otherwise
        # hashes the workflows' source, which a release changes).
        return worker_env(crash_database, overrides | {"jobs_application_version": version}) | {
            "DBOS__APPVERSION": version}

    previous = runtime.settings
    runtime.configure(settings)
    database = Database(settings)
    workers: dict[str, subprocess.Popen] = {}
    try:
        workers["old"] = start_worker(release("release-1"), "old", tmp_path / "old.log")
        await wait_until(lambda: running(database, "old"), timeout=60,
                         what="the old worker to start")
        messages = await queue_emails(database, count)
        expected = {str(m.id) for m in messages}
        client = await asyncio.to_thread(runtime.client)
        await wait_until(lambda: len(inbox.message_ids) >= 2, timeout=60, what="first sends")
        in_flight = await wait_until(lambda: pending_on(client, "old"), timeout=30,
                                     what="the old worker busy")
        workers["old"].send_signal(signal.SIGKILL)
        workers["old"].wait(timeout=deadline(10))

        workers["new"] = start_worker(release("release-2"), "new", tmp_path / "new.log")
        await wait_for_deliveries(client, count, 120, tmp_path)

        found = {w.workflow_id: w for w in await client.list_workflows_async(
            name="email.deliver", load_input=False)}
        assert all(w.output == "sent" for w in found.values())
        for wid in in_flight:  # taken over by release-2, under the same run id
            assert (found[wid].executor_id, found[wid].app_version) == ("new", "release-2")
            steps = await client.list_workflow_steps_async(wid)
            assert [s["function_name"] for s in steps].count("email.record_sent") == 1
        # Each message was received (a resend keeps its Message-ID) and marked sent once.
        received = {mid.removeprefix("<").partition("@")[0] for mid in inbox.message_ids}
        assert received == expected
        assert all(mid.endswith("@tutorapp.localhost>") for mid in inbox.message_ids)
        async with database.session() as session:
            rows = (await session.scalars(select(EmailMessage))).all()
            assert {r.status for r in rows} == {EmailStatus.sent}
            assert {r.provider_message_id for r in rows} == {f"<{i}@tutorapp.localhost>"
                                                           for i in expected}
            dead = await session.get(JobWorker, "old")
            assert dead is not None and dead.recovered_by == "new"
            assert dead.recovered_at is not None
    finally:
        stop_all(workers)
        await database.dispose()
        runtime.close()
        runtime.configure(previous)
