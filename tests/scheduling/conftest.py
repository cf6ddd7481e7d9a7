"""Signed-in callers for the marketplace tests.

`sign_in` creates a User and an AuthSession row and mints an access token, as the
auth API will. Kept small and isolated: replace with tests/factories when it lands.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from tutorapp.accounts.models import AuthSession, User
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database
from tutorapp.core.security import issue_access_token
from tutorapp.core.time import utcnow


@dataclass
class Caller:
    id: uuid.UUID
    role: Role
    headers: dict[str, str]


async def sign_in(app, *, role: Role, time_zone: str = "UTC", name: str | None = None,
                  parent_id: uuid.UUID | None = None) -> Caller:
    database: Database = app.state.database
    settings = app.state.settings
    now = utcnow()
    async with database.unit_of_work() as session:
        user = User(
            email=None if parent_id else f"{uuid.uuid4().hex[:12]}@example.test",
            display_name=name or f"{role.value} {uuid.uuid4().hex[:4]}", role=role,
            time_zone=time_zone, parent_id=parent_id, email_verified_at=now,
            totp_enabled_at=now if role == Role.admin else None,
        )
        session.add(user)
        await session.flush()
        auth = AuthSession(
            user_id=user.id, aal="aal2" if role == Role.admin else "aal1", amr="pwd",
            authenticated_at=now, last_seen_at=now, expires_at=now + timedelta(days=1),
        )
        session.add(auth)
        await session.flush()
    token, _ = issue_access_token(settings, user_id=user.id, role=role.value, aal=auth.aal,
                                  amr=["pwd"], session_id=auth.id, now=now)
    return Caller(id=user.id, role=role, headers={"Authorization": f"Bearer {token}"})


@dataclass
class Market:
    """A catalogue and an admin: the ground every marketplace test stands on."""

    admin: Caller
    subjects: dict[str, str]  # path -> id
    languages: list[str]


async def make_market(app, http: httpx.AsyncClient) -> Market:
    admin = await sign_in(app, role=Role.admin)
    subjects: dict[str, str] = {}
    for name, slug, parent in [
        ("Mathematics", "mathematics", None), ("Algebra", "algebra", "mathematics"),
        ("Geometry", "geometry", "mathematics"), ("Linear algebra", "linear", "mathematics/algebra"),
        ("Languages", "languages", None), ("French", "french", "languages"),
    ]:
        body = {"name": name, "slug": slug, "parent_id": subjects[parent] if parent else None}
        response = await http.post("/api/v1/catalogue/subjects", json=body, headers=admin.headers)
        assert response.status_code == 201, response.text
        subjects[response.json()["path"]] = response.json()["id"]
    for code, name in [("en", "English"), ("fr", "French"), ("de", "German")]:
        response = await http.post("/api/v1/catalogue/languages", json={"code": code, "name": name},
                                   headers=admin.headers)
        assert response.status_code == 201, response.text
    return Market(admin=admin, subjects=subjects, languages=["en", "fr", "de"])


def profile_body(market: Market, **overrides: object) -> dict:
    body: dict = {
        "headline": "Patient maths tutor", "bio_markdown": "I teach **algebra**.",
        "subjects": [{"subject_id": market.subjects["mathematics/algebra"], "level": "secondary"}],
        "languages": ["en"],
        "time_zone": "Europe/London", "lesson_lengths": [30, 60],
        "min_notice_minutes": 0, "buffer_minutes": 0, "horizon_days": 365,
    }
    body.update(overrides)
    return body


async def approved_tutor(app, http: httpx.AsyncClient, market: Market, *,
                         rules: list[dict] | None = None, **profile: object) -> tuple[Caller, str]:
    """A tutor whose profile is approved and whose weekly rules are set; (caller, profile id)."""
    tz = str(profile.get("time_zone", "Europe/London"))
    tutor = await sign_in(app, role=Role.tutor, time_zone=tz, name=str(profile.pop("name", "Ada Tutor")))
    response = await http.put("/api/v1/tutors/me", json=profile_body(market, **profile),
                              headers=tutor.headers)
    assert response.status_code == 200, response.text
    tutor_id = response.json()["id"]
    assert (await http.post("/api/v1/tutors/me/submit", headers=tutor.headers)).status_code == 200
    response = await http.post(f"/api/v1/admin/tutors/{tutor_id}/approve", headers=market.admin.headers)
    assert response.status_code == 200, response.text
    if rules is not None:
        response = await http.put("/api/v1/tutors/me/availability",
                                  json={"rules": rules, "overrides": []}, headers=tutor.headers)
        assert response.status_code == 200, response.text
    return tutor, tutor_id


@pytest.fixture
async def market(app, client: httpx.AsyncClient) -> Market:
    return await make_market(app, client)
