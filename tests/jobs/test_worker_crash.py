"""Scale mode: several `tutorapp worker` processes on PostgreSQL share the work; when
one is killed with SIGKILL mid-workflow, a survivor recovers its runs after the
lease, and every workflow completes exactly once, every email is sent once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import POSTGRES_URL, ROOT, TEST_SECRET, make_settings, postgres_database
from tutorapp.core.db import Database
from tutorapp.jobs import engine
from tutorapp.jobs.models import JobWorker
from tutorapp.notifications import service
from tutorapp.notifications.models import EmailMessage, EmailStatus

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="needs TUTORAPP_TEST_POSTGRES_URL")

API_KEY = "re_crash_test"
EMAILS = 30


class SlowResend:
    """Resend's POST /emails over real HTTP, with idempotency keys, slow enough that
    a killed worker leaves sends in flight."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sent: dict[str, str] = {}  # idempotency key -> email id (sent once)
        self.requests: list[str] = []
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - ASGI
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
def resend_server():  # noqa: ANN201
    import uvicorn

    fake = SlowResend(delay=0.25)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield fake, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def crash_database():  # noqa: ANN201
    with postgres_database("tutorapp_crash") as url:
        yield url


def start_worker(env: dict[str, str], executor_id: str, log: Path) -> subprocess.Popen:
    tutorapp = Path(sys.executable).with_name("tutorapp")
    return subprocess.Popen(
        [str(tutorapp), "worker", "--executor-id", executor_id, "--drain", "2"],
        env=env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )


async def wait_for(predicate, timeout: float, what: str):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_killed_worker_loses_nothing_and_duplicates_nothing(
    crash_database: str, resend_server, tmp_path: Path  # noqa: ANN001
) -> None:
    fake, api_url = resend_server
    overrides = {
        "email_provider": "resend", "resend_api_key": API_KEY, "resend_api_url": api_url,
        "email_rate_limit_per_second": 1000.0, "jobs_recovery_lease_seconds": 2.0,
        "jobs_poll_interval_seconds": 0.05, "jobs_step_retry_interval_seconds": 0.2,
    }
    settings = make_settings(crash_database, **overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORAPP_")}
    env |= {"TUTORAPP_PROFILE": "test", "TUTORAPP_DATABASE_URL": crash_database,
            "TUTORAPP_SECRET_KEY": TEST_SECRET, "TUTORAPP_LOG_LEVEL": "WARNING"}
    env |= {f"TUTORAPP_{k.upper()}": str(v) for k, v in overrides.items()}

    previous = engine.runtime.settings
    engine.runtime.configure(settings)
    database = Database(settings)
    workers: dict[str, subprocess.Popen] = {}
    try:
        async with database.unit_of_work() as session:
            messages = [
                await service.enqueue_email(
                    session, to=f"learner{i}@example.org", template="notice",
                    context={"title": f"Reminder {i}", "body": "Lesson tomorrow.", "link": None})
                for i in range(EMAILS)
            ]
        ids = {str(m.id) for m in messages}
        runs = {f"email.deliver:{service.delivery_key(m)}" for m in messages}

        for name in ("crash-a", "crash-b"):
            workers[name] = start_worker(env, name, tmp_path / f"{name}.log")

        client = await asyncio.to_thread(engine.runtime.client)

        async def pending_on(executor: str) -> list[str]:
            found = await client.list_workflows_async(
                status="PENDING", executor_id=executor, name="email.deliver", load_input=False)
            return [w.workflow_id for w in found]

        # Kill crash-a while it runs deliveries (and after both did some work).
        await wait_for(lambda: asyncio.sleep(0, len(fake.sent) >= 4), 60, "first sends")
        in_flight = await wait_for(lambda: pending_on("crash-a"), 30, "crash-a busy")
        workers["crash-a"].send_signal(signal.SIGKILL)
        workers["crash-a"].wait(timeout=10)
        assert in_flight, "the killed worker had runs in flight"

        async def all_done() -> bool:
            found = await client.list_workflows_async(name="email.deliver", load_input=False,
                                                      load_output=False)
            return len(found) == EMAILS and all(w.status == "SUCCESS" for w in found)

        await wait_for(all_done, 90, "every delivery to finish")

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
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in workers.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        await database.dispose()
        engine.runtime.close()
        engine.runtime.configure(previous)
