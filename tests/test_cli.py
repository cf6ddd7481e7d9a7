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
