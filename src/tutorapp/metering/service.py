"""Metered usage (emails per day and month, job steps per month) in `usage_counters`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.config import Settings
from tutorapp.core.db import insert_for, rows_changed
from tutorapp.core.time import utcnow
from tutorapp.metering.models import UsageCounter

EMAILS_SENT = "email.sent"
JOB_STEPS = "jobs.steps"


def day(now: datetime) -> str:
    return now.strftime("%Y-%m-%d")


def month(now: datetime) -> str:
    return now.strftime("%Y-%m")


async def increment(session: AsyncSession, metric: str, period: str, amount: int = 1) -> None:
    insert = insert_for(session, UsageCounter).values(metric=metric, period=period, count=amount)
    await session.execute(insert.on_conflict_do_update(
        index_elements=["metric", "period"],
        set_={"count": UsageCounter.count + amount, "updated_at": utcnow()},
    ))


async def try_increment(
    session: AsyncSession, metric: str, period: str, cap: int, amount: int = 1
) -> bool:
    """Add `amount` unless that passes `cap`; True when added (atomic: a conditional
    UPDATE, so concurrent senders never overshoot the cap)."""
    insert = insert_for(session, UsageCounter).values(metric=metric, period=period, count=0)
    await session.execute(insert.on_conflict_do_nothing(index_elements=["metric", "period"]))
    result = await session.execute(
        update(UsageCounter)
        .where(UsageCounter.metric == metric, UsageCounter.period == period,
               UsageCounter.count + amount <= cap)
        .values(count=UsageCounter.count + amount, updated_at=utcnow())
    )
    return rows_changed(result) == 1


async def get(session: AsyncSession, metric: str, period: str) -> int:
    value = await session.scalar(
        select(UsageCounter.count).where(
            UsageCounter.metric == metric, UsageCounter.period == period
        )
    )
    return int(value or 0)


async def add_steps(session: AsyncSession, amount: int) -> None:
    await increment(session, JOB_STEPS, month(utcnow()), amount)


async def report(session: AsyncSession, settings: Settings, now: datetime | None = None
                 ) -> dict[str, Any]:
    """Usage against the plan's quotas."""
    now = now or utcnow()
    return {
        "emails_today": {"used": await get(session, EMAILS_SENT, day(now)),
                         "quota": settings.email_daily_quota,
                         "cap": settings.email_daily_cap},
        "emails_this_month": {"used": await get(session, EMAILS_SENT, month(now)),
                              "quota": settings.email_monthly_quota},
        "job_steps_this_month": {"used": await get(session, JOB_STEPS, month(now)),
                                 "quota": settings.jobs_monthly_step_quota},
    }
