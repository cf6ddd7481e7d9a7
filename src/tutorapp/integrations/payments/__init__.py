"""Payments providers: `sandbox` (embedded default) and `lemonsqueezy`."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.config import Settings
from tutorapp.integrations.payments.base import PaymentsProvider


def get_provider(settings: Settings, session: AsyncSession, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> PaymentsProvider:
    """The configured provider. `transport` reaches our own app in-process (the
    sandbox's webhooks) or, in tests, a mock of Lemon Squeezy."""
    if settings.payments_provider == "lemonsqueezy":
        from tutorapp.integrations.payments.lemonsqueezy import LemonSqueezyProvider

        return LemonSqueezyProvider(settings)
    from tutorapp.integrations.payments.sandbox import SandboxProvider

    return SandboxProvider(settings, session, transport=transport)
