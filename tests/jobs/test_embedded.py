"""The embedded default: `serve` runs the jobs itself, one process per SQLite file;
and the daily clean-up of expired credentials."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from dbos import DBOS
from fastapi import FastAPI
from sqlalchemy import select

from tests.conftest import make_settings
from tests.jobs.conftest import FAST, Worker, reset_system_database
from tutorapp.accounts.models import AuthSession, OneTimeToken, TokenPurpose, User
from tutorapp.app import create_app
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database
from tutorapp.core.time import utcnow
from tutorapp.jobs import registry, worker
from tutorapp.jobs.queue import enqueue
from tutorapp.jobs.runtime import runtime
from tutorapp.notifications import service
from tutorapp.notifications.models import EmailMessage, EmailStatus


async def test_serve_runs_the_jobs_in_process(app: FastAPI, database_url: str) -> None:
    # (`app` only to empty the tables afterwards)
    settings = make_settings(database_url, jobs_embedded_worker=True, **FAST)
    reset_system_database(settings)
    served = create_app(settings)
    async with served.router.lifespan_context(served):
        assert runtime.launched
        database: Database = served.state.database
        async with database.unit_of_work() as session:
            message = await service.enqueue_email(
                session, to="first@example.org", template="notice",
                context={"title": "Welcome", "body": "Hello.", "link": None})
        handle = await DBOS.retrieve_workflow_async(
            f"email.deliver:{service.delivery_key(message)}")
        assert await handle.get_result(polling_interval_sec=0.02) == "sent"
        async with database.session() as session:
            stored = await session.get(EmailMessage, message.id)
            assert stored is not None and stored.status is EmailStatus.sent
    assert not runtime.launched


def test_one_process_per_sqlite_file_runs_the_jobs(tmp_path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'app.db'}")
    assert worker._take_sqlite_lock(settings) is True
    try:
        # Another process (here: another open file description) cannot take it.
        import fcntl

        other = open(f"{tmp_path / 'app-jobs.db'}.lock", "a")  # noqa: SIM115
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        other.close()
    finally:
        worker._release_sqlite_lock()


async def test_expired_tokens_and_sessions_are_purged_daily(running: Worker, db: Database
                                                            ) -> None:
    now = utcnow()
    async with db.unit_of_work() as session:
        user = User(email="u@example.org", display_name="U", role=Role.student,
                    time_zone="UTC", locale="en")
        session.add(user)
        await session.flush()
        for n, expires in enumerate([now - timedelta(hours=1), now + timedelta(hours=1)]):
            session.add(OneTimeToken(user_id=user.id, purpose=TokenPurpose.verify_email,
                                     token_hash=f"{n}" * 64, expires_at=expires))
            session.add(AuthSession(user_id=user.id, amr="pwd", authenticated_at=now,
                                    last_seen_at=now, expires_at=expires))
    run = await enqueue("accounts.purge_expired", now, key="test-purge")
    assert await running.result(run) == {"one_time_tokens": 1, "auth_sessions": 1}
    async with db.session() as session:
        tokens = (await session.scalars(select(OneTimeToken.expires_at))).all()
        sessions = (await session.scalars(select(AuthSession.expires_at))).all()
    assert [t > now for t in tokens] == [True]
    assert [s > now for s in sessions] == [True]


def test_cron_functions_are_scheduled() -> None:
    functions = registry.load_functions()
    assert functions["accounts.purge_expired"].cron == "17 3 * * *"
    assert functions["email.sweep"].cron == "* * * * *"
    assert functions["jobs.dispatch"].cron == "* * * * *"


def test_capabilities_name_the_email_provider_and_jobs_engine(database_url: str) -> None:
    from tutorapp.integrations import capabilities

    caps = capabilities(make_settings(database_url))
    assert caps["email"] == "outbox"
    assert caps["jobs"] == ("dbos (sqlite)" if database_url.startswith("sqlite")
                            else "dbos (postgresql)")


@pytest.mark.parametrize(("provider", "extra", "problem"), [
    ("smtp", {}, "TUTORAPP_SMTP_HOST"),
    ("resend", {}, "TUTORAPP_RESEND_API_KEY"),
])
def test_a_vendor_provider_needs_its_settings(provider: str, extra: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        make_settings("sqlite:///x.db", email_provider=provider, **extra)


async def test_meta_reports_email_and_jobs(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/meta")).json()
    assert body["capabilities"]["email"] == "outbox"
    assert body["capabilities"]["jobs"].startswith("dbos (")
