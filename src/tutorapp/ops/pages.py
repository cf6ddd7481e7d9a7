"""Public pages that belong to no product domain. The landing page moved to
`tutorapp.site.pages` with the rest of the marketing site."""

from __future__ import annotations

from fastapi import APIRouter

from tutorapp.auth.deps import PUBLIC

router = APIRouter(include_in_schema=False, dependencies=[PUBLIC])
