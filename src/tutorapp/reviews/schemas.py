"""Request and response bodies of reviews."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from tutorapp.core.fields import Text


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stars: int = Field(ge=1, le=5)
    text: Annotated[str, Text(5000, multiline=True)] = ""


class ReviewEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stars: int | None = Field(default=None, ge=1, le=5)
    text: Annotated[str, Text(5000, multiline=True)] | None = None


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, Text(5000, min_length=1, multiline=True)]


class ReviewOut(BaseModel):
    id: uuid.UUID
    booking_id: uuid.UUID
    tutor_id: uuid.UUID
    author_id: uuid.UUID
    stars: int
    text: str
    reply: str | None
    replied_at: datetime | None
    created_at: datetime
    editable_until: datetime


class ReviewPage(BaseModel):
    items: list[ReviewOut]
    next_cursor: str | None
