"""The append-only double-entry ledger, in integer minor units.

A transaction is a set of postings (debit positive, credit negative) that add up to
zero in each currency; `post` refuses anything else, and its `key` is unique, so one
business fact is booked once. Nothing here updates or deletes: a mistake or a refund
is corrected by a reversing transaction.

Accounts (`name[:owner]`):
- `cash`: money received from the provider / paid out to tutors (asset).
- `tax_collected`: tax the merchant of record collected and remits.
- `wallet:<wallet id>`: what a family prepaid and not yet used (liability).
- `tutor_pending:<user id>`: earned for a lesson, not yet payable (liability).
- `tutor_payable:<user id>`: payable in the next payout run (liability).
- `commission`: the platform's commission (revenue).
- `breakage`: value of credits that expired unused (revenue).
- `promotions`: value of credits given by an admin, paid to tutors (expense).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.billing.models import LedgerPosting, LedgerTransaction

CASH = "cash"
TAX = "tax_collected"
COMMISSION = "commission"
BREAKAGE = "breakage"
PROMOTIONS = "promotions"


def wallet(wallet_id: uuid.UUID) -> str:
    return f"wallet:{wallet_id}"


def tutor_pending(user_id: uuid.UUID) -> str:
    return f"tutor_pending:{user_id}"


def tutor_payable(user_id: uuid.UUID) -> str:
    return f"tutor_payable:{user_id}"


class Unbalanced(ValueError):
    """A transaction whose postings do not add up to zero."""


def commission_of(gross_minor: int, bps: int) -> int:
    """The platform's share, rounded half up to the minor unit:
    gross * bps / 10000, e.g. 15% of 2501 cents = 375.15 -> 375, of 2503 = 375.45 -> 375,
    of 2510 = 376.5 -> 377. The tutor gets the rest, so the two add up exactly."""
    if gross_minor < 0:
        raise ValueError("gross must not be negative")
    return (gross_minor * bps + 5_000) // 10_000


async def post(session: AsyncSession, *, kind: str, key: str, description: str,
               postings: Iterable[tuple[str, int, str]],
               reverses: LedgerTransaction | None = None) -> LedgerTransaction | None:
    """Book one balanced transaction; None if `key` was booked already.

    `postings`: (account, amount_minor, currency), debit positive. Zero legs are dropped.
    """
    legs = [(a, int(m), c) for a, m, c in postings if m != 0]
    totals: dict[str, int] = defaultdict(int)
    for _, amount, currency in legs:
        totals[currency] += amount
    if any(totals.values()):
        raise Unbalanced(f"{kind} {key}: postings add up to {dict(totals)}")
    existing = await session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.key == key))
    if existing is not None:
        return None
    transaction = LedgerTransaction(kind=kind, key=key, description=description[:300],
                                    reverses_id=reverses.id if reverses else None)
    session.add(transaction)
    await session.flush()
    session.add_all(LedgerPosting(transaction_id=transaction.id, account=a, amount_minor=m,
                                  currency=c) for a, m, c in legs)
    await session.flush()
    return transaction


async def reverse(session: AsyncSession, original: LedgerTransaction, *, kind: str, key: str,
                  description: str) -> LedgerTransaction | None:
    """Book the mirror image of `original` (every leg with the opposite sign)."""
    legs = (await session.scalars(
        select(LedgerPosting).where(LedgerPosting.transaction_id == original.id)
    )).all()
    return await post(session, kind=kind, key=key, description=description, reverses=original,
                      postings=[(p.account, -p.amount_minor, p.currency) for p in legs])


async def by_key(session: AsyncSession, key: str) -> LedgerTransaction | None:
    return await session.scalar(select(LedgerTransaction).where(LedgerTransaction.key == key))


async def balance(session: AsyncSession, account: str, currency: str) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerPosting.amount_minor), 0))
        .where(LedgerPosting.account == account, LedgerPosting.currency == currency)
    )
    return int(total or 0)


async def balances(session: AsyncSession, accounts: list[str] | None = None
                   ) -> dict[tuple[str, str], int]:
    query = select(LedgerPosting.account, LedgerPosting.currency,
                   func.sum(LedgerPosting.amount_minor)).group_by(
        LedgerPosting.account, LedgerPosting.currency)
    if accounts is not None:
        query = query.where(LedgerPosting.account.in_(accounts))
    return {(a, c): int(t) for a, c, t in (await session.execute(query)).all()}


async def trial_balance(session: AsyncSession) -> dict[str, int]:
    """Sum of every posting per currency: zero in a sound ledger."""
    rows = await session.execute(
        select(LedgerPosting.currency, func.sum(LedgerPosting.amount_minor))
        .group_by(LedgerPosting.currency)
    )
    return {c: int(t) for c, t in rows.all()}


async def entries_of(session: AsyncSession, accounts: list[str], *, limit: int = 500
                     ) -> list[tuple[LedgerTransaction, LedgerPosting]]:
    rows = await session.execute(
        select(LedgerTransaction, LedgerPosting)
        .join(LedgerPosting, LedgerPosting.transaction_id == LedgerTransaction.id)
        .where(LedgerPosting.account.in_(accounts))
        .order_by(LedgerTransaction.created_at, LedgerTransaction.id).limit(limit)
    )
    return [(t, p) for t, p in rows.all()]
