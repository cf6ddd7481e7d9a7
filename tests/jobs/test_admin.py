"""Operators see recent runs (status, attempts, last error, duration) in the admin
API, the admin page and the CLI, and can retry or cancel them."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from typer.testing import CliRunner

from tests.factories import make_user, sign_in
from tests.jobs.conftest import Worker
from tests.jobs.test_engine import attempts
from tutorapp.auth.roles import Role
from tutorapp.cli import app as cli
from tutorapp.core.db import Database
from tutorapp.jobs.queue import enqueue


@pytest.fixture(autouse=True)
def _clean() -> None:
    attempts.clear()


@pytest.fixture
async def admin_headers(client: httpx.AsyncClient, db: Database) -> dict[str, str]:
    account = await make_user(db, role=Role.admin, totp=True)
    return (await sign_in(client, account)).headers


async def _a_success_and_a_failure(worker: Worker) -> tuple[str, str]:
    ok = await enqueue("test.flaky", "adm-ok", 0, key="adm-ok")
    bad = await enqueue("test.flaky", "adm-bad", 99, key="adm-bad")
    await worker.result(ok)
    with pytest.raises(Exception, match="exceeded its maximum of 3 retries"):
        await worker.result(bad)
    return ok, bad


async def test_admins_list_recent_runs(
    client: httpx.AsyncClient, running: Worker, admin_headers: dict[str, str]
) -> None:
    ok, bad = await _a_success_and_a_failure(running)
    response = await client.get("/api/v1/admin/jobs", headers=admin_headers)
    assert response.status_code == 200, response.text
    runs = {run["id"]: run for run in response.json()["runs"]}
    assert runs[ok]["status"] == "SUCCESS" and runs[ok]["function"] == "test.flaky"
    assert runs[ok]["attempts"] == 1 and runs[ok]["last_error"] is None
    assert runs[ok]["duration_seconds"] >= 0
    assert runs[bad]["status"] == "ERROR"
    assert "outage #3" in runs[bad]["last_error"]
    usage = response.json()["usage"]
    assert usage["job_steps_this_month"]["quota"] == 10_000
    assert usage["emails_today"] == {"used": 0, "quota": 100, "cap": None}

    failed = await client.get("/api/v1/admin/jobs?status=error", headers=admin_headers)
    assert [run["id"] for run in failed.json()["runs"]] == [bad]

    detail = await client.get(f"/api/v1/admin/jobs/{bad}", headers=admin_headers)
    assert [(s["name"], s["error"] is not None) for s in detail.json()["steps"]] == [
        ("test.call_vendor", True)
    ]

    page = await client.get("/admin/jobs", headers=admin_headers | {"accept": "text/html"})
    assert page.status_code == 200
    assert bad in page.text and "outage #3" in page.text


async def test_a_failed_run_can_be_retried(
    client: httpx.AsyncClient, running: Worker, admin_headers: dict[str, str]
) -> None:
    _, bad = await _a_success_and_a_failure(running)
    attempts["adm-bad"] = 1000  # the outage is over
    response = await client.post(f"/api/v1/admin/jobs/{bad}/retry", headers=admin_headers)
    assert response.status_code == 200, response.text
    assert await running.result(bad) == 1001  # rewound to the failed step, which now works
    assert await running.status(bad) == "SUCCESS"
    again = await client.post(f"/api/v1/admin/jobs/{bad}/retry", headers=admin_headers)
    assert again.status_code == 409


async def test_a_delayed_run_can_be_cancelled_and_unknown_runs_are_404(
    client: httpx.AsyncClient, running: Worker, admin_headers: dict[str, str]
) -> None:
    later = await enqueue("test.flaky", "adm-later", 0, key="adm-later", delay=3600)
    response = await client.post(f"/api/v1/admin/jobs/{later}/cancel", headers=admin_headers)
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    missing = await client.get("/api/v1/admin/jobs/nope", headers=admin_headers)
    assert missing.status_code == 404
    assert missing.json()["type"] == "/problems/job-run-not-found"


@pytest.mark.parametrize("path", ["/api/v1/admin/jobs", "/admin/jobs"])
async def test_only_admins_see_runs(client: httpx.AsyncClient, db: Database, path: str) -> None:
    assert (await client.get(path)).status_code == 401
    student = await sign_in(client, await make_user(db, role=Role.student))
    assert (await client.get(path, headers=student.headers)).status_code == 403


async def test_the_cli_lists_shows_and_retries_runs(
    running: Worker, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, bad = await _a_success_and_a_failure(running)
    monkeypatch.setenv("TUTORAPP_DATABASE_URL", database_url)
    monkeypatch.setenv("TUTORAPP_PROFILE", "test")

    def invoke(*args: str):
        return CliRunner().invoke(cli, ["jobs", *args], env={"COLUMNS": "300"})

    listing = await asyncio.to_thread(invoke, "list", "--function", "test.flaky")
    assert listing.exit_code == 0, listing.output
    assert ok in listing.output and bad in listing.output and "ERROR" in listing.output

    shown = await asyncio.to_thread(invoke, "show", bad)
    assert shown.exit_code == 0, shown.output
    assert "test.call_vendor" in shown.output and "outage #3" in shown.output

    refused = await asyncio.to_thread(invoke, "retry", ok)
    assert refused.exit_code == 1
    assert "only failed or cancelled runs" in refused.output

    attempts["adm-bad"] = 1000
    retried = await asyncio.to_thread(invoke, "retry", bad)
    assert retried.exit_code == 0, retried.output
    await running.result(bad)
    assert await running.status(bad) == "SUCCESS"
