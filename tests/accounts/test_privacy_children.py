"""Child accounts, data export and account deletion."""

import httpx
from sqlalchemy import select

from tests.factories import PASSWORD, make_user, sign_in
from tutorapp.accounts.models import AuthSession, User
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database


async def test_parent_manages_children_without_email(client: httpx.AsyncClient,
                                                     db: Database) -> None:
    parent = await sign_in(client, await make_user(db, role=Role.parent, time_zone="Asia/Kolkata"))
    created = await client.post("/api/v1/me/children", headers=parent.headers,
                                json={"display_name": "Ravi"})
    assert created.status_code == 201
    child = created.json()
    assert (child["email"], child["role"], child["time_zone"], child["parent_id"]) == (
        None, "student", "Asia/Kolkata", str(parent.user.id))
    renamed = await client.patch(f"/api/v1/me/children/{child['id']}", headers=parent.headers,
                                 json={"display_name": "Ravi K."})
    assert renamed.json()["display_name"] == "Ravi K."
    listed = await client.get("/api/v1/me/children", headers=parent.headers)
    assert [c["display_name"] for c in listed.json()] == ["Ravi K."]

    stranger = await sign_in(client, await make_user(db, role=Role.parent))
    response = await client.patch(f"/api/v1/me/children/{child['id']}", headers=stranger.headers,
                                  json={"display_name": "mine now"})
    assert response.status_code == 404
    student = await sign_in(client, await make_user(db, role=Role.student))
    assert (await client.post("/api/v1/me/children", headers=student.headers,
                              json={"display_name": "x"})).status_code == 403


async def test_export_holds_the_data_but_no_secrets(client: httpx.AsyncClient,
                                                    db: Database) -> None:
    account = await sign_in(client, await make_user(db, email="uma@example.com", totp=True))
    response = await client.get("/api/v1/me/export", headers=account.headers)
    assert response.status_code == 200
    data = response.json()
    assert data["user"]["email"] == "uma@example.com"
    # The password login's aal1 session, replaced by the aal2 one after TOTP.
    assert sorted((s["aal"], s["revoked_reason"]) for s in data["sessions"]) == [
        ("aal1", "reauthenticated"), ("aal2", None)]
    assert [e["action"] for e in data["audit_events"]] == ["user.signed_in"]
    text = response.text
    for secret in ("password_hash", "totp_secret", "token_hash", "argon2"):
        assert secret not in text


async def test_delete_account_anonymises_and_ends_sessions(client: httpx.AsyncClient,
                                                           db: Database) -> None:
    parent = await sign_in(client, await make_user(db, role=Role.parent, email="val@example.com"))
    child = (await client.post("/api/v1/me/children", headers=parent.headers,
                               json={"display_name": "Kid"})).json()
    wrong = await client.request("DELETE", "/api/v1/me", headers=parent.headers,
                                 json={"current_password": "not it at all"})
    assert wrong.status_code == 422
    deleted = await client.request("DELETE", "/api/v1/me", headers=parent.headers,
                                   json={"current_password": PASSWORD})
    assert deleted.status_code == 204
    assert (await client.get("/api/v1/me", headers=parent.headers)).status_code == 401
    assert (await client.post("/api/v1/auth/login", json={
        "email": "val@example.com", "password": PASSWORD})).status_code == 400
    async with db.session() as session:
        rows = {u.id: u for u in await session.scalars(select(User))}
        live = await session.scalar(select(AuthSession).where(AuthSession.revoked_at.is_(None)))
    kept = rows[parent.user.id]
    assert (kept.email, kept.password_hash, kept.display_name) == (None, None, "Deleted user")
    assert kept.deleted_at is not None
    assert rows[__import__("uuid").UUID(child["id"])].display_name == "Deleted user"
    assert live is None
    # The address is free again.
    again = await client.post("/api/v1/auth/signup", json={
        "email": "val@example.com", "password": PASSWORD, "display_name": "Val again"})
    assert again.status_code == 201
