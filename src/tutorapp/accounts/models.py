"""Accounts: users, login sessions, refresh tokens, one-time tokens, MFA codes."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tutorapp.auth.roles import Role
from tutorapp.core.models import Entity, enum_column


class TokenPurpose(enum.StrEnum):
    verify_email = "verify_email"
    reset_password = "reset_password"
    magic_link = "magic_link"
    email_code = "email_code"
    change_email = "change_email"
    mfa_challenge = "mfa_challenge"  # a GoTrue MFA challenge id (/auth/v1/factors)
    pkce_code = "pkce_code"  # an auth code for /auth/v1/token?grant_type=pkce



class User(Entity):
    __tablename__ = "users"

    # Lower-cased on the way in; NULL for a child account managed by a parent.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    email_verified_at: Mapped[datetime | None]
    password_hash: Mapped[str | None]
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[Role] = mapped_column(enum_column(Role, 32))
    time_zone: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # TOTP secret encrypted with a key derived from TUTORAPP_SECRET_KEY.
    totp_secret_encrypted: Mapped[str | None]
    totp_enabled_at: Mapped[datetime | None]
    # The last accepted TOTP time step: a code is accepted once, never replayed.
    totp_last_step: Mapped[int | None]
    password_changed_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]

    @property
    def mfa_enabled(self) -> bool:
        return self.totp_enabled_at is not None


class AuthSession(Entity):
    """A login: shared by the browser cookie and the API's refresh tokens."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index("ix_auth_sessions_user_id", "user_id", "revoked_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    aal: Mapped[str] = mapped_column(String(8), default="aal1")
    # Methods and when each was used: "password:1764640000,totp:1764640042" (see sessions).
    amr: Mapped[str] = mapped_column(String(100))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    # The browser cookie's opaque token, hashed; NULL for API-only sessions.
    cookie_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    authenticated_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # absolute lifetime
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(40))


class RefreshToken(Entity):
    """Opaque refresh tokens, stored only as SHA-256 hashes, rotated on every use."""

    __tablename__ = "refresh_tokens"

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    rotated_at: Mapped[datetime | None]


class OneTimeToken(Entity):
    """Single-use, expiring secrets sent by email (links and 6-digit codes)."""

    __tablename__ = "one_time_tokens"
    __table_args__ = (
        UniqueConstraint("purpose", "token_hash"),
        Index("ix_one_time_tokens_user_purpose", "user_id", "purpose"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[TokenPurpose] = mapped_column(enum_column(TokenPurpose, 32))
    token_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    new_email: Mapped[str | None] = mapped_column(String(320))  # for change_email
    attempts: Mapped[int] = mapped_column(default=0)


class RecoveryCode(Entity):
    __tablename__ = "mfa_recovery_codes"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None]
