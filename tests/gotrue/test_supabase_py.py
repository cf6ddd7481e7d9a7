"""supabase-py's auth client (supabase-auth, from PyPI), unchanged, against TutorApp."""

from __future__ import annotations

import httpx
import jwt
import pyotp
import pytest
from supabase_auth import AsyncGoTrueClient
from supabase_auth.errors import AuthApiError

from tests.gotrue.conftest import ANON_KEY, PASSWORD, SCALE, Live


def client_for(live: Live) -> AsyncGoTrueClient:
    # What `supabase.create_client(url, key)` gives its auth client: the key twice. The
    # HTTP client is the library's default but for the timeout: argon2 on a loaded CI
    # machine can take longer than httpx's 5 s.
    return AsyncGoTrueClient(
        url=live.auth_url, auto_refresh_token=False, persist_session=False,
        headers={"apikey": ANON_KEY, "Authorization": f"Bearer {ANON_KEY}"},
        http_client=httpx.AsyncClient(timeout=30 * SCALE, follow_redirects=True, http2=True),
    )


def claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def test_sign_up_confirm_sign_in_refresh_mfa_sign_out(live: Live) -> None:
    email = "py.flow@example.com"
    auth = client_for(live)
    events: list[str] = []
    auth.on_auth_state_change(lambda event, session: events.append(event))

    signed_up = await auth.sign_up({"email": email, "password": PASSWORD,
                                    "options": {"data": {"display_name": "Py Flow"}}})
    assert signed_up.session is None  # confirmation is required on this server
    assert signed_up.user is not None and signed_up.user.email == email
    assert signed_up.user.email_confirmed_at is None
    assert signed_up.user.user_metadata["display_name"] == "Py Flow"

    with pytest.raises(AuthApiError) as refused:
        await auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert (refused.value.status, refused.value.code) == (400, "email_not_confirmed")

    confirmed = await auth.verify_otp({
        "type": "signup", "token_hash": await live.mail_link_token(email, "auth/verify_email"),
    })
    assert confirmed.user is not None and confirmed.user.email_confirmed_at is not None
    await auth.sign_out()

    with pytest.raises(AuthApiError) as wrong:
        await auth.sign_in_with_password({"email": email, "password": "not the password"})
    assert (wrong.value.status, wrong.value.code, wrong.value.message) == (
        400, "invalid_credentials", "Invalid login credentials")

    signed_in = await auth.sign_in_with_password({"email": email, "password": PASSWORD})
    session = signed_in.session
    assert session is not None and session.token_type == "bearer"
    token = claims(session.access_token)
    assert (token["role"], token["aal"], token["email"]) == ("authenticated", "aal1", email)
    assert token["app_metadata"]["role"] == "student"
    assert [m["method"] for m in token["amr"]] == ["password"]

    user = await auth.get_user()
    assert user is not None and user.user.id == token["sub"]

    # The same token works on our own API.
    async with httpx.AsyncClient(base_url=live.url, timeout=30 * SCALE) as http:
        me = await http.get("/api/v1/me",
                            headers={"Authorization": f"Bearer {session.access_token}"})
    assert me.status_code == 200 and me.json()["email"] == email

    refreshed = await auth.refresh_session()
    assert refreshed.session is not None
    assert refreshed.session.refresh_token != session.refresh_token
    assert claims(refreshed.session.access_token)["amr"] == token["amr"]  # not re-stamped

    updated = await auth.update_user({"data": {"display_name": "Py Renamed"},
                                      "password": PASSWORD + "!", "current_password": PASSWORD})
    assert updated.user.user_metadata["display_name"] == "Py Renamed"

    enrolled = await auth.mfa.enroll({"factor_type": "totp", "friendly_name": "phone"})
    assert enrolled.totp is not None
    assert enrolled.totp.qr_code.startswith("data:image/svg+xml;utf-8,<svg")
    totp = pyotp.TOTP(enrolled.totp.secret)
    verified = await auth.mfa.challenge_and_verify({"factor_id": enrolled.id,
                                                    "code": totp.now()})
    assert claims(verified.access_token)["aal"] == "aal2"
    level = await auth.mfa.get_authenticator_assurance_level()
    assert (level.current_level, level.next_level) == ("aal2", "aal2")
    assert [m.method for m in level.current_authentication_methods] == ["password", "totp"]

    await auth.sign_out()
    assert await auth.get_session() is None
    async with httpx.AsyncClient(base_url=live.url, timeout=30 * SCALE) as http:
        after = await http.get("/api/v1/me",
                               headers={"Authorization": f"Bearer {verified.access_token}"})
    assert after.status_code == 401
    assert events == ["SIGNED_IN", "SIGNED_OUT", "SIGNED_IN", "TOKEN_REFRESHED", "USER_UPDATED",
                      "MFA_CHALLENGE_VERIFIED", "SIGNED_OUT"]
    again = await auth.sign_in_with_password({"email": email, "password": PASSWORD + "!"})
    assert again.session is not None
    assert claims(again.session.access_token)["aal"] == "aal1"  # TOTP is next


async def test_sign_in_with_email_code_then_second_factor(live: Live) -> None:
    email = "py.otp@example.com"
    auth = client_for(live)
    await auth.sign_up({"email": email, "password": PASSWORD})
    await auth.sign_in_with_otp({"email": email})
    signed_in = await auth.verify_otp({"type": "email", "email": email,
                                       "token": await live.mail_code(email)})
    assert signed_in.session is not None
    assert [m["method"] for m in claims(signed_in.session.access_token)["amr"]] == ["otp"]
    assert signed_in.user is not None and signed_in.user.email_confirmed_at is not None

    with pytest.raises(AuthApiError) as too_soon:
        await auth.sign_in_with_otp({"email": email})
    assert (too_soon.value.status, too_soon.value.code) == (429, "over_email_send_rate_limit")
