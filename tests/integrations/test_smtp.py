"""SMTP delivery against a real SMTP server (aiosmtpd) with STARTTLS and login."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import make_settings
from tutorapp.integrations.email.base import EmailDeliveryError, EmailRejected, OutgoingEmail
from tutorapp.integrations.email.smtp import SMTPProvider

USER, PASSWORD = "mailer", "s3cret-pass"


def self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


class Inbox:
    def __init__(self, reject: str | None = None) -> None:
        self.messages: list[tuple[str, list[str], Message]] = []
        self.reject = reject

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject and address == self.reject:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(envelope.content)))
        return "250 Message accepted"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode(), auth_data.password.decode()) == (USER, PASSWORD)
    return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[Inbox, int, Path]]:
    import ssl

    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox(reject="nobody@example.org")
    port = free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True,
        authenticator=authenticate, auth_required=True,
    )
    controller.start()
    try:
        yield inbox, port, cert
    finally:
        controller.stop()


def email(to: str = "ada@example.org") -> OutgoingEmail:
    return OutgoingEmail(
        id="0b4f9b0c-6a55-4f0e-9d43-1f7c1d1b2e01", sender="TutorApp <hello@tutorapp.test>",
        to=to, subject="Lesson tomorrow", html="<p>See you <b>tomorrow</b>.</p>",
        text="See you tomorrow.",
        attachments=[{"filename": "lesson.ics", "content_type": "text/calendar",
                      "content": "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"}],
    )


def provider(port: int, cert: Path, **overrides: object) -> SMTPProvider:
    values = {"email_provider": "smtp", "smtp_host": "localhost", "smtp_port": port,
              "smtp_username": USER, "smtp_password": PASSWORD, "smtp_ca_file": str(cert)}
    return SMTPProvider(make_settings("sqlite:///unused.db", **(values | overrides)))


async def test_a_message_goes_out_over_starttls_with_login(smtp_server) -> None:
    inbox, port, cert = smtp_server
    message_id = await provider(port, cert).send(email())
    assert len(inbox.messages) == 1
    sender, recipients, message = inbox.messages[0]
    assert (sender, recipients) == ("hello@tutorapp.test", ["ada@example.org"])
    assert message["Subject"] == "Lesson tomorrow"
    assert message["Message-ID"] == message_id
    assert "0b4f9b0c-6a55-4f0e-9d43-1f7c1d1b2e01" in message_id
    parts = {part.get_content_type(): part for part in message.walk()}
    assert parts["text/plain"].get_payload(decode=True).decode().strip() == "See you tomorrow."
    assert "<b>tomorrow</b>" in parts["text/html"].get_payload(decode=True).decode()
    assert parts["text/calendar"].get_filename() == "lesson.ics"


async def test_a_refused_recipient_is_a_permanent_failure(smtp_server) -> None:
    inbox, port, cert = smtp_server
    with pytest.raises(EmailRejected, match="550"):
        await provider(port, cert).send(email(to="nobody@example.org"))
    assert inbox.messages == []


async def test_wrong_credentials_and_an_unreachable_server_are_retryable(smtp_server) -> None:
    inbox, port, cert = smtp_server
    with pytest.raises(EmailDeliveryError):
        await provider(port, cert, smtp_password="wrong").send(email())
    with pytest.raises(EmailDeliveryError):
        await provider(free_port(), cert, smtp_timeout_seconds=2).send(email())
    assert inbox.messages == []


async def test_an_untrusted_certificate_is_refused(smtp_server) -> None:
    inbox, port, _ = smtp_server
    with pytest.raises(EmailDeliveryError):
        await provider(port, Path("/nonexistent"), smtp_ca_file=None).send(email())
    assert inbox.messages == []


async def test_a_resent_message_keeps_its_message_id(smtp_server) -> None:
    """A send repeated after a crash carries the same Message-ID, derived from the outbox
    message's id, so receivers can drop the duplicate."""
    inbox, port, cert = smtp_server
    first = await provider(port, cert).send(email())
    again = await provider(port, cert).send(email())
    assert first == again == "<0b4f9b0c-6a55-4f0e-9d43-1f7c1d1b2e01@tutorapp.test>"
    assert [m["Message-ID"] for _, _, m in inbox.messages] == [first, first]
