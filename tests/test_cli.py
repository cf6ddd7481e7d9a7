"""The `tutorapp` command, run in-process as a user would type it."""

import pytest
from typer.testing import CliRunner

from tutorapp import __version__
from tutorapp.cli import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("TUTORAPP_DATABASE_URL", url)
    monkeypatch.setenv("TUTORAPP_PROFILE", "test")
    return url


def test_version() -> None:
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"tutorapp {__version__}"


def test_serve_passes_the_served_address_to_the_app(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`PORT=8811 make run`: links, checkout redirects and the CSP follow port 8811."""
    import uvicorn

    from tutorapp.app import create_app

    served: dict[str, object] = {}
    monkeypatch.delenv("TUTORAPP_PUBLIC_URL", raising=False)
    # serve exports the address for uvicorn's worker processes: undo it after the test
    monkeypatch.setenv("TUTORAPP_HOST", "127.0.0.1")
    monkeypatch.setenv("TUTORAPP_PORT", "8000")
    monkeypatch.setenv("TUTORAPP_JOBS_EMBEDDED_WORKER", "false")
    monkeypatch.setattr(uvicorn, "run", lambda target, **kwargs: served.update(kwargs))
    result = runner.invoke(app, ["serve", "--port", "8811"], env={"PORT": "8811"})
    assert result.exit_code == 0, result.output
    assert served["port"] == 8811
    built = create_app()  # what uvicorn's factory builds in each worker
    assert built.state.settings.public_url == "http://127.0.0.1:8811"


def test_migrate_upgrade_current_downgrade(env: str) -> None:
    result = runner.invoke(app, ["migrate", "current"])
    assert result.exit_code == 0, result.output
    assert "database revision: empty" in result.output

    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert "(at head)" in result.output

    result = runner.invoke(app, ["migrate", "downgrade", "base"])
    assert result.exit_code == 0, result.output
    assert "database revision: empty" in result.output


def test_check_reports_each_component_and_fails_before_migrating(env: str) -> None:
    result = runner.invoke(app, ["check"], terminal_width=200)
    assert result.exit_code == 1
    assert "migrations" in result.output and "failing" in result.output

    assert runner.invoke(app, ["migrate"]).exit_code == 0
    result = runner.invoke(app, ["check"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for component in ("settings", "database", "migrations", "cache"):
        assert component in result.output
    assert "failing" not in result.output


def test_insecure_prod_settings_are_refused_with_the_variable(
    env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUTORAPP_PROFILE", "prod")
    result = runner.invoke(app, ["check"], terminal_width=300)
    assert result.exit_code == 2
    assert "TUTORAPP_SECRET_KEY" in result.output
    assert "TUTORAPP_DATABASE_URL" in result.output


def test_seed_demo_creates_the_printed_accounts_once(env: str) -> None:
    assert runner.invoke(app, ["migrate"]).exit_code == 0
    result = runner.invoke(app, ["seed", "--demo", "--tutors", "0", "--if-empty"],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    for email in ("admin@example.com", "tutor@example.com", "student@example.com",
                  "parent@example.com"):
        assert email in result.output
    assert "demo-password-2026" in result.output
    again = runner.invoke(app, ["seed", "--demo", "--if-empty"], terminal_width=200)
    assert again.exit_code == 0
    assert "Demo data already present." in again.output

    import asyncio

    from sqlalchemy import func, select

    from tests.conftest import make_settings
    from tutorapp.accounts.models import User
    from tutorapp.core.db import Database

    async def count() -> int:
        database = Database(make_settings(env))
        try:
            async with database.session() as session:
                return await session.scalar(select(func.count()).select_from(User))
        finally:
            await database.dispose()

    assert asyncio.run(count()) == 5  # four demo accounts and the parent's child


def test_totp_prints_the_demo_admins_current_code(env: str, monkeypatch) -> None:
    import re

    assert runner.invoke(app, ["migrate"]).exit_code == 0
    assert runner.invoke(app, ["seed", "--demo", "--tutors", "0"]).exit_code == 0
    monkeypatch.setenv("TUTORAPP_PROFILE", "dev")
    result = runner.invoke(app, ["totp", "admin@example.com"])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"\d{6}\n", result.output)
    monkeypatch.setenv("TUTORAPP_PROFILE", "test")
    assert runner.invoke(app, ["totp", "admin@example.com"]).exit_code == 2


def test_seed_refuses_prod(env: str, monkeypatch) -> None:
    monkeypatch.setenv("TUTORAPP_PROFILE", "prod")
    monkeypatch.setenv("TUTORAPP_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("TUTORAPP_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/none")
    monkeypatch.setenv("TUTORAPP_ALLOWED_HOSTS", "tutorapp.example")
    from tests.conftest import LIVE_VENDORS

    for name, value in LIVE_VENDORS.items():
        monkeypatch.setenv(f"TUTORAPP_{name.upper()}", str(value))
    result = runner.invoke(app, ["seed", "--demo"], terminal_width=200)
    assert result.exit_code == 2
    assert "Refusing" in result.output
