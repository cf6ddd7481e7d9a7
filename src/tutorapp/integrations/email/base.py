"""What an email provider does, and how it says that a failure is final."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from tutorapp.core.errors import PermanentFailure


@dataclass(frozen=True)
class OutgoingEmail:
    id: str  # our EmailMessage id: the idempotency key at the provider
    sender: str
    to: str
    subject: str
    html: str
    text: str
    attachments: list[dict[str, Any]] = field(default_factory=list)


class EmailDeliveryError(Exception):
    """A failure worth retrying (network, timeout, 5xx, rate limit)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EmailRejected(PermanentFailure):
    """The provider refused the message for good (4xx): retrying cannot help."""


class EmailProvider(Protocol):
    name: str

    async def send(self, email: OutgoingEmail) -> str:
        """Hand the message over; returns the provider's message id."""
        ...

    async def send_batch(self, emails: list[OutgoingEmail]) -> list[str]:
        """Hand several messages over at once; ids in the same order."""
        ...
