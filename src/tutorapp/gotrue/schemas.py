"""Request bodies of Supabase Auth's API, with GoTrue's field names.

Fields the clients always send but we do not use (`gotrue_meta_security`, `channel`,
`phone`) are accepted and ignored, as GoTrue ignores what it has not configured.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tutorapp.accounts.schemas import Locale
from tutorapp.core.fields import Name, TimeZone

Text = Field(default=None, max_length=1024)


class UserMetadata(BaseModel):
    """The `data` (user_metadata) keys TutorApp keeps; other keys are ignored.

    Apps send the name as `display_name`, `full_name` or `name`. The values pass the same
    field types as the account API, so a name that is too long is refused, never cut;
    a blank value counts as absent."""

    model_config = ConfigDict(extra="ignore")
    display_name: Name | None = None
    full_name: Name | None = None
    name: Name | None = None
    role: Literal["student", "parent", "tutor"] | None = None
    time_zone: TimeZone | None = None
    locale: Locale | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def profile_name(self) -> str | None:
        return self.display_name or self.full_name or self.name


class FlowBody(BaseModel):
    """What the clients add to requests that email a link (captcha, PKCE challenge)."""

    gotrue_meta_security: dict[str, Any] | None = None
    code_challenge: str | None = Field(default=None, max_length=128)
    code_challenge_method: str | None = Field(default=None, max_length=10)


class SignupIn(FlowBody):
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    password: str | None = Text
    data: UserMetadata | None = None


class PasswordGrantIn(BaseModel):
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    password: str | None = Text
    gotrue_meta_security: dict[str, Any] | None = None


class RefreshGrantIn(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=200)


class PKCEGrantIn(BaseModel):
    auth_code: str | None = Field(default=None, max_length=200)
    code_verifier: str | None = Field(default=None, max_length=128)


class OtpIn(FlowBody):
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    create_user: bool = True
    data: dict[str, Any] | None = None
    channel: str | None = Field(default=None, max_length=16)


VerifyType = Literal["signup", "invite", "magiclink", "recovery", "email_change", "email",
                     "sms", "phone_change"]


class VerifyIn(BaseModel):
    type: VerifyType
    token: str | None = Field(default=None, max_length=200)
    token_hash: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    redirect_to: str | None = Field(default=None, max_length=2048)
    gotrue_meta_security: dict[str, Any] | None = None


class RecoverIn(FlowBody):
    email: str | None = Field(default=None, max_length=320)


class UserUpdateIn(FlowBody):
    email: str | None = Field(default=None, max_length=320)
    password: str | None = Text
    current_password: str | None = Text
    nonce: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=32)
    data: UserMetadata | None = None


class FactorIn(BaseModel):
    factor_type: Literal["totp", "phone", "webauthn"]
    friendly_name: str | None = Field(default=None, max_length=100)
    issuer: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=32)


class FactorVerifyIn(BaseModel):
    challenge_id: str = Field(max_length=64)
    code: str = Field(max_length=16)
