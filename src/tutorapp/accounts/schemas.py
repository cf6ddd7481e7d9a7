"""Request and response bodies of the auth and account API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from tutorapp.accounts.models import Role

Password = Field(min_length=1, max_length=1024)  # the policy itself is checked by the service


class SignupIn(BaseModel):
    email: EmailStr
    password: str = Password
    display_name: str = Field(min_length=1, max_length=100)
    role: Literal["student", "parent", "tutor"] = "student"
    time_zone: str = Field(default="UTC", max_length=64)
    locale: str = Field(default="en", max_length=16)


class LoginIn(BaseModel):
    email: EmailStr
    password: str = Password


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutIn(BaseModel):
    scope: Literal["local", "others", "global"] = "local"


class TokenIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)


class EmailIn(BaseModel):
    email: EmailStr


class OtpIn(BaseModel):
    email: EmailStr


class OtpVerifyIn(BaseModel):
    """Either the 6-digit code with the address, or the magic link's token."""

    email: EmailStr | None = None
    code: str | None = Field(default=None, pattern=r"^\d{6}$")
    token: str | None = Field(default=None, max_length=200)


class ResetPasswordIn(BaseModel):
    token: str = Field(min_length=1, max_length=200)
    password: str = Password


class ReauthIn(BaseModel):
    current_password: str = Password


class ChangePasswordIn(ReauthIn):
    new_password: str = Password
    sign_out_others: bool = False


class ChangeEmailIn(ReauthIn):
    new_email: EmailStr
    sign_out_others: bool = False


class MfaCodeIn(BaseModel):
    code: str | None = Field(default=None, pattern=r"^\d{6}$")
    recovery_code: str | None = Field(default=None, max_length=40)


class DisableMfaIn(ReauthIn):
    code: str = Field(pattern=r"^\d{6}$")
    sign_out_others: bool = False


class ActivateMfaIn(BaseModel):
    code: str = Field(pattern=r"^\d{6}$")
    sign_out_others: bool = False


class ProfileUpdate(BaseModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    time_zone: str | None = Field(default=None, max_length=64)
    locale: str | None = Field(default=None, max_length=16)


class ChildIn(BaseModel):
    display_name: str = Field(min_length=1, max_length=100)
    time_zone: str | None = Field(default=None, max_length=64)
    email: EmailStr | None = None


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
