"""The embedded default: the `email_messages` table is the outbox, and the dev
mailbox (`/dev/mailbox`) shows what was "sent". Nothing leaves the machine."""

from __future__ import annotations

from tutorapp.integrations.email.base import OutgoingEmail


class OutboxProvider:
    name = "outbox"

    async def send(self, email: OutgoingEmail) -> str:
        return f"outbox-{email.id}"

    async def send_batch(self, emails: list[OutgoingEmail]) -> list[str]:
        return [await self.send(email) for email in emails]
