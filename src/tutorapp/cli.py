"""The `tutorapp` command: serve, migrate, seed, check, version."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tutorapp import __version__
from tutorapp.core.cli import load_settings

app = typer.Typer(help="TutorApp: a self-hostable tutoring marketplace.", no_args_is_help=True)
console = Console()


@app.command()
def version() -> None:
    """Print the installed version."""
    console.print(f"tutorapp {__version__}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="PORT")] = 8000,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    reload: Annotated[bool, typer.Option(help="restart on code changes (dev)")] = False,
) -> None:
    """Serve the site, the web app and the API."""
    import os

    import uvicorn

    # The app (built by uvicorn's factory, in every worker process) and the embedded
    # jobs take their public URL from the address actually served, unless
    # TUTORAPP_PUBLIC_URL names another one.
    os.environ["TUTORAPP_HOST"], os.environ["TUTORAPP_PORT"] = host, str(port)
    settings = load_settings()
    uvicorn.run(
        "tutorapp.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=None if reload else workers,
        reload=reload,
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        server_header=False,
    )


class MigrateAction(StrEnum):
    upgrade = "upgrade"
    downgrade = "downgrade"
    current = "current"


@app.command()
def worker(
    executor_id: Annotated[
        str | None, typer.Option(help="this worker's id (default: TUTORAPP_JOBS_EXECUTOR_ID)")
    ] = None,
    drain: Annotated[int, typer.Option(help="seconds to let running jobs finish on stop")] = 10,
) -> None:
    """Run background jobs (scale mode: any number of workers on PostgreSQL)."""
    from tutorapp.core.logging import configure_logging
    from tutorapp.jobs.worker import run_forever

    settings = load_settings()
    configure_logging(settings)
    run_forever(settings, executor_id=executor_id, drain_seconds=drain)


@app.command()
def migrate(
    action: Annotated[MigrateAction, typer.Argument()] = MigrateAction.upgrade,
    revision: Annotated[
        str | None, typer.Argument(help="target; default head (upgrade) or -1 (downgrade)")
    ] = None,
) -> None:
    """Apply, undo or show database migrations."""
    from tutorapp.core import migrate as migrations
    from tutorapp.core.db import create_engine

    settings = load_settings()
    if action is MigrateAction.upgrade:
        migrations.upgrade(settings, revision or "head")
    elif action is MigrateAction.downgrade:
        migrations.downgrade(settings, revision or "-1")

    async def show() -> tuple[str, ...]:
        engine = create_engine(settings, settings.database_url, writer=False, name="cli")
        try:
            return await migrations.current_revisions(engine)
        finally:
            await engine.dispose()

    current = asyncio.run(show())
    missing = migrations.missing_heads(current)
    state = "at head" if not missing else f"missing {', '.join(missing)}"
    console.print(f"database revision: {', '.join(current) or 'empty'} ({state})")


@app.command()
def seed(
    demo: Annotated[bool, typer.Option("--demo", help="create demo accounts and data")] = False,
    tutors: Annotated[int, typer.Option(min=0, max=100_000)] = 24,
    if_empty: Annotated[
        bool, typer.Option("--if-empty", help="only when the database has no users yet")
    ] = False,
) -> None:
    """Create demo data and print the demo accounts."""
    from rich.progress import Progress

    from tutorapp.core.db import Database
    from tutorapp.demo import DEMO_ACCOUNTS, DEMO_PASSWORD, is_empty, seed_demo

    if not demo:
        console.print("Nothing to do: pass --demo to create demo data.")
        raise typer.Exit(2)
    settings = load_settings()
    if settings.profile == "prod":
        console.print("[red]Refusing to seed demo accounts with known passwords in prod.[/]")
        raise typer.Exit(2)

    async def run() -> str | None:
        database = Database(settings, name="cli", pool_size=2, max_overflow=0)
        try:
            if if_empty and not await is_empty(database):
                return None
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("Seeding demo data", total=len(DEMO_ACCOUNTS) + tutors)
                result = await seed_demo(
                    database, tutors=tutors, advance=lambda n: progress.advance(task, n)
                )
            return result.admin_totp_secret
        finally:
            await database.dispose()

    secret = asyncio.run(run())
    if secret is None:
        console.print("Demo data already present.")
    table = Table(title="Demo accounts (password for all: " + DEMO_PASSWORD + ")")
    table.add_column("role")
    table.add_column("email")
    table.add_column("name")
    for account in DEMO_ACCOUNTS:
        table.add_row(account.role.value, account.email, account.display_name)
    table.add_row("child of parent", "(no email)", "Mia")
    console.print(table)
    console.print(
        "The admin signs in with a TOTP code: add the secret "
        + (f"[bold]{secret}[/] " if secret else "printed at the first seed ")
        + "to an authenticator app, or run `tutorapp totp admin@example.com` (dev only)."
    )


@app.command()
def totp(email: str) -> None:
    """Print the current TOTP code of an account (dev profile only, for demo accounts)."""
    import pyotp
    from sqlalchemy import select

    from tutorapp.accounts.models import User
    from tutorapp.core.db import Database
    from tutorapp.core.security import decrypt

    settings = load_settings()
    if settings.profile != "dev":
        console.print("[red]`tutorapp totp` works only in the dev profile.[/]")
        raise typer.Exit(2)

    async def secret() -> str | None:
        database = Database(settings, name="cli", pool_size=2, max_overflow=0)
        try:
            async with database.session() as session:
                user = await session.scalar(select(User).where(User.email == email.lower()))
                return user.totp_secret_encrypted if user else None
        finally:
            await database.dispose()

    encrypted = asyncio.run(secret())
    if not encrypted:
        console.print(f"No TOTP set up for {email}.")
        raise typer.Exit(1)
    console.print(pyotp.TOTP(decrypt(settings, encrypted)).now())


@app.command()
def check() -> None:
    """Report whether this installation is ready: settings, database, integrations."""
    from tutorapp.core.db import Database
    from tutorapp.integrations import capabilities, redacted
    from tutorapp.ops.service import readiness

    settings = load_settings()
    table = Table(title=f"TutorApp {__version__} ({settings.profile} profile)")
    table.add_column("component")
    table.add_column("status")
    table.add_column("detail", overflow="fold")
    table.add_row("settings", "[green]ok", f"database {redacted(settings.database_url)}")

    async def probe() -> list:
        database = Database(settings, name="cli", pool_size=2, max_overflow=0)
        try:
            return await readiness(database)
        finally:
            await database.dispose()

    results = asyncio.run(probe())
    for result in results:
        table.add_row(result.component, "[green]ok" if result.ok else "[red]failing", result.detail)
    for capability, backend in capabilities(settings).items():
        table.add_row(capability, "[green]ok", backend)
    console.print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


from tutorapp.jobs.cli import app as jobs_app  # noqa: E402

app.add_typer(jobs_app, name="jobs")

from tutorapp.billing.cli import app as payouts_app  # noqa: E402

app.add_typer(payouts_app, name="payouts")


if __name__ == "__main__":  # pragma: no cover
    app()
