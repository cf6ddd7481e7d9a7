"""`tutorapp payouts ...`: the monthly payout run for tutors (paid by bank transfer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession

app = typer.Typer(help="Tutor payouts: run a period, export its CSV, mark it paid.",
                  no_args_is_help=True)
console = Console()
T = TypeVar("T")
PeriodOption = Annotated[str, typer.Option("--period", help="the month, e.g. 2026-11")]


def _with_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    from tutorapp.core.cli import load_settings
    from tutorapp.core.db import Database

    settings = load_settings()

    async def run() -> T:
        database = Database(settings, name="cli", pool_size=2, max_overflow=0)
        try:
            async with database.unit_of_work() as session:
                return await work(session)
        finally:
            await database.dispose()

    return asyncio.run(run())


@app.command("run")
def run_payout(
    period: PeriodOption,
    out: Annotated[Path | None, typer.Option(help="CSV file; default payout-<period>.csv")] = None,
) -> None:
    """Gather the earnings payable by the end of the period and write the CSV."""
    from tutorapp.billing import earnings
    from tutorapp.core.errors import AppError
    from tutorapp.core.time import utcnow

    async def work(session: AsyncSession) -> str:
        payout = await earnings.run_payout(session, period, now=utcnow())
        return earnings.payout_csv(period, await earnings.payout_lines(session, payout))

    try:
        text = _with_session(work)
    except AppError as exc:
        console.print(f"[red]{exc.detail}")
        raise typer.Exit(1) from None
    target = out or Path(f"payout-{period}.csv")
    target.write_text(text, encoding="utf-8")
    lines = max(0, len(text.splitlines()) - 1)
    console.print(f"payout {period}: {lines} line{'s' if lines != 1 else ''} written to {target}")


@app.command("mark-paid")
def mark_paid(period: PeriodOption) -> None:
    """The bank transfers of the period were made: book them in the ledger."""
    from tutorapp.billing import earnings
    from tutorapp.core.errors import AppError
    from tutorapp.core.time import utcnow

    async def work(session: AsyncSession) -> str:
        payout = await earnings.mark_paid(session, period, now=utcnow())
        return payout.period

    try:
        _with_session(work)
    except AppError as exc:
        console.print(f"[red]{exc.detail}")
        raise typer.Exit(1) from None
    console.print(f"payout {period} marked paid")
