"""Supabase Auth (GoTrue) compatible API at /auth/v1, over the accounts domain.

`install(app)` is the one place it is mounted: the routes, and GoTrue's error shape
for them (every other path keeps problem+json). See docs/supabase-compat.md.
"""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    from tutorapp.gotrue import api, errors

    app.include_router(api.router)
    errors.install(app)
