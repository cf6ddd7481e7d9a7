"""Realtime's REST broadcast, which the clients use when a channel is not joined
(`send()` falls back to `POST /api/broadcast`; `httpSend()` posts
`/api/broadcast/<topic>/events/<event>`). 202 with no body, as Realtime answers.

As in Realtime, a message the caller may not send is skipped (still 202)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from tutorapp.core.db import SessionDep
from tutorapp.core.errors import InvalidInput
from tutorapp.realtime import topics
from tutorapp.realtime.hub import Hub
from tutorapp.realtime.principal import OptionalPrincipal
from tutorapp.realtime.protocol import UserBroadcast

router = APIRouter(prefix="/realtime/v1/api", tags=["realtime"])


class BroadcastMessage(BaseModel):
    topic: str = Field(min_length=1, max_length=255)
    event: str = Field(min_length=1, max_length=255)
    payload: dict[str, Any]
    private: bool = False
    id: str | None = Field(default=None, max_length=64)


class BroadcastBatch(BaseModel):
    messages: list[BroadcastMessage] = Field(min_length=1, max_length=100)


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.realtime
    return hub


async def _send(request: Request, db: SessionDep, caller: OptionalPrincipal,
                message: UserBroadcast) -> None:
    user_id = caller.user.id if caller else None
    if topics.clients_may_broadcast(message.topic) and await topics.may_read(
            db, user_id, message.topic):
        await _hub(request).broadcast(message.topic, message, origin=None)


def _check_size(request: Request, index: int | None, size: int) -> None:
    if size > _hub(request).settings.realtime_max_payload_bytes:
        field = "payload" if index is None else f"messages.{index}.payload"
        raise InvalidInput(field, "Payload size exceeds tenant limit")


@router.post("/broadcast", status_code=202, response_class=Response,
             summary="Broadcast a batch of messages")
async def broadcast(request: Request, db: SessionDep, caller: OptionalPrincipal,
                    batch: BroadcastBatch) -> Response:
    for index, m in enumerate(batch.messages):
        _check_size(request, index, len(BroadcastMessage.model_dump_json(m)))
    for m in batch.messages:
        await _send(request, db, caller, UserBroadcast(
            topic=m.topic, event=m.event, payload=m.payload,
            meta={"id": m.id} if m.id else None))
    return Response(status_code=202)


@router.post("/broadcast/{topic}/events/{event}", status_code=202, response_class=Response,
             summary="Broadcast one message (JSON or binary body)")
async def broadcast_one(request: Request, db: SessionDep, caller: OptionalPrincipal,
                        topic: str, event: str) -> Response:
    raw = await request.body()
    _check_size(request, None, len(raw))
    binary = request.headers.get("content-type", "").startswith("application/octet-stream")
    if binary:
        payload: Any = raw
    else:
        try:
            payload = json.loads(raw or b"null")
        except ValueError as exc:
            raise InvalidInput("payload", "not valid JSON") from exc
        if payload is None:
            raise InvalidInput("payload", "Payload is required")
    await _send(request, db, caller, UserBroadcast(topic=topic, event=event, payload=payload,
                                                   binary=binary))
    return Response(status_code=202)
