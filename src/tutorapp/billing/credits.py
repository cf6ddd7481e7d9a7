"""Family wallets and lesson credits: grant, spend, return, consume, expire, adjust.

Lock order, everywhere: the wallet row, then its lots, then the spend, then the
booking (scheduling locks it). Two writers on one wallet queue on the wallet lock
(SQLite serializes every write transaction anyway); `CHECK remaining >= 0` and the
unique `source_key` / `booking_id` are the last word if code ever forgets."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.auth.roles import Role
from tutorapp.billing import ledger
from tutorapp.billing.models import (
    CreditLot,
    CreditSpend,
    LotSource,
    SpendStatus,
    Subscription,
    SubscriptionStatus,
    Wallet,
)
from tutorapp.core.audit import record
from tutorapp.core.errors import AppError, Forbidden, InvalidInput

# Subscription states whose credits may be spent (cancelled: grace until ends_at).
SPENDABLE = frozenset({SubscriptionStatus.on_trial, SubscriptionStatus.active,
                       SubscriptionStatus.past_due, SubscriptionStatus.cancelled})


class NoCredits(AppError):
    status, type, title = 402, "/problems/no-credits", "No lesson credits left"


def credit_value(lot: CreditLot, index: int) -> int:
    """Value of the `index`-th (0-based) consumed credit of a lot: the lot's value
    split so that its credits add up to exactly `value_minor`."""
    total, n = lot.value_minor, lot.granted
    return total * (index + 1) // n - total * index // n


def wallet_owner_id(user: User) -> uuid.UUID:
    """Whose wallet pays for this user's lessons: a child's parent, else the user."""
    if user.role == Role.student and user.parent_id is not None:
        return user.parent_id
    if user.role in (Role.student, Role.parent):
        return user.id
    raise Forbidden("Only students and parents hold a wallet.")


async def wallet_for_owner(session: AsyncSession, owner_id: uuid.UUID, currency: str, *,
                           lock: bool = False) -> Wallet:
    """The owner's wallet, created on first use (a unique owner decides races)."""
    query = select(Wallet).where(Wallet.owner_id == owner_id)
    if lock:
        query = query.with_for_update()
    found = await session.scalar(query)
    if found is not None:
        return found
    try:
        async with session.begin_nested():
            created = Wallet(owner_id=owner_id, currency=currency)
            session.add(created)
            await session.flush()
        return created
    except IntegrityError:
        return await session.scalar(query)  # type: ignore[return-value]


async def lock_wallet(session: AsyncSession, wallet_id: uuid.UUID) -> Wallet:
    return await session.get_one(Wallet, wallet_id, with_for_update=True, populate_existing=True)


async def grant(session: AsyncSession, wallet: Wallet, *, source: LotSource, source_key: str,
                credits: int, value_minor: int, currency: str, expires_at: datetime | None,
                plan_key: str | None = None, subscription_id: uuid.UUID | None = None,
                payment_id: uuid.UUID | None = None) -> CreditLot | None:
    """Add a lot of credits; None when `source_key` was granted already (never twice)."""
    await lock_wallet(session, wallet.id)
    if await session.scalar(select(CreditLot.id).where(CreditLot.source_key == source_key)):
        return None
    lot = CreditLot(wallet_id=wallet.id, source=source, source_key=source_key, plan_key=plan_key,
                    subscription_id=subscription_id, payment_id=payment_id, granted=credits,
                    remaining=credits, consumed=0, value_minor=value_minor, currency=currency,
                    expires_at=expires_at)
    session.add(lot)
    await session.flush()
    await record(session, "billing.credits_granted", subject_type="wallet", subject_id=wallet.id,
                 credits=credits, source=str(source), source_key=source_key)
    return lot


def _usable(now: datetime) -> tuple[ColumnElement[bool], ...]:
    spendable = select(Subscription.id).where(
        Subscription.status.in_(list(SPENDABLE)),
        # a cancelled subscription's grace ends at ends_at
        or_(Subscription.status != SubscriptionStatus.cancelled, Subscription.ends_at.is_(None),
            Subscription.ends_at > now),
    )
    return (
        (CreditLot.remaining > 0),
        (CreditLot.expired_at.is_(None)),
        or_(CreditLot.expires_at.is_(None), CreditLot.expires_at > now),
        or_(CreditLot.subscription_id.is_(None), CreditLot.subscription_id.in_(spendable)),
    )


async def usable_lots(session: AsyncSession, wallet_id: uuid.UUID, now: datetime, *,
                      lock: bool = False) -> list[CreditLot]:
    """Spendable lots, soonest expiry first (never-expiring last)."""
    query = (select(CreditLot).where(CreditLot.wallet_id == wallet_id, *_usable(now))
             .order_by(CreditLot.expires_at.is_(None), CreditLot.expires_at, CreditLot.created_at))
    if lock:
        query = query.with_for_update()
    return list(await session.scalars(query))


async def available(session: AsyncSession, wallet_id: uuid.UUID, now: datetime) -> int:
    return sum(lot.remaining for lot in await usable_lots(session, wallet_id, now))


async def spend(session: AsyncSession, wallet: Wallet, booking_id: uuid.UUID, *,
                now: datetime, actor_id: uuid.UUID | None) -> CreditSpend:
    """Take one credit for a booking (the soonest-expiring). Raises NoCredits."""
    await lock_wallet(session, wallet.id)
    existing = await session.scalar(select(CreditSpend).where(CreditSpend.booking_id == booking_id))
    if existing is not None and existing.status != SpendStatus.returned:
        return existing
    if existing is not None:
        raise InvalidInput("booking_id", "this booking's credit was returned; book again")
    lots = await usable_lots(session, wallet.id, now, lock=True)
    if not lots:
        raise NoCredits("No lesson credits left: buy a package or subscribe.")
    lot = lots[0]
    lot.remaining -= 1
    spent = CreditSpend(booking_id=booking_id, wallet_id=wallet.id, lot_id=lot.id,
                        status=SpendStatus.reserved)
    session.add(spent)
    await session.flush()
    await record(session, "billing.credit_spent", subject_type="booking", subject_id=booking_id,
                 actor_id=actor_id, wallet_id=str(wallet.id), lot_id=str(lot.id))
    return spent


