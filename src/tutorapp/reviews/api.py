"""JSON routes of reviews."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from tutorapp.auth.deps import PUBLIC, StudentOrParent, TutorPrincipal
from tutorapp.core.db import ReadSessionDep, SessionDep
from tutorapp.core.deps import clock
from tutorapp.core.fields import Text
from tutorapp.reviews import schemas, service

router = APIRouter(prefix="/api/v1", tags=["reviews"])


@router.post("/bookings/{booking_id}/review", status_code=status.HTTP_201_CREATED)
async def review_lesson(booking_id: uuid.UUID, body: schemas.ReviewIn, request: Request,
                        session: SessionDep, caller: StudentOrParent) -> schemas.ReviewOut:
    review = await service.create(session, booking_id, caller.user, body, now=clock(request))
    return service.present(review, request.app.state.settings)


@router.patch("/reviews/{review_id}")
async def edit_review(review_id: uuid.UUID, body: schemas.ReviewEdit, request: Request,
                      session: SessionDep, caller: StudentOrParent) -> schemas.ReviewOut:
    settings = request.app.state.settings
    review = await service.edit(session, review_id, caller.user, body, now=clock(request),
                                settings=settings)
    return service.present(review, settings)


@router.post("/reviews/{review_id}/reply")
async def reply_to_review(review_id: uuid.UUID, body: schemas.ReplyIn, request: Request,
                          session: SessionDep, tutor: TutorPrincipal) -> schemas.ReviewOut:
    review = await service.reply(session, review_id, tutor.user, body.text, now=clock(request))
    return service.present(review, request.app.state.settings)


@router.get("/tutors/{tutor_id}/reviews", dependencies=[PUBLIC])
async def list_reviews(
    tutor_id: uuid.UUID, request: Request, session: ReadSessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[Annotated[str, Text(200)] | None, Query()] = None,
) -> schemas.ReviewPage:
    rows, next_cursor = await service.list_for_tutor(session, tutor_id, limit=limit, cursor=cursor)
    settings = request.app.state.settings
    return schemas.ReviewPage(items=[service.present(r, settings) for r in rows],
                              next_cursor=next_cursor)
