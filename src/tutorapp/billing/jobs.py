"""Background functions of billing.

- Webhooks are applied by the inbox's `webhooks.process` (`billing.webhooks.apply`).
- `billing.settle_booking`: pay a held booking from the wallet, or settle its credit
  when the booking ends (subscribed to scheduling's `booking.*` events).
- `billing.sweep` (every minute): bookings a lost event left behind, earnings past
  their hold time, credits past their expiry.
- `billing.reconcile` (every 10 minutes): orders, invoices and subscriptions the
  provider has and the inbox lacks (a webhook Lemon Squeezy gave up on).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from tutorapp.billing import bookings, credits, earnings, reconcile
from tutorapp.core.time import utcnow
from tutorapp.jobs.registry import function, step
from tutorapp.jobs.runtime import runtime

SETTLE_BOOKING = "billing.settle_booking"
# Scheduling events after which a booking's credit may need settling.
BOOKING_EVENTS = frozenset({"booking.held", "booking.completed", "booking.no_show",
                            "booking.cancelled", "booking.expired"})


async def _settle(booking_id: str) -> str:
    async with runtime.database().unit_of_work() as session:
        return await settle_or_pay(session, uuid.UUID(booking_id), now=utcnow())


async def settle_or_pay(session: Any, booking_id: uuid.UUID, *, now: datetime) -> str:
    """A held booking is paid from the wallet when it has a credit; an ended one has
    its credit consumed or returned."""
    from tutorapp.scheduling.models import Booking, BookingStatus

    booking = await session.get(Booking, booking_id)
    if booking is not None and booking.status == BookingStatus.held:
        wallet = await bookings.wallet_of_booking(session, runtime.settings, booking)
        if not await credits.available(session, wallet.id, now):
            return "awaiting payment"
        return await bookings.pay_held_booking(session, wallet, booking_id, now=now,
                                               actor_id=None)
    return await bookings.settle(session, runtime.settings, booking_id, now=now)


@function(SETTLE_BOOKING, on=sorted(BOOKING_EVENTS), concurrency=10)
async def settle_booking(event: dict[str, Any]) -> str:
    """Scheduling's durable `booking.*` events (stored with the transition, started
    after its commit, once per event): pay a held booking from the wallet, or settle
    an ended booking's credit. Safe to run twice: it looks at the booking's status."""
    return await step("billing.settle", _settle, str(event["data"]["booking_id"]))


async def _sweep() -> dict[str, int]:
    now = utcnow()
    async with runtime.database().session() as session:
        ended = await bookings.unsettled(session)
    for booking_id in ended:
        async with runtime.database().unit_of_work() as session:
            await bookings.settle(session, runtime.settings, booking_id, now=now)
    async with runtime.database().unit_of_work() as session:
        released = await earnings.release_due(session, now=now)
        expired = await credits.expire_due(session, now=now)
    return {"bookings": len(ended), "earnings_released": released, "credits_expired": expired}


@function("billing.sweep", cron="* * * * *", concurrency=1)
async def sweep(scheduled_at: datetime) -> dict[str, int]:
    """Every minute: unsettled bookings, due earnings, expired credits."""
    return await step("billing.sweep", _sweep)


async def _reconcile() -> dict[str, int]:
    return await reconcile.run(runtime.database(), runtime.settings, now=utcnow())


@function("billing.reconcile", cron="*/10 * * * *", concurrency=1)
async def reconcile_with_provider(scheduled_at: datetime) -> dict[str, int]:
    """Every 10 minutes: what the provider has and the inbox lacks goes in the inbox."""
    return await step("billing.reconcile", _reconcile)
