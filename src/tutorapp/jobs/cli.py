"""`tutorapp jobs list|show|retry|cancel`: operate on background runs."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from tutorapp.core.errors import AppError

app = typer.Typer(help="Background job runs: list, show, retry, cancel.", no_args_is_help=True)
T = TypeVar("T")
console = Console()


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    from tutorapp.core.cli import load_settings
    from tutorapp.jobs.registry import load_functions
    from tutorapp.jobs.runtime import runtime

    load_functions()
    runtime.configure(load_settings(), role="cli")

    async def main() -> T:
        try:
            return await coroutine
        finally:
            runtime.close()

    try:
        return asyncio.run(main())
    except AppError as exc:
        console.print(f"[red]{exc.detail}")
        raise typer.Exit(1) from None


@app.command("list")
def list_runs(
    status: Annotated[str | None, typer.Option(help="PENDING, ENQUEUED, DELAYED, SUCCESS, "
                                               "ERROR, CANCELLED")] = None,
    function: Annotated[str | None, typer.Option(help="e.g. email.deliver")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Recent runs, newest first."""
    from tutorapp.jobs import service

    runs = _run(service.list_runs(limit=limit, status=status, function=function))
    table = Table(title=f"{len(runs)} runs")
    for column in ("run id", "function", "status", "attempts", "created", "duration", "last error"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            run.id, run.function, run.status, str(run.attempts),
            run.created_at.strftime("%Y-%m-%d %H:%M:%S") if run.created_at else "",
            f"{run.duration_seconds:.3f}s" if run.duration_seconds is not None else "",
            run.last_error or "",
        )
    console.print(table)


@app.command()
def show(run_id: str) -> None:
    """One run and its steps."""
    from tutorapp.jobs import service

    run, steps = _run(service.get_run(run_id))
    for key, value in run.as_dict().items():
        console.print(f"[bold]{key}[/]: {value}")
    table = Table(title="steps")
    for column in ("#", "name", "started", "completed", "error"):
        table.add_column(column, overflow="fold")
    for step in steps:
        table.add_row(str(step["step"]), step["name"], step["started_at"] or "",
                      step["completed_at"] or "", step["error"] or "")
    console.print(table)


@app.command()
def retry(run_id: str) -> None:
    """Run a failed or cancelled run again from its first failed step."""
    from tutorapp.jobs import service

    run = _run(service.retry_run(run_id))
    console.print(f"{run.id}: {run.status}")


@app.command()
def cancel(run_id: str) -> None:
    """Cancel a run that has not ended (its current step finishes first)."""
    from tutorapp.jobs import service

    run = _run(service.cancel_run(run_id))
    console.print(f"{run.id}: {run.status}")
