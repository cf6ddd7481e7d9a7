"""What every command group of the `tutorapp` CLI shares (the top-level `cli.py`
mounts the groups of `billing/cli.py` and `jobs/cli.py`, which import this, not it)."""

from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.console import Console

from tutorapp.config import Settings

console = Console()


def load_settings() -> Settings:
    """Settings or a readable refusal naming the variables to fix."""
    try:
        return Settings()
    except ValidationError as exc:
        console.print("[bold red]Invalid settings:[/]")
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]) or "settings"
            console.print(f"  - {field}: {error['msg']}")
        raise typer.Exit(2) from None
