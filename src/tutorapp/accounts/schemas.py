"""Request and response bodies of the auth and account API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from tutorapp.auth.roles import Role
from tutorapp.core.fields import Email, Name, Password, Text, TimeZone, Token

Locale = Annotated[str, Text(16, min_length=1)]
Code = Annotated[str, Field(pattern=r"^\d{6}$", description="the 6 digits of the code")]


class SignupIn(BaseModel):
    email: Email
    password: Password
    display_name: Name
    role: Literal["student", "parent", "tutor"] = "student"
    time_zone: TimeZone = "UTC"
    locale: Locale = "en"


class LoginIn(BaseModel):
    email: Email
    password: Password


class RefreshIn(BaseModel):
    refresh_token: Token


class LogoutIn(BaseModel):
    scope: Literal["local", "others", "global"] = "local"


class TokenIn(BaseModel):
    token: Token


class EmailIn(BaseModel):
    email: Email


class OtpIn(BaseModel):
    email: Email


class OtpVerifyIn(BaseModel):
    """Either the 6-digit code with the address, or the magic link's token."""

    email: Email | None = None
    code: Code | None = None
    token: Token | None = None


class ResetPasswordIn(BaseModel):
    token: Token
    password: Password


class ReauthIn(BaseModel):
    current_password: Password


class ChangePasswordIn(ReauthIn):
    new_password: Password
    sign_out_others: bool = False


class ChangeEmailIn(ReauthIn):
    new_email: Email
    sign_out_others: bool = False


class MfaCodeIn(BaseModel):
    code: Code | None = None
    recovery_code: Annotated[str, Text(40, min_length=1)] | None = None


class DisableMfaIn(ReauthIn):
    code: Code
    sign_out_others: bool = False


class ActivateMfaIn(BaseModel):
    code: Code
    sign_out_others: bool = False


class ProfileUpdate(BaseModel):
    display_name: Name | None = None
    time_zone: TimeZone | None = None
    locale: Locale | None = None


class ChildIn(BaseModel):
    display_name: Name
    time_zone: TimeZone | None = None
    email: Email | None = None


class RoleChangeIn(BaseModel):
    role: Role


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str | None
    email_verified: bool
    display_name: str
    role: Role
    time_zone: str
    locale: str
    parent_id: uuid.UUID | None
    mfa_enabled: bool
    created_at: datetime


class TokensOut(BaseModel):
    """The OAuth 2 / GoTrue token response."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    expires_at: int
    refresh_token: str
    user: UserOut
    # "mfa" when the account has TOTP and this session must still verify it.
    next_step: Literal["mfa"] | None = None


class SessionOut(BaseModel):
    id: uuid.UUID
    device: str
    ip: str | None
    aal: str
    created_at: datetime
    last_seen_at: datetime
    current: bool


class TotpEnrolmentOut(BaseModel):
    secret: str
    otpauth_uri: str
    qr_code: str  # data: URI of an SVG image


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str]


class TokensWithCodesOut(TokensOut):
    recovery_codes: list[str]


class MessageOut(BaseModel):
    message: str