async def return_credit(session: AsyncSession, spent: CreditSpend, *, reason: str) -> bool:
    """Give a reserved credit back to its lot; False if it was not reserved."""
    await lock_wallet(session, spent.wallet_id)
    await session.refresh(spent, with_for_update=True)
    if spent.status != SpendStatus.reserved:
        return False
    lot = await session.get_one(CreditLot, spent.lot_id, with_for_update=True,
                                populate_existing=True)
    lot.remaining += 1
    spent.status = SpendStatus.returned
    await session.flush()
    await record(session, "billing.credit_returned", subject_type="booking",
                 subject_id=spent.booking_id, reason=reason, lot_id=str(lot.id))
    return True


async def consume(session: AsyncSession, spent: CreditSpend) -> tuple[CreditLot, int] | None:
    """Mark a reserved credit as used; returns its lot and value (None if not reserved).
    The caller books the value (an earning)."""
    await lock_wallet(session, spent.wallet_id)
    await session.refresh(spent, with_for_update=True)
    if spent.status != SpendStatus.reserved:
        return None
    lot = await session.get_one(CreditLot, spent.lot_id, with_for_update=True,
                                populate_existing=True)
    value = credit_value(lot, lot.consumed) if lot.value_minor else 0
    lot.consumed += 1
    spent.status = SpendStatus.consumed
    await session.flush()
    return lot, value


async def unconsume(session: AsyncSession, spent: CreditSpend) -> None:
    """An admin refunded a consumed credit: it goes back to its lot."""
    await lock_wallet(session, spent.wallet_id)
    lot = await session.get_one(CreditLot, spent.lot_id, with_for_update=True,
                                populate_existing=True)
    lot.consumed -= 1
    lot.remaining += 1
    spent.status = SpendStatus.returned
    await session.flush()


async def expire_lot(session: AsyncSession, lot: CreditLot, *, now: datetime, reason: str) -> int:
    """Expire the unused credits of a lot: their value becomes breakage. Returns the count."""
    await lock_wallet(session, lot.wallet_id)
    await session.refresh(lot, with_for_update=True)
    if lot.expired_at is not None:
        return 0
    count = lot.remaining
    value = sum(credit_value(lot, lot.consumed + i) for i in range(count)) if lot.value_minor else 0
    lot.consumed += count
    lot.remaining = 0
    lot.expired_at = now
    await session.flush()
    if value:
        await ledger.post(session, kind="breakage", key=f"breakage:{lot.id}",
                          description=f"{count} credits expired ({reason})",
                          postings=[(ledger.wallet(lot.wallet_id), value, lot.currency),
                                    (ledger.BREAKAGE, -value, lot.currency)])
    if count:
        await record(session, "billing.credits_expired", subject_type="wallet",
                     subject_id=lot.wallet_id, credits=count, lot_id=str(lot.id), reason=reason)
    return count


async def expire_due(session: AsyncSession, *, now: datetime, limit: int = 500) -> int:
    lots = list(await session.scalars(
        select(CreditLot).where(CreditLot.expired_at.is_(None), CreditLot.expires_at <= now)
        .order_by(CreditLot.expires_at).limit(limit)
    ))
    return sum([await expire_lot(session, lot, now=now, reason="period ended") for lot in lots])


async def revoke(session: AsyncSession, lot: CreditLot, count: int, *, reason: str) -> int:
    """Take back up to `count` unused credits of a lot (a refund); returns how many."""
    await lock_wallet(session, lot.wallet_id)
    await session.refresh(lot, with_for_update=True)
    taken = min(count, lot.remaining)
    if taken:
        lot.remaining -= taken
        await session.flush()
        await record(session, "billing.credits_revoked", subject_type="wallet",
                     subject_id=lot.wallet_id, credits=taken, lot_id=str(lot.id), reason=reason)
    return taken


async def adjust(session: AsyncSession, wallet: Wallet, *, delta: int, reason: str,
                 actor_id: uuid.UUID, now: datetime) -> int:
    """An admin's manual change of a wallet's credits (reason required, audited).
    Added credits are a lot of value zero (tutors are paid from `promotions`);
    removed credits come off the soonest-expiring lots. Returns the change made."""
    if not reason.strip():
        raise InvalidInput("reason", "a reason is required")
    if delta == 0:
        raise InvalidInput("delta", "must not be zero")
    await lock_wallet(session, wallet.id)
    changed = delta
    if delta > 0:
        key = f"adjustment:{uuid.uuid4()}"
        lot = CreditLot(wallet_id=wallet.id, source=LotSource.adjustment, source_key=key,
                        granted=delta, remaining=delta, consumed=0, value_minor=0,
                        currency=wallet.currency, expires_at=None)
        session.add(lot)
        await session.flush()
    else:
        wanted = -delta
        lots = await usable_lots(session, wallet.id, now, lock=True)
        if sum(lot.remaining for lot in lots) < wanted:
            raise InvalidInput("delta", "the wallet has fewer credits than that")
        for lot in lots:
            take = min(wanted, lot.remaining)
            lot.remaining -= take
            wanted -= take
            if not wanted:
                break
        await session.flush()
    await record(session, "billing.credits_adjusted", subject_type="wallet", subject_id=wallet.id,
                 actor_id=actor_id, delta=delta, reason=reason.strip())
    return changed
