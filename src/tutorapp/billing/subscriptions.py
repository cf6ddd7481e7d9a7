"""Subscriptions: mirrored from the provider's webhooks, never moved backwards.

What each state allows (see docs/billing.md):
- `on_trial`, `active`: credits are granted per paid period and can be spent.
- `past_due`: a renewal failed and is being retried: existing credits stay usable,
  no new period is granted until a payment succeeds (or is recovered).
- `paused`: payment collection paused: no new credits, credits of this subscription
  cannot be spent until it is unpaused.
- `unpaid`: the retries ran out: like paused until the customer pays.
- `cancelled`: will not renew; credits stay usable until `ends_at` (grace).
- `expired`: over; its unused credits expire (breakage).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.billing import credits, plans
from tutorapp.billing.models import CreditLot, Subscription, SubscriptionStatus
from tutorapp.config import Settings
from tutorapp.core.audit import record
from tutorapp.core.errors import Conflict, NotFound
from tutorapp.core.time import utcnow


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _apply(subscription: Subscription, attributes: dict[str, Any], updated_at: datetime) -> None:
    urls = attributes.get("urls") or {}
    subscription.status = SubscriptionStatus(attributes["status"])
    subscription.cancelled = bool(attributes.get("cancelled"))
    subscription.variant_id = str(attributes.get("variant_id") or subscription.variant_id)
    subscription.customer_id = str(attributes["customer_id"]) if attributes.get("customer_id") else None
    subscription.renews_at = parse_time(attributes.get("renews_at"))
    subscription.ends_at = parse_time(attributes.get("ends_at"))
    subscription.trial_ends_at = parse_time(attributes.get("trial_ends_at"))
    subscription.customer_portal_url = urls.get("customer_portal")
    subscription.update_payment_method_url = urls.get("update_payment_method")
    subscription.provider_updated_at = updated_at


async def by_provider_id(session: AsyncSession, provider_id: str, *, lock: bool = False
                         ) -> Subscription | None:
    query = select(Subscription).where(Subscription.provider_id == str(provider_id))
    if lock:
        query = query.with_for_update()
    return await session.scalar(query)


async def sync(session: AsyncSession, settings: Settings, *, provider_id: str,
               attributes: dict[str, Any], payer: User | None, event_name: str) -> str:
    """Apply a subscription's state from a webhook, only if it is newer than ours
    (by the resource's `updated_at`): a late or repeated delivery changes nothing."""
    updated_at = parse_time(attributes.get("updated_at")) or utcnow()
    subscription = await by_provider_id(session, provider_id, lock=True)
    if subscription is None:
        plan = plans.by_variant(settings, attributes.get("variant_id"))
        if plan is None or plan.kind != "subscription":
            return f"ignored: variant {attributes.get('variant_id')} is no subscription plan"
        if payer is None:
            return "ignored: no user in custom data"
        wallet = await credits.wallet_for_owner(session, credits.wallet_owner_id(payer),
                                                plan.currency)
        subscription = Subscription(provider_id=str(provider_id), wallet_id=wallet.id,
                                    user_id=payer.id, plan_key=plan.key,
                                    variant_id=str(plan.variant_id), status=attributes["status"],
                                    provider_updated_at=updated_at)
        _apply(subscription, attributes, updated_at)
        try:
            async with session.begin_nested():
                session.add(subscription)
                await session.flush()
        except IntegrityError:  # a concurrent delivery created it: apply as an update
            return await sync(session, settings, provider_id=provider_id, attributes=attributes,
                              payer=payer, event_name=event_name)
        before = None
    else:
        if updated_at <= subscription.provider_updated_at:
            return "stale: an equal or newer state is applied"
        before = str(subscription.status)
        plan = plans.by_variant(settings, attributes.get("variant_id"))
        if plan is not None and plan.kind == "subscription":
            subscription.plan_key = plan.key
        _apply(subscription, attributes, updated_at)
        await session.flush()
    if before != str(subscription.status):
        await record(session, f"billing.subscription_{subscription.status}",
                     subject_type="subscription", subject_id=subscription.id,
                     actor_id=subscription.user_id, before=before, event=event_name,
                     provider_id=str(provider_id))
    if subscription.status == SubscriptionStatus.expired:
        await expire_credits(session, subscription)
    return f"subscription {subscription.status}"


async def expire_credits(session: AsyncSession, subscription: Subscription) -> int:
    lots = list(await session.scalars(
        select(CreditLot).where(CreditLot.subscription_id == subscription.id,
                                CreditLot.expired_at.is_(None))
    ))
    return sum([await credits.expire_lot(session, lot, now=utcnow(), reason="subscription expired")
                for lot in lots])


# --- the customer's actions through the API ---------------------------------------------


async def owned(session: AsyncSession, subscription_id: uuid.UUID, user: User) -> Subscription:
    subscription = await session.get(Subscription, subscription_id)
    if subscription is None:
        raise NotFound("No such subscription.")
    owner = credits.wallet_owner_id(user)
    from tutorapp.billing.models import Wallet

    wallet = await session.get(Wallet, subscription.wallet_id)
    if wallet is None or wallet.owner_id != owner:
        raise NotFound("No such subscription.")
    return subscription


def check_cancellable(subscription: Subscription) -> None:
    if subscription.status in (SubscriptionStatus.cancelled, SubscriptionStatus.expired):
        raise Conflict(f"The subscription is already {subscription.status}.")


def check_resumable(subscription: Subscription) -> None:
    if subscription.status != SubscriptionStatus.cancelled:
        raise Conflict("Only a cancelled subscription in its grace period can be resumed.")


async def apply_change(session: AsyncSession, settings: Settings, subscription: Subscription,
                       attributes: dict[str, Any], actor: User, *, action: str) -> Subscription:
    """The provider accepted the customer's `action` ("cancel", "resume") and answered
    with the subscription's new attributes (the provider call ran outside the
    transaction): audit it and mirror the new state."""
    await record(session, f"billing.subscription_{action}_requested",
                 subject_type="subscription", subject_id=subscription.id, actor_id=actor.id)
    await sync(session, settings, provider_id=subscription.provider_id, attributes=attributes,
               payer=None, event_name=f"api.{action}")
    await session.refresh(subscription)
    return subscription


def portal_url(attributes: dict[str, Any]) -> str:
    """The customer-portal link of fresh attributes (Lemon Squeezy's are signed and
    expire in 24 hours)."""
    url = (attributes.get("urls") or {}).get("customer_portal")
    if not url:
        raise Conflict("The provider gave no customer portal for this subscription.")
    return url
