"""Keyword-only factories for test data, written through the services or models."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import httpx
import pyotp
from sqlalchemy import select

from tutorapp.accounts.models import User
from tutorapp.auth.roles import Role
from tutorapp.core.db import Database
from tutorapp.core.security import encrypt, hash_password
from tutorapp.core.time import utcnow
from tutorapp.notifications.models import EmailMessage

PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


@dataclass
class Account:
    user: User
    email: str | None
    password: str
    totp: pyotp.TOTP | None = None
    access_token: str | None = None
    refresh_token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        assert self.access_token, "sign in first"
        return {"Authorization": f"Bearer {self.access_token}"}


async def make_user(
    db: Database, *, role: Role = Role.student, email: str | None = None,
    password: str = PASSWORD, display_name: str | None = None, time_zone: str = "UTC",
    verified: bool = True, totp: bool = False, parent: User | None = None,
) -> Account:
    n = next(_counter)
    email = email if email is not None else f"{role.value}{n}@example.com"
    secret = pyotp.random_base32() if totp else None
    async with db.unit_of_work() as session:
        user = User(
            email=email.lower() if email else None,
            password_hash=hash_password(password) if password else None,
            display_name=display_name or f"{role.value.title()} {n}", role=role,
            time_zone=time_zone, locale="en", email_verified_at=utcnow() if verified else None,
            parent_id=parent.id if parent else None,
        )
        if secret:
            user.totp_secret_encrypted = encrypt(db.settings, secret)
            user.totp_enabled_at = utcnow()
        session.add(user)
    return Account(user=user, email=email, password=password,
                   totp=pyotp.TOTP(secret) if secret else None)


def totp_code(account: Account, steps_from_now: int = 0) -> str:
    assert account.totp
    return account.totp.at(time.time() + 30 * steps_from_now)


async def sign_in(client: httpx.AsyncClient, account: Account, *, mfa: bool = True,
                  totp_step: int = 0) -> Account:
    """Password login through the API (then TOTP when the account has it)."""
    response = await client.post(
        "/api/v1/auth/login", json={"email": account.email, "password": account.password}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    account.access_token, account.refresh_token = body["access_token"], body["refresh_token"]
    if mfa and body["next_step"] == "mfa":
        response = await client.post(
            "/api/v1/auth/mfa/verify", json={"code": totp_code(account, totp_step)},
            headers=account.headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        account.access_token, account.refresh_token = body["access_token"], body["refresh_token"]
    return account


async def emails_to(db: Database, address: str) -> list[EmailMessage]:
    async with db.session() as session:
        rows = await session.scalars(
            select(EmailMessage).where(EmailMessage.to_address == address.lower())
            .order_by(EmailMessage.created_at)
        )
        return list(rows)


async def last_email(db: Database, address: str, template: str) -> EmailMessage:
    matching = [m for m in await emails_to(db, address) if m.template == template]
    assert matching, f"no {template} email to {address}"
    return matching[-1]


def link_token(message: EmailMessage) -> str:
    import re

    match = re.search(r"[?&]token=([\w-]+)", message.text)
    assert match, message.text
    return match.group(1)
