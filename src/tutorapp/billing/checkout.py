"""Starting a purchase: a provider checkout carrying our user (and booking) ids."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.billing import credits, plans
from tutorapp.billing.models import Checkout, Subscription, SubscriptionStatus, Wallet
from tutorapp.config import Settings
from tutorapp.core.audit import record
from tutorapp.core.errors import Conflict, InvalidInput
from tutorapp.integrations.payments.base import CheckoutRequest, PaymentsProvider

LIVE = (SubscriptionStatus.on_trial, SubscriptionStatus.active, SubscriptionStatus.past_due,
        SubscriptionStatus.paused, SubscriptionStatus.unpaid)


async def start(session: AsyncSession, settings: Settings, provider: PaymentsProvider,
                user: User, *, plan_key: str, booking_id: uuid.UUID | None) -> Checkout:
    plan = plans.by_key(settings, plan_key)
    owner_id = credits.wallet_owner_id(user)
    if booking_id is not None:
        from tutorapp.scheduling import bookings as scheduling
        from tutorapp.scheduling.models import BookingStatus

        booking = await scheduling.get_for(session, booking_id, user)
        if booking.status != BookingStatus.held:
            raise InvalidInput("booking_id", f"the booking is {booking.status}, not held for payment")
    if plan.kind == "subscription":
        live = await session.scalar(
            select(Subscription.id).join(Wallet, Wallet.id == Subscription.wallet_id)
            .where(Wallet.owner_id == owner_id, Subscription.status.in_(LIVE))
        )
        if live is not None:
            raise Conflict("This family already has a subscription: change it in the portal.")
    checkout = Checkout(id=uuid.uuid4(), user_id=user.id, plan_key=plan.key, booking_id=booking_id,
                        provider=provider.name)
    custom = {"user_id": str(user.id), "checkout_id": str(checkout.id), "plan": plan.key}
    if booking_id is not None:
        custom["booking_id"] = str(booking_id)
    created = await provider.create_checkout(CheckoutRequest(
        variant_id=plan.variant_id, email=user.email, name=user.display_name, custom=custom,
        # back to the web app: the booking being paid, or the dashboard
        redirect_url=(f"{settings.public_url.rstrip('/')}/app/bookings/{booking_id}?paid=1"
                      if booking_id is not None else f"{settings.public_url.rstrip('/')}/app"),
    ))
    checkout.provider_checkout_id = created.id
    checkout.url = created.url
    session.add(checkout)
    await session.flush()
    await record(session, "billing.checkout_started", subject_type="checkout",
                 subject_id=checkout.id, actor_id=user.id, plan=plan.key,
                 booking_id=str(booking_id) if booking_id else None)
    return checkout
