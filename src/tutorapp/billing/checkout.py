"""Starting a purchase: a provider checkout carrying our user (and booking) ids.

Two steps around the provider call, so that the call (up to its timeout) never
runs inside the request's transaction: `prepare` checks and builds the request,
the caller ends its transaction and calls the provider, `record` stores the
checkout. A checkout started from a held booking carries, in `custom_data`, the
ids of every held booking it pays for (the booking, and the held rest of its
weekly series) in the order they are paid, and expires when the hold does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.billing import credits, plans
from tutorapp.billing.models import Checkout, Subscription, SubscriptionStatus, Wallet
from tutorapp.config import BillingPlan, Settings
from tutorapp.core.audit import record as audit
from tutorapp.core.errors import Conflict, InvalidInput
from tutorapp.integrations.payments.base import CheckoutCreated, CheckoutRequest

LIVE = (SubscriptionStatus.on_trial, SubscriptionStatus.active, SubscriptionStatus.past_due,
        SubscriptionStatus.paused, SubscriptionStatus.unpaid)


@dataclass(frozen=True)
class Prepared:
    """A checkout we are about to ask the provider for."""

    id: uuid.UUID
    user_id: uuid.UUID
    plan: BillingPlan
    booking_id: uuid.UUID | None
    booking_ids: list[uuid.UUID]
    request: CheckoutRequest


async def held_bookings_paid_by(session: AsyncSession, booking_id: uuid.UUID, user: User
                                ) -> list[uuid.UUID]:
    """The held bookings a purchase started from this one pays: it, and the held
    lessons of its weekly series for the same student, soonest first."""
    from tutorapp.scheduling import bookings as scheduling
    from tutorapp.scheduling.models import Booking, BookingStatus

    booking = await scheduling.get_for(session, booking_id, user)
    if booking.status != BookingStatus.held:
        raise InvalidInput("booking_id", f"the booking is {booking.status}, not held for payment")
    if booking.series_id is None:
        return [booking.id]
    return list(await session.scalars(
        select(Booking.id).where(Booking.series_id == booking.series_id,
                                 Booking.student_id == booking.student_id,
                                 Booking.status == BookingStatus.held)
        .order_by(Booking.start_at, Booking.id)
    ))


async def prepare(session: AsyncSession, settings: Settings, user: User, *, plan_key: str,
                  booking_id: uuid.UUID | None) -> Prepared:
    """Check the purchase may start and build the provider request (no writes)."""
    plan = plans.by_key(settings, plan_key)
    owner_id = credits.wallet_owner_id(user)
    booking_ids: list[uuid.UUID] = []
    expires_at = None
    if booking_id is not None:
        from tutorapp.scheduling.models import Booking

        booking_ids = await held_bookings_paid_by(session, booking_id, user)
        expires_at = await session.scalar(
            select(Booking.hold_expires_at).where(Booking.id == booking_id))
    if plan.kind == "subscription":
        live = await session.scalar(
            select(Subscription.id).join(Wallet, Wallet.id == Subscription.wallet_id)
            .where(Wallet.owner_id == owner_id, Subscription.status.in_(LIVE))
        )
        if live is not None:
            raise Conflict("This family already has a subscription: change it in the portal.")
    checkout_id = uuid.uuid4()
    custom = {"user_id": str(user.id), "checkout_id": str(checkout_id), "plan": plan.key}
    if booking_id is not None:
        custom["booking_id"] = str(booking_id)
        custom["booking_ids"] = ",".join(str(b) for b in booking_ids)
    base = settings.public_url.rstrip("/")
    request = CheckoutRequest(
        variant_id=plan.variant_id, email=user.email, name=user.display_name, custom=custom,
        # back to the web app: the booking being paid, or the dashboard
        redirect_url=(f"{base}/app/bookings/{booking_id}?paid=1" if booking_id is not None
                      else f"{base}/app"),
        expires_at=expires_at,
    )
    return Prepared(id=checkout_id, user_id=user.id, plan=plan, booking_id=booking_id,
                    booking_ids=booking_ids, request=request)


async def record(session: AsyncSession, prepared: Prepared, created: CheckoutCreated,
                 provider_name: str) -> Checkout:
    """Store the checkout the provider created."""
    checkout = Checkout(id=prepared.id, user_id=prepared.user_id, plan_key=prepared.plan.key,
                        booking_id=prepared.booking_id, provider=provider_name,
                        provider_checkout_id=created.id, url=created.url,
                        custom=dict(prepared.request.custom))
    session.add(checkout)
    await session.flush()
    await audit(session, "billing.checkout_started", subject_type="checkout",
                subject_id=checkout.id, actor_id=prepared.user_id, plan=prepared.plan.key,
                booking_id=str(prepared.booking_id) if prepared.booking_id else None,
                booking_ids=[str(b) for b in prepared.booking_ids])
    return checkout
