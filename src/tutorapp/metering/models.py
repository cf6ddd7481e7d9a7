"""The usage counters table (created by migration 0003, with the jobs tables)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from tutorapp.core.models import Base
from tutorapp.core.time import utcnow


class UsageCounter(Base):
    """Metered usage per period: `email.sent` per day (`2026-11-25`) and month
    (`2026-11`), `jobs.steps` per month. Compared with the plan's quotas."""

    __tablename__ = "usage_counters"

    metric: Mapped[str] = mapped_column(String(50), primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
