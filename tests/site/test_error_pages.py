"""Error pages render for signed-in users (issue 14 item 6): the unit of work rolls
back before the error handler runs, which expires every ORM object of the request,
so a page must not read the caller from the closed session."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.accounts.test_browser_sessions import HTML, browser_login
from tests.factories import make_user
from tutorapp.auth.roles import Role


@pytest.mark.parametrize(("role", "path", "status"), [
    # a fixed unknown id: test ids must be the same in every pytest-xdist worker
    (Role.student, f"/tutors/{uuid.UUID(int=404)}", 404),
    (Role.student, "/app/bookings/not-a-uuid", 422),
    (Role.student, "/admin", 403),
    (Role.student, "/app/availability", 403),
    (Role.student, "/app/profile", 403),
    (Role.student, "/app/children", 403),
    (Role.tutor, "/app/children", 403),
    (Role.student, "/tutors?q=" + "a" * 250, 422),
])
async def test_signed_in_user_gets_the_error_page_with_their_name(
    client: httpx.AsyncClient, db, role: Role, path: str, status: int
) -> None:
    user = await make_user(db, role=role, display_name="Ada Lovelace")
    await browser_login(client, user.email)
    response = await client.get(path, headers=HTML)
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("text/html")
    assert f'<p class="error-code">{status}</p>' in response.text
    assert "Ada Lovelace" in response.text and "Sign out" in response.text


async def test_signed_in_user_gets_a_404_page_for_an_unknown_path(
    client: httpx.AsyncClient, db
) -> None:
    user = await make_user(db, role=Role.tutor)
    await browser_login(client, user.email)
    response = await client.get("/no-such-page", headers=HTML)
    assert response.status_code == 404
    assert '<p class="error-code">404</p>' in response.text


async def test_signed_in_api_caller_gets_problem_json_for_a_wrong_role(
    client: httpx.AsyncClient, db
) -> None:
    user = await make_user(db, role=Role.student)
    await browser_login(client, user.email)
    response = await client.get("/api/v1/admin/users")
    assert response.status_code in (403, 404)
    assert response.headers["content-type"] == "application/problem+json"
