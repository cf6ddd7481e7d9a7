"""SMTP delivery with aiosmtplib (STARTTLS or implicit TLS, optional login)."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from email.utils import parseaddr

import aiosmtplib

from tutorapp.config import Settings
from tutorapp.integrations.email.base import EmailDeliveryError, EmailRejected, OutgoingEmail


def message_id(email: OutgoingEmail, fallback_domain: str) -> str:
    """`<outbox message id@sender's domain>`: the same for every send of one outbox
    message, so a send repeated after a crash is recognised as a duplicate by
    receivers (RFC 5322 3.6.4)."""
    domain = parseaddr(email.sender)[1].rpartition("@")[2] or fallback_domain
    return f"<{email.id}@{domain}>"


def build_message(email: OutgoingEmail, *, domain: str = "localhost") -> EmailMessage:
    message = EmailMessage()
    message["From"] = email.sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Message-ID"] = message_id(email, domain)
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    for attachment in email.attachments:
        maintype, _, subtype = attachment.get("content_type", "text/plain").partition("/")
        content = attachment["content"]
        data = base64.b64decode(content) if attachment.get("base64") else content.encode()
        message.add_attachment(data, maintype=maintype, subtype=subtype or "plain",
                               filename=attachment["filename"])
    return message


class SMTPProvider:
    name = "smtp"

    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:  # the settings refuse smtp without a host
            raise ValueError("TUTORAPP_SMTP_HOST must be set to send through SMTP")
        self.settings = settings
        self.host = settings.smtp_host

    async def send(self, email: OutgoingEmail) -> str:
        s = self.settings
        message = build_message(email, domain=self.host)
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password,
                use_tls=s.smtp_implicit_tls,
                start_tls=s.smtp_starttls and not s.smtp_implicit_tls,
                timeout=s.smtp_timeout_seconds,
                cert_bundle=s.smtp_ca_file,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [error.code for error in exc.recipients]
            if all(500 <= code < 600 for code in codes):
                raise EmailRejected(f"recipient refused: {exc}") from exc
            raise EmailDeliveryError(f"recipient deferred: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600 and not isinstance(exc, aiosmtplib.SMTPAuthenticationError):
                raise EmailRejected(f"SMTP {exc.code}: {exc.message}") from exc
            raise EmailDeliveryError(f"SMTP {exc.code}: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise EmailDeliveryError(f"SMTP unavailable: {exc}") from exc
        return message["Message-ID"]

    async def send_batch(self, emails: list[OutgoingEmail]) -> list[str]:
        return [await self.send(email) for email in emails]
