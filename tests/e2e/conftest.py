"""Browser tests: a real `tutorapp serve` process per dialect, driven by Debian's Chromium.

- `server` (session, one per dialect): its own freshly migrated database (a SQLite
  file, or a PostgreSQL database created and dropped here), a catalogue and an admin
  with TOTP seeded through the services, then `tutorapp serve` on a free port with
  the sandbox payment provider, payment required for bookings and the embedded job
  worker on (webhooks from the sandbox are processed by jobs, as in production).
- `browser` (session): one Chromium for the run; each test opens its own contexts.
- `check_page()`: axe-core (vendored, tests/e2e/vendor/axe.min.js) injected through
  the DevTools protocol (so the page's CSP stays enforced), no serious or critical
  violation allowed; no CSP violation or script error in the console; a screenshot
  under test-results/screenshots/<dialect>/.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import DIALECTS, POSTGRES_URL, ROOT, TEST_SECRET, _admin_execute, make_settings
from tests.waiting import deadline, wait_until_sync

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SHOTS = ROOT / "test-results" / "screenshots"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
ADMIN_EMAIL = "root@e2e.example"
PASSWORD = "correct horse battery staple 42"

pytestmark = pytest.mark.browser


@dataclass
class Server:
    url: str
    dialect: str
    admin_totp: pyotp.TOTP
    shared: dict = field(default_factory=dict)  # state handed from one journey to the next


def _off_loop(function, *args):
    """Run in a fresh thread: Playwright's sync API keeps an event loop running in
    this one, and migrations and seeding use asyncio.run."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _seed(database_url: str, totp_secret: str) -> None:
    from tutorapp.accounts.models import User
    from tutorapp.auth.roles import Role
    from tutorapp.core.db import Database
    from tutorapp.core.security import encrypt, hash_password
    from tutorapp.core.time import utcnow
    from tutorapp.tutors import schemas, service

    settings = make_settings(database_url)
    db = Database(settings)
    try:
        async with db.unit_of_work() as session:
            now = utcnow()
            admin = User(email=ADMIN_EMAIL, email_verified_at=now,
                         password_hash=hash_password(PASSWORD), display_name="Ada Admin",
                         role=Role.admin, time_zone="Europe/London", locale="en",
                         totp_secret_encrypted=encrypt(settings, totp_secret),
                         totp_enabled_at=now)
            session.add(admin)
            await session.flush()
            ids: dict[str, uuid.UUID] = {}
            for name, slug, parent in [("Mathematics", "mathematics", None),
                                       ("Algebra", "algebra", "mathematics"),
                                       ("Languages", "languages", None),
                                       ("French", "french", "languages")]:
                subject = await service.create_subject(
                    session, schemas.SubjectIn(name=name, slug=slug,
                                               parent_id=ids.get(parent or "")),
                    actor_id=admin.id)
                ids[slug] = subject.id
            for code, name in [("en", "English"), ("fr", "French")]:
                await service.create_language(session, schemas.LanguageIn(code=code, name=name),
                                              actor_id=admin.id)
    finally:
        await db.dispose()


@pytest.fixture(scope="session", params=DIALECTS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install chromium` to run the browser tests")
    from tutorapp.core import migrate

    dialect = request.param
    pg_name = None
    if dialect == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('e2e') / 'tutorapp.db'}"
    else:
        assert POSTGRES_URL
        pg_name = f"tutorapp_e2e_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        _off_loop(asyncio.run, _admin_execute(POSTGRES_URL, f'CREATE DATABASE "{pg_name}"'))
        url = make_url(POSTGRES_URL).set(database=pg_name).render_as_string(hide_password=False)
    process = None
    log = (ROOT / "test-results")
    log.mkdir(exist_ok=True)
    log_file = open(log / f"e2e-server-{dialect}.log", "w")  # noqa: SIM115
    try:
        _off_loop(migrate.upgrade, make_settings(url))
        secret = pyotp.random_base32()
        _off_loop(asyncio.run, _seed(url, secret))
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ,
               "TUTORAPP_PROFILE": "test", "TUTORAPP_DATABASE_URL": url,
               "TUTORAPP_SECRET_KEY": TEST_SECRET, "TUTORAPP_PUBLIC_URL": base,
               "TUTORAPP_ALLOWED_HOSTS": "127.0.0.1,localhost",
               "TUTORAPP_PAYMENTS_PROVIDER": "sandbox",
               "TUTORAPP_BOOKING_PAYMENT_REQUIRED": "true",
               "TUTORAPP_JOBS_EMBEDDED_WORKER": "true",
               "TUTORAPP_LOGIN_ATTEMPTS_PER_IP": "1000"}
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "tutorapp"), "serve", "--host", "127.0.0.1",
             "--port", str(port)], env=env, cwd=tmp_path_factory.getbasetemp(),
            stdout=log_file, stderr=subprocess.STDOUT)
        def live() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited: see test-results/e2e-server-{dialect}.log")
            try:
                return httpx.get(f"{base}/health/live", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until_sync(live, timeout=30, what="the server to start", interval=0.1)
        yield Server(url=base, dialect=dialect, admin_totp=pyotp.TOTP(secret))
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=deadline(20))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log_file.close()
        if pg_name:
            _off_loop(asyncio.run, _admin_execute(
                POSTGRES_URL, f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in
    # this thread until it stops, and later tests call asyncio.run().
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install chromium` to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


class Pages:
    """Opens contexts (desktop or phone) and checks each page it visits."""

    def __init__(self, browser, server: Server) -> None:
        self.browser, self.server = browser, server
        self.contexts: list = []

    def open(self, *, phone: bool = False):
        options = dict(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2) \
            if phone else dict(viewport=DESKTOP)
        context = self.browser.new_context(base_url=self.server.url, **options)
        context.set_default_timeout(deadline(15) * 1000)
        self.contexts.append(context)
        page = context.new_page()
        page.problems = []  # type: ignore[attr-defined]
        page.dialect = self.server.dialect  # type: ignore[attr-defined]
        page.on("console", lambda m: m.type == "error" and page.problems.append(f"{m.text} @ {m.location} on {page.url}"))
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser, server: Server) -> Iterator[Pages]:
    opened = Pages(browser, server)
    yield opened
    opened.close()


def check_page(page, name: str, *, axe: bool = True) -> None:
    """Screenshot, accessibility and console checks of the page as it is now."""
    page.wait_for_load_state("load")
    width = page.viewport_size["width"]
    kind = "phone" if width < 600 else "desktop"
    folder = SHOTS / page.dialect
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}-{kind}.png"), full_page=True)
    assert not [p for p in page.problems if "Content Security Policy" in p or "Refused" in p], \
        page.problems
    if axe:
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(AXE.read_text())
        result = page.evaluate(
            "axe.run(document, {resultTypes: ['violations']})"
            ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))")
        # axe itself touches inline styles while it measures (scrollable regions,
        # contrast): what it triggers in the console is not the page's fault. A round
        # trip after the next frame (not a fixed sleep) has every such message in.
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => setTimeout(done)))")
        del page.problems[:]
        bad = [v for v in result if v["impact"] in ("serious", "critical")]
        assert bad == [], f"axe on {name} ({kind}): {bad}"
    # no horizontal scrolling on a phone
    if kind == "phone":
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} scrolls sideways on a phone by {overflow}px"
