"""Tables of the jobs engine. DBOS keeps workflow state in its own system database;
these live in the application database, next to the data the jobs act on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tutorapp.core.models import Base, Entity
from tutorapp.core.time import utcnow


class JobEvent(Entity):
    """A domain event, stored in the transaction that caused it (an outbox).

    `(name, key)` is unique: the event id is the idempotency key, so emitting the
    same event twice stores it once and starts each function once. `dispatched_at`
    is set once its functions were enqueued; the `jobs.dispatch` sweep re-enqueues
    events whose after-commit dispatch did not happen (a crash right after commit).
    """

    __tablename__ = "job_events"
    __table_args__ = (
        UniqueConstraint("name", "key"),
        Index("ix_job_events_pending", "dispatched_at", "created_at"),
    )

    name: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dispatched_at: Mapped[datetime | None]


class JobWorker(Base):
    """A process that runs workflows: its lease is renewed by heartbeats. When a
    lease runs out, a surviving worker claims the dead one (`recovered_by`) and
    re-enqueues its unfinished workflows."""

    __tablename__ = "job_workers"

    executor_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None]
    recovered_at: Mapped[datetime | None]
    recovered_by: Mapped[str | None] = mapped_column(String(100))
