"""TOTP enrolment, single-use codes, recovery codes, aal2 and admin enforcement."""

import base64
import time

import httpx
import jwt
import pyotp

from tests.factories import PASSWORD, last_email, make_user, sign_in, totp_code
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database


def aal(token: str) -> str:
    return jwt.decode(token, options={"verify_signature": False})["aal"]


async def enrol(client: httpx.AsyncClient, headers: dict) -> tuple[pyotp.TOTP, dict]:
    started = await client.post("/api/v1/me/mfa/totp/enroll", headers=headers,
                                json={"current_password": PASSWORD})
    assert started.status_code == 200, started.text
    body = started.json()
    totp = pyotp.TOTP(body["secret"])
    activated = await client.post("/api/v1/me/mfa/totp/activate", headers=headers,
                                  json={"code": totp.at(time.time() - 30)})
    assert activated.status_code == 200, activated.text
    return totp, {"enrolment": body, "activation": activated.json()}


async def test_enrolment_gives_uri_qr_recovery_codes_and_aal2(client: httpx.AsyncClient,
                                                              db: Database) -> None:
    account = await sign_in(client, await make_user(db, email="max@example.com"))
    _, result = await enrol(client, account.headers)
    enrolment, activation = result["enrolment"], result["activation"]
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/TutorApp:max%40example.com?secret=")
    assert "issuer=TutorApp" in enrolment["otpauth_uri"]
    svg = base64.b64decode(enrolment["qr_code"].removeprefix("data:image/svg+xml;base64,"))
    assert svg.startswith(b"<svg")
    codes = activation["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert aal(activation["access_token"]) == "aal2"
    # The pre-enrolment session was replaced.
    assert (await client.get("/api/v1/me", headers=account.headers)).status_code == 401
    await last_email(db, "max@example.com", "auth/mfa_changed")


async def test_a_code_is_accepted_once(client: httpx.AsyncClient, db: Database) -> None:
    account = await make_user(db, totp=True)
    login = await client.post("/api/v1/auth/login",
                              json={"email": account.email, "password": PASSWORD})
    assert login.json()["next_step"] == "mfa"
    assert aal(login.json()["access_token"]) == "aal1"
    aal1 = {"Authorization": f"Bearer {login.json()['access_token']}"}
    code = totp_code(account)
    first = await client.post("/api/v1/auth/mfa/verify", json={"code": code}, headers=aal1)
    assert first.status_code == 200
    assert aal(first.json()["access_token"]) == "aal2"
    amr = jwt.decode(first.json()["access_token"], options={"verify_signature": False})["amr"]
    assert [m["method"] for m in amr] == ["password", "totp"]

    second_login = await client.post("/api/v1/auth/login",
                                     json={"email": account.email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {second_login.json()['access_token']}"}
    replay = await client.post("/api/v1/auth/mfa/verify", json={"code": code}, headers=headers)
    assert replay.status_code == 400
    assert replay.json()["type"] == "/problems/invalid-mfa-code"
    # An older step than the last accepted one is a replay too.
    older = await client.post("/api/v1/auth/mfa/verify", headers=headers,
                              json={"code": totp_code(account, -1)})
    assert older.status_code == 400
    newer = await client.post("/api/v1/auth/mfa/verify", headers=headers,
                              json={"code": totp_code(account, +1)})
    assert newer.status_code == 200


async def test_wrong_code_is_refused(client: httpx.AsyncClient, db: Database) -> None:
    account = await make_user(db, totp=True)
    await sign_in(client, account, mfa=False)
    code = totp_code(account)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    response = await client.post("/api/v1/auth/mfa/verify", json={"code": wrong},
                                 headers=account.headers)
    assert response.status_code == 400


async def test_aal1_session_of_an_mfa_user_can_only_finish_signing_in(
    client: httpx.AsyncClient, db: Database
) -> None:
    account = await sign_in(client, await make_user(db, totp=True), mfa=False)
    assert (await client.get("/api/v1/me", headers=account.headers)).status_code == 200
    for method, path in [("GET", "/api/v1/me/sessions"), ("GET", "/api/v1/me/export"),
                         ("PATCH", "/api/v1/me")]:
        response = await client.request(method, path, headers=account.headers, json={})
        assert response.status_code == 403, path
        assert response.json()["type"] == "/problems/mfa-required"


async def test_recovery_codes_work_once(client: httpx.AsyncClient, db: Database) -> None:
    account = await sign_in(client, await make_user(db))
    _, result = await enrol(client, account.headers)
    code = result["activation"]["recovery_codes"][3]
    login = await client.post("/api/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    ok = await client.post("/api/v1/auth/mfa/verify", json={"recovery_code": code.upper()},
                           headers=headers)
    assert ok.status_code == 200
    assert aal(ok.json()["access_token"]) == "aal2"
    login = await client.post("/api/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert (await client.post("/api/v1/auth/mfa/verify", json={"recovery_code": code},
                              headers=headers)).status_code == 400


async def test_disable_needs_password_and_code(client: httpx.AsyncClient, db: Database) -> None:
    account = await sign_in(client, await make_user(db))
    totp, result = await enrol(client, account.headers)
    headers = {"Authorization": f"Bearer {result['activation']['access_token']}"}
    bad = await client.post("/api/v1/me/mfa/totp/disable", headers=headers,
                            json={"current_password": "wrong password!", "code": totp.now()})
    assert bad.status_code == 422
    ok = await client.post("/api/v1/me/mfa/totp/disable", headers=headers,
                           json={"current_password": PASSWORD, "code": totp.now()})
    assert ok.status_code == 204
    login = await client.post("/api/v1/auth/login", json={"email": account.email, "password": PASSWORD})
    assert login.json()["next_step"] is None


async def test_admin_routes_require_totp(client: httpx.AsyncClient, db: Database) -> None:
    plain_admin = await sign_in(client, await make_user(db, role=Role.admin))
    response = await client.get("/api/v1/admin/users", headers=plain_admin.headers)
    assert response.status_code == 403
    assert response.json()["type"] == "/problems/mfa-enrolment-required"

    admin = await make_user(db, role=Role.admin, totp=True)
    await sign_in(client, admin, mfa=False)
    response = await client.get("/api/v1/admin/users", headers=admin.headers)
    assert response.json()["type"] == "/problems/mfa-required"
    await sign_in(client, admin)
    assert (await client.get("/api/v1/admin/users", headers=admin.headers)).status_code == 200


async def test_admin_changes_a_role_with_an_audit_row(client: httpx.AsyncClient,
                                                      db: Database) -> None:
    from sqlalchemy import select

    from tutorapp.core.audit import AuditEvent

    admin = await sign_in(client, await make_user(db, role=Role.admin, totp=True))
    target = await make_user(db, role=Role.student)
    response = await client.patch(f"/api/v1/admin/users/{target.user.id}/role",
                                  json={"role": "tutor"}, headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["role"] == "tutor"
    async with db.session() as session:
        event = await session.scalar(select(AuditEvent).where(AuditEvent.action == "user.role_changed"))
    assert event.actor_id == admin.user.id
    assert event.subject_id == str(target.user.id)
    assert event.data == {"old": "student", "new": "tutor"}
    listed = await client.get("/api/v1/admin/users", params={"role": "tutor"}, headers=admin.headers)
    assert [u["id"] for u in listed.json()] == [str(target.user.id)]


async def test_turning_mfa_on_can_end_every_other_session(client: httpx.AsyncClient,
                                                          db: Database) -> None:
    account = await make_user(db)
    elsewhere = (await sign_in(client, account)).access_token
    here = await sign_in(client, account)
    started = await client.post("/api/v1/me/mfa/totp/enroll", headers=here.headers,
                                json={"current_password": PASSWORD})
    totp = pyotp.TOTP(started.json()["secret"])
    activated = await client.post("/api/v1/me/mfa/totp/activate", headers=here.headers,
                                  json={"code": totp.now(), "sign_out_others": True})
    assert activated.status_code == 200
    assert (await client.get("/api/v1/me", headers={
        "Authorization": f"Bearer {elsewhere}"})).status_code == 401
    assert (await client.get("/api/v1/me", headers={
        "Authorization": f"Bearer {activated.json()['access_token']}"})).status_code == 200
