"""Schemathesis over the whole OpenAPI document (issue 14 item 20).

A real `tutorapp serve` per dialect, on its own freshly migrated database seeded
with the demo catalogue, answers generated requests for every operation:
anonymous, and signed in as the demo student and the demo tutor (signed in again
whenever an operation ended the session, so one that signs out cannot starve the
next). Each
response must not be a 5xx, must carry a status the document lists for the
operation, and an error must be `application/problem+json`.

`TUTORAPP_OPENAPI_EXAMPLES` bounds the generated examples per operation and caller
(default 3): the run stays a few minutes per dialect.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance
from sqlalchemy.engine import make_url

from tests.conftest import DIALECTS, POSTGRES_URL, ROOT, TEST_SECRET, _admin_execute, make_settings
from tests.waiting import deadline, timeout_scale, wait_until_sync
from tutorapp.app import create_app
from tutorapp.demo import DEMO_PASSWORD

EXAMPLES = int(os.environ.get("TUTORAPP_OPENAPI_EXAMPLES", "3"))
TIMEOUT_SCALE = timeout_scale()
CALLERS = {"anonymous": None, "student": "student@example.com", "tutor": "tutor@example.com"}

schema = schemathesis.openapi.from_dict(create_app(make_settings("sqlite://")).openapi())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tutorapp(*args: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen:
    return subprocess.Popen([str(Path(sys.executable).parent / "tutorapp"), *args], env=env,
                            **kwargs)  # type: ignore[call-overload]


@pytest.fixture(scope="session", params=DIALECTS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a served app on a database of `request.param`'s dialect."""
    from tutorapp.core import migrate

    pg_name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'tutorapp.db'}"
    else:
        assert POSTGRES_URL
        pg_name = f"tutorapp_openapi_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        asyncio.run(_admin_execute(POSTGRES_URL, f'CREATE DATABASE "{pg_name}"'))
        url = make_url(POSTGRES_URL).set(database=pg_name).render_as_string(hide_password=False)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TUTORAPP_PROFILE": "test", "TUTORAPP_DATABASE_URL": url,
           "TUTORAPP_SECRET_KEY": TEST_SECRET, "TUTORAPP_PUBLIC_URL": base,
           "TUTORAPP_ALLOWED_HOSTS": "127.0.0.1,localhost",
           "TUTORAPP_LOGIN_ATTEMPTS_PER_IP": "100000", "TUTORAPP_JOBS_EMBEDDED_WORKER": "false"}
    (ROOT / "test-results").mkdir(exist_ok=True)
    log = open(ROOT / "test-results" / f"openapi-server-{request.param}.log", "w")  # noqa: SIM115
    process = None
    try:
        migrate.upgrade(make_settings(url))
        seeded = _tutorapp("seed", "--demo", env=env, stdout=log, stderr=subprocess.STDOUT)
        assert seeded.wait(timeout=120 * TIMEOUT_SCALE) == 0, "seeding failed: see the log"
        process = _tutorapp("serve", "--host", "127.0.0.1", "--port", str(port), env=env,
                            cwd=tmp_path_factory.getbasetemp(), stdout=log,
                            stderr=subprocess.STDOUT)
        def live() -> bool:
            assert process.poll() is None, f"the server exited: see openapi-server-{request.param}.log"
            try:
                return httpx.get(f"{base}/health/live", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until_sync(live, timeout=60, what="the server to start", interval=0.1)
        yield base
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=deadline(20))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
        if pg_name:
            asyncio.run(_admin_execute(
                POSTGRES_URL,  # type: ignore[arg-type]
                f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


_tokens: dict[tuple[str, str], str] = {}


@pytest.fixture(params=list(CALLERS))
def caller_headers(request: pytest.FixtureRequest, server: str) -> dict[str, str]:
    """The caller's bearer token: kept while it works, a new sign-in once an
    operation (sign out, password change) ended its session."""
    email = CALLERS[request.param]
    if email is None:
        return {}
    token = _tokens.get((server, email))
    if token is not None:
        me = httpx.get(f"{server}/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                       timeout=30 * TIMEOUT_SCALE)
        if me.status_code != 200:
            token = None
    if token is None:
        response = httpx.post(f"{server}/api/v1/auth/login", timeout=30 * TIMEOUT_SCALE,
                              json={"email": email, "password": DEMO_PASSWORD})
        assert response.status_code == 200, response.text
        token = _tokens[(server, email)] = response.json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_a_documented_status_and_never_5xx(
    case: schemathesis.Case, server: str, caller_headers: dict[str, str]
) -> None:
    response = case.call(base_url=server, headers=caller_headers, timeout=30 * TIMEOUT_SCALE)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             content_type_conformance])
