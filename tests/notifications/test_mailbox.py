"""The dev mailbox lists and renders the outbox; it exists only in dev and test."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.conftest import LIVE_VENDORS, make_settings
from tutorapp.app import create_app
from tutorapp.core.db import Database
from tutorapp.notifications import service


async def test_the_mailbox_lists_and_renders_emails(client: httpx.AsyncClient, db: Database
                                                    ) -> None:
    async with db.unit_of_work() as session:
        message = await service.enqueue_email(
            session, to="new@example.org", template="notice",
            context={"title": "Confirm your address", "body": "One click left.",
                     "link": "http://127.0.0.1:8000/verify?token=abc"},
        )
    listing = await client.get("/dev/mailbox", headers={"accept": "text/html"})
    assert listing.status_code == 200
    assert "new@example.org" in listing.text
    assert f'href="/dev/mailbox/{message.id}"' in listing.text
    assert "TutorApp notice: Confirm your address" in listing.text

    page = await client.get(f"/dev/mailbox/{message.id}")
    assert page.status_code == 200
    assert '<a href="http://127.0.0.1:8000/verify?token=abc"' in page.text

    html = await client.get(f"/dev/mailbox/{message.id}/html")
    assert html.status_code == 200
    assert html.text == message.html
    assert "sandbox" in html.headers["content-security-policy"]


async def test_an_unknown_message_is_not_found(client: httpx.AsyncClient) -> None:
    response = await client.get("/dev/mailbox/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404


def route_paths(app: FastAPI) -> set[str]:
    from fastapi import routing

    expand = getattr(routing, "_iter_included_route_candidates", lambda routes: routes)
    return {getattr(route, "path", "") for route in expand(app.routes)}


def test_the_mailbox_is_not_mounted_outside_dev_and_test(database_url: str) -> None:
    staging = make_settings(database_url, **LIVE_VENDORS, profile="staging")
    assert not any(p.startswith("/dev/mailbox") for p in route_paths(create_app(staging)))
    assert "/dev/mailbox" in route_paths(create_app(make_settings(database_url)))
