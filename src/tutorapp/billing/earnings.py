"""Tutor earnings per lesson, disputes, and payout runs.

An earning is booked when a lesson's credit is consumed: the credit's value leaves
the family wallet, the platform keeps its commission, the rest waits in
`tutor_pending`. It becomes payable (moves to `tutor_payable`) when the student
confirms the lesson or `billing_earning_hold_hours` after it ended without a
dispute. A dispute holds it for an admin: refund the credit (the earning is
reversed) or release it. Payouts happen outside the provider (it cannot split
payments): a run per month lists what is payable as a CSV for bank transfers, and
marking it paid books the transfers."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.billing import credits, ledger, repository
from tutorapp.billing.models import (
    CreditLot,
    CreditSpend,
    Earning,
    EarningStatus,
    Payout,
    PayoutStatus,
)
from tutorapp.config import Settings
from tutorapp.core import money
from tutorapp.core.audit import record
from tutorapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from tutorapp.scheduling.models import Booking


async def earn(session: AsyncSession, settings: Settings, booking: Booking, spent: CreditSpend,
               lot: CreditLot, value: int, *, now: datetime) -> Earning:
    """Book the tutor's earning for a consumed credit: its value, in the billing
    currency. A credit an admin gave (value zero) is worth the list price of a credit
    (`Settings.credit_list_price_minor`), paid from `promotions`."""
    existing = await session.scalar(select(Earning).where(Earning.booking_id == booking.id))
    if existing is not None:
        return existing
    if lot.value_minor:
        gross, source, currency = value, ledger.wallet(lot.wallet_id), lot.currency
    else:
        gross, source, currency = (settings.credit_list_price_minor, ledger.PROMOTIONS,
                                   settings.billing_currency)
    commission = ledger.commission_of(gross, settings.billing_commission_bps)
    net = gross - commission
    earning = Earning(
        booking_id=booking.id, tutor_user_id=booking.tutor_user_id, spend_id=spent.id,
        gross_minor=gross, commission_minor=commission, net_minor=net, currency=currency,
        status=EarningStatus.pending,
        payable_at=booking.end_at + timedelta(hours=settings.billing_earning_hold_hours),
    )
    session.add(earning)
    await session.flush()
    await ledger.post(session, kind="earning", key=f"earning:{booking.id}",
                      description=f"lesson {booking.id} ({booking.status})",
                      postings=[(source, gross, currency),
                                (ledger.tutor_pending(booking.tutor_user_id), -net, currency),
                                (ledger.COMMISSION, -commission, currency)])
    await record(session, "billing.earning_recorded", subject_type="booking",
                 subject_id=booking.id, tutor_id=str(booking.tutor_user_id), gross_minor=gross,
                 commission_minor=commission, net_minor=net, currency=currency)
    return earning


async def _make_payable(session: AsyncSession, earning: Earning, *, now: datetime, why: str) -> None:
    earning.status = EarningStatus.payable
    earning.payable_at = min(earning.payable_at, now)
    await session.flush()
    await ledger.post(session, kind="earning_payable", key=f"earning_payable:{earning.id}",
                      description=f"earning for lesson {earning.booking_id} payable ({why})",
                      postings=[(ledger.tutor_pending(earning.tutor_user_id), earning.net_minor,
                                 earning.currency),
                                (ledger.tutor_payable(earning.tutor_user_id), -earning.net_minor,
                                 earning.currency)])


async def release_due(session: AsyncSession, *, now: datetime, limit: int = 1000) -> int:
    """Pending earnings past their hold time become payable (a job, and payout runs)."""
    due = list(await session.scalars(
        select(Earning).where(Earning.status == EarningStatus.pending, Earning.payable_at <= now)
        .order_by(Earning.payable_at).limit(limit).with_for_update()
    ))
    for earning in due:
        await _make_payable(session, earning, now=now, why="no dispute in time")
    return len(due)


async def _for_student_side(session: AsyncSession, booking_id: uuid.UUID, caller: User
                            ) -> Earning:
    from tutorapp.scheduling import bookings as scheduling

    booking = await scheduling.get_for(session, booking_id, caller)
    if caller.id == booking.tutor_user_id:
        raise Forbidden("The student or their parent confirms or disputes a lesson.")
    earning = await session.scalar(
        select(Earning).where(Earning.booking_id == booking.id).with_for_update()
    )
    if earning is None:
        raise NotFound("This lesson has no earning to confirm or dispute.")
    return earning


async def confirm(session: AsyncSession, booking_id: uuid.UUID, caller: User, *, now: datetime
                  ) -> Earning:
    earning = await _for_student_side(session, booking_id, caller)
    if earning.status != EarningStatus.pending:
        raise Conflict(f"The lesson's earning is already {earning.status}.")
    earning.confirmed_at = now
    await _make_payable(session, earning, now=now, why="confirmed by the student")
    await record(session, "billing.lesson_confirmed", subject_type="booking",
                 subject_id=booking_id, actor_id=caller.id)
    return earning


async def dispute(session: AsyncSession, booking_id: uuid.UUID, caller: User, *, reason: str,
                  now: datetime) -> Earning:
    earning = await _for_student_side(session, booking_id, caller)
    if earning.status != EarningStatus.pending or earning.payable_at <= now:
        raise Conflict("Only a lesson still within its confirmation window can be disputed.")
    earning.status = EarningStatus.disputed
    earning.disputed_at = now
    earning.dispute_reason = reason
    await session.flush()
    await record(session, "billing.lesson_disputed", subject_type="booking",
                 subject_id=booking_id, actor_id=caller.id, reason=reason)
    return earning


async def resolve(session: AsyncSession, booking_id: uuid.UUID, admin: User, *, decision: str,
                  note: str, now: datetime) -> Earning:
    """An admin decides a dispute: `refund` returns the credit to the family (the
    earning is reversed), `release` makes the earning payable."""
    earning = await session.scalar(
        select(Earning).where(Earning.booking_id == booking_id).with_for_update()
    )
    if earning is None:
        raise NotFound("No earning for this booking.")
    if earning.status != EarningStatus.disputed:
        raise Conflict(f"The earning is {earning.status}, not disputed.")
    earning.resolved_at = now
    if decision == "release":
        await _make_payable(session, earning, now=now, why="dispute released by an admin")
    elif decision == "refund":
        spent = await session.get_one(CreditSpend, earning.spend_id)
        await credits.unconsume(session, spent)
        original = await ledger.by_key(session, f"earning:{booking_id}")
        if original is None:
            raise LookupError(f"The ledger has no earning:{booking_id} to reverse.")
        await ledger.reverse(session, original, kind="earning_reversal",
                             key=f"earning_reversal:{booking_id}",
                             description=f"dispute refunded for lesson {booking_id}")
        earning.status = EarningStatus.reversed
        await session.flush()
    else:
        raise InvalidInput("decision", "refund or release")
    await record(session, f"billing.dispute_{decision}", subject_type="booking",
                 subject_id=booking_id, actor_id=admin.id, note=note)
    return earning


# --- payouts -------------------------------------------------------------------------


def period_bounds(period: str) -> tuple[datetime, datetime]:
    try:
        start = datetime.strptime(period, "%Y-%m")
    except ValueError as exc:
        raise InvalidInput("period", "a month like 2026-11") from exc
    from datetime import UTC

    start = start.replace(tzinfo=UTC)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(
        month=start.month + 1)
    return start, end


async def run_payout(session: AsyncSession, period: str, *, now: datetime,
                     actor_id: uuid.UUID | None = None) -> Payout:
    """Gather the earnings payable by the end of `period` into its payout (a draft
    until marked paid; running again adds what became payable since)."""
    _, end = period_bounds(period)
    await release_due(session, now=min(now, end))
    payout = await repository.payout_by_period(session, period, for_update=True)
    if payout is None:
        payout = Payout(period=period, status=PayoutStatus.draft)
        session.add(payout)
        await session.flush()
    elif payout.status == PayoutStatus.paid:
        raise Conflict(f"The payout of {period} is already paid.")
    earnings = list(await session.scalars(
        select(Earning).where(Earning.status == EarningStatus.payable,
                              Earning.payout_id.is_(None), Earning.payable_at < end)
        .with_for_update()
    ))
    for earning in earnings:
        earning.payout_id = payout.id
    await session.flush()
    await record(session, "billing.payout_run", subject_type="payout", subject_id=payout.id,
                 actor_id=actor_id, period=period, earnings=len(earnings))
    return payout


async def payout_lines(session: AsyncSession, payout: Payout) -> list[dict[str, object]]:
    """One line per tutor and currency."""
    rows = (await session.execute(
        select(Earning, User).join(User, User.id == Earning.tutor_user_id)
        .where(Earning.payout_id == payout.id)
        .order_by(User.display_name, User.id)
    )).all()
    lines: dict[tuple[uuid.UUID, str], dict[str, object]] = {}
    for earning, tutor in rows:
        line = lines.setdefault((tutor.id, earning.currency), {
            "tutor_id": str(tutor.id), "tutor_name": tutor.display_name,
            "tutor_email": tutor.email or "", "currency": earning.currency,
            "lessons": 0, "amount_minor": 0,
        })
        line["lessons"] = int(line["lessons"]) + 1  # type: ignore[call-overload]
        line["amount_minor"] = int(line["amount_minor"]) + earning.net_minor  # type: ignore[call-overload]
    result = list(lines.values())
    for line in result:
        line["amount"] = money.plain(int(line["amount_minor"]), str(line["currency"]))  # type: ignore[call-overload]
    return result


CSV_COLUMNS = ["period", "tutor_id", "tutor_name", "tutor_email", "currency", "lessons",
               "amount_minor", "amount"]


def payout_csv(period: str, lines: list[dict[str, object]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for line in lines:
        writer.writerow({"period": period, **line})
    return out.getvalue()


async def mark_paid(session: AsyncSession, period: str, *, now: datetime,
                    actor_id: uuid.UUID | None = None) -> Payout:
    """The bank transfers were made: book them and close the payout."""
    payout = await repository.payout_by_period(session, period, for_update=True)
    if payout is None:
        raise NotFound(f"No payout run for {period}.")
    if payout.status == PayoutStatus.paid:
        raise Conflict(f"The payout of {period} is already paid.")
    totals: dict[tuple[uuid.UUID, str], int] = defaultdict(int)
    earnings = list(await session.scalars(
        select(Earning).where(Earning.payout_id == payout.id).with_for_update()
    ))
    for earning in earnings:
        totals[(earning.tutor_user_id, earning.currency)] += earning.net_minor
        earning.status = EarningStatus.paid
    for (tutor_id, currency), amount in sorted(totals.items(), key=lambda i: (str(i[0][0]), i[0][1])):
        await ledger.post(session, kind="payout", key=f"payout:{period}:{tutor_id}:{currency}",
                          description=f"payout {period}",
                          postings=[(ledger.tutor_payable(tutor_id), amount, currency),
                                    (ledger.CASH, -amount, currency)])
    payout.status = PayoutStatus.paid
    payout.paid_at = now
    await session.flush()
    await record(session, "billing.payout_paid", subject_type="payout", subject_id=payout.id,
                 actor_id=actor_id, period=period, earnings=len(earnings),
                 totals={f"{t}:{c}": a for (t, c), a in totals.items()})
    return payout
