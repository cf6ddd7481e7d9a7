"""Billing's typed read queries, for its routes, pages and the other domains' pages.

Routes and pages never build SQL: they call these (or a billing service) and render.
A `for_update` variant takes the row lock a writer needs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.billing.credits import wallet_owner_id
from tutorapp.billing.models import CreditLot, Earning, Payout, PayoutStatus, Subscription, Wallet


class PayoutTotal(NamedTuple):
    """What one payout paid one tutor in one currency."""

    period: str
    status: PayoutStatus
    paid_at: datetime | None
    currency: str
    net_minor: int


async def wallet_of(session: AsyncSession, user: User) -> Wallet | None:
    """The wallet the user's family pays from, if it exists yet."""
    return await session.scalar(select(Wallet).where(Wallet.owner_id == wallet_owner_id(user)))


async def lots_of(session: AsyncSession, wallet_id: uuid.UUID) -> Sequence[CreditLot]:
    """Every lot of credits of the wallet, oldest first."""
    return (await session.scalars(
        select(CreditLot).where(CreditLot.wallet_id == wallet_id)
        .order_by(CreditLot.created_at, CreditLot.id)
    )).all()


async def subscriptions_of(session: AsyncSession, wallet_id: uuid.UUID, *,
                           newest_first: bool = False) -> Sequence[Subscription]:
    created = Subscription.created_at.desc() if newest_first else Subscription.created_at
    return (await session.scalars(
        select(Subscription).where(Subscription.wallet_id == wallet_id).order_by(created)
    )).all()


async def latest_subscriptions(session: AsyncSession, *, limit: int,
                               status: str | None = None) -> Sequence[Subscription]:
    """The newest subscriptions of every wallet (for the admins)."""
    query = select(Subscription).order_by(Subscription.created_at.desc()).limit(limit)
    if status:
        query = query.where(Subscription.status == status)
    return (await session.scalars(query)).all()


async def earnings_of(session: AsyncSession, tutor_user_id: uuid.UUID, *,
                      limit: int) -> Sequence[Earning]:
    """The tutor's earnings, newest first."""
    return (await session.scalars(
        select(Earning).where(Earning.tutor_user_id == tutor_user_id)
        .order_by(Earning.created_at.desc()).limit(limit)
    )).all()


async def payout_by_period(session: AsyncSession, period: str, *,
                           for_update: bool = False) -> Payout | None:
    query = select(Payout).where(Payout.period == period)
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def payout_totals_of(session: AsyncSession, tutor_user_id: uuid.UUID, *,
                           limit: int) -> list[PayoutTotal]:
    """The tutor's share of each payout (per currency), newest period first."""
    rows = await session.execute(
        select(Payout.period, Payout.status, Payout.paid_at, Earning.currency,
               func.sum(Earning.net_minor))
        .join(Earning, Earning.payout_id == Payout.id)
        .where(Earning.tutor_user_id == tutor_user_id)
        .group_by(Payout.period, Payout.status, Payout.paid_at, Earning.currency)
        .order_by(Payout.period.desc()).limit(limit))
    return [PayoutTotal(*row) for row in rows]
