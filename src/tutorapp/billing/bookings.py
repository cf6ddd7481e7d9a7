"""Bookings that draw on a wallet: pay a held booking with a credit, and settle the
credit when the booking ends (consumed and earned, or returned).

Scheduling owns bookings; billing calls its service (`mark_paid`) and reacts to its
domain events through the `billing.settle_booking` job, which calls `settle` here.
`settle` looks only at the booking's current status, so it is safe to run twice and
in any order; the `billing.sweep` job settles whatever a lost event left behind."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.billing import credits, earnings
from tutorapp.billing.models import CreditSpend, SpendStatus, Wallet
from tutorapp.config import Settings
from tutorapp.core.errors import Conflict, NotFound
from tutorapp.scheduling import bookings as scheduling
from tutorapp.scheduling.models import Booking, BookingStatus

EARNED = (BookingStatus.completed, BookingStatus.no_show)


async def wallet_of_booking(session: AsyncSession, settings: Settings, booking: Booking
                            ) -> Wallet:
    """The family wallet that pays the booking (kept in the billing currency)."""
    student = await session.get(User, booking.student_id)
    if student is None:
        raise NotFound("No such student.")
    return await credits.wallet_for_owner(session, credits.wallet_owner_id(student),
                                          settings.billing_currency)


async def pay_with_credit(session: AsyncSession, settings: Settings, booking_id: uuid.UUID,
                          caller: User, *, now: datetime) -> Booking:
    """The caller pays their (or their child's) held booking with one credit: every
    lesson costs one, whatever its tutor and length."""
    booking = await scheduling.get_for(session, booking_id, caller)
    if booking.status != BookingStatus.held:
        if await is_paid(session, booking):
            return booking  # paid already (the settling job or a checkout won the race)
        raise Conflict(f"Only a held booking is paid; this one is {booking.status}.")
    wallet = await wallet_of_booking(session, settings, booking)
    await credits.spend(session, wallet, booking.id, now=now, actor_id=caller.id)
    return await scheduling.mark_paid(session, booking.id, now=now)


async def is_paid(session: AsyncSession, booking: Booking) -> bool:
    """Whether a credit of the wallet is on this booking (reserved or consumed)."""
    status = await session.scalar(
        select(CreditSpend.status).where(CreditSpend.booking_id == booking.id))
    return status in (SpendStatus.reserved, SpendStatus.consumed)


async def pay_held_bookings(session: AsyncSession, wallet: Wallet, booking_ids: list[str], *,
                            now: datetime, actor_id: uuid.UUID | None) -> str:
    """Pay the held bookings a purchase was started from, in the given order, each
    with one credit, while credits last; returns what happened."""
    results = [await pay_held_booking(session, wallet, booking_id, now=now, actor_id=actor_id)
               for booking_id in booking_ids]
    if len(results) == 1:
        return results[0]
    confirmed = results.count("booking confirmed")
    return f"{confirmed} of {len(results)} bookings confirmed"


async def pay_held_booking(session: AsyncSession, wallet: Wallet, booking_id: object, *,
                           now: datetime, actor_id: uuid.UUID | None) -> str:
    """A purchase made for a held booking pays it with one of its credits; if the hold
    ended meanwhile, the credit simply stays in the wallet."""
    try:
        booking_uuid = uuid.UUID(str(booking_id).strip())
    except ValueError:
        return "no such booking"
    booking = await session.get(Booking, booking_uuid)
    if booking is None or booking.status != BookingStatus.held:
        return "booking no longer held: the credit stays in the wallet"
    student = await session.get(User, booking.student_id)
    if student is None or credits.wallet_owner_id(student) != wallet.owner_id:
        return "booking of another family: not paid"
    try:
        async with session.begin_nested():
            await credits.spend(session, wallet, booking.id, now=now, actor_id=actor_id)
            await scheduling.mark_paid(session, booking.id, now=now)
    except (Conflict, credits.NoCredits):
        return "hold ended: the credit stays in the wallet"
    return "booking confirmed"


async def settle(session: AsyncSession, settings: Settings, booking_id: uuid.UUID, *,
                 now: datetime) -> str:
    """Bring the booking's credit in line with the booking's status."""
    spent = await session.scalar(select(CreditSpend).where(CreditSpend.booking_id == booking_id))
    if spent is None or spent.status != SpendStatus.reserved:
        return "nothing to settle"
    booking = await session.get(Booking, booking_id)
    if booking is None:
        return "no booking"
    if booking.status in EARNED or (booking.status == BookingStatus.cancelled
                                    and booking.refund is False):
        result = await credits.consume(session, spent)
        if result is None:
            return "nothing to settle"
        lot, value = result
        await earnings.earn(session, settings, booking, spent, lot, value, now=now)
        return "earned"
    if booking.status in (BookingStatus.cancelled, BookingStatus.expired):
        await credits.return_credit(session, spent, reason=f"booking {booking.status}")
        return "credit returned"
    return "open"


async def unsettled(session: AsyncSession, *, limit: int = 500) -> list[uuid.UUID]:
    """Reserved credits whose booking has ended (for the sweep)."""
    ended = [*EARNED, BookingStatus.cancelled, BookingStatus.expired]
    return list(await session.scalars(
        select(CreditSpend.booking_id).join(Booking, Booking.id == CreditSpend.booking_id)
        .where(CreditSpend.status == SpendStatus.reserved, Booking.status.in_(ended))
        .limit(limit)
    ))
