"""Reviews: one per completed lesson, by its student or the parent who booked it;
editable for `review_edit_days`; the tutor may reply once. The tutor's rating
average and count are kept by `tutors.service.apply_rating`."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

import orjson
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.accounts.service import register_exporter, row_dict
from tutorapp.config import Settings
from tutorapp.core.audit import record
from tutorapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from tutorapp.core.fields import cursor_moment
from tutorapp.reviews import schemas
from tutorapp.reviews.models import Review
from tutorapp.scheduling import bookings
from tutorapp.scheduling.models import BookingStatus
from tutorapp.tutors import service as tutors
from tutorapp.tutors.models import TutorProfile


def present(review: Review, settings: Settings) -> schemas.ReviewOut:
    return schemas.ReviewOut(
        id=review.id, booking_id=review.booking_id, tutor_id=review.tutor_id,
        author_id=review.author_id, stars=review.stars, text=review.text, reply=review.reply,
        replied_at=review.replied_at, created_at=review.created_at,
        editable_until=review.created_at + timedelta(days=settings.review_edit_days),
    )


async def create(session: AsyncSession, booking_id: uuid.UUID, author: User,
                 data: schemas.ReviewIn, *, now: datetime) -> Review:
    booking = await bookings.get_for(session, booking_id, author)
    if author.id not in (booking.student_id, booking.booked_by_id):
        raise Forbidden("Only the student, or the parent who booked, reviews a lesson.")
    if booking.status != BookingStatus.completed:
        raise Conflict("Only a completed lesson can be reviewed.")
    review = Review(booking_id=booking.id, tutor_id=booking.tutor_id, author_id=author.id,
                    stars=data.stars, text=data.text, created_at=now, updated_at=now)
    try:
        async with session.begin_nested():
            session.add(review)
            await session.flush()
    except IntegrityError as exc:
        raise Conflict("This lesson has a review already; edit it instead.") from exc
    await tutors.apply_rating(session, booking.tutor_id, add_stars=data.stars, add_count=1)
    await record(session, "review.created", subject_type="review", subject_id=review.id,
                 actor_id=author.id, stars=data.stars)
    return review


async def edit(session: AsyncSession, review_id: uuid.UUID, author: User,
               data: schemas.ReviewEdit, *, now: datetime, settings: Settings) -> Review:
    review = await session.get(Review, review_id, with_for_update=True)
    if review is None or review.author_id != author.id:
        raise NotFound("No such review of yours.")
    if now > review.created_at + timedelta(days=settings.review_edit_days):
        raise Conflict(f"Reviews can be edited for {settings.review_edit_days} days.")
    if data.stars is not None and data.stars != review.stars:
        await tutors.apply_rating(session, review.tutor_id, add_stars=data.stars - review.stars,
                                  add_count=0)
        review.stars = data.stars
    if data.text is not None:
        review.text = data.text
    await session.flush()
    await record(session, "review.edited", subject_type="review", subject_id=review.id,
                 actor_id=author.id, stars=review.stars)
    return review


async def reply(session: AsyncSession, review_id: uuid.UUID, tutor: User, text: str, *,
                now: datetime) -> Review:
    review = await session.get(Review, review_id, with_for_update=True)
    profile = await tutors.profile_of_user(session, tutor.id)
    if review is None or profile is None or review.tutor_id != profile.id:
        raise NotFound("No such review of your lessons.")
    if review.reply is not None:
        raise Conflict("You have replied to this review already.")
    review.reply = text
    review.replied_at = now
    await session.flush()
    await record(session, "review.replied", subject_type="review", subject_id=review.id,
                 actor_id=tutor.id)
    return review


async def reviewed_booking_ids(session: AsyncSession,
                               booking_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these bookings have a review."""
    wanted = list(booking_ids)
    if not wanted:
        return set()
    return set(await session.scalars(
        select(Review.booking_id).where(Review.booking_id.in_(wanted))))


def _cursor(review: Review) -> str:
    raw = orjson.dumps([review.created_at.isoformat(), str(review.id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def list_for_tutor(session: AsyncSession, tutor_id: uuid.UUID, *, limit: int,
                         cursor: str | None) -> tuple[list[Review], str | None]:
    profile = await session.get(TutorProfile, tutor_id)
    if profile is None:
        raise NotFound("No such tutor.")
    query = select(Review).where(Review.tutor_id == tutor_id)
    if cursor:
        try:
            created, rid = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            created_at, after = cursor_moment(created), uuid.UUID(rid)
        except (ValueError, TypeError, AttributeError, orjson.JSONDecodeError):
            raise InvalidInput("cursor", "not a cursor of this list", location="query") from None
        query = query.where(or_(Review.created_at < created_at,
                                and_(Review.created_at == created_at, Review.id > after)))
    rows = list(await session.scalars(
        query.order_by(Review.created_at.desc(), Review.id).limit(limit + 1)))
    page = rows[:limit]
    return page, (_cursor(page[-1]) if len(rows) > limit else None)


@register_exporter("reviews")
async def export_reviews(db: AsyncSession, user: User) -> list[dict]:
    """Reviews the user wrote, for the privacy export."""
    return [row_dict(r) for r in await db.scalars(select(Review).where(Review.author_id == user.id))]
