"""Email delivery providers: `outbox` (embedded default), `smtp`, `resend`."""

from __future__ import annotations

from tutorapp.config import Settings
from tutorapp.integrations.email.base import EmailProvider


def get_provider(settings: Settings) -> EmailProvider:
    if settings.email_provider == "smtp":
        from tutorapp.integrations.email.smtp import SMTPProvider

        return SMTPProvider(settings)
    if settings.email_provider == "resend":
        from tutorapp.integrations.email.resend import ResendProvider

        return ResendProvider(settings)
    from tutorapp.integrations.email.local import OutboxProvider

    return OutboxProvider()
